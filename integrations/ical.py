"""iCalendar helpers shared by calendar connectors (sandbox, CalDAV).

Parsing and recurrence expansion use icalendar and recurring-ical-events; nothing here
hand-parses RFC 5545. Both load on first use, not with this module: the sandbox, CalDAV
and Graph connectors import it at discovery, while the service starts, and icalendar alone
was a sizeable share of that start-up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from integrations.base import (
    Attendee,
    AttendeeType,
    CalendarEvent,
    EventRequest,
    EventUpdate,
    ResponseStatus,
    ShowAs,
)
from integrations.errors import MalformedContentError

if TYPE_CHECKING:
    import icalendar

_PARTSTAT_TO_RESPONSE = {
    "ACCEPTED": ResponseStatus.ACCEPTED,
    "TENTATIVE": ResponseStatus.TENTATIVE,
    "DECLINED": ResponseStatus.DECLINED,
    "NEEDS-ACTION": ResponseStatus.NEEDS_ACTION,
}
_RESPONSE_TO_PARTSTAT = {v: k for k, v in _PARTSTAT_TO_RESPONSE.items()}
_ROLE_TO_TYPE = {
    "REQ-PARTICIPANT": AttendeeType.REQUIRED,
    "OPT-PARTICIPANT": AttendeeType.OPTIONAL,
    "NON-PARTICIPANT": AttendeeType.OPTIONAL,
    "CHAIR": AttendeeType.REQUIRED,
}
_TYPE_TO_ROLE = {
    AttendeeType.REQUIRED: "REQ-PARTICIPANT",
    AttendeeType.OPTIONAL: "OPT-PARTICIPANT",
    AttendeeType.RESOURCE: "NON-PARTICIPANT",
}
# Microsoft's X-MICROSOFT-CDO-BUSYSTATUS carries what TRANSP cannot (tentative, oof).
_BUSYSTATUS = {
    "FREE": ShowAs.FREE,
    "TENTATIVE": ShowAs.TENTATIVE,
    "BUSY": ShowAs.BUSY,
    "OOF": ShowAs.OOF,
    "WORKINGELSEWHERE": ShowAs.WORKING_ELSEWHERE,
}
_SHOWAS_TO_BUSYSTATUS = {v: k for k, v in _BUSYSTATUS.items()}
_REFUSED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY"})


def _mailto(address: str) -> str:
    return f"mailto:{address}"


def _strip_mailto(value: Any) -> str:
    text = str(value)
    return text[7:].lower() if text.lower().startswith("mailto:") else text.lower()


def _as_aware(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0), tzinfo=tz)


def wall_time(moment: datetime, tz_name: str) -> datetime:
    """``moment`` as wall time in ``tz_name``; in UTC when that wall time is ambiguous.

    RFC 5545 (3.3.5) reads an ambiguous local time (the second 01:30 of a fall-back night)
    as its first occurrence, so such an instant is only faithful when written in UTC.
    """
    local = moment.astimezone(ZoneInfo(tz_name))
    if local.replace(fold=0).astimezone(UTC) != moment.astimezone(UTC):
        return moment.astimezone(UTC)
    return local


def build_vevent(
    request: EventRequest,
    *,
    uid: str,
    organizer: str,
    sequence: int = 0,
    rrule: str | None = None,
    exdates: Iterable[datetime] = (),
    stamp: datetime | None = None,
) -> icalendar.Event:
    """A VEVENT for ``request``, written in the request's own time zone."""
    import icalendar  # on first use: see the module's docstring

    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", stamp or datetime.now(UTC))
    event.add("dtstart", wall_time(request.start, request.timezone))
    event.add("dtend", wall_time(request.end, request.timezone))
    event.add("summary", request.subject)
    event.add("sequence", sequence)
    if request.location:
        event.add("location", request.location)
    if request.body:
        event.add("description", request.body)
    organizer_prop = icalendar.vCalAddress(_mailto(organizer))
    event.add("organizer", organizer_prop)
    for attendee in request.attendees:
        event.add("attendee", _attendee_prop(attendee), encode=False)
    _set_show_as(event, request.show_as)
    if rrule:
        event.add("rrule", icalendar.vRecur.from_ical(rrule))
    for exdate in exdates:
        event.add("exdate", wall_time(exdate, request.timezone))
    return event


