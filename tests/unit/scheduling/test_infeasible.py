"""No slot: which constraint blocks, and what relaxing each constraint would give."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from assistant.scheduling import (
    BusyInterval,
    DailyWindow,
    Participant,
    RelaxationKind,
    SchedulingRequest,
    SchedulingResult,
    ShowAs,
    TimeRule,
    find_slots,
)
from tests.unit.scheduling.checker import Checker, at, hm

NINE_TO_FIVE = [DailyWindow(start=hm("09:00"), end=hm("17:00"))]
MON = "2026-11-23"


def person(address: str, zone: str = "UTC", **kw: Any) -> Participant:
    kw.setdefault("working_hours", NINE_TO_FIVE)
    return Participant(address=address, name=address.split("@")[0].title(), timezone=zone, **kw)


def blocked(start: str, end: str, show_as: ShowAs = ShowAs.BUSY) -> BusyInterval:
    return BusyInterval(start=at(f"{MON} {start}"), end=at(f"{MON} {end}"), show_as=show_as)


def solve(participants: list[Participant], **kw: Any) -> SchedulingResult:
    kw.setdefault("duration", 60)
    kw.setdefault("window_start", at(f"{MON} 00:00"))
    kw.setdefault("window_end", at(f"{MON} 00:00") + timedelta(days=1))
    result = find_slots(SchedulingRequest(participants=participants, **kw))
    assert not result.feasible and result.slots == []
    return result


def helpful(result: SchedulingResult) -> dict[tuple[str, str | None], str]:
    """Relaxations that yield a slot, as {(kind, participant): first start in UTC}."""
    return {
        (r.kind.value, r.participant): r.first_slot.start.strftime("%a %H:%M")
        for r in result.relaxations
        if r.first_slot is not None
    }


def test_no_overlap_between_working_hours() -> None:
    result = solve(
        [person("ann@x", "Asia/Singapore"), person("bob@x", "America/Los_Angeles")],
        timezone="UTC",
        window_end=at(f"{MON} 00:00") + timedelta(days=5),
    )
    assert result.blocking == [
        "no overlap between working hours of Ann (Asia/Singapore) and Bob"
        " (America/Los_Angeles) on the requested days (Mon 2026-11-23 to Fri 2026-11-27, UTC)"
    ]
    found = helpful(result)
    # Singapore 09:00 is 01:00 UTC; Los Angeles 09:00 PST is 17:00 UTC.
    assert found[("make_optional", "bob@x")] == "Mon 01:00"
    assert found[("ignore_working_hours", "bob@x")] == "Mon 01:00"
    assert found[("make_optional", "ann@x")] == "Mon 17:00"
    assert found[("ignore_working_hours", "ann@x")] == "Mon 17:00"
    assert ("extend_window", None) not in found
    # Helpful relaxations come first, ordered by their first slot.
    starts = [r.first_slot.start for r in result.relaxations if r.first_slot is not None]
    assert starts == sorted(starts)
    unhelpful = [r for r in result.relaxations if r.first_slot is None]
    assert result.relaxations[-len(unhelpful) :] == unhelpful
    texts = [r.description for r in result.relaxations]
    assert "make Bob (America/Los_Angeles) optional" in texts
    assert "extend the search window by 1 week" in texts
    assert "extend the search window by 4 weeks" not in texts  # offered only if 1 week fails


def test_calendars_full_suggests_extending_the_window() -> None:
    result = solve(
        [
            person("ann@x", busy=[blocked("09:00", "13:00")]),
            person("bob@x", busy=[blocked("12:30", "17:00")]),
            person("cy@x"),
        ],
    )
    assert result.blocking == [
        "the calendars of Ann (UTC), Bob (UTC) leave no common free 1 hour inside shared"
        " working hours on Mon 2026-11-23 (UTC)"
    ]
    found = helpful(result)
    assert found[("extend_window", None)] == "Tue 09:00"
    assert found[("make_optional", "ann@x")] == "Mon 09:00"
    assert found[("make_optional", "bob@x")] == "Mon 13:00"
    assert ("make_optional", "cy@x") not in found
    assert ("ignore_working_hours", "ann@x") not in found  # Bob and Cy still work 9-17


def test_buffers_alone_block() -> None:
    result = solve(
        [person("ann@x", busy=[blocked("09:00", "10:00"), blocked("11:00", "17:00")])],
        buffer_before=10,
    )
    assert result.blocking == ["the buffers (10 min before, 0 min after) leave no gap of 1 hour"]
    found = helpful(result)
    assert found[("drop_buffers", None)] == "Mon 10:00"


def test_tentative_entries_block_until_treated_as_free() -> None:
    result = solve(
        [person("ann@x", busy=[blocked("09:00", "17:00", ShowAs.TENTATIVE)])],
    )
    assert helpful(result)[("tentative_as_free", None)] == "Mon 09:00"


def test_grid_alone_blocks() -> None:
    result = solve(
        [person("ann@x", busy=[blocked("09:00", "10:05"), blocked("11:05", "17:00")])],
    )
    assert result.blocking[0].startswith("free time exists (e.g. from 2026-11-23 10:05 UTC)")
    assert result.blocking[0].endswith("starts on the 15-minute grid of UTC")
    assert helpful(result)[("finer_granularity", None)] == "Mon 10:05"


def test_window_shorter_than_meeting() -> None:
    result = solve(
        [person("ann@x")],
        window_start=at(f"{MON} 09:00"),
        window_end=at(f"{MON} 09:30"),
    )
    assert result.blocking == ["the search window is shorter than the 1 hour meeting"]


def test_earliest_latest_leave_no_room() -> None:
    result = solve([person("ann@x")], earliest=hm("09:00"), latest=hm("09:45"))
    assert result.blocking == [
        "no 1 hour between earliest and latest (UTC) inside the search window"
    ]
    assert helpful(result)[("drop_time_of_day", None)] == "Mon 09:00"


def test_working_hours_outside_earliest_latest() -> None:
    result = solve([person("ann@x")], earliest=hm("18:00"))
    assert result.blocking == [
        "the working hours of Ann (UTC) fall outside the allowed times"
        " (earliest/latest and hard rules)"
    ]


def test_hard_rules_block_and_can_be_ignored() -> None:
    week = {"window_end": at(f"{MON} 00:00") + timedelta(days=2)}
    result = solve([person("ann@x")], rules=[TimeRule(weekdays=(0, 1), hard=True)], **week)
    assert result.blocking == [
        "the hard rules (no meetings on Monday, Tuesday) leave no 1 hour in the search window"
    ]
    assert helpful(result)[("ignore_rules", None)] == "Mon 09:00"
    own = TimeRule(not_after=hm("09:30"), hard=True, label="mornings only, briefly")
    result = solve([person("ann@x", rules=[own])], **week)
    assert result.blocking == [
        "the rules of Ann (UTC) (mornings only, briefly) leave no time in their day"
    ]
    assert helpful(result)[("ignore_participant_rules", "ann@x")] == "Mon 09:00"


def test_three_people_without_a_common_hour() -> None:
    # Pairwise overlaps exist, but no hour is inside all three days.
    result = solve(
        [
            person("ann@x", working_hours=[DailyWindow(start=hm("09:00"), end=hm("12:00"))]),
            person("bob@x", working_hours=[DailyWindow(start=hm("11:00"), end=hm("14:00"))]),
            person(
                "cy@x",
                working_hours=[
                    DailyWindow(start=hm("08:00"), end=hm("09:00")),
                    DailyWindow(start=hm("13:00"), end=hm("14:00")),
                ],
            ),
        ],
    )
    assert len(result.blocking) == 1
    assert result.blocking[0].startswith(
        "no overlap between working hours of Ann (UTC) and Cy (UTC)"
    )


@pytest.mark.parametrize("kind", list(RelaxationKind))
def test_relaxation_slots_are_feasible_for_the_relaxed_request(kind: RelaxationKind) -> None:
    # A request where every kind of relaxation applies; each first slot must be valid for the
    # request with that one constraint loosened, checked independently.
    participants = [
        person(
            "ann@x",
            busy=[blocked("09:00", "12:00", ShowAs.TENTATIVE)],
            rules=[TimeRule(not_before=hm("16:30"), hard=True)],
        ),
        person("bob@x", busy=[blocked("12:00", "16:50")]),
    ]
    req = SchedulingRequest(
        participants=participants,
        duration=60,
        window_start=at(f"{MON} 00:00"),
        window_end=at(f"{MON} 00:00") + timedelta(days=1),
        buffer_before=5,
        earliest=hm("08:00"),
        latest=hm("18:00"),
        rules=[TimeRule(weekdays=(1,), hard=True)],
        granularity=30,
    )
    result = find_slots(req)
    assert not result.feasible
    matching = [r for r in result.relaxations if r.kind is kind]
    assert matching, kind
    for relaxation in matching:
        if relaxation.first_slot is None:
            continue
        relaxed = _relaxed(req, relaxation.kind, relaxation.participant)
        assert Checker(relaxed).feasible(relaxation.first_slot.start)


def _relaxed(req: SchedulingRequest, kind: RelaxationKind, who: str | None) -> SchedulingRequest:
    def change(**update: Any) -> SchedulingRequest:
        people = [p.model_copy(update=update) if p.address == who else p for p in req.participants]
        return req.model_copy(update={"participants": people})

    match kind:
        case RelaxationKind.EXTEND_WINDOW:
            return req.model_copy(update={"window_end": req.window_end + timedelta(weeks=4)})
        case RelaxationKind.DROP_BUFFERS:
            return req.model_copy(update={"buffer_before": 0, "buffer_after": 0})
        case RelaxationKind.MAKE_OPTIONAL:
            return change(required=False)
        case RelaxationKind.IGNORE_WORKING_HOURS:
            return change(working_hours=None)
        case RelaxationKind.IGNORE_PARTICIPANT_RULES:
            return change(rules=[])
        case RelaxationKind.IGNORE_RULES:
            return req.model_copy(update={"rules": []})
        case RelaxationKind.DROP_TIME_OF_DAY:
            return req.model_copy(update={"earliest": None, "latest": None})
        case RelaxationKind.TENTATIVE_AS_FREE:
            return req.model_copy(update={"tentative_is_busy": False})
        case RelaxationKind.FINER_GRANULARITY:
            return req.model_copy(update={"granularity": 5})
