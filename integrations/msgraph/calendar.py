"""Microsoft 365 calendars through Microsoft Graph v1.0.

Reads use ``calendarView`` (recurrences expanded by Exchange) with
``Prefer: outlook.timezone="UTC"`` so every instant comes back in UTC; the zone an event
was written in comes from ``originalStartTimeZone`` (a Windows or IANA name). Free/busy
uses ``calendar/getSchedule`` (works with application permissions), working hours and
time zone come from ``mailboxSettings``; ``findMeetingTimes`` needs a delegated token.
Creates carry the idempotency key as the event's ``transactionId``. Transport, retries
(429 and ``Retry-After``) and error mapping are :class:`~integrations.msgraph.client.GraphClient`'s.
"""

from __future__ import annotations

import re
import time as time_module
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any
from urllib.parse import quote

import structlog
from pydantic import BaseModel, Field

from integrations import ical
from integrations.base import (
    Attendee,
    AttendeeType,
    BusyInterval,
    CalendarEvent,
    CalendarInfo,
    Capability,
    ConnectorContext,
    ConnectorHealth,
    ConnectorSpec,
    ConnectorStatus,
    EventRequest,
    EventUpdate,
    FreeBusy,
    InviteResponse,
    ResponseStatus,
    ShowAs,
    WorkingHours,
)
from integrations.errors import (
    ConnectorError,
    ConnectorNotFoundError,
    FatalConnectorError,
)
from integrations.msgraph.auth import (
    EntraAuthConfig,
    TokenProvider,
    token_provider_for,
)
from integrations.msgraph.client import GRAPH_BASE_URL, GraphClient

log = structlog.stdlib.get_logger(__name__)

_PREFER = 'outlook.timezone="UTC", outlook.body-content-type="text"'
_SCHEDULE_BATCH = 20
_SHOW_AS = {
    "free": ShowAs.FREE,
    "tentative": ShowAs.TENTATIVE,
    "busy": ShowAs.BUSY,
    "oof": ShowAs.OOF,
    "workingelsewhere": ShowAs.WORKING_ELSEWHERE,
    "unknown": ShowAs.BUSY,
}
_SHOW_AS_OUT = {
    ShowAs.FREE: "free",
    ShowAs.TENTATIVE: "tentative",
    ShowAs.BUSY: "busy",
    ShowAs.OOF: "oof",
    ShowAs.WORKING_ELSEWHERE: "workingElsewhere",
}
_RESPONSE = {
    "none": ResponseStatus.NEEDS_ACTION,
    "notresponded": ResponseStatus.NEEDS_ACTION,
    "organizer": ResponseStatus.ORGANIZER,
    "accepted": ResponseStatus.ACCEPTED,
    "tentativelyaccepted": ResponseStatus.TENTATIVE,
    "declined": ResponseStatus.DECLINED,
}
_ATTENDEE_TYPE = {
    "required": AttendeeType.REQUIRED,
    "optional": AttendeeType.OPTIONAL,
    "resource": AttendeeType.RESOURCE,
}
_INVITE_ACTION = {
    InviteResponse.ACCEPT: "accept",
    InviteResponse.TENTATIVE: "tentativelyAccept",
    InviteResponse.DECLINE: "decline",
}
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@cache
def _windows_zones() -> dict[str, str]:
    """IANA zone -> Windows zone, from CLDR's table as icalendar ships it; built on first
    use: importing icalendar at discovery was a sizeable share of the service's start-up."""
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    return {iana: windows for windows, iana in WINDOWS_TO_OLSON.items()}


class GraphCalendarConfig(EntraAuthConfig):
    """A Microsoft 365 mailbox's calendar, and how to get tokens for it."""

    mailbox: str = Field(title="Mailbox", description="The owner's address (UPN).")
    base_url: str = Field(default=GRAPH_BASE_URL, title="Graph base URL")
    availability_interval_min: int = Field(
        default=15, ge=5, le=1440, title="getSchedule interval (minutes)"
    )


