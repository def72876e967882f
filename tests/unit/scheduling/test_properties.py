"""Property tests: the engine against an independent minute-resolution brute force.

Requests are drawn around real DST transitions and across the date line, with working hours
and rules whose wall times may fall inside spring-forward gaps or repeated fall-back hours.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.scheduling import (
    BusyInterval,
    DailyWindow,
    Participant,
    SchedulingRequest,
    ShowAs,
    TimeRule,
    find_slots,
)
from assistant.scheduling._time import intersect, merge, subtract
from tests.unit.scheduling.checker import Checker

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
    "Pacific/Pago_Pago",
    "Pacific/Fiji",
    "Pacific/Honolulu",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "America/Santiago",
]
# Days around transitions: New York/Santiago, Europe spring, Lord Howe and Santiago in April,
# Lord Howe and Auckland spring, Europe fall-back, New York fall-back, and an ordinary week.
ANCHORS = [
    datetime(2026, 3, 7, tzinfo=UTC),
    datetime(2026, 3, 28, tzinfo=UTC),
    datetime(2026, 4, 4, tzinfo=UTC),
    datetime(2026, 9, 26, tzinfo=UTC),
    datetime(2026, 10, 3, tzinfo=UTC),
    datetime(2026, 10, 24, tzinfo=UTC),
    datetime(2026, 10, 31, tzinfo=UTC),
    datetime(2026, 11, 23, tzinfo=UTC),
]
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

wall_times = st.integers(0, 95).map(lambda q: time(q // 4, q % 4 * 15))


@st.composite
def windows(draw: st.DrawFn) -> DailyWindow:
    start = draw(st.integers(0, 95))
    end = (start + draw(st.integers(4, 72))) % 96  # may wrap past midnight
    days = draw(st.sets(st.integers(0, 6), min_size=3).map(lambda s: tuple(sorted(s))))
    return DailyWindow(
        days=days, start=time(start // 4, start % 4 * 15), end=time(end // 4, end % 4 * 15)
    )


@st.composite
def rules(draw: st.DrawFn) -> TimeRule:
    days = draw(st.sets(st.integers(0, 6), max_size=3).map(lambda s: tuple(sorted(s))))
    before = draw(st.none() | wall_times)
    after = draw(st.none() | wall_times)
    if before is not None and after is not None and after <= before:
        after = None
    if not days and before is None and after is None:
        days = (draw(st.integers(0, 6)),)
    return TimeRule(weekdays=days, not_before=before, not_after=after, hard=draw(st.booleans()))


@st.composite
def requests(draw: st.DrawFn) -> SchedulingRequest:
    start = draw(st.sampled_from(ANCHORS)) + timedelta(minutes=15 * draw(st.integers(0, 191)))
    length = timedelta(hours=draw(st.integers(2, 54)))
    people = []
    for address in draw(
        st.lists(st.sampled_from(["a@x", "b@x", "c@x"]), min_size=1, max_size=3, unique=True)
    ):
        busy = []
        for _ in range(draw(st.integers(0, 4))):
            offset = timedelta(minutes=5 * draw(st.integers(-24, 12 * 54)))
            span = timedelta(minutes=5 * draw(st.integers(1, 48)))
            show = draw(st.sampled_from(list(ShowAs)))
            busy.append(BusyInterval(start=start + offset, end=start + offset + span, show_as=show))
        people.append(
            Participant(
                address=address,
                timezone=draw(st.sampled_from(ZONES)),
                required=draw(st.sampled_from([True, True, False])),
                working_hours=draw(st.none() | st.lists(windows(), min_size=1, max_size=2)),
                busy=busy,
                rules=draw(st.lists(rules(), max_size=1)),
            )
        )
    earliest = draw(st.none() | wall_times)
    latest = draw(st.none() | wall_times)
    if earliest is not None and latest is not None and latest <= earliest:
        latest = None
    return SchedulingRequest(
        participants=people,
        duration=draw(st.sampled_from([15, 30, 45, 60, 90, 120])),
        window_start=start,
        window_end=start + length,
        timezone=draw(st.sampled_from(ZONES)),
        earliest=earliest,
        latest=latest,
        granularity=draw(st.sampled_from([5, 10, 15, 30, 60])),
        buffer_before=draw(st.sampled_from([0, 0, 5, 15])),
        buffer_after=draw(st.sampled_from([0, 0, 10])),
        tentative_is_busy=draw(st.booleans()),
        rules=draw(st.lists(rules(), max_size=1)),
        max_results=draw(st.integers(1, 4)),
        non_overlapping=draw(st.booleans()),
    )


def expected_starts(req: SchedulingRequest, checker: Checker) -> list[datetime]:
    """The specification of ranking: fewest tradeoffs, then earliest; greedy non-overlap."""
    ranked = sorted(checker.all_feasible(), key=lambda s: (checker.cost(s), s))
    picked: list[datetime] = []
    for start in ranked:
        if req.non_overlapping and any(abs(start - p) < req.duration for p in picked):
            continue
        picked.append(start)
        if len(picked) == req.max_results:
            break
    return picked


@SETTINGS
@given(requests())
def test_engine_matches_brute_force(req: SchedulingRequest) -> None:
    result = find_slots(req)
    checker = Checker(req)
    for slot in result.slots:
        assert checker.feasible(slot.start), slot.start
        assert slot.end - slot.start == req.duration
        assert len(slot.tradeoffs) == checker.cost(slot.start)
    expected = expected_starts(req, checker)
    assert result.feasible == bool(expected)
    assert [s.start for s in result.slots] == expected
    if not result.feasible:
        assert result.blocking
        for relaxation in result.relaxations:
            slot = relaxation.first_slot
            if slot is not None:
                assert req.window_start <= slot.start


@settings(SETTINGS, max_examples=50)
@given(requests(), st.randoms(use_true_random=False))
def test_result_ignores_input_order(req: SchedulingRequest, rnd: random.Random) -> None:
    people = []
    for person in req.participants:
        busy = list(person.busy)
        rnd.shuffle(busy)
        people.append(person.model_copy(update={"busy": busy}))
    rnd.shuffle(people)
    shuffled = req.model_copy(update={"participants": people})
    assert find_slots(shuffled).model_dump() == find_slots(req).model_dump()


spans = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), max_size=8).map(
    lambda xs: [(a, a + n) for a, n in xs]
)


def points(intervals: list[tuple[int, int]]) -> set[int]:
    return {t for a, b in intervals for t in range(a, b)}


@settings(max_examples=200, deadline=None)
@given(spans, spans)
def test_interval_algebra_matches_point_sets(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    ma, mb = merge(a), merge(b)
    assert points(ma) == points(a)
    assert all(x[1] < y[0] for x, y in zip(ma, ma[1:], strict=False))  # disjoint, not touching
    assert points(intersect(ma, mb)) == points(a) & points(b)
    assert points(subtract(ma, mb)) == points(a) - points(b)
