"""Time-zone and recurrence cases every CalendarConnector must get right.

A subclass provides ``calendar_connector`` (as in the calendar contract) and
``put_series``: async ``(ics_text) -> None`` that stores a raw iCalendar object (one UID:
a master and its overrides) in the owner's calendar as the real system would.

Each case writes wall times in a zone with a daylight-saving change in the window and
checks the UTC instants that come back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from integrations.base import CalendarConnector, EventRequest

PutSeries = Callable[[str], Awaitable[Any]]

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def _subject(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


async def _starts(
    connector: CalendarConnector, subject: str, start: datetime, end: datetime
) -> list[datetime]:
    events = await connector.list_events(start, end)
    return [e.start for e in events if e.subject == subject]


#: A series written in New York: weekly on Mondays at 09:00 from 2027-03-01 (EST), five
#: times, the 8th excluded (EXDATE), an extra Saturday 14:00 (RDATE) and the 15th moved to
#: Tuesday 11:00 (RECURRENCE-ID override). Spring forward is on Sunday 2027-03-14.
SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Contract//EN
BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART;TZID=America/New_York:20270301T090000
DTEND;TZID=America/New_York:20270301T093000
RRULE:FREQ=WEEKLY;COUNT=5
EXDATE;TZID=America/New_York:20270308T090000
RDATE;TZID=America/New_York:20270320T140000
SUMMARY:{subject}
ORGANIZER:mailto:{organizer}
END:VEVENT
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=America/New_York:20270315T090000
DTSTART;TZID=America/New_York:20270316T110000
DTEND;TZID=America/New_York:20270316T120000
SUMMARY:{subject} (moved)
ORGANIZER:mailto:{organizer}
SEQUENCE:1
END:VEVENT
END:VCALENDAR
"""

#: Daily at 09:00 in a zone given by its own VTIMEZONE (a non-IANA TZID, as Outlook
#: writes them): Lord Howe Island, +11:00 in summer, +10:30 after 2027-04-04 02:00.
CUSTOM_ZONE_SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Contract//EN
BEGIN:VTIMEZONE
TZID:Lord Howe Custom
BEGIN:STANDARD
DTSTART:19700405T020000
RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU
TZOFFSETFROM:+1100
TZOFFSETTO:+1030
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19701004T020000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU
TZOFFSETFROM:+1030
TZOFFSETTO:+1100
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART;TZID=Lord Howe Custom:20270403T090000
DTEND;TZID=Lord Howe Custom:20270403T100000
RRULE:FREQ=DAILY;COUNT=3
SUMMARY:{subject}
ORGANIZER:mailto:{organizer}
END:VEVENT
END:VCALENDAR
"""


class CalendarTimezoneCases:
    async def _create(
        self,
        connector: CalendarConnector,
        subject: str,
        start: datetime,
        zone: str,
        minutes: int = 30,
    ) -> None:
        start = start.astimezone(UTC)  # aware arithmetic on wall times drops fold
        await connector.create_event(
            EventRequest(
                subject=subject, start=start, end=start + timedelta(minutes=minutes), timezone=zone
            )
        )

    async def test_new_york_across_spring_forward(
        self, calendar_connector: CalendarConnector
    ) -> None:
        subject = _subject("NY")
        before = datetime(2027, 3, 14, 1, 30, tzinfo=NEW_YORK)  # EST, UTC-5
        after = datetime(2027, 3, 14, 3, 30, tzinfo=NEW_YORK)  # EDT, UTC-4
        for start in (before, after):
            await self._create(calendar_connector, subject, start, "America/New_York")
        assert await _starts(calendar_connector, subject, utc(2027, 3, 14), utc(2027, 3, 15)) == [
            utc(2027, 3, 14, 6, 30),
            utc(2027, 3, 14, 7, 30),
        ]

    async def test_london_fall_back_both_one_thirties(
        self, calendar_connector: CalendarConnector
    ) -> None:
        subject = _subject("London")
        first = datetime(2027, 10, 31, 1, 30, tzinfo=LONDON)  # BST, 00:30Z
        second = datetime(2027, 10, 31, 1, 30, fold=1, tzinfo=LONDON)  # GMT, 01:30Z
        for start in (first, second):
            await self._create(calendar_connector, subject, start, "Europe/London", 20)
        assert await _starts(calendar_connector, subject, utc(2027, 10, 30), utc(2027, 11, 1)) == [
            utc(2027, 10, 31, 0, 30),
            utc(2027, 10, 31, 1, 30),
        ]

    async def test_lord_howe_half_hour_shift(self, calendar_connector: CalendarConnector) -> None:
        subject = _subject("Lord Howe")
        for day in (3, 4, 5):  # the shift back to +10:30 is at 02:00 on the 4th
            await self._create(
                calendar_connector,
                subject,
                datetime(2027, 4, day, 9, 0, tzinfo=LORD_HOWE),
                "Australia/Lord_Howe",
            )
        assert await _starts(calendar_connector, subject, utc(2027, 4, 1), utc(2027, 4, 6)) == [
            utc(2027, 4, 2, 22, 0),
            utc(2027, 4, 3, 22, 30),
            utc(2027, 4, 4, 22, 30),
        ]

    async def test_series_with_exdate_rdate_and_moved_occurrence(
        self, calendar_connector: CalendarConnector, put_series: PutSeries
    ) -> None:
        subject = _subject("Series")
        await put_series(
            SERIES.format(
                uid=f"{uuid.uuid4().hex}@contract",
                subject=subject,
                organizer=calendar_connector.owner,
            )
        )
        events = [
            e
            for e in await calendar_connector.list_events(utc(2027, 2, 28), utc(2027, 4, 5))
            if e.subject.startswith(subject)
        ]
        assert [(e.start, e.subject) for e in events] == [
            (utc(2027, 3, 1, 14, 0), subject),  # EST
            (utc(2027, 3, 16, 15, 0), f"{subject} (moved)"),  # EDT, moved a day
            (utc(2027, 3, 20, 18, 0), subject),  # RDATE, EDT
            (utc(2027, 3, 22, 13, 0), subject),
            (utc(2027, 3, 29, 13, 0), subject),
        ]
        assert events[1].end - events[1].start == timedelta(hours=1)
        assert len({e.id for e in events}) == 5
        # The moved occurrence is found at its new time only.
        assert not [
            e
            for e in await calendar_connector.list_events(
                utc(2027, 3, 15, 12), utc(2027, 3, 15, 15)
            )
            if e.subject.startswith(subject)
        ]
        fetched = await calendar_connector.get_event(events[1].id)
        assert fetched.start == utc(2027, 3, 16, 15, 0)

    async def test_series_in_a_zone_from_its_own_vtimezone(
        self, calendar_connector: CalendarConnector, put_series: PutSeries
    ) -> None:
        subject = _subject("Custom zone")
        await put_series(
            CUSTOM_ZONE_SERIES.format(
                uid=f"{uuid.uuid4().hex}@contract",
                subject=subject,
                organizer=calendar_connector.owner,
            )
        )
        assert await _starts(calendar_connector, subject, utc(2027, 4, 1), utc(2027, 4, 7)) == [
            utc(2027, 4, 2, 22, 0),
            utc(2027, 4, 3, 22, 30),
            utc(2027, 4, 4, 22, 30),
        ]
