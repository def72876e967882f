"""iCalendar parsing under malformed and hostile input (issue 15, finding 12).

Occurrence ids come from RECURRENCE-ID (moved occurrences keep theirs), a UTF-8 BOM is
accepted, one malformed object is skipped while the others of the same calendar and of
free/busy are still answered, and for any text the parse-and-expand path either answers or
raises, within a time and memory bound.
"""

from __future__ import annotations

import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta

# integrations.ical imports icalendar (with its Windows zone names) and
# recurring_ical_events on first use (not at the service's start). Imported here,
# so that the bounds below measure parsing and expansion: the first example used to pay the
# libraries' import under tracemalloc, ~1 s alone and 5.5 s once on a busy CI machine.
import icalendar.timezone.windows_to_olson  # noqa: F401
import pytest
import recurring_ical_events  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from integrations import ical
from integrations.errors import MalformedContentError
from integrations.sandbox import SandboxCalendarConnector
from integrations.sandbox.models import SandboxEvent
from integrations.sandbox.seed import load_mailbox_seed
from tests.conftest import FIXED_NOW, SEED_DIR

EXECUTIVE = load_mailbox_seed(SEED_DIR).executive.address.lower()

SERIES = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//EN\r
BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20261101T000000Z\r
DTSTART:20261102T150000Z\r
DTEND:20261102T153000Z\r
RRULE:FREQ=WEEKLY;COUNT=6\r
SUMMARY:Weekly\r
END:VEVENT\r
{overrides}END:VCALENDAR\r
"""

OVERRIDE = """BEGIN:VEVENT\r
UID:weekly@test\r
DTSTAMP:20261101T000000Z\r
RECURRENCE-ID:{rid}\r
DTSTART:20261130T090000Z\r
DTEND:20261130T093000Z\r
SUMMARY:Moved\r
END:VEVENT\r
"""


def _series_with_every_occurrence_moved_to_one_slot() -> str:
    slots = [datetime(2026, 11, 2, 15, tzinfo=UTC) + timedelta(weeks=i) for i in range(6)]
    overrides = "".join(OVERRIDE.format(rid=s.strftime("%Y%m%dT%H%M%SZ")) for s in slots)
    return SERIES.format(overrides=overrides)


def test_occurrence_ids_come_from_recurrence_id_not_start() -> None:
    calendar = ical.parse_calendar(_series_with_every_occurrence_moved_to_one_slot())
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))
    occurrences = ical.expand(calendar, *window)
    assert len(occurrences) == 6
    ids = [ical.occurrence_id("cal/weekly", c) for c in occurrences]
    # Before: six occurrences moved to one start shared one id.
    assert len(set(ids)) == 6
    assert "cal/weekly::20261102T150000" in ids  # the original slot, not the new start
    for event_id in ids:
        moment = datetime.strptime(event_id.rpartition("::")[2], "%Y%m%dT%H%M%S")
        found = ical.find_occurrence(calendar, "cal/weekly", event_id, moment.replace(tzinfo=UTC))
        assert found is not None and str(found.get("summary")) == "Moved"


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    text = SERIES.format(overrides="")
    for data in (b"\xef\xbb\xbf" + text.encode(), "\ufeff" + text):
        calendar = ical.parse_calendar(data)
        assert len(calendar.walk("VEVENT")) == 1


def test_rrules_more_frequent_than_hourly_are_refused() -> None:
    text = SERIES.format(overrides="").replace("FREQ=WEEKLY;COUNT=6", "FREQ=SECONDLY")
    calendar = ical.parse_calendar(text)
    with pytest.raises(MalformedContentError):
        ical.expand(calendar, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC))


MALFORMED = {
    "missing-dtstart": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "SUMMARY:No start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    "bad-rrule": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTART:20261124T100000Z\r\nDTEND:20261124T110000Z\r\nRRULE:FREQ=SOMETIMES;BYDAY=XX\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n",
    "broken-property": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
    "DTSTART:not-a-date\r\nDTEND;VALUE=DATE:2026-13-45\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_one_malformed_event_is_skipped_and_the_rest_answered(
    seeded: async_sessionmaker[AsyncSession], kind: str
) -> None:
    connector = SandboxCalendarConnector(
        tenant_id="default", owner=EXECUTIVE, session_factory=seeded
    )
    start, end = FIXED_NOW - timedelta(days=3), FIXED_NOW + timedelta(days=7)
    before = await connector.list_events(start, end)
    assert before, "the seeded week has events"
    uid = f"{uuid.uuid4().hex}@test"
    row_id = uuid.uuid4().hex
    async with seeded() as session, session.begin():
        session.add(
            SandboxEvent(
                id=row_id,
                tenant_id="default",
                owner=EXECUTIVE,
                uid=uid,
                ical=MALFORMED[kind].format(uid=uid),
                attendees=[],
                updated_at=datetime.now(UTC),
            )
        )
    after = await connector.list_events(start, end)
    assert [e.id for e in after] == [e.id for e in before]
    free_busy = await connector.get_free_busy([EXECUTIVE], start, end)
    assert free_busy[0].error is None and free_busy[0].busy
    if kind == "bad-rrule":  # the event itself reads; only its expansion fails
        assert (await connector.get_event(row_id)).id == row_id
    else:
        with pytest.raises(MalformedContentError):
            await connector.get_event(row_id)


# ------------------------------------------------------------------ property-based

_lines = st.sampled_from(
    [
        "BEGIN:VEVENT",
        "END:VEVENT",
        "BEGIN:VTIMEZONE",
        "END:VTIMEZONE",
        "TZID:Customized Time Zone",
        "DTSTART:20261124T100000Z",
        "DTSTART;TZID=Europe/Paris:20261124T100000",
        "DTSTART;VALUE=DATE:20261124",
        "DTEND:20261124T110000Z",
        "DURATION:PT1H",
        "RRULE:FREQ=DAILY;COUNT=5",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
        "RRULE:FREQ=HOURLY;INTERVAL=7",
        "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "EXDATE:20261125T100000Z",
        "RDATE:20261126T100000Z",
        "RECURRENCE-ID:20261125T100000Z",
        "UID:x@test",
        "SUMMARY:hello",
        "ATTENDEE;PARTSTAT=ACCEPTED;CN=A:mailto:a@example.com",
        "ORGANIZER:mailto:o@example.com",
        "TRANSP:TRANSPARENT",
        "X-MICROSOFT-CDO-BUSYSTATUS:OOF",
    ]
)
_junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).map(
    lambda s: s.replace("\r", "").replace("\n", "")
)


@st.composite
def ics_like(draw: st.DrawFn) -> str:
    body = draw(st.lists(st.one_of(_lines, _lines, _junk), max_size=40))
    bom = "\ufeff" if draw(st.booleans()) else ""
    return bom + "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n" + "\r\n".join(body) + "\r\nEND:VCALENDAR\r\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(ics_like(), st.text(max_size=500)))
def test_any_text_parses_and_expands_or_raises_within_bounds(text: str) -> None:
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        calendar = ical.parse_calendar(text)
        for component in ical.expand(calendar, *window):
            ical.event_from_component(
                component,
                calendar_id="c",
                event_id=ical.occurrence_id("c/x", component),
            )
    except Exception:  # noqa: S110 - any error is fine here: the connectors isolate it
        pass
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert peak < 64 * 1024 * 1024, f"{peak} bytes"
