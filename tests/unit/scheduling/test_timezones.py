"""DST transitions (gaps, repeated hours, 30-minute shifts) and the date line."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import pytest

from assistant.scheduling import (
    DailyWindow,
    Participant,
    SchedulingRequest,
    SchedulingResult,
    TimeRule,
    find_slots,
)
from tests.unit.scheduling.checker import Checker, at, hm

NINE_TO_FIVE = [DailyWindow(start=hm("09:00"), end=hm("17:00"))]


def solve(participants: list[Participant], **kw: Any) -> tuple[SchedulingRequest, SchedulingResult]:
    req = SchedulingRequest(participants=participants, **kw)
    result = find_slots(req)
    checker = Checker(req)
    for slot in result.slots:
        assert checker.feasible(slot.start), slot
    return req, result


def utc(result: SchedulingResult) -> list[str]:
    return [s.start.astimezone(UTC).strftime("%m-%d %H:%M") for s in result.slots]


def local(result: SchedulingResult, zone: str) -> list[str]:
    return [
        next(x for x in s.local if x.timezone == zone).start.strftime("%a %H:%M%z")
        for s in result.slots
    ]


# America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
NY = "America/New_York"


def test_new_york_spring_forward_window_through_the_gap_is_two_real_hours() -> None:
    night = [DailyWindow(days=(6,), start=hm("01:00"), end=hm("04:00"))]
    kw: dict[str, Any] = {
        "window_start": at("2026-03-07 00:00", NY),
        "window_end": at("2026-03-10 00:00", NY),
        "granularity": 60,
    }
    person = Participant(address="a@x", timezone=NY, working_hours=night)
    _, two_hours = solve([person], duration=120, **kw)
    assert utc(two_hours) == ["03-08 06:00"]  # 01:00 EST to 04:00 EDT
    _, longer = solve([person], duration=150, **kw)
    assert not longer.feasible
    assert "no working hours of 150 minutes" in longer.blocking[0]


def test_new_york_hours_inside_the_gap_do_not_exist() -> None:
    gap_only = [DailyWindow(days=(6,), start=hm("02:00"), end=hm("02:45"))]
    person = Participant(address="a@x", timezone=NY, working_hours=gap_only)
    _, result = solve(
        [person],
        duration=15,
        window_start=at("2026-03-08 00:00", NY),
        window_end=at("2026-03-09 00:00", NY),
    )
    assert not result.feasible


def test_new_york_grid_skips_the_missing_hour_and_keeps_nine_to_five() -> None:
    person = Participant(address="a@x", timezone=NY)
    _, night = solve(
        [person],
        duration=60,
        granularity=60,
        window_start=at("2026-03-08 00:00", NY),
        window_end=at("2026-03-08 05:00", NY),
        non_overlapping=False,
    )
    assert local(night, NY) == [
        "Sun 00:00-0500",
        "Sun 01:00-0500",
        "Sun 03:00-0400",
        "Sun 04:00-0400",
    ]
    worker = Participant(address="a@x", timezone=NY, working_hours=NINE_TO_FIVE)
    _, week = solve(
        [worker],
        duration=480,
        window_start=at("2026-03-06 00:00", NY),
        window_end=at("2026-03-10 00:00", NY),
    )
    # Friday 9-17 EST is 14-22 UTC; Monday 9-17 EDT is 13-21 UTC.
    assert utc(week) == ["03-06 14:00", "03-09 13:00"]


# Europe/London falls back 2026-10-25 02:00 BST -> 01:00 GMT (01:00 UTC): 01:00-02:00 twice.
LDN = "Europe/London"


def test_london_fall_back_day_has_an_extra_hour() -> None:
    night = [DailyWindow(days=(6,), start=hm("00:30"), end=hm("02:30"))]
    person = Participant(address="a@x", timezone=LDN, working_hours=night)
    kw: dict[str, Any] = {
        "window_start": at("2026-10-24 12:00", LDN),
        "window_end": at("2026-10-26 12:00", LDN),
    }
    _, result = solve([person], duration=180, **kw)
    assert utc(result) == ["10-24 23:30"]  # 00:30 BST to 02:30 GMT is three real hours
    _, too_long = solve([person], duration=195, **kw)
    assert not too_long.feasible


def test_london_repeated_hour_yields_both_starts() -> None:
    person = Participant(address="a@x", timezone=LDN)
    _, result = solve(
        [person],
        duration=60,
        granularity=60,
        window_start=at("2026-10-25 00:00", LDN),
        window_end=at("2026-10-25 03:00", LDN),
        non_overlapping=False,
    )
    assert utc(result) == ["10-24 23:00", "10-25 00:00", "10-25 01:00", "10-25 02:00"]
    assert local(result, LDN) == [
        "Sun 00:00+0100",
        "Sun 01:00+0100",
        "Sun 01:00+0000",
        "Sun 02:00+0000",
    ]


def test_london_rule_in_the_repeated_hour_covers_both_occurrences() -> None:
    rule = TimeRule(weekdays=(6,), not_before=hm("01:30"), hard=True)
    person = Participant(address="a@x", timezone=LDN, rules=[rule])
    _, result = solve(
        [person],
        duration=30,
        granularity=30,
        window_start=at("2026-10-25 00:00", LDN),
        window_end=at("2026-10-25 03:00", LDN),
        non_overlapping=False,
        max_results=10,
    )
    # Wall times before 01:30 are excluded on both passes through 01:00-02:00.
    assert local(result, LDN) == [
        "Sun 01:30+0100",
        "Sun 01:30+0000",
        "Sun 02:00+0000",
        "Sun 02:30+0000",
    ]


# Australia/Lord_Howe shifts by 30 minutes: 2026-04-05 02:00 -> 01:30 (+11 -> +10:30) and
# 2026-10-04 02:00 -> 02:30 (+10:30 -> +11).
LH = "Australia/Lord_Howe"


@pytest.mark.parametrize(
    ("day", "minutes", "feasible"),
    [
        ("2026-04-05", 24 * 60 + 30, True),  # a 24.5-hour day
        ("2026-04-05", 24 * 60 + 45, False),
        ("2026-10-04", 23 * 60 + 30, True),  # a 23.5-hour day
        ("2026-10-04", 23 * 60 + 45, False),
    ],
)
def test_lord_howe_day_lengths(day: str, minutes: int, feasible: bool) -> None:
    whole_sunday = [DailyWindow(days=(6,), start=hm("00:00"), end=hm("00:00"))]
    person = Participant(address="a@x", timezone=LH, working_hours=whole_sunday)
    _, result = solve(
        [person],
        duration=minutes,
        window_start=at(day, LH) - timedelta(days=2),
        window_end=at(day, LH) + timedelta(days=2),
    )
    assert result.feasible is feasible
    if feasible:
        assert local(result, LH) == [at(day, LH).strftime("Sun 00:00%z")]


def test_lord_howe_hourly_grid_follows_the_wall_clock_across_the_shift() -> None:
    person = Participant(address="a@x", timezone=LH)
    _, result = solve(
        [person],
        duration=30,
        granularity=60,
        window_start=at("2026-10-04 00:00", LH),
        window_end=at("2026-10-04 05:00", LH),
        non_overlapping=False,
    )
    assert local(result, LH) == [
        "Sun 00:00+1030",
        "Sun 01:00+1030",
        "Sun 03:00+1100",
        "Sun 04:00+1100",
    ]
    # In UTC the starts move from :30 to :00 after the shift.
    assert utc(result) == ["10-03 13:30", "10-03 14:30", "10-03 16:00", "10-03 17:00"]


def test_lord_howe_repeated_half_hour_in_april() -> None:
    night = [DailyWindow(days=(6,), start=hm("01:30"), end=hm("02:00"))]
    person = Participant(address="a@x", timezone=LH, working_hours=night)
    _, result = solve(
        [person],
        duration=30,
        window_start=at("2026-04-04 00:00", LH),
        window_end=at("2026-04-06 00:00", LH),
        max_results=5,
    )
    # 01:30-02:00 happens twice: once at +11, once at +10:30.
    assert local(result, LH) == ["Sun 01:30+1100", "Sun 01:30+1030"]


# Across the date line.


def test_auckland_and_pago_pago_share_wall_clock_one_calendar_day_apart() -> None:
    akl = Participant(address="akl@x", timezone="Pacific/Auckland", working_hours=NINE_TO_FIVE)
    ppg = Participant(address="ppg@x", timezone="Pacific/Pago_Pago", working_hours=NINE_TO_FIVE)
    _, summer = solve(
        [akl, ppg],
        duration=60,
        timezone="Pacific/Auckland",
        window_start=at("2026-11-23 00:00", "Pacific/Auckland"),
        window_end=at("2026-11-30 00:00", "Pacific/Auckland"),
        max_results=2,
    )
    # NZDT (+13) and SST (-11) are 24 hours apart: Monday in Auckland is Sunday in Pago Pago.
    assert local(summer, "Pacific/Auckland") == ["Tue 09:00+1300", "Tue 10:00+1300"]
    assert local(summer, "Pacific/Pago_Pago") == ["Mon 09:00-1100", "Mon 10:00-1100"]
    _, winter = solve(
        [akl, ppg],
        duration=60,
        timezone="Pacific/Auckland",
        window_start=at("2026-06-22 00:00", "Pacific/Auckland"),
        window_end=at("2026-06-29 00:00", "Pacific/Auckland"),
        max_results=1,
    )
    # NZST (+12): 23 hours apart, so Pago Pago's 09:00 Monday is 08:00 Tuesday in Auckland.
    assert local(winter, "Pacific/Auckland") == ["Tue 09:00+1200"]
    assert local(winter, "Pacific/Pago_Pago") == ["Mon 10:00-1100"]


def test_fiji_and_honolulu_overlap_on_different_weekdays() -> None:
    fiji = Participant(address="suva@x", timezone="Pacific/Fiji", working_hours=NINE_TO_FIVE)
    hnl = Participant(address="hnl@x", timezone="Pacific/Honolulu", working_hours=NINE_TO_FIVE)
    _, result = solve(
        [fiji, hnl],
        duration=60,
        timezone="Pacific/Honolulu",
        window_start=at("2026-11-23 00:00", "Pacific/Honolulu"),
        window_end=at("2026-11-28 00:00", "Pacific/Honolulu"),
        max_results=1,
    )
    # Fiji (+12) is 22 hours ahead: Monday 11:00 in Honolulu is Tuesday 09:00 in Suva.
    assert local(result, "Pacific/Honolulu") == ["Mon 11:00-1000"]
    assert local(result, "Pacific/Fiji") == ["Tue 09:00+1200"]


def test_date_line_friday_in_pago_pago_is_saturday_in_auckland() -> None:
    # Friday in Pago Pago is Saturday in Auckland (a non-working day): no overlap that day.
    akl = Participant(address="akl@x", timezone="Pacific/Auckland", working_hours=NINE_TO_FIVE)
    ppg = Participant(address="ppg@x", timezone="Pacific/Pago_Pago", working_hours=NINE_TO_FIVE)
    _, result = solve(
        [akl, ppg],
        duration=60,
        timezone="Pacific/Pago_Pago",
        window_start=at("2026-11-27 00:00", "Pacific/Pago_Pago"),
        window_end=at("2026-11-28 00:00", "Pacific/Pago_Pago"),
    )
    assert not result.feasible
    assert result.blocking == [
        "akl@x (Pacific/Auckland) has no working hours of 1 hour in the search window"
    ]


def test_organizer_zone_is_the_default_reference() -> None:
    person = Participant(address="a@x", timezone="Asia/Kathmandu")  # +05:45
    req, result = solve(
        [person],
        duration=30,
        granularity=60,
        window_start=at("2026-11-23 00:00"),
        window_end=at("2026-11-24 00:00"),
        earliest=hm("09:00"),
        max_results=1,
    )
    assert req.reference_timezone == "Asia/Kathmandu"
    assert local(result, "Asia/Kathmandu") == ["Mon 09:00+0545"]
    assert utc(result) == ["11-23 03:15"]
