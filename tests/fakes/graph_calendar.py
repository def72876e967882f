"""A Microsoft Graph v1.0 calendar emulator, served over real HTTP for connector tests.

It follows the documented wire shapes of the calls the calendar connector makes:
``calendarView`` (with ``Prefer: outlook.timezone`` and ``@odata.nextLink`` paging),
events CRUD with ``transactionId`` idempotency, ``cancel``, ``accept`` /
``tentativelyAccept`` / ``decline``, ``calendar/getSchedule``, ``findMeetingTimes``
(delegated tokens only) and ``mailboxSettings`` (Windows time-zone names). Faults on
demand: 429 with ``Retry-After`` and 401 for an unknown token.

Events are kept as iCalendar (one VCALENDAR per series) and expanded with
recurring-ical-events, so a test can seed a mailbox with any RFC 5545 series, as an
Exchange mailbox holds one received by iMIP. Nothing here imports the code under test.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from tests.fakes.serving import serve_app

OLSON_TO_WINDOWS = {v: k for k, v in WINDOWS_TO_OLSON.items()}
_SHOW_AS = {"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"}
_VIEW_CODE = {
    "free": "0",
    "workingElsewhere": "0",
    "tentative": "1",
    "busy": "2",
    "oof": "3",
    "unknown": "2",
}
_RESPONSE_TO_PARTSTAT = {
    "accepted": "ACCEPTED",
    "tentativelyAccepted": "TENTATIVE",
    "declined": "DECLINED",
    "none": "NEEDS-ACTION",
    "notResponded": "NEEDS-ACTION",
}
_PARTSTAT_TO_RESPONSE = {
    "ACCEPTED": "accepted",
    "TENTATIVE": "tentativelyAccepted",
    "DECLINED": "declined",
    "NEEDS-ACTION": "none",
}
_ACTIONS = {"accept": "accepted", "tentativelyAccept": "tentativelyAccepted", "decline": "declined"}
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _zone(name: str) -> ZoneInfo:
    if name in WINDOWS_TO_OLSON:
        return ZoneInfo(WINDOWS_TO_OLSON[name])
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    return ZoneInfo(name)


def _parse_dtz(value: dict[str, Any]) -> datetime:
    """A dateTimeTimeZone ({"dateTime": "2027-03-04T10:00:00.0000000", "timeZone": ...})."""
    text = str(value["dateTime"])
    text = re.sub(r"(\.\d{6})\d*", r"\1", text).removesuffix("Z")
    return datetime.fromisoformat(text).replace(tzinfo=_zone(value.get("timeZone") or "UTC"))


def _format_dtz(moment: datetime, zone_name: str) -> dict[str, str]:
    local = moment.astimezone(_zone(zone_name))
    return {
        "dateTime": local.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
        "timeZone": zone_name,
    }


def _graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "request-id": str(uuid.uuid4()),
                    "date": datetime.now(UTC).isoformat(),
                },
            }
        },
        status_code=status,
        headers=headers,
    )


def _aware(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0), tzinfo=tz)


@dataclass
class Mailbox:
    address: str
    name: str
    timezone: str = "Pacific Standard Time"  # Windows name, as mailboxSettings reports it
    working_days: list[str] = field(default_factory=lambda: _DAYS[:5])
    working_start: time = time(8, 0)
    working_end: time = time(17, 0)


@dataclass
class StoredEvent:
    """One event or series in one mailbox, with the Graph-only properties beside it."""

    id: str
    mailbox: str
    calendar: icalendar.Calendar
    start_zone: str
    end_zone: str
    transaction_id: str | None = None
    is_online_meeting: bool = False
    is_cancelled: bool = False
    change_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def master(self) -> icalendar.Event:
        events = [c for c in self.calendar.walk("VEVENT") if c.get("recurrence-id") is None]
        return events[0] if events else self.calendar.walk("VEVENT")[0]

    @property
    def uid(self) -> str:
        return str(self.master.get("uid"))

    @property
    def is_series(self) -> bool:
        return any(
            c.get("rrule") or c.get("rdate") or c.get("recurrence-id")
            for c in self.calendar.walk("VEVENT")
        )


class GraphCalendarEmulator:
    """State and app of the emulator; ``serve()`` runs it with uvicorn on a free port."""

    def __init__(self, *, page_size: int = 10) -> None:
        self.page_size = page_size
        self._lock = threading.RLock()
        self.reset()
        self.app = self._build_app()
        self.base_url = ""

    # ------------------------------------------------------------------ test controls

    def reset(self) -> None:
        with self._lock:
            self.mailboxes: dict[str, Mailbox] = {}
            self.events: dict[str, StoredEvent] = {}
            self.tokens: dict[str, str] = {}  # token -> "app" | "delegated"
            self.throttle_next = 0
            self.retry_after = 1
            self.throttled = 0
            self.requests: list[tuple[str, str]] = []

    def add_token(self, token: str, kind: str = "app") -> None:
        with self._lock:
            self.tokens[token] = kind

    def add_mailbox(self, address: str, name: str | None = None, **settings: Any) -> Mailbox:
        with self._lock:
            box = Mailbox(address=address.lower(), name=name or address, **settings)
            self.mailboxes[box.address] = box
            return box

    def throttle(self, count: int, retry_after: int = 1) -> None:
        """Answer the next ``count`` requests with 429 and ``Retry-After``."""
        with self._lock:
            self.throttle_next = count
            self.retry_after = retry_after

    def put_ical(self, mailbox: str, text: str) -> str:
        """Store a VCALENDAR (one UID) in a mailbox as if it arrived there; returns its id."""
        calendar = icalendar.Calendar.from_ical(text)
        master = next(c for c in calendar.walk("VEVENT") if c.get("recurrence-id") is None)
        zone = getattr(master.decoded("dtstart").tzinfo, "key", None) or "UTC"
        with self._lock:
            stored = StoredEvent(
                id=self._new_id(),
                mailbox=mailbox.lower(),
                calendar=calendar,
                start_zone=OLSON_TO_WINDOWS.get(zone, zone),
                end_zone=OLSON_TO_WINDOWS.get(zone, zone),
            )
            self.events[stored.id] = stored
            return stored.id

    @staticmethod
    def _new_id() -> str:
        return "AAMkAG" + uuid.uuid4().hex + "AAA="

    # ------------------------------------------------------------------ serving

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run the app with uvicorn in a thread; yield its base URL (ending in /v1.0)."""
        with serve_app(self.app, name="Graph calendar emulator") as port:
            self.base_url = f"http://127.0.0.1:{port}/v1.0"
            yield self.base_url

    # ------------------------------------------------------------------ helpers

    def _events_of(self, mailbox: str) -> list[StoredEvent]:
        return [e for e in self.events.values() if e.mailbox == mailbox]

    def _occurrences(
        self, stored: StoredEvent, start: datetime, end: datetime
    ) -> list[tuple[icalendar.Event, str]]:
        """(component, type) for each occurrence overlapping [start, end)."""
        out = []
        series = stored.is_series
        for component in recurring_ical_events.of(stored.calendar).between(start, end):
            if not series:
                out.append((component, "singleInstance"))
                continue
            rid = component.decoded("recurrence-id")
            is_exception = any(
                c.get("recurrence-id") is not None and c.decoded("recurrence-id") == rid
                for c in stored.calendar.walk("VEVENT")
            )
            out.append((component, "exception" if is_exception else "occurrence"))
        return out

    @staticmethod
    def _occurrence_id(stored: StoredEvent, component: icalendar.Event) -> str:
        rid = component.decoded("recurrence-id")
        moment = _aware(rid, ZoneInfo("UTC")).astimezone(UTC)
        return f"{stored.id}_{moment.strftime('%Y%m%dT%H%M%SZ')}"

    def _find(self, mailbox: str, event_id: str) -> tuple[StoredEvent, datetime | None] | None:
        """The stored event and, for an occurrence id, its original start (UTC)."""
        base, _, stamp = event_id.partition("_")
        stored = self.events.get(base)
        if stored is None or stored.mailbox != mailbox:
            return None
        if not stamp:
            return stored, None
        return stored, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    def _component_for(
        self, stored: StoredEvent, original: datetime | None
    ) -> icalendar.Event | None:
        if original is None:
            return stored.master
        for component, _ in self._occurrences(
            stored, original - timedelta(days=1), original + timedelta(days=2)
        ):
            rid = component.decoded("recurrence-id")
            if _aware(rid, ZoneInfo("UTC")).astimezone(UTC) == original:
                return component
        return None

    def _status(self, stored: StoredEvent, component: icalendar.Event) -> str:
        status = str(component.get("x-microsoft-cdo-busystatus", "")).strip()
        mapping = {
            "FREE": "free",
            "TENTATIVE": "tentative",
            "BUSY": "busy",
            "OOF": "oof",
            "WORKINGELSEWHERE": "workingElsewhere",
        }
        if status.upper() in mapping:
            return mapping[status.upper()]
        return "free" if str(component.get("transp", "")).upper() == "TRANSPARENT" else "busy"

    def _my_response(self, stored: StoredEvent, component: icalendar.Event) -> str:
        organizer = str(component.get("organizer", "")).lower().removeprefix("mailto:")
        if organizer in ("", stored.mailbox):
            return "organizer"
        for attendee in self._as_list(component.get("attendee")):
            if str(attendee).lower().removeprefix("mailto:") == stored.mailbox:
                return _PARTSTAT_TO_RESPONSE.get(
                    str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper(), "none"
                )
        return "none"

    @staticmethod
    def _as_list(value: Any) -> list[Any]:
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def _to_graph(
        self, stored: StoredEvent, component: icalendar.Event, kind: str, zone: str | None
    ) -> dict[str, Any]:
        """The Graph JSON of one event or occurrence, times in ``zone`` (default UTC)."""
        tz_name = zone or "UTC"
        dtstart = component.decoded("dtstart")
        all_day = not isinstance(dtstart, datetime)
        start = _aware(dtstart, _zone(stored.start_zone))
        if component.get("dtend") is not None:
            end = _aware(component.decoded("dtend"), _zone(stored.end_zone))
        elif component.get("duration") is not None:
            end = start + component.decoded("duration")
        else:
            end = start + timedelta(days=1 if all_day else 0)
        event_id = (
            stored.id
            if kind in ("singleInstance", "seriesMaster")
            else self._occurrence_id(stored, component)
        )
        organizer = (
            str(component.get("organizer", "")).removeprefix("mailto:").lower() or stored.mailbox
        )
        attendees = []
        for prop in self._as_list(component.get("attendee")):
            role = str(prop.params.get("ROLE", "REQ-PARTICIPANT")).upper()
            cutype = str(prop.params.get("CUTYPE", "")).upper()
            attendees.append(
                {
                    "type": "resource"
                    if cutype in ("RESOURCE", "ROOM")
                    else "optional"
                    if role in ("OPT-PARTICIPANT", "NON-PARTICIPANT")
                    else "required",
                    "status": {
                        "response": _PARTSTAT_TO_RESPONSE.get(
                            str(prop.params.get("PARTSTAT", "NEEDS-ACTION")).upper(), "none"
                        ),
                        "time": "0001-01-01T00:00:00Z",
                    },
                    "emailAddress": {
                        "name": str(prop.params.get("CN", "")) or None,
                        "address": str(prop).removeprefix("mailto:").lower(),
                    },
                }
            )
        body = str(component.get("description", ""))
        data: dict[str, Any] = {
            "@odata.etag": f'W/"{stored.change_key}"',
            "id": event_id,
            "createdDateTime": stored.created.isoformat().replace("+00:00", "Z"),
            "changeKey": stored.change_key,
            "transactionId": stored.transaction_id,
            "iCalUId": stored.uid,
            "subject": str(component.get("summary", "")),
            "bodyPreview": body[:255],
            "body": {"contentType": "text", "content": body},
            "start": _format_dtz(start, tz_name),
            "end": _format_dtz(end, tz_name),
            "originalStartTimeZone": stored.start_zone,
            "originalEndTimeZone": stored.end_zone,
            "isAllDay": all_day,
            "isCancelled": stored.is_cancelled
            or str(component.get("status", "")).upper() == "CANCELLED",
            "isOrganizer": organizer == stored.mailbox,
            "showAs": self._status(stored, component),
            "type": kind,
            "seriesMasterId": stored.id if kind in ("occurrence", "exception") else None,
            "location": {"displayName": str(component.get("location", ""))},
            "organizer": {"emailAddress": {"name": organizer, "address": organizer}},
            "attendees": attendees,
            "responseStatus": {
                "response": self._my_response(stored, component),
                "time": "0001-01-01T00:00:00Z",
            },
            "isOnlineMeeting": stored.is_online_meeting,
            "recurrence": None,
        }
        if kind in ("occurrence", "exception"):
            rid = _aware(component.decoded("recurrence-id"), _zone(stored.start_zone))
            data["originalStart"] = rid.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if kind == "seriesMaster":
            rrule = component.get("rrule")
            data["recurrence"] = (
                {
                    "pattern": {"type": str(rrule.get("FREQ", [""])[0]).lower()},
                    "range": {"type": "noEnd"},
                }
                if rrule
                else None
            )
        return data

    @staticmethod
    def _prefer_zone(request: Request) -> str | None:
        match = re.search(r'outlook\.timezone="([^"]+)"', request.headers.get("prefer", ""))
        return match.group(1) if match else None

    def _event_json(
        self, stored: StoredEvent, original: datetime | None, zone: str | None
    ) -> dict[str, Any] | None:
        if original is None:
            kind = "seriesMaster" if stored.is_series else "singleInstance"
            return self._to_graph(stored, stored.master, kind, zone)
        component = self._component_for(stored, original)
        if component is None:
            return None
        rid = component.decoded("recurrence-id")
        is_exception = any(
            c.get("recurrence-id") is not None and c.decoded("recurrence-id") == rid
            for c in stored.calendar.walk("VEVENT")
        )
        return self._to_graph(
            stored, component, "exception" if is_exception else "occurrence", zone
        )

    def _busy_items(
        self, mailbox: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime, str, str]]:
        items = []
        for stored in self._events_of(mailbox):
            if stored.is_cancelled:
                continue
            for component, kind in self._occurrences(stored, start, end):
                data = self._to_graph(stored, component, kind, "UTC")
                if data["isCancelled"] or data["responseStatus"]["response"] == "declined":
                    continue
                status = data["showAs"]
                if status == "free":
                    continue
                if data["responseStatus"]["response"] == "none" and status == "busy":
                    status = "tentative"  # an unanswered invitation shows as tentative
                items.append(
                    (_parse_dtz(data["start"]), _parse_dtz(data["end"]), status, data["subject"])
                )
        items.sort()
        return items

    def _working_hours(self, box: Mailbox) -> dict[str, Any]:
        return {
            "daysOfWeek": list(box.working_days),
            "startTime": box.working_start.strftime("%H:%M:%S.0000000"),
            "endTime": box.working_end.strftime("%H:%M:%S.0000000"),
            "timeZone": {"name": box.timezone},
        }

    def _deliver_invitations(self, stored: StoredEvent) -> None:
        """Put a copy of a meeting in each invited mailbox the emulator holds."""
        for prop in self._as_list(stored.master.get("attendee")):
            address = str(prop).removeprefix("mailto:").lower()
            if address == stored.mailbox or address not in self.mailboxes:
                continue
            if any(e.mailbox == address and e.uid == stored.uid for e in self.events.values()):
                continue
            copy = StoredEvent(
                id=self._new_id(),
                mailbox=address,
                calendar=icalendar.Calendar.from_ical(stored.calendar.to_ical()),
                start_zone=stored.start_zone,
                end_zone=stored.end_zone,
            )
            self.events[copy.id] = copy

    def _copies(self, stored: StoredEvent) -> list[StoredEvent]:
        return [e for e in self.events.values() if e.uid == stored.uid and e is not stored]

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> FastAPI:  # noqa: C901 - one route table
        app = FastAPI()
        emulator = self

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            with emulator._lock:
                emulator.requests.append((request.method, request.url.path))
                if emulator.throttle_next > 0:
                    emulator.throttle_next -= 1
                    emulator.throttled += 1
                    return _graph_error(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        {"Retry-After": str(emulator.retry_after)},
                    )
                header = request.headers.get("authorization", "")
                token = header.removeprefix("Bearer ").strip()
                if not header.startswith("Bearer ") or token not in emulator.tokens:
                    return _graph_error(
                        401,
                        "InvalidAuthenticationToken",
                        "Access token validation failure. Invalid audience.",
                    )
                request.state.token_kind = emulator.tokens[token]
            return await call_next(request)

        def mailbox_or_404(user: str) -> Mailbox | JSONResponse:
            box = emulator.mailboxes.get(user.lower())
            if box is None:
                return _graph_error(
                    404, "ErrorInvalidUser", f"The requested user '{user}' is invalid."
                )
            return box

        @app.get("/v1.0/users/{user}/mailboxSettings")
        async def mailbox_settings(user: str) -> Response:
            with emulator._lock:
                box = mailbox_or_404(user)
                if isinstance(box, JSONResponse):
                    return box
                return JSONResponse(
                    {
                        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/"
                        "mailboxSettings",
                        "timeZone": box.timezone,
                        "dateFormat": "M/d/yyyy",
                        "timeFormat": "h:mm tt",
                        "workingHours": emulator._working_hours(box),
                    }
                )

        @app.get("/v1.0/users/{user}/calendars")
        async def calendars(user: str) -> Response:
            with emulator._lock:
                box = mailbox_or_404(user)
                if isinstance(box, JSONResponse):
                    return box
                return JSONResponse(
                    {
                        "value": [
                            {
                                "id": "AAMkCalendar" + box.address,
                                "name": "Calendar",
                                "canEdit": True,
                                "isDefaultCalendar": True,
                                "owner": {"name": box.name, "address": box.address},
                            }
                        ]
                    }
                )

        @app.get("/v1.0/users/{user}/calendarView")
        @app.get("/v1.0/users/{user}/calendar/calendarView")
        async def calendar_view(user: str, request: Request) -> Response:
            params = request.query_params
            if "startDateTime" not in params or "endDateTime" not in params:
                return _graph_error(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the "
                    "query string parameters StartDateTime and EndDateTime.",
                )
            start = datetime.fromisoformat(params["startDateTime"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(params["endDateTime"].replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            if end.tzinfo is None:
                end = end.replace(tzinfo=UTC)
            top = min(int(params.get("$top", emulator.page_size)), emulator.page_size)
            skip = int(params.get("$skip", 0))
            zone = emulator._prefer_zone(request)
            with emulator._lock:
                box = mailbox_or_404(user)
                if isinstance(box, JSONResponse):
                    return box
                items = []
                for stored in emulator._events_of(box.address):
                    for component, kind in emulator._occurrences(stored, start, end):
                        items.append(emulator._to_graph(stored, component, kind, zone))
            items.sort(key=lambda e: (_parse_dtz(e["start"]), e["id"]))
            page = items[skip : skip + top]
            body: dict[str, Any] = {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/"
                "calendarView",
                "value": page,
            }
            if skip + top < len(items):
                body["@odata.nextLink"] = str(
                    request.url.include_query_params(**{"$skip": skip + top, "$top": top})
                )
            headers = {"Preference-Applied": f'outlook.timezone="{zone}"'} if zone else None
            return JSONResponse(body, headers=headers)

        @app.get("/v1.0/users/{user}/events/{event_id}")
        async def get_event(user: str, event_id: str, request: Request) -> Response:
            with emulator._lock:
                found = emulator._find(user.lower(), event_id)
                data = (
                    emulator._event_json(*found, emulator._prefer_zone(request)) if found else None
                )
            if data is None:
                return _graph_error(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            return JSONResponse(data)

        def build_component(
            body: dict[str, Any], organizer: str, uid: str
        ) -> tuple[icalendar.Event, str, str]:
            start_zone = body["start"].get("timeZone") or "UTC"
            end_zone = body["end"].get("timeZone") or "UTC"
            event = icalendar.Event()
            event.add("uid", uid)
            event.add("dtstamp", datetime.now(UTC))
            event.add("dtstart", _parse_dtz(body["start"]).astimezone(UTC))
            event.add("dtend", _parse_dtz(body["end"]).astimezone(UTC))
            event.add("summary", body.get("subject", ""))
            if (body.get("body") or {}).get("content"):
                event.add("description", body["body"]["content"])
            if (body.get("location") or {}).get("displayName"):
                event.add("location", body["location"]["displayName"])
            show_as = body.get("showAs", "busy")
            event.add("x-microsoft-cdo-busystatus", show_as.upper())
            event.add("transp", "TRANSPARENT" if show_as == "free" else "OPAQUE")
            set_attendees(event, body.get("attendees") or [], organizer)
            return event, start_zone, end_zone

        def set_attendees(
            event: icalendar.Event, attendees: list[dict[str, Any]], organizer: str
        ) -> None:
            event.pop("attendee", None)
            event.pop("organizer", None)
            if attendees:
                event.add("organizer", icalendar.vCalAddress(f"mailto:{organizer}"))
            for attendee in attendees:
                address = attendee["emailAddress"]["address"].lower()
                prop = icalendar.vCalAddress(f"mailto:{address}")
                if attendee["emailAddress"].get("name"):
                    prop.params["CN"] = attendee["emailAddress"]["name"]
                kind = attendee.get("type", "required")
                prop.params["ROLE"] = "OPT-PARTICIPANT" if kind == "optional" else "REQ-PARTICIPANT"
                if kind == "resource":
                    prop.params["CUTYPE"] = "RESOURCE"
                prop.params["PARTSTAT"] = "NEEDS-ACTION"
                event.add("attendee", prop, encode=False)

        def validate_event_body(body: dict[str, Any], partial: bool) -> JSONResponse | None:
            for key in ("start", "end"):
                if key in body:
                    try:
                        _parse_dtz(body[key])
                    except (KeyError, ValueError, TypeError):
                        return _graph_error(
                            400, "ErrorInvalidRequest", f"Invalid {key} dateTimeTimeZone."
                        )
                elif not partial:
                    return _graph_error(400, "ErrorInvalidRequest", f"{key} is required.")
            if body.get("showAs", "busy") not in _SHOW_AS:
                return _graph_error(400, "ErrorInvalidRequest", "Invalid showAs.")
            return None

        @app.post("/v1.0/users/{user}/events")
        @app.post("/v1.0/users/{user}/calendar/events")
        async def create_event(user: str, request: Request) -> Response:
            body = await request.json()
            problem = validate_event_body(body, partial=False)
            if problem:
                return problem
            zone = emulator._prefer_zone(request)
            with emulator._lock:
                box = mailbox_or_404(user)
                if isinstance(box, JSONResponse):
                    return box
                transaction_id = body.get("transactionId")
                if transaction_id:
                    for existing in emulator._events_of(box.address):
                        if existing.transaction_id == transaction_id:
                            data = emulator._event_json(existing, None, zone)
                            return JSONResponse(data, status_code=201)
                if _parse_dtz(body["end"]) < _parse_dtz(body["start"]):
                    return _graph_error(
                        400, "ErrorInvalidRequest", "The end of the event is before its start."
                    )
                uid = "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper()
                component, start_zone, end_zone = build_component(body, box.address, uid)
                calendar = icalendar.Calendar()
                calendar.add("prodid", "-//Graph emulator//EN")
                calendar.add("version", "2.0")
                calendar.add_component(component)
                stored = StoredEvent(
                    id=emulator._new_id(),
                    mailbox=box.address,
                    calendar=calendar,
                    start_zone=start_zone,
                    end_zone=end_zone,
                    transaction_id=transaction_id,
                    is_online_meeting=bool(body.get("isOnlineMeeting")),
                )
                emulator.events[stored.id] = stored
                emulator._deliver_invitations(stored)
                data = emulator._event_json(stored, None, zone)
            return JSONResponse(data, status_code=201)

        @app.patch("/v1.0/users/{user}/events/{event_id}")
        async def update_event(user: str, event_id: str, request: Request) -> Response:
            body = await request.json()
            problem = validate_event_body(body, partial=True)
            if problem:
                return problem
            with emulator._lock:
                found = emulator._find(user.lower(), event_id)
                if found is None:
                    return _graph_error(
                        404, "ErrorItemNotFound", "The specified object was not found in the store."
                    )
                stored, original = found
                component = emulator._component_for(stored, original)
                if component is None:
                    return _graph_error(404, "ErrorItemNotFound", "No such occurrence.")
                if original is not None:
                    # Editing one occurrence makes it an exception (a RECURRENCE-ID override).
                    overrides = [
                        c
                        for c in stored.calendar.walk("VEVENT")
                        if c.get("recurrence-id") is not None
                        and c.decoded("recurrence-id") == component.decoded("recurrence-id")
                    ]
                    if overrides:
                        component = overrides[0]
                    else:
                        for name in ("rrule", "rdate", "exdate"):
                            component.pop(name, None)
                        stored.calendar.add_component(component)
                if "start" in body:
                    component.pop("dtstart", None)
                    component.add("dtstart", _parse_dtz(body["start"]).astimezone(UTC))
                    if original is None:
                        stored.start_zone = body["start"].get("timeZone") or "UTC"
                if "end" in body:
                    component.pop("dtend", None)
                    component.pop("duration", None)
                    component.add("dtend", _parse_dtz(body["end"]).astimezone(UTC))
                    if original is None:
                        stored.end_zone = body["end"].get("timeZone") or "UTC"
                for key, prop in (("subject", "summary"),):
                    if key in body:
                        component.pop(prop, None)
                        component.add(prop, body[key])
                if "body" in body:
                    component.pop("description", None)
                    component.add("description", (body["body"] or {}).get("content", ""))
                if "location" in body:
                    component.pop("location", None)
                    component.add("location", (body["location"] or {}).get("displayName", ""))
                if "showAs" in body:
                    for name in ("x-microsoft-cdo-busystatus", "transp"):
                        component.pop(name, None)
                    component.add("x-microsoft-cdo-busystatus", body["showAs"].upper())
                    component.add("transp", "TRANSPARENT" if body["showAs"] == "free" else "OPAQUE")
                if "attendees" in body:
                    set_attendees(component, body["attendees"], stored.mailbox)
                start = _aware(component.decoded("dtstart"), ZoneInfo("UTC"))
                end = _aware(component.decoded("dtend"), ZoneInfo("UTC"))
                if end < start:
                    return _graph_error(
                        400, "ErrorInvalidRequest", "The end of the event is before its start."
                    )
                component["sequence"] = int(component.get("sequence", 0)) + 1
                stored.change_key = uuid.uuid4().hex
                emulator._deliver_invitations(stored)
                new_id = (
                    event_id if original is None else emulator._occurrence_id(stored, component)
                )
                data = emulator._event_json(
                    *emulator._find(user.lower(), new_id) or (stored, None),
                    emulator._prefer_zone(request),
                )
            return JSONResponse(data)

        def remove_occurrence(stored: StoredEvent, original: datetime) -> None:
            component = emulator._component_for(stored, original)
            if component is None:
                return
            rid = component.decoded("recurrence-id")
            stored.master.add("exdate", rid)
            for sub in list(stored.calendar.subcomponents):
                if (
                    sub.name == "VEVENT"
                    and sub.get("recurrence-id") is not None
                    and sub.decoded("recurrence-id") == rid
                ):
                    stored.calendar.subcomponents.remove(sub)

        @app.delete("/v1.0/users/{user}/events/{event_id}")
        async def delete_event(user: str, event_id: str) -> Response:
            with emulator._lock:
                found = emulator._find(user.lower(), event_id)
                if found is None:
                    return _graph_error(
                        404, "ErrorItemNotFound", "The specified object was not found in the store."
                    )
                stored, original = found
                if original is None:
                    del emulator.events[stored.id]
                else:
                    remove_occurrence(stored, original)
            return Response(status_code=204)

        @app.post("/v1.0/users/{user}/events/{event_id}/cancel")
        async def cancel_event(user: str, event_id: str, request: Request) -> Response:
            body = await request.json() if await request.body() else {}
            with emulator._lock:
                found = emulator._find(user.lower(), event_id)
                if found is None:
                    return _graph_error(
                        404, "ErrorItemNotFound", "The specified object was not found in the store."
                    )
                stored, original = found
                if emulator._my_response(stored, stored.master) != "organizer":
                    return _graph_error(
                        400,
                        "ErrorInvalidRequest",
                        "Your request can't be completed. Only the meeting "
                        "organizer can cancel the meeting.",
                    )
                for copy in emulator._copies(stored):
                    if original is None:
                        copy.is_cancelled = True
                        if body.get("Comment") or body.get("comment"):
                            copy.master.pop("comment", None)
                            copy.master.add("comment", body.get("Comment") or body["comment"])
                    else:
                        remove_occurrence(copy, original)
                if original is None:
                    del emulator.events[stored.id]  # the organiser's copy goes away
                else:
                    remove_occurrence(stored, original)
            return Response(status_code=202)

        @app.post("/v1.0/users/{user}/events/{event_id}/{action}")
        async def respond(user: str, event_id: str, action: str, request: Request) -> Response:
            if action not in _ACTIONS:
                return _graph_error(400, "BadRequest", f"Unsupported action {action!r}.")
            with emulator._lock:
                found = emulator._find(user.lower(), event_id)
                if found is None:
                    return _graph_error(
                        404, "ErrorItemNotFound", "The specified object was not found in the store."
                    )
                stored, original = found
                if emulator._my_response(stored, stored.master) == "organizer":
                    return _graph_error(
                        400,
                        "ErrorInvalidRequest",
                        "Your request can't be completed. You can't respond "
                        "to a meeting you organized.",
                    )
                partstat = _RESPONSE_TO_PARTSTAT[_ACTIONS[action]]
                for target in [stored, *emulator._copies(stored)]:
                    components = (
                        [target.master]
                        if original is None
                        else [c for c in target.calendar.walk("VEVENT")]
                    )
                    for component in components:
                        for prop in emulator._as_list(component.get("attendee")):
                            if str(prop).lower().removeprefix("mailto:") == user.lower():
                                prop.params["PARTSTAT"] = partstat
                    target.change_key = uuid.uuid4().hex
            return Response(status_code=202)

        @app.post("/v1.0/users/{user}/calendar/getSchedule")
        async def get_schedule(user: str, request: Request) -> Response:
            body = await request.json()
            try:
                start = _parse_dtz(body["startTime"])
                end = _parse_dtz(body["endTime"])
                schedules = [str(s) for s in body["schedules"]]
            except (KeyError, ValueError, TypeError):
                return _graph_error(400, "ErrorInvalidRequest", "Invalid getSchedule request.")
            interval = int(body.get("availabilityViewInterval", 30))
            zone = emulator._prefer_zone(request) or "UTC"
            out = []
            with emulator._lock:
                caller = mailbox_or_404(user)
                if isinstance(caller, JSONResponse):
                    return caller
                for schedule in schedules:
                    box = emulator.mailboxes.get(schedule.lower())
                    if box is None:
                        out.append(
                            {
                                "scheduleId": schedule,
                                "availabilityView": "",
                                "scheduleItems": [],
                                "error": {
                                    "message": "The user or resource was not found.",
                                    "responseCode": "ErrorMailRecipientNotFound",
                                },
                            }
                        )
                        continue
                    items = emulator._busy_items(box.address, start, end)
                    view = []
                    slot = start
                    while slot < end:
                        slot_end = slot + timedelta(minutes=interval)
                        codes = [_VIEW_CODE[s] for a, b, s, _ in items if a < slot_end and b > slot]
                        view.append(max(codes) if codes else "0")
                        slot = slot_end
                    out.append(
                        {
                            "scheduleId": schedule,
                            "availabilityView": "".join(view),
                            "scheduleItems": [
                                {
                                    "isPrivate": False,
                                    "status": s,
                                    "subject": subject,
                                    "location": "",
                                    "start": _format_dtz(a, zone),
                                    "end": _format_dtz(b, zone),
                                }
                                for a, b, s, subject in items
                            ],
                            "workingHours": emulator._working_hours(box),
                        }
                    )
            return JSONResponse(
                {
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata"
                    "#Collection(microsoft.graph.scheduleInformation)",
                    "value": out,
                }
            )

        @app.post("/v1.0/users/{user}/findMeetingTimes")
        async def find_meeting_times(user: str, request: Request) -> Response:
            if request.state.token_kind != "delegated":
                return _graph_error(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            body = await request.json()
            match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", body.get("meetingDuration", "PT30M"))
            if not match:
                return _graph_error(400, "ErrorInvalidRequest", "Invalid meetingDuration.")
            duration = timedelta(hours=int(match.group(1) or 0), minutes=int(match.group(2) or 0))
            slots = [
                (_parse_dtz(s["start"]), _parse_dtz(s["end"]))
                for s in (body.get("timeConstraint") or {}).get("timeSlots", [])
            ]
            minimum = float(body.get("minimumAttendeePercentage", 50))
            max_candidates = int(body.get("maxCandidates", 20))
            zone = emulator._prefer_zone(request) or "UTC"
            with emulator._lock:
                organizer = mailbox_or_404(user)
                if isinstance(organizer, JSONResponse):
                    return organizer
                attendees = [
                    a["emailAddress"]["address"].lower() for a in body.get("attendees", [])
                ]
                tz = _zone(organizer.timezone)
                suggestions = []
                for slot_start, slot_end in slots:
                    candidate = slot_start.astimezone(UTC)
                    step = timedelta(minutes=30)
                    minute = candidate.minute % 30
                    if minute or candidate.second:
                        candidate += timedelta(minutes=30 - minute) - timedelta(
                            seconds=candidate.second
                        )
                    while candidate + duration <= slot_end:
                        local = candidate.astimezone(tz)
                        in_hours = (
                            _DAYS[local.weekday()] in organizer.working_days
                            and organizer.working_start <= local.time()
                            and (local + duration).time() <= organizer.working_end
                            and (local + duration).date() == local.date()
                        )
                        if in_hours:

                            def free(address: str, start: datetime = candidate) -> str:
                                if address not in emulator.mailboxes:
                                    return "unknown"
                                busy = [
                                    s
                                    for a, b, s, _ in emulator._busy_items(
                                        address, start, start + duration
                                    )
                                ]
                                return busy[0] if busy else "free"

                            availability = {a: free(a) for a in attendees}
                            free_count = sum(1 for v in availability.values() if v == "free")
                            confidence = 100.0 * free_count / len(attendees) if attendees else 100.0
                            organizer_availability = free(organizer.address)
                            if confidence >= minimum and organizer_availability == "free":
                                suggestions.append(
                                    {
                                        "confidence": confidence,
                                        "organizerAvailability": organizer_availability,
                                        "suggestionReason": "Suggested because it is one of the "
                                        "nearest times when all attendees are available.",
                                        "meetingTimeSlot": {
                                            "start": _format_dtz(candidate, zone),
                                            "end": _format_dtz(candidate + duration, zone),
                                        },
                                        "attendeeAvailability": [
                                            {
                                                "attendee": {
                                                    "type": "required",
                                                    "emailAddress": {"address": a},
                                                },
                                                "availability": v,
                                            }
                                            for a, v in availability.items()
                                        ],
                                        "locations": [],
                                    }
                                )
                        candidate += step
            suggestions = suggestions[:max_candidates]
            return JSONResponse(
                {
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata"
                    "#microsoft.graph.meetingTimeSuggestionsResult",
                    "emptySuggestionsReason": "" if suggestions else "attendeesUnavailable",
                    "meetingTimeSuggestions": suggestions,
                }
            )

        return app