class MeetingTimeSuggestion(BaseModel):
    """One slot proposed by Graph's findMeetingTimes."""

    start: datetime
    end: datetime
    confidence: float
    organizer_availability: str
    attendee_availability: dict[str, str] = Field(default_factory=dict)
    reason: str | None = None


class MeetingTimes(BaseModel):
    suggestions: list[MeetingTimeSuggestion] = Field(default_factory=list)
    empty_reason: str | None = Field(
        default=None, description="Why there is no suggestion, when there is none."
    )


def parse_graph_datetime(value: dict[str, Any] | None, default_tz: str = "UTC") -> datetime:
    """An aware datetime from a Graph dateTimeTimeZone (7 fractional digits, zone names)."""
    if not value or not value.get("dateTime"):
        raise FatalConnectorError("Graph returned an event without a time")
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value["dateTime"])).removesuffix("Z")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return moment
    try:
        zone = ical.resolve_timezone(value.get("timeZone"), default_tz)
    except ValueError:
        log.warning("connector.calendar.unknown_timezone", zone=value.get("timeZone"))
        zone = default_tz
    from zoneinfo import ZoneInfo

    return moment.replace(tzinfo=ZoneInfo(zone))


def graph_datetime(moment: datetime, zone: str) -> dict[str, str]:
    """A dateTimeTimeZone for ``moment`` as wall time in ``zone`` (Windows name when known).

    An ambiguous wall time (the repeated hour of a fall-back night) goes out in UTC.
    """
    wall = ical.wall_time(moment, zone)
    if wall.tzinfo is UTC:
        return {"dateTime": wall.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
    return {
        "dateTime": wall.replace(tzinfo=None).isoformat(),
        "timeZone": _windows_zones().get(zone, zone),
    }


def _parse_time(value: str | None, default: time) -> time:
    if not value:
        return default
    return time.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))


