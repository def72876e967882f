"""Each hard constraint, buffers, optional participants, preferences and tradeoffs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from assistant.scheduling import (
    BusyInterval,
    DailyWindow,
    Participant,
    Preferences,
    SchedulingRequest,
    SchedulingResult,
    ShowAs,
    TimeRule,
    find_slots,
)
from tests.unit.scheduling.checker import Checker, at, hm

NINE_TO_FIVE = [DailyWindow(start=hm("09:00"), end=hm("17:00"))]
MONDAY = "2026-11-23"  # a Monday


def person(address: str, zone: str = "UTC", **kw: Any) -> Participant:
    kw.setdefault("working_hours", NINE_TO_FIVE)
    return Participant(address=address, timezone=zone, **kw)


def busy(start: str, end: str, zone: str = "UTC", show_as: ShowAs = ShowAs.BUSY) -> BusyInterval:
    return BusyInterval(start=at(start, zone), end=at(end, zone), show_as=show_as)


def request(participants: list[Participant], **kw: Any) -> SchedulingRequest:
    kw.setdefault("duration", 30)
    kw.setdefault("window_start", at(f"{MONDAY} 00:00"))
    kw.setdefault("window_end", at(f"{MONDAY} 00:00") + timedelta(days=1))
    return SchedulingRequest(participants=participants, **kw)


def starts(result: SchedulingResult, zone: str = "UTC") -> list[str]:
    return [s.start.astimezone(at(MONDAY, zone).tzinfo).strftime("%a %H:%M") for s in result.slots]


def check_all(req: SchedulingRequest, result: SchedulingResult) -> None:
    checker = Checker(req)
    for slot in result.slots:
        assert checker.feasible(slot.start), slot


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("open calendars start at nine", {}, ["Mon 09:00", "Mon 09:30", "Mon 10:00"]),
    (
        "busy blocks are avoided",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 10:15")]},
        ["Mon 10:15", "Mon 10:45", "Mon 11:15"],
    ),
    (
        "free entries do not block",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 12:00", show_as=ShowAs.FREE)]},
        ["Mon 09:00", "Mon 09:30", "Mon 10:00"],
    ),
    (
        "tentative blocks by default",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 12:00", show_as=ShowAs.TENTATIVE)]},
        ["Mon 12:00", "Mon 12:30", "Mon 13:00"],
    ),
    (
        "tentative can count as free",
        {
            "a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 12:00", show_as=ShowAs.TENTATIVE)],
            "tentative_is_busy": False,
        },
        ["Mon 09:00", "Mon 09:30", "Mon 10:00"],
    ),
    (
        "out of office blocks",
        {"a_busy": [busy(f"{MONDAY} 00:00", f"{MONDAY} 16:00", show_as=ShowAs.OOF)]},
        ["Mon 16:00", "Mon 16:30"],
    ),
    (
        "buffer before keeps a gap after the previous event",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 10:00")], "buffer_before": 15},
        ["Mon 10:15", "Mon 10:45", "Mon 11:15"],
    ),
    (
        "buffer after keeps a gap before the next event",
        {"a_busy": [busy(f"{MONDAY} 09:40", f"{MONDAY} 16:00")], "buffer_after": 15},
        ["Mon 16:00", "Mon 16:30"],
    ),
    (
        "both buffers",
        {
            "a_busy": [
                busy(f"{MONDAY} 09:00", f"{MONDAY} 10:00"),
                busy(f"{MONDAY} 11:00", f"{MONDAY} 17:00"),
            ],
            "buffer_before": 10,
            "buffer_after": 20,
            "granularity": 5,
        },
        ["Mon 10:10"],
    ),
    (
        "a busy entry outside the window still pushes the buffer in",
        {
            "a_busy": [busy(f"{MONDAY} 08:00", f"{MONDAY} 09:00")],
            "buffer_before": 30,
            "window_start": at(f"{MONDAY} 09:00"),
        },
        ["Mon 09:30", "Mon 10:00", "Mon 10:30"],
    ),
    (
        "earliest and latest in the reference zone",
        {"earliest": hm("13:00"), "latest": hm("14:30")},
        ["Mon 13:00", "Mon 13:30", "Mon 14:00"],
    ),
    (
        "granularity aligns starts",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 10:05")], "granularity": 15},
        ["Mon 10:15", "Mon 10:45", "Mon 11:15"],
    ),
    (
        "finer granularity",
        {"a_busy": [busy(f"{MONDAY} 09:00", f"{MONDAY} 10:05")], "granularity": 5},
        ["Mon 10:05", "Mon 10:35", "Mon 11:05"],
    ),
    (
        "search window bounds",
        {"window_start": at(f"{MONDAY} 15:50"), "window_end": at(f"{MONDAY} 16:50")},
        ["Mon 16:00"],
    ),
    (
        "several working windows a day",
        {
            "a_hours": [
                DailyWindow(start=hm("09:00"), end=hm("09:45")),
                DailyWindow(start=hm("16:00"), end=hm("17:00")),
            ],
            "duration": 60,
        },
        ["Mon 16:00"],
    ),
    (
        "adjacent working windows merge",
        {
            "a_hours": [
                DailyWindow(start=hm("09:00"), end=hm("10:00")),
                DailyWindow(start=hm("10:00"), end=hm("11:00")),
            ],
            "duration": 120,
        },
        ["Mon 09:00"],
    ),
    (
        "no working-hours constraint",
        {"a_hours": None, "b_hours": None, "duration": 60},
        ["Mon 00:00", "Mon 01:00", "Mon 02:00"],
    ),
    (
        "working hours wrapping past midnight",
        {
            "a_hours": [DailyWindow(days=(6,), start=hm("22:00"), end=hm("02:00"))],
            "b_hours": None,
            "duration": 60,
        },
        ["Mon 00:00", "Mon 01:00"],
    ),
    (
        "hard global rule avoids a weekday",
        {
            "rules": [TimeRule(weekdays=(0,), hard=True)],
            "window_end": at(f"{MONDAY} 00:00") + timedelta(days=2),
        },
        ["Tue 09:00", "Tue 09:30", "Tue 10:00"],
    ),
    (
        "hard participant rule: not before",
        {"a_rules": [TimeRule(not_before=hm("15:00"), hard=True)]},
        ["Mon 15:00", "Mon 15:30", "Mon 16:00"],
    ),
    (
        "hard participant rule: not after",
        {"a_rules": [TimeRule(not_after=hm("10:00"), hard=True)]},
        ["Mon 09:00", "Mon 09:30"],
    ),
    (
        "hard rule on a date",
        {
            "rules": [TimeRule(dates=(at(MONDAY).date(),), hard=True)],
            "window_end": at(f"{MONDAY} 00:00") + timedelta(days=2),
            "max_results": 1,
        },
        ["Tue 09:00"],
    ),
    ("max results", {"max_results": 2}, ["Mon 09:00", "Mon 09:30"]),
    (
        "overlapping proposals when asked",
        {"max_results": 3, "non_overlapping": False},
        ["Mon 09:00", "Mon 09:15", "Mon 09:30"],
    ),
]


@pytest.mark.parametrize(("name", "options", "expected"), CASES, ids=[c[0] for c in CASES])
def test_constraint(name: str, options: dict[str, Any], expected: list[str]) -> None:
    opts = dict(options)
    a_kw: dict[str, Any] = {"busy": opts.pop("a_busy", [])}
    b_kw: dict[str, Any] = {}
    for key, target in (("a", a_kw), ("b", b_kw)):
        if f"{key}_hours" in opts:
            target["working_hours"] = opts.pop(f"{key}_hours")
        if f"{key}_rules" in opts:
            target["rules"] = opts.pop(f"{key}_rules")
    opts.setdefault("max_results", 3)
    req = request([person("a@x", **a_kw), person("b@x", **b_kw)], **opts)
    result = find_slots(req)
    assert starts(result) == expected
    assert result.feasible
    check_all(req, result)


def test_working_hours_are_read_in_each_zone() -> None:
    # 09:00 New York (EST) is 14:00 UTC; London works 09:00-17:00 GMT, so 14:00-17:00 UTC.
    req = request(
        [person("ny@x", "America/New_York"), person("ldn@x", "Europe/London")],
        duration=60,
        timezone="UTC",
    )
    result = find_slots(req)
    assert starts(result) == ["Mon 14:00", "Mon 15:00", "Mon 16:00"]
    ny, ldn = result.slots[0].local[1], result.slots[0].local[0]
    assert (ny.address, ny.start.strftime("%H:%M"), ny.timezone) == (
        "ny@x",
        "09:00",
        "America/New_York",
    )
    assert (ldn.address, ldn.start.strftime("%H:%M")) == ("ldn@x", "14:00")
    check_all(req, result)


def test_result_reports_satisfied_constraints() -> None:
    req = request(
        [
            person("a@x", name="Ann", rules=[TimeRule(not_before=hm("10:00"), hard=True)]),
            person("b@x", name="Bob"),
        ],
        buffer_before=5,
        buffer_after=10,
        earliest=hm("08:00"),
        latest=hm("18:00"),
        rules=[TimeRule(weekdays=(5, 6), hard=True)],
    )
    slot = find_slots(req).slots[0]
    text = "\n".join(slot.satisfied)
    assert "inside the search window" in text
    assert "between 08:00 and 18:00 UTC" in text
    assert "respects the rule: no meetings on Saturday, Sunday" in text
    assert "inside Ann's working hours (Mon 2026-11-23 10:00-10:30 UTC)" in text
    assert "Bob has no conflicting event, keeping 5 min before and 10 min after clear" in text
    assert "respects Ann's rule: no meetings before 10:00 on" not in text  # every day: no "on"
    assert "respects Ann's rule: no meetings before 10:00 (UTC)" in text
    assert text.endswith("starts on the 15-minute grid of UTC")
    assert slot.tradeoffs == [] and slot.score == 100.0
    assert slot.start.tzinfo is not None and slot.start.utcoffset() == timedelta(0)


def test_optional_participants_rank_higher_when_free() -> None:
    carol = person(
        "carol@x",
        name="Carol",
        required=False,
        busy=[busy(f"{MONDAY} 09:00", f"{MONDAY} 11:00")],
    )
    req = request([person("a@x"), carol], max_results=3)
    result = find_slots(req)
    assert starts(result) == ["Mon 11:00", "Mon 11:30", "Mon 12:00"]
    assert all(s.optional_attendees == ["carol@x"] for s in result.slots)
    # With every slot blocked for Carol, the engine still proposes slots and says why.
    carol_away = carol.model_copy(update={"busy": [busy(f"{MONDAY} 00:00", f"{MONDAY} 23:00")]})
    result = find_slots(request([person("a@x"), carol_away], max_results=1))
    assert starts(result) == ["Mon 09:00"]
    assert result.slots[0].tradeoffs == ["optional participant Carol cannot attend: busy"]
    assert result.slots[0].score == 90.0


def test_optional_participant_outside_working_hours_is_explained() -> None:
    late = person(
        "late@x",
        name="Late",
        required=False,
        working_hours=[DailyWindow(start=hm("20:00"), end=hm("21:00"))],
    )
    slot = find_slots(request([person("a@x"), late], max_results=1)).slots[0]
    assert slot.tradeoffs == [
        "optional participant Late cannot attend: outside their working hours"
    ]


def test_soft_rules_are_tradeoffs_and_rank_lower() -> None:
    ann = person("a@x", name="Ann", rules=[TimeRule(not_before=hm("11:00"))])
    req = request([ann, person("b@x")], rules=[TimeRule(not_after=hm("12:00"))], max_results=5)
    result = find_slots(req)
    # Fewest tradeoffs first, then earliest; proposals do not overlap one another.
    assert starts(result) == ["Mon 11:00", "Mon 11:30", "Mon 09:00", "Mon 09:30", "Mon 10:00"]
    assert [s.score for s in result.slots] == [100.0, 100.0, 90.0, 90.0, 90.0]
    assert result.slots[2].tradeoffs == ["breaks Ann's preference: no meetings before 11:00 (UTC)"]
    afternoon = find_slots(req.model_copy(update={"window_start": at(f"{MONDAY} 12:00")}))
    assert afternoon.slots[0].tradeoffs == ["breaks the preference: no meetings after 12:00 (UTC)"]


def test_keep_lunch_free() -> None:
    prefs = Preferences(keep_lunch_free=True)
    req = request(
        [
            person("a@x", name="Ann", busy=[busy(f"{MONDAY} 09:00", f"{MONDAY} 12:00")]),
            person("b@x", busy=[busy(f"{MONDAY} 13:30", f"{MONDAY} 17:00")]),
        ],
        preferences=prefs,
        duration=60,
    )
    slot = find_slots(req).slots[0]
    assert slot.start == at(f"{MONDAY} 12:00")
    assert slot.tradeoffs == [
        "overlaps Ann's lunch 12:00-13:00 (UTC)",
        "overlaps b@x's lunch 12:00-13:00 (UTC)",
    ]
    custom = person("c@x", name="Cy", lunch=DailyWindow(start=hm("09:00"), end=hm("10:00")))
    result = find_slots(request([custom], preferences=prefs, max_results=1))
    assert starts(result) == ["Mon 10:00"]
    # Without keep_lunch_free a participant's lunch window is not a preference.
    assert starts(find_slots(request([custom], max_results=1))) == ["Mon 09:00"]


def test_prefer_time_of_day() -> None:
    req = request(
        [person("a@x"), person("b@x")],
        preferences=Preferences(prefer_time=hm("14:10")),
        max_results=3,
    )
    assert starts(find_slots(req)) == ["Mon 14:15", "Mon 13:45", "Mon 14:45"]


def test_required_participant_with_no_working_hours_at_all() -> None:
    result = find_slots(request([person("a@x", working_hours=[]), person("b@x")]))
    assert not result.feasible
    assert result.blocking == ["a@x (UTC) has no working hours of 30 minutes in the search window"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window_end": at(f"{MONDAY} 00:00")}, "window_end must be after window_start"),
        ({"granularity": 7}, "granularity must divide a day"),
        ({"duration": 0}, "duration must be positive"),
        ({"earliest": hm("12:00"), "latest": hm("11:00")}, "latest must be later than earliest"),
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"window_end": at(f"{MONDAY} 00:00") + timedelta(days=400)}, "at most 366 days"),
        ({"window_start": datetime(2026, 11, 23)}, "timezone"),
    ],
)
def test_invalid_requests_are_rejected(change: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "participants": [person("a@x")],
        "duration": 30,
        "window_start": at(f"{MONDAY} 00:00"),
        "window_end": at(f"{MONDAY} 23:00"),
    }
    with pytest.raises(ValidationError, match=message):
        SchedulingRequest(**(base | change))


def test_invalid_participants_and_rules_are_rejected() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        request([person("a@x"), person("A@X")])
    with pytest.raises(ValidationError, match="exclude every meeting"):
        TimeRule()
    with pytest.raises(ValidationError, match="not_after must be later"):
        TimeRule(not_before=hm("12:00"), not_after=hm("11:00"))
    with pytest.raises(ValidationError, match="must not carry a time zone"):
        DailyWindow(start=hm("09:00+02:00"), end=hm("17:00"))
    with pytest.raises(ValidationError, match="end after it starts"):
        busy(f"{MONDAY} 10:00", f"{MONDAY} 10:00")


def test_duration_accepts_minutes_or_timedelta() -> None:
    assert request([person("a@x")], duration=45).duration == timedelta(minutes=45)
    assert request([person("a@x")], duration=timedelta(hours=1)).duration == timedelta(hours=1)
    assert request([person("a@x")], duration="PT90M").duration == timedelta(minutes=90)


def test_result_is_json_serialisable() -> None:
    result = find_slots(request([person("a@x"), person("b@x")]))
    again = SchedulingResult.model_validate_json(result.model_dump_json())
    assert again == result