def _attendee_prop(attendee: Attendee) -> icalendar.vCalAddress:
    import icalendar  # on first use: see the module's docstring

    prop = icalendar.vCalAddress(_mailto(attendee.address))
    if attendee.name:
        prop.params["CN"] = attendee.name
    prop.params["ROLE"] = _TYPE_TO_ROLE[attendee.type]
    if attendee.type is AttendeeType.RESOURCE:
        prop.params["CUTYPE"] = "RESOURCE"
    prop.params["PARTSTAT"] = _RESPONSE_TO_PARTSTAT.get(attendee.response, "NEEDS-ACTION")
    return prop


def _set_show_as(event: icalendar.Event, show_as: ShowAs) -> None:
    for name in ("transp", "x-microsoft-cdo-busystatus"):
        event.pop(name, None)
    event.add("transp", "TRANSPARENT" if show_as is ShowAs.FREE else "OPAQUE")
    event.add("x-microsoft-cdo-busystatus", _SHOWAS_TO_BUSYSTATUS[show_as])


def _replace(event: icalendar.Event, name: str, value: Any) -> None:
    event.pop(name, None)
    if value is not None:
        event.add(name, value)


def event_timezone(component: icalendar.Event, default_tz: str = "UTC") -> str:
    """The IANA zone a VEVENT's DTSTART is written in (``default_tz`` for floating/all-day)."""
    dtstart = component.decoded("dtstart")
    if isinstance(dtstart, datetime) and dtstart.tzinfo is not None:
        key = getattr(dtstart.tzinfo, "key", None)
        if key:
            return str(key)
        if dtstart.utcoffset() == timedelta(0):
            return "UTC"
    return default_tz


def apply_update(
    component: icalendar.Event,
    update: EventUpdate,
    *,
    default_tz: str = "UTC",
    stamp: datetime | None = None,
) -> None:
    """Change a VEVENT in place; other properties (RRULE, alarms, X-props) are kept.

    Times are rewritten in ``update.timezone`` (or the zone the event was written in),
    SEQUENCE goes up by one and DTSTAMP/LAST-MODIFIED are refreshed.
    """
    tz_name = update.timezone or event_timezone(component, default_tz)
    old_start = _as_aware(component.decoded("dtstart"), ZoneInfo(default_tz))
    if component.get("dtend") is not None:
        old_end = _as_aware(component.decoded("dtend"), ZoneInfo(default_tz))
    elif component.get("duration") is not None:
        old_end = old_start + component.decoded("duration")
    else:
        old_end = old_start
    start = update.start or old_start
    end = update.end or (start + (old_end - old_start) if update.start else old_end)
    if update.start or update.end or update.timezone:
        _replace(component, "dtstart", wall_time(start, tz_name))
        component.pop("duration", None)
        _replace(component, "dtend", wall_time(end, tz_name))
    if update.subject is not None:
        _replace(component, "summary", update.subject)
    if update.location is not None:
        _replace(component, "location", update.location or None)
    if update.body is not None:
        _replace(component, "description", update.body or None)
    if update.show_as is not None:
        _set_show_as(component, update.show_as)
    if update.attendees is not None:
        component.pop("attendee", None)
        for attendee in update.attendees:
            component.add("attendee", _attendee_prop(attendee), encode=False)
    now = stamp or datetime.now(UTC)
    _replace(component, "sequence", int(component.get("sequence", 0)) + 1)
    _replace(component, "dtstamp", now)
    _replace(component, "last-modified", now)


def set_partstat(component: icalendar.Event, address: str, response: ResponseStatus) -> bool:
    """Set ``address``'s PARTSTAT on a VEVENT; False when it is not an attendee."""
    found = False
    for prop in _as_list(component.get("attendee")):
        if _strip_mailto(prop) == address.lower():
            prop.params["PARTSTAT"] = _RESPONSE_TO_PARTSTAT.get(response, "NEEDS-ACTION")
            found = True
    return found


def is_series(calendar: icalendar.Calendar) -> bool:
    """True when the calendar holds a recurring series (RRULE, RDATE or overrides)."""
    return any(
        c.get("rrule") is not None
        or c.get("rdate") is not None
        or c.get("recurrence-id") is not None
        for c in calendar.walk("VEVENT")
    )


