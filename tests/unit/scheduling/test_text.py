"""Requests to meet, read from text: detection, the window they name, extraction, solving."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from assistant.scheduling import find_slots
from assistant.scheduling.text import (
    detect_meeting_request,
    extract_meeting,
    is_request,
    parse_clock,
    parse_duration,
)

SENT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3pm", time(15, 0)),
        ("3 pm", time(15, 0)),
        ("11 a.m.", time(11, 0)),
        ("12am", time(0, 0)),
        ("9:30", time(9, 30)),
        ("17:00", time(17, 0)),
        ("3", time(15, 0)),  # a bare hour in a work mail is business hours
        ("9", time(9, 0)),
        ("noon", time(12, 0)),
        ("25", None),
        ("9:75", None),
    ],
)
def test_parse_clock(text: str, expected: time | None) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("a 30 minute call", 30),
        ("for 1.5 hours", 90),
        ("half an hour", 30),
        ("an hour and a half", 90),
        ("45 mins", 45),
        ("for 2 hours", 120),
        ("in 3 days", None),
        ("2000 minutes", None),  # not a meeting length
    ],
)
def test_parse_duration(text: str, minutes: int | None) -> None:
    assert parse_duration(text) == minutes


def test_can_we_meet_tuesday_at_3() -> None:
    # The finding: `schedule` fired only on attached invitations, never on this.
    found = detect_meeting_request("Quick question", "Can we meet Tuesday at 3?", sent=SENT)
    assert found is not None and found.confident
    assert found.window_start == datetime(2026, 12, 8, 15, 0, tzinfo=ZoneInfo("UTC"))
    assert found.window_description == "Tuesday"


def test_window_duration_and_zone_are_read() -> None:
    found = detect_meeting_request(
        "",
        "Thanks for the deck. Could we have a 30 minute call tomorrow between 2 and 4pm CET?",
        timezone="America/New_York",
        sent=SENT,
    )
    assert found is not None and found.confident
    assert found.duration_minutes == 30
    assert found.timezone == "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    assert found.window_start == datetime(2026, 12, 3, 14, 0, tzinfo=berlin)
    assert found.window_end == datetime(2026, 12, 3, 16, 0, tzinfo=berlin)


def test_next_week_is_monday_to_friday() -> None:
    found = detect_meeting_request("", "Let's catch up next week.", sent=SENT)
    assert found is not None and found.confident
    assert found.window_start is not None and found.window_end is not None
    assert found.window_start.date() == date(2026, 12, 7)
    assert found.window_end.date() == date(2026, 12, 12)


def test_a_request_to_meet_without_a_time_is_not_confident() -> None:
    found = detect_meeting_request("", "Could we set up a call to discuss the contract?")
    assert found is not None and not found.confident


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for the report, see the numbers attached.",
        "The meeting on Tuesday went well.",  # a meeting, but no request
        "Can you send me the contract by Friday?",  # a request, but not to meet
        "I'm out of the office tomorrow.",
    ],
)
def test_no_request_to_meet(text: str) -> None:
    found = detect_meeting_request("", text, sent=SENT)
    assert found is None or not found.confident


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("Can you make a call tomorrow at 10?", True),
        ("Thursday would be great.", True),
        ("Please set up a conference call for tomorrow.", True),
        ("Is that ok?", True),
        ("He will be in the office tomorrow.", False),
        ("I retired from the firm in 1998.", False),
    ],
)
def test_is_request(sentence: str, expected: bool) -> None:
    assert is_request(sentence) is expected


MAIL = """Hi all,

Could you schedule a meeting for Ana, Bo and me for one hour on Monday or Tuesday?
Ana is busy on Monday during 9:00 to 12:00, 13:00 to 17:00.
Bo has meetings on Tuesday during 9:00 to 10:30.
I'm busy Tuesday 11-12.
Bo would rather not meet on Tuesday after 15:00.
We would like to meet at the earliest availability.
"""


def test_extract_and_solve_a_mail() -> None:
    meeting = extract_meeting(MAIL, sender_name="Cy")
    assert meeting.names == ["Ana", "Bo", "Cy"]
    assert meeting.duration_minutes == 60
    assert meeting.days == [0, 1]
    assert meeting.busy["Ana"] == [(0, time(9), time(12)), (0, time(13), time(17))]
    assert meeting.busy["Bo"] == [(1, time(9), time(10, 30))]
    assert meeting.busy["Cy"] == [(1, time(11), time(12))]
    assert meeting.avoid == [("Bo", 1, "after", time(15))]
    assert meeting.earliest
    request = meeting.to_request(date(2026, 11, 23))
    result = find_slots(request)
    assert result.slots
    slot = result.slots[0]
    # Ana's only free hour on Monday is 12:00-13:00, before anything on Tuesday.
    assert (slot.start.weekday(), slot.start.time(), slot.end.time()) == (0, time(12), time(13))


def test_continued_preference_goes_on_the_last_person() -> None:
    meeting = extract_meeting(
        "Schedule a meeting for Ana and Bo for half an hour on Monday, Tuesday. "
        "Ana would rather not meet on Monday. Tuesday before 14:30."
    )
    assert meeting.avoid == [("Ana", 0, None, None), ("Ana", 1, "before", time(14, 30))]


def test_unread_sentences_are_kept_not_guessed() -> None:
    meeting = extract_meeting("Schedule a call with Dana for 30 minutes. The weather is nice.")
    assert meeting.names == ["Dana"]
    assert meeting.unread == ["The weather is nice"]
