"""Time zones and recurrence in the shared iCalendar helpers, and through the sandbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integrations import ical
from integrations.base import Attendee, EventRequest, EventUpdate, ResponseStatus
from integrations.sandbox import SandboxCalendarConnector
from integrations.sandbox.models import SandboxEvent, SandboxPerson
from tests.contract.calendar_timezones import SERIES, CalendarTimezoneCases, utc

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
OWNER = "owner@sandbox.test"


def _round_trip(
    request: EventRequest, *, rrule: str | None = None, rename_zone: bool = False
) -> icalendar.Calendar:
    """Serialise as a connector writes it, and parse back as a server or client reads it."""
    text = (
        ical.wrap_calendar(ical.build_vevent(request, uid="u@test", organizer=OWNER, rrule=rrule))
        .to_ical()
        .decode()
    )
    if rename_zone:  # a reader that knows no IANA names must rely on our VTIMEZONE alone
        # (a fresh name each time: icalendar caches a custom zone's rules by its TZID)
        text = text.replace(request.timezone, f"Custom Zone {uuid.uuid4().hex}")
    return icalendar.Calendar.from_ical(text)


def _starts(calendar: icalendar.Calendar, start: datetime, end: datetime) -> list[datetime]:
    return sorted(
        ical.event_from_component(c, calendar_id="c", event_id="e").start
        for c in ical.expand(calendar, start, end)
    )


@pytest.mark.parametrize("rename_zone", [False, True])
def test_new_york_weekly_across_spring_forward(rename_zone: bool) -> None:
    request = EventRequest(
        subject="NY",
        start=datetime(2027, 3, 8, 9, tzinfo=NEW_YORK),
        end=datetime(2027, 3, 8, 10, tzinfo=NEW_YORK),
        timezone="America/New_York",
    )
    calendar = _round_trip(request, rrule="FREQ=WEEKLY;COUNT=3", rename_zone=rename_zone)
    assert _starts(calendar, utc(2027, 3, 1), utc(2027, 4, 1)) == [
        utc(2027, 3, 8, 14),
        utc(2027, 3, 15, 13),
        utc(2027, 3, 22, 13),
    ]


@pytest.mark.parametrize("rename_zone", [False, True])
def test_london_daily_across_fall_back(rename_zone: bool) -> None:
    request = EventRequest(
        subject="London",
        start=datetime(2027, 10, 30, 9, tzinfo=LONDON),
        end=datetime(2027, 10, 30, 9, 30, tzinfo=LONDON),
        timezone="Europe/London",
    )
    calendar = _round_trip(request, rrule="FREQ=DAILY;COUNT=3", rename_zone=rename_zone)
    assert _starts(calendar, utc(2027, 10, 29), utc(2027, 11, 2)) == [
        utc(2027, 10, 30, 8),
        utc(2027, 10, 31, 9),
        utc(2027, 11, 1, 9),
    ]


@pytest.mark.parametrize("rename_zone", [False, True])
def test_lord_howe_half_hour_daylight_saving(rename_zone: bool) -> None:
    request = EventRequest(
        subject="LHI",
        start=datetime(2027, 4, 3, 9, tzinfo=LORD_HOWE),
        end=datetime(2027, 4, 3, 10, tzinfo=LORD_HOWE),
        timezone="Australia/Lord_Howe",
    )
    calendar = _round_trip(request, rrule="FREQ=DAILY;COUNT=3", rename_zone=rename_zone)
    assert _starts(calendar, utc(2027, 4, 1), utc(2027, 4, 6)) == [
        utc(2027, 4, 2, 22),
        utc(2027, 4, 3, 22, 30),
        utc(2027, 4, 4, 22, 30),
    ]


def test_ambiguous_wall_time_is_written_in_utc() -> None:
    second = datetime(2027, 10, 31, 1, 30, fold=1, tzinfo=LONDON)
    assert ical.wall_time(second, "Europe/London") == utc(2027, 10, 31, 1, 30)
    assert ical.wall_time(second, "Europe/London").tzinfo is UTC
    first = datetime(2027, 10, 31, 1, 30, tzinfo=LONDON)
    assert ical.wall_time(first, "Europe/London").tzinfo == LONDON
    request = EventRequest(
        subject="Second",
        start=second.astimezone(UTC),
        end=second.astimezone(UTC) + timedelta(minutes=20),
        timezone="Europe/London",
    )
    assert _starts(_round_trip(request), utc(2027, 10, 30), utc(2027, 11, 1)) == [
        utc(2027, 10, 31, 1, 30)
    ]


def test_series_with_exdate_rdate_and_override() -> None:
    calendar = icalendar.Calendar.from_ical(
        SERIES.format(uid="s@test", subject="S", organizer=OWNER)
    )
    components = ical.expand(calendar, utc(2027, 2, 1), utc(2027, 5, 1))
    events = sorted(
        (
            ical.event_from_component(c, calendar_id="c", event_id=ical.occurrence_id("base", c))
            for c in components
        ),
        key=lambda e: e.start,
    )
    assert [(e.start, e.subject) for e in events] == [
        (utc(2027, 3, 1, 14), "S"),
        (utc(2027, 3, 16, 15), "S (moved)"),
        (utc(2027, 3, 20, 18), "S"),
        (utc(2027, 3, 22, 13), "S"),
        (utc(2027, 3, 29, 13), "S"),
    ]
    assert events[1].recurrence_id == utc(2027, 3, 15, 13)
    assert events[0].timezone == "America/New_York"
    assert len({e.id for e in events}) == 5 and all(e.id.startswith("base::") for e in events)
    assert ical.is_series(calendar)


def test_single_event_keeps_its_plain_id() -> None:
    request = EventRequest(subject="One", start=utc(2027, 1, 5, 10), end=utc(2027, 1, 5, 11))
    calendar = _round_trip(request)
    [component] = ical.expand(calendar, utc(2027, 1, 1), utc(2027, 2, 1))
    assert ical.occurrence_id("base", component) == "base"
    assert (
        ical.event_from_component(component, calendar_id="c", event_id="base").recurrence_id is None
    )
    assert not ical.is_series(calendar)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("GMT Standard Time", "Europe/London"),
        ("Lord Howe Standard Time", "Australia/Lord_Howe"),
        ("Europe/Berlin", "Europe/Berlin"),
        ("UTC", "UTC"),
        (None, "UTC"),
    ],
)
def test_resolve_timezone(name: str | None, expected: str) -> None:
    assert ical.resolve_timezone(name) == expected


def test_resolve_timezone_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        ical.resolve_timezone("Atlantis/Lost City")


def test_apply_update_keeps_zone_duration_and_series() -> None:
    request = EventRequest(
        subject="Weekly",
        start=datetime(2027, 3, 1, 9, tzinfo=NEW_YORK),
        end=datetime(2027, 3, 1, 9, 45, tzinfo=NEW_YORK),
        timezone="America/New_York",
        attendees=[Attendee(address="a@x.test")],
    )
    component = ical.build_vevent(request, uid="u", organizer=OWNER, rrule="FREQ=WEEKLY")
    ical.apply_update(
        component, EventUpdate(start=datetime(2027, 3, 2, 10, tzinfo=NEW_YORK), subject="Moved")
    )
    assert component.decoded("dtstart") == datetime(2027, 3, 2, 10, tzinfo=NEW_YORK)
    assert component.decoded("dtstart").tzinfo.key == "America/New_York"  # type: ignore[union-attr]
    assert component.decoded("dtend") - component.decoded("dtstart") == timedelta(minutes=45)
    assert component.get("rrule") is not None and int(component["sequence"]) == 1
    assert str(component["summary"]) == "Moved"
    assert ical.set_partstat(component, "A@x.test", ResponseStatus.ACCEPTED)
    assert not ical.set_partstat(component, "b@x.test", ResponseStatus.ACCEPTED)
    event = ical.event_from_component(component, calendar_id="c", event_id="e")
    assert [a.response for a in event.attendees] == [ResponseStatus.ACCEPTED]


class TestSandboxTimezones(CalendarTimezoneCases):
    """The same connector-level cases through the sandbox, the embedded default."""

    @pytest.fixture
    async def calendar_connector(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> SandboxCalendarConnector:
        async with sessions() as session, session.begin():
            session.add(
                SandboxPerson(
                    tenant_id="default",
                    address=OWNER,
                    name="Owner",
                    timezone="Europe/London",
                    working_hours={"start": "09:00", "end": "17:00"},
                )
            )
        return SandboxCalendarConnector(tenant_id="default", owner=OWNER, session_factory=sessions)

    @pytest.fixture
    def put_series(self, sessions: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
        async def put(text: str) -> None:
            uid = str(icalendar.Calendar.from_ical(text).walk("VEVENT")[0]["uid"])
            async with sessions() as session, session.begin():
                session.add(
                    SandboxEvent(
                        id=uuid.uuid4().hex,
                        tenant_id="default",
                        owner=OWNER,
                        uid=uid,
                        ical=text,
                        attendees=[],
                        updated_at=datetime.now(UTC),
                    )
                )

        return put


CUSTOM = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Outlook-like//EN
BEGIN:VTIMEZONE
TZID:Customized Time Zone
BEGIN:STANDARD
DTSTART:16010101T000000
TZOFFSETFROM:{offset}
TZOFFSETTO:{offset}
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART;TZID="Customized Time Zone":20270601T090000
DTEND;TZID=Customized Time Zone:20270601T100000
SUMMARY:Custom
END:VEVENT
END:VCALENDAR
"""


def test_two_custom_zones_with_the_same_tzid_do_not_collide() -> None:
    starts = []
    for offset in ("+0300", "-0700"):
        calendar = ical.parse_calendar(CUSTOM.format(offset=offset, uid=uuid.uuid4().hex))
        [component] = ical.expand(calendar, utc(2027, 5, 31), utc(2027, 6, 3))
        event = ical.event_from_component(component, calendar_id="c", event_id="e")
        starts.append((event.start, event.end - event.start))
    assert starts == [
        (utc(2027, 6, 1, 6), timedelta(hours=1)),
        (utc(2027, 6, 1, 16), timedelta(hours=1)),
    ]