def resolve_timezone(name: str | None, default: str = "UTC") -> str:
    """The IANA key for an IANA or Windows zone name (Graph and Outlook use both).

    The Windows names map through CLDR's table as shipped by icalendar.
    """
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    if not name:
        return default
    if name.upper() in {"UTC", "Z", "GMT", "ETC/UTC", "TZONE://MICROSOFT/UTC"}:
        return "UTC"
    if name in WINDOWS_TO_OLSON:
        return WINDOWS_TO_OLSON[name]
    try:
        return ZoneInfo(name).key
    except (ValueError, KeyError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {name!r}") from exc


_VTIMEZONE = re.compile(r"BEGIN:VTIMEZONE\r?\n.*?END:VTIMEZONE", re.S)
_TZID_LINE = re.compile(r"^TZID:(.*?)\r?$", re.M)


def parse_calendar(data: str | bytes) -> icalendar.Calendar:
    """Parse iCalendar text from elsewhere, safe against custom zones sharing a TZID.

    icalendar caches a VTIMEZONE's rules by TZID for the whole process, first come first
    served, and Outlook names many different zones "Customized Time Zone". A TZID that is
    neither IANA nor Windows is therefore renamed after a digest of its definition.
    """
    # A UTF-8 byte-order mark (Outlook exports start with one) is not part of RFC 5545 text.
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    for block in _VTIMEZONE.findall(text):
        match = _TZID_LINE.search(block)
        if match is None:
            continue
        tzid = match.group(1).strip()
        try:
            resolve_timezone(tzid)
            continue
        except ValueError:
            pass
        unique = f"{tzid} {hashlib.sha256(block.encode()).hexdigest()[:12]}"
        text = re.sub(rf"TZID=(\"?){re.escape(tzid)}\1(?=[:;])", f'TZID="{unique}"', text)
        text = re.sub(rf"^TZID:{re.escape(tzid)}(\r?)$", rf"TZID:{unique}\1", text, flags=re.M)
    import icalendar  # on first use: see the module's docstring

    return icalendar.Calendar.from_ical(text)


def wrap_calendar(*components: icalendar.Event) -> icalendar.Calendar:
    """A VCALENDAR around events (VTIMEZONEs added for every zone they use)."""
    import icalendar  # on first use: see the module's docstring

    cal = icalendar.Calendar()
    cal.add("prodid", "-//Executive Assistant//EN")
    cal.add("version", "2.0")
    for component in components:
        cal.add_component(component)
    cal.add_missing_timezones()
    return cal


def event_from_component(
    component: icalendar.Event,
    *,
    calendar_id: str,
    event_id: str,
    default_tz: str = "UTC",
    series_id: str | None = None,
) -> CalendarEvent:
    """Our CalendarEvent from one (expanded) VEVENT."""
    tz = ZoneInfo(default_tz)
    dtstart = component.decoded("dtstart")
    all_day = not isinstance(dtstart, datetime)
    start = _as_aware(dtstart, tz)
    if component.get("dtend") is not None:
        end = _as_aware(component.decoded("dtend"), tz)
    elif component.get("duration") is not None:
        end = start + component.decoded("duration")
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    event_tz = getattr(start.tzinfo, "key", None) or default_tz
    attendees = []
    for prop in _as_list(component.get("attendee")):
        params = getattr(prop, "params", {})
        attendee_type = _ROLE_TO_TYPE.get(
            str(params.get("ROLE", "REQ-PARTICIPANT")).upper(), AttendeeType.REQUIRED
        )
        if str(params.get("CUTYPE", "")).upper() in {"RESOURCE", "ROOM"}:
            attendee_type = AttendeeType.RESOURCE
        attendees.append(
            Attendee(
                address=_strip_mailto(prop),
                name=str(params["CN"]) if "CN" in params else None,
                type=attendee_type,
                response=_PARTSTAT_TO_RESPONSE.get(
                    str(params.get("PARTSTAT", "NEEDS-ACTION")).upper(), ResponseStatus.NEEDS_ACTION
                ),
            )
        )
    busystatus = str(component.get("x-microsoft-cdo-busystatus", "")).upper()
    if busystatus in _BUSYSTATUS:
        show_as = _BUSYSTATUS[busystatus]
    elif str(component.get("transp", "OPAQUE")).upper() == "TRANSPARENT":
        show_as = ShowAs.FREE
    elif str(component.get("status", "")).upper() == "TENTATIVE":
        show_as = ShowAs.TENTATIVE
    else:
        show_as = ShowAs.BUSY
    recurrence_id = component.get("recurrence-id")
    organizer = component.get("organizer")
    return CalendarEvent(
        id=event_id,
        uid=str(component.get("uid")) if component.get("uid") else None,
        calendar_id=calendar_id,
        subject=str(component.get("summary", "")),
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        timezone=event_tz if not all_day else default_tz,
        all_day=all_day,
        location=str(component.get("location")) if component.get("location") else None,
        body=str(component.get("description")) if component.get("description") else None,
        organizer=_strip_mailto(organizer) if organizer else None,
        attendees=attendees,
        show_as=show_as,
        is_cancelled=str(component.get("status", "")).upper() == "CANCELLED",
        series_id=series_id,
        recurrence_id=_as_aware(recurrence_id.dt, tz).astimezone(UTC) if recurrence_id else None,
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def expand(calendar: icalendar.Calendar, start: datetime, end: datetime) -> list[icalendar.Event]:
    """Occurrences overlapping [start, end): RRULE, RDATE, EXDATE and RECURRENCE-ID applied.

    Occurrences of a series keep the master's RRULE and carry a RECURRENCE-ID; a single
    event comes back without either (recurring-ical-events 3 stamps a RECURRENCE-ID on
    every component it returns, which would make a single event look like an occurrence).
    """
    for component in calendar.walk("VEVENT"):
        rule = component.get("rrule")
        for value in rule if isinstance(rule, list) else [rule] if rule is not None else []:
            if str(value.get("FREQ", [""])[0]).upper() in _REFUSED_FREQUENCIES:
                # A meeting every second is an attack, not a calendar: a week of it is
                # 604,800 occurrences, each a component in memory.
                raise MalformedContentError("RRULE more frequent than hourly")
    recurring = {
        str(c.get("uid"))
        for c in calendar.walk("VEVENT")
        if c.get("rrule") is not None
        or c.get("rdate") is not None
        or c.get("recurrence-id") is not None
    }
    import recurring_ical_events  # on first use: see the module's docstring

    occurrences = []
    for component in recurring_ical_events.of(calendar, keep_recurrence_attributes=True).between(
        start, end
    ):
        if str(component.get("uid")) not in recurring:
            component.pop("recurrence-id", None)
        occurrences.append(component)
    return occurrences


def _utc_moment(value: date | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.combine(value, time(0))
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment


def occurrence_id(base_id: str, component: icalendar.Event) -> str:
    """A stable id for one occurrence of a series: the base id plus its RECURRENCE-ID in UTC.

    The RECURRENCE-ID is the occurrence's original slot, which stays when the occurrence is
    moved; its start does not (two moved occurrences could share one, or take another's).
    """
    if component.get("rrule") is None and component.get("recurrence-id") is None:
        # expand() leaves RRULE/RECURRENCE-ID on occurrences only; a single event has none.
        return base_id
    recurrence_id = component.get("recurrence-id")
    moment = _utc_moment(
        recurrence_id.dt if recurrence_id is not None else component.decoded("dtstart")
    )
    return f"{base_id}::{moment.strftime('%Y%m%dT%H%M%S')}"


def find_occurrence(
    calendar: icalendar.Calendar, base_id: str, event_id: str, moment: datetime
) -> icalendar.Event | None:
    """The expanded occurrence ``event_id`` (whose RECURRENCE-ID is ``moment``), moved or not."""
    import icalendar  # on first use: see the module's docstring

    windows = [moment]
    for component in calendar.walk("VEVENT"):
        if (
            isinstance(component, icalendar.Event)
            and component.get("recurrence-id") is not None
            and occurrence_id(base_id, component) == event_id
        ):
            # A moved occurrence is found where it now starts.
            windows.append(_as_aware(component.decoded("dtstart"), ZoneInfo("UTC")))
    for start in windows:
        for component in expand(calendar, start, start + timedelta(seconds=1)):
            if occurrence_id(base_id, component) == event_id:
                return component
    return None