def _utc_param(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphCalendarConnector:
    """The owner's Exchange calendar, and colleagues' free/busy, over Microsoft Graph.

    Calendar ids are people's addresses (their default calendar) or Graph calendar ids.
    Event ids are Graph ids; events read from another person's calendar are
    ``address/graph-id``.
    """

    def __init__(
        self,
        client: GraphClient,
        *,
        mailbox: str,
        name: str = "msgraph-calendar",
        availability_interval_min: int = 15,
        owns_client: bool = True,
    ) -> None:
        self.owner = mailbox.strip().lower()
        self.name = name
        self._graph = client
        self._owns_client = owns_client
        self._interval = availability_interval_min
        self._settings_cache: dict[str, tuple[str, WorkingHours]] = {}

    # ------------------------------------------------------------------ mapping

    @staticmethod
    def _user(address: str) -> str:
        return f"users/{quote(address.strip().lower(), safe='@')}"

    def _split_id(self, event_id: str) -> tuple[str, str]:
        address, sep, graph_id = event_id.partition("/")
        if sep and "@" in address and graph_id:
            return address.lower(), graph_id
        return self.owner, event_id

    def _event(self, data: dict[str, Any], address: str, default_tz: str = "UTC") -> CalendarEvent:
        graph_id = str(data["id"])
        event_id = graph_id if address == self.owner else f"{address}/{graph_id}"
        try:
            zone = ical.resolve_timezone(data.get("originalStartTimeZone"), default_tz)
        except ValueError:
            zone = default_tz
        attendees = [
            Attendee(
                address=str(a["emailAddress"]["address"]),
                name=a["emailAddress"].get("name") or None,
                type=_ATTENDEE_TYPE.get(
                    str(a.get("type", "required")).lower(), AttendeeType.REQUIRED
                ),
                response=_RESPONSE.get(
                    str((a.get("status") or {}).get("response", "none")).lower(),
                    ResponseStatus.NEEDS_ACTION,
                ),
            )
            for a in data.get("attendees") or []
            if (a.get("emailAddress") or {}).get("address")
        ]
        organizer = ((data.get("organizer") or {}).get("emailAddress") or {}).get("address")
        series = data.get("seriesMasterId")
        original = data.get("originalStart")
        body = (data.get("body") or {}).get("content") or None
        if body and str((data.get("body") or {}).get("contentType", "text")).lower() == "html":
            import html2text

            body = html2text.html2text(body).strip() or None
        return CalendarEvent(
            id=event_id,
            uid=data.get("iCalUId"),
            calendar_id=address,
            subject=data.get("subject") or "",
            start=parse_graph_datetime(data.get("start")).astimezone(UTC),
            end=parse_graph_datetime(data.get("end")).astimezone(UTC),
            timezone=zone,
            all_day=bool(data.get("isAllDay")),
            location=((data.get("location") or {}).get("displayName") or None),
            body=body,
            organizer=str(organizer).lower() if organizer else None,
            attendees=attendees,
            show_as=_SHOW_AS.get(str(data.get("showAs", "busy")).lower(), ShowAs.BUSY),
            is_cancelled=bool(data.get("isCancelled")),
            series_id=(series if address == self.owner else f"{address}/{series}")
            if series
            else None,
            recurrence_id=datetime.fromisoformat(str(original).replace("Z", "+00:00")).astimezone(
                UTC
            )
            if original
            else None,
            etag=data.get("@odata.etag") or data.get("changeKey"),
        )

    # ------------------------------------------------------------------ reads

    async def check(self) -> ConnectorHealth:
        started = time_module.perf_counter()
        try:
            await self._graph.get_json(f"{self._user(self.owner)}/mailboxSettings")
        except ConnectorError as exc:
            return ConnectorHealth(
                status=ConnectorStatus.DOWN, detail=f"{type(exc).__name__}: {exc.detail}"
            )
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time_module.perf_counter() - started) * 1000
        )

    async def mailbox_settings(self, address: str | None = None) -> tuple[str, WorkingHours]:
        """(IANA time zone, working hours) of a mailbox, from ``mailboxSettings``."""
        address = (address or self.owner).lower()
        if address in self._settings_cache:
            return self._settings_cache[address]
        data = await self._graph.get_json(f"{self._user(address)}/mailboxSettings")
        try:
            zone = ical.resolve_timezone(data.get("timeZone"))
        except ValueError:
            zone = "UTC"
        hours = self._working_hours(data.get("workingHours"), zone)
        self._settings_cache[address] = (zone, hours)
        return zone, hours

    @staticmethod
    def _working_hours(data: dict[str, Any] | None, default_zone: str) -> WorkingHours:
        if not data:
            return WorkingHours(timezone=default_zone)
        try:
            zone = ical.resolve_timezone((data.get("timeZone") or {}).get("name"), default_zone)
        except ValueError:  # a customTimeZone with only offsets: fall back to the mailbox's
            zone = default_zone
        days = [
            _DAYS.index(str(d).lower())
            for d in data.get("daysOfWeek") or []
            if str(d).lower() in _DAYS
        ]
        return WorkingHours(
            timezone=zone,
            days=sorted(days),
            start=_parse_time(data.get("startTime"), time(9, 0)),
            end=_parse_time(data.get("endTime"), time(17, 0)),
        )

    async def list_calendars(self) -> list[CalendarInfo]:
        zone, _ = await self.mailbox_settings()
        calendars = []
        async for item in self._graph.items(f"{self._user(self.owner)}/calendars"):
            default = bool(item.get("isDefaultCalendar"))
            calendars.append(
                CalendarInfo(
                    id=self.owner if default else str(item["id"]),
                    name=item.get("name") or "",
                    owner=str(((item.get("owner") or {}).get("address")) or self.owner).lower(),
                    timezone=zone,
                    can_edit=bool(item.get("canEdit", True)),
                )
            )
        if not any(c.id == self.owner for c in calendars):
            calendars.insert(
                0, CalendarInfo(id=self.owner, name="Calendar", owner=self.owner, timezone=zone)
            )
        return calendars

    def _calendar_path(self, calendar_id: str | None) -> tuple[str, str]:
        """(address, path prefix) of a calendar id."""
        if calendar_id is None or calendar_id.lower() == self.owner:
            return self.owner, self._user(self.owner)
        if "@" in calendar_id:
            return calendar_id.lower(), self._user(calendar_id)
        return self.owner, f"{self._user(self.owner)}/calendars/{quote(calendar_id, safe='')}"

    async def list_events(
        self, start: datetime, end: datetime, *, calendar_id: str | None = None
    ) -> list[CalendarEvent]:
        address, prefix = self._calendar_path(calendar_id)
        params = {"startDateTime": _utc_param(start), "endDateTime": _utc_param(end), "$top": "100"}
        events = [
            self._event(item, address)
            async for item in self._graph.items(
                f"{prefix}/calendarView", params=params, headers={"Prefer": _PREFER}
            )
        ]
        events.sort(key=lambda e: (e.start, e.id))
        return events

    async def get_event(self, event_id: str) -> CalendarEvent:
        address, graph_id = self._split_id(event_id)
        data = await self._graph.get_json(
            f"{self._user(address)}/events/{quote(graph_id, safe='')}", headers={"Prefer": _PREFER}
        )
        return self._event(data, address)

    async def get_free_busy(
        self, people: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusy]:
        wanted = [p.strip().lower() for p in people]
        found: dict[str, FreeBusy] = {}
        for batch_start in range(0, len(wanted), _SCHEDULE_BATCH):
            batch = list(dict.fromkeys(wanted[batch_start : batch_start + _SCHEDULE_BATCH]))
            data = await self._graph.post_json(
                f"{self._user(self.owner)}/calendar/getSchedule",
                {
                    "schedules": batch,
                    "startTime": {"dateTime": _utc_param(start)[:-1], "timeZone": "UTC"},
                    "endTime": {"dateTime": _utc_param(end)[:-1], "timeZone": "UTC"},
                    "availabilityViewInterval": self._interval,
                },
                headers={"Prefer": 'outlook.timezone="UTC"'},
            )
            for item in data.get("value", []):
                found[str(item.get("scheduleId", "")).lower()] = await self._schedule(item)
        return [
            found.get(p) or FreeBusy(person=p, error="not returned by getSchedule") for p in wanted
        ]

    async def _schedule(self, item: dict[str, Any]) -> FreeBusy:
        person = str(item.get("scheduleId", "")).lower()
        error = item.get("error")
        if error:
            return FreeBusy(
                person=person,
                error=str(error.get("responseCode") or error.get("message") or "error"),
            )
        hours_data = item.get("workingHours")
        hours: WorkingHours | None = None
        if hours_data:
            hours = self._working_hours(hours_data, "UTC")
        else:
            try:
                _, hours = await self.mailbox_settings(person)
            except ConnectorError:
                log.info("connector.calendar.working_hours_unavailable", connector=self.name)
        busy = []
        for entry in item.get("scheduleItems") or []:
            show_as = _SHOW_AS.get(str(entry.get("status", "busy")).lower(), ShowAs.BUSY)
            if show_as is ShowAs.FREE:
                continue
            busy.append(
                BusyInterval(
                    start=parse_graph_datetime(entry.get("start")),
                    end=parse_graph_datetime(entry.get("end")),
                    show_as=show_as,
                )
            )
        busy.sort(key=lambda b: b.start)
        return FreeBusy(
            person=person,
            timezone=hours.timezone if hours else "UTC",
            working_hours=hours,
            busy=busy,
        )

    async def find_meeting_times(
        self,
        attendees: Sequence[str],
        start: datetime,
        end: datetime,
        duration: timedelta,
        *,
        max_candidates: int = 20,
        minimum_attendee_percentage: float = 100.0,
    ) -> MeetingTimes:
        """Slots Exchange proposes (``findMeetingTimes``; a delegated token is required)."""
        minutes = int(duration.total_seconds() // 60)
        data = await self._graph.post_json(
            f"{self._user(self.owner)}/findMeetingTimes",
            {
                "attendees": [
                    {"type": "required", "emailAddress": {"address": a}} for a in attendees
                ],
                "timeConstraint": {
                    "activityDomain": "work",
                    "timeSlots": [
                        {
                            "start": {"dateTime": _utc_param(start)[:-1], "timeZone": "UTC"},
                            "end": {"dateTime": _utc_param(end)[:-1], "timeZone": "UTC"},
                        }
                    ],
                },
                "meetingDuration": f"PT{minutes // 60}H{minutes % 60}M",
                "maxCandidates": max_candidates,
                "isOrganizerOptional": False,
                "returnSuggestionReasons": True,
                "minimumAttendeePercentage": minimum_attendee_percentage,
            },
            headers={"Prefer": 'outlook.timezone="UTC"'},
        )
        suggestions = []
        for item in data.get("meetingTimeSuggestions") or []:
            slot = item.get("meetingTimeSlot") or {}
            suggestions.append(
                MeetingTimeSuggestion(
                    start=parse_graph_datetime(slot.get("start")).astimezone(UTC),
                    end=parse_graph_datetime(slot.get("end")).astimezone(UTC),
                    confidence=float(item.get("confidence", 0)),
                    organizer_availability=str(item.get("organizerAvailability", "unknown")),
                    attendee_availability={
                        str(a["attendee"]["emailAddress"]["address"]).lower(): str(
                            a.get("availability", "unknown")
                        )
                        for a in item.get("attendeeAvailability") or []
                    },
                    reason=item.get("suggestionReason") or None,
                )
            )
        suggestions.sort(key=lambda s: s.start)
        return MeetingTimes(
            suggestions=suggestions, empty_reason=data.get("emptySuggestionsReason") or None
        )

    # ------------------------------------------------------------------ writes

    async def create_event(self, request: EventRequest) -> CalendarEvent:
        if request.end <= request.start:
            raise FatalConnectorError("an event must end after it starts", connector=self.name)
        address, prefix = self._calendar_path(request.calendar_id)
        if address != self.owner:
            raise FatalConnectorError(
                "Graph writes only to the owner's calendars", connector=self.name
            )
        body: dict[str, Any] = {
            "subject": request.subject,
            "start": graph_datetime(request.start, request.timezone),
            "end": graph_datetime(request.end, request.timezone),
            "showAs": _SHOW_AS_OUT[request.show_as],
            "attendees": [self._attendee_out(a) for a in request.attendees],
            "isOnlineMeeting": request.is_online_meeting,
        }
        if request.body:
            body["body"] = {"contentType": "text", "content": request.body}
        if request.location:
            body["location"] = {"displayName": request.location}
        if request.idempotency_key:
            # Graph answers a repeated transactionId with the event it already created.
            body["transactionId"] = request.idempotency_key
        data = await self._graph.post_json(f"{prefix}/events", body, headers={"Prefer": _PREFER})
        log.info(
            "connector.calendar.event_created",
            connector=self.name,
            attendees=len(request.attendees),
        )
        return self._event(data, address)

    @staticmethod
    def _attendee_out(attendee: Attendee) -> dict[str, Any]:
        email: dict[str, str] = {"address": attendee.address}
        if attendee.name:
            email["name"] = attendee.name
        return {"emailAddress": email, "type": attendee.type.value}

    async def _current(self, event_id: str) -> tuple[str, str, dict[str, Any]]:
        address, graph_id = self._split_id(event_id)
        data = await self._graph.get_json(
            f"{self._user(address)}/events/{quote(graph_id, safe='')}", headers={"Prefer": _PREFER}
        )
        return address, graph_id, data

    async def update_event(self, event_id: str, update: EventUpdate) -> CalendarEvent:
        address, graph_id, data = await self._current(event_id)
        if address != self.owner or data.get("isOrganizer") is False:
            raise FatalConnectorError("only the organiser can update an event", connector=self.name)
        current = self._event(data, address)
        body: dict[str, Any] = {}
        if update.start or update.end or update.timezone:
            zone = update.timezone or current.timezone
            start = update.start or current.start
            end = update.end or (
                start + (current.end - current.start) if update.start else current.end
            )
            if end <= start:
                raise FatalConnectorError("an event must end after it starts", connector=self.name)
            body["start"] = graph_datetime(start, zone)
            body["end"] = graph_datetime(end, zone)
        if update.subject is not None:
            body["subject"] = update.subject
        if update.location is not None:
            body["location"] = {"displayName": update.location}
        if update.body is not None:
            body["body"] = {"contentType": "text", "content": update.body}
        if update.show_as is not None:
            body["showAs"] = _SHOW_AS_OUT[update.show_as]
        if update.attendees is not None:
            body["attendees"] = [self._attendee_out(a) for a in update.attendees]
        if not body:
            return current
        updated = await self._graph.patch_json(
            f"{self._user(address)}/events/{quote(graph_id, safe='')}",
            body,
            headers={"Prefer": _PREFER},
        )
        log.info("connector.calendar.event_updated", connector=self.name, fields=sorted(body))
        return self._event(updated, address)

    async def cancel_event(self, event_id: str, comment: str | None = None) -> None:
        try:
            address, graph_id, data = await self._current(event_id)
        except ConnectorNotFoundError:
            return  # cancelling twice is not an error
        if data.get("isCancelled"):
            return
        if address != self.owner or data.get("isOrganizer") is False:
            raise FatalConnectorError(
                "only the organiser can cancel; decline instead", connector=self.name
            )
        path = f"{self._user(address)}/events/{quote(graph_id, safe='')}"
        try:
            if data.get("attendees"):
                # Sends the cancellation to the attendees and removes the meeting.
                await self._graph.request("POST", f"{path}/cancel", json={"Comment": comment or ""})
            else:
                await self._graph.delete(path, missing_ok=True)
        except ConnectorNotFoundError:
            return
        log.info(
            "connector.calendar.event_cancelled",
            connector=self.name,
            attendees=len(data.get("attendees") or []),
        )

    async def respond_to_invite(
        self, event_id: str, response: InviteResponse, comment: str | None = None
    ) -> CalendarEvent:
        address, graph_id = self._split_id(event_id)
        if address != self.owner:
            raise FatalConnectorError(
                "only the owner's invitations can be answered", connector=self.name
            )
        await self._graph.request(
            "POST",
            f"{self._user(address)}/events/{quote(graph_id, safe='')}/{_INVITE_ACTION[response]}",
            json={"comment": comment or "", "sendResponse": True},
        )
        log.info("connector.calendar.invite_answered", connector=self.name, response=response.value)
        return await self.get_event(event_id)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._graph.aclose()


def _token_provider(config: GraphCalendarConfig, context: ConnectorContext) -> TokenProvider:
    return token_provider_for(config, context, context_key="msgraph_token_provider")


async def _build_calendar(
    config: GraphCalendarConfig, context: ConnectorContext
) -> GraphCalendarConnector:
    client = GraphClient(
        _token_provider(config, context),
        base_url=config.base_url,
        connector=context.instance_name,
        max_attempts=config.max_attempts,
        timeout_s=config.timeout_s,
    )
    return GraphCalendarConnector(
        client,
        mailbox=config.mailbox,
        name=context.instance_name,
        availability_interval_min=config.availability_interval_min,
    )


CALENDAR_SPEC = ConnectorSpec(
    slug="msgraph.calendar",
    kind="microsoft365",
    title="Microsoft 365 calendar (Graph)",
    config_model=GraphCalendarConfig,
    capabilities=frozenset({Capability.CALENDAR}),
    factory=_build_calendar,
    description="Exchange Online calendars over Microsoft Graph: calendarView, getSchedule, "
    "findMeetingTimes (delegated), events with transactionId, cancel and responses.",
)
