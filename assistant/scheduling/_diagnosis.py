"""Why a request has no slot, and what loosening each constraint would give.

Blocking reasons come from adding the hard constraints one layer at a time (window, time of
day and rules, each participant's working hours, pairs of them, busy time, buffers, the start
grid) and naming the first layer after which no meeting fits.
"""

from __future__ import annotations

from datetime import timedelta
from itertools import combinations

from assistant.scheduling._problem import Person, Problem, first_slot, starts
from assistant.scheduling._time import (
    DAY,
    Interval,
    intersect,
    longest,
    overlaps,
    subtract,
    to_datetime,
)
from assistant.scheduling._time import day_date as _day_date
from assistant.scheduling.models import (
    Relaxation,
    RelaxationKind,
    SchedulingRequest,
    ShowAs,
)

_ORDER = list(RelaxationKind)


def _minutes(seconds: int) -> str:
    minutes = seconds // 60
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour" + ("s" if hours != 1 else "")
    return f"{minutes} minutes"


def _days(problem: Problem) -> str:
    first = problem.ref.local(problem.lo) // DAY
    last = problem.ref.local(problem.hi - 1) // DAY
    start, end = _day_date(first), _day_date(last)
    if first == last:
        return f"on {start:%a %Y-%m-%d} ({problem.ref.key})"
    return f"on the requested days ({start:%a %Y-%m-%d} to {end:%a %Y-%m-%d}, {problem.ref.key})"


def _names(people: list[Person]) -> str:
    return ", ".join(p.who for p in people)


def _hours(problem: Problem, person: Person) -> list[Interval]:
    return person.hours if person.hours is not None else [(problem.lo, problem.hi)]


def blocking(problem: Problem) -> list[str]:
    """Name the constraint(s) that leave no room for the meeting."""
    dur = problem.duration
    need = _minutes(dur)
    req = problem.request
    if problem.hi - problem.lo < dur:
        return [f"the search window is shorter than the {need} meeting"]
    if longest(problem.time_of_day) < dur:
        return [
            f"no {need} between earliest and latest ({problem.ref.key}) inside the search window"
        ]
    if longest(problem.base) < dur:
        rules = "; ".join(r.describe() for r in problem.hard_rules)
        return [f"the hard rules ({rules}) leave no {need} in the search window"]
    required = problem.required
    reasons: list[str] = []
    for person in required:
        hours = _hours(problem, person)
        if longest(hours) < dur:
            reasons.append(f"{person.who} has no working hours of {need} in the search window")
        elif longest(intersect(problem.base, hours)) < dur:
            reasons.append(
                f"the working hours of {person.who} fall outside the allowed times"
                " (earliest/latest and hard rules)"
            )
        elif longest(subtract(intersect(problem.base, hours), person.forbidden)) < dur:
            rules = "; ".join(r.describe() for r in person.hard_rules)
            reasons.append(f"the rules of {person.who} ({rules}) leave no time in their day")
    if reasons:
        return reasons
    with_hours = [p for p in required if p.hours is not None]
    for a, b in combinations(with_hours, 2):
        pair = intersect(intersect(problem.base, _hours(problem, a)), _hours(problem, b))
        if longest(pair) < dur:
            reasons.append(
                f"no overlap between working hours of {a.who} and {b.who} {_days(problem)}"
            )
    if reasons:
        return reasons
    shared = problem.base
    for person in required:
        shared = subtract(intersect(shared, _hours(problem, person)), person.forbidden)
    if longest(shared) < dur:
        return [
            f"the working hours and rules of {_names(required)} have no {need} in common"
            f" {_days(problem)}"
        ]
    unbuffered = shared
    for person in required:
        unbuffered = subtract(unbuffered, person.busy)
    if longest(unbuffered) < dur:
        involved = [p for p in required if any(overlaps(p.busy, a, b) for a, b in shared)]
        return [
            f"the calendars of {_names(involved)} leave no common free {need}"
            f" inside shared working hours {_days(problem)}"
        ]
    if longest(problem.region) < dur:
        return [
            f"the buffers ({req.buffer_before} min before, {req.buffer_after} min after)"
            f" leave no gap of {need}"
        ]
    if next(starts(problem, problem.region), None) is None:
        gap = next((a, b) for a, b in problem.region if b - a >= dur)
        return [
            f"free time exists (e.g. from {to_datetime(gap[0]):%Y-%m-%d %H:%M} UTC) but no"
            f" {need} starts on the {req.granularity}-minute grid of {problem.ref.key}"
        ]
    return ["no slot satisfies every hard constraint"]  # not reached: the solver found none


def _with(request: SchedulingRequest, address: str, **update: object) -> SchedulingRequest:
    """A copy of the request with one participant changed."""
    people = [
        p.model_copy(update=update) if p.address == address else p for p in request.participants
    ]
    return request.model_copy(update={"participants": people})


_Candidate = tuple[RelaxationKind, str | None, str, SchedulingRequest]


def _candidates(request: SchedulingRequest, problem: Problem) -> list[_Candidate]:
    out: list[_Candidate] = []

    def add(
        kind: RelaxationKind, text: str, relaxed: SchedulingRequest, who: str | None = None
    ) -> None:
        out.append((kind, who, text, relaxed))

    for weeks in (1, 4):
        add(
            RelaxationKind.EXTEND_WINDOW,
            f"extend the search window by {weeks} week{'s' if weeks > 1 else ''}",
            request.model_copy(update={"window_end": request.window_end + timedelta(weeks=weeks)}),
        )
    if request.buffer_before or request.buffer_after:
        add(
            RelaxationKind.DROP_BUFFERS,
            f"drop the buffers ({request.buffer_before} min before,"
            f" {request.buffer_after} min after)",
            request.model_copy(update={"buffer_before": 0, "buffer_after": 0}),
        )
    if request.earliest is not None or request.latest is not None:
        add(
            RelaxationKind.DROP_TIME_OF_DAY,
            f"drop the earliest/latest limits ({problem.ref.key})",
            request.model_copy(update={"earliest": None, "latest": None}),
        )
    if problem.hard_rules:
        add(
            RelaxationKind.IGNORE_RULES,
            f"ignore the hard rules ({'; '.join(r.describe() for r in problem.hard_rules)})",
            request.model_copy(update={"rules": [r for r in request.rules if not r.hard]}),
        )
    required = problem.required
    if request.tentative_is_busy and any(
        b.show_as is ShowAs.TENTATIVE for p in required for b in p.participant.busy
    ):
        add(
            RelaxationKind.TENTATIVE_AS_FREE,
            "treat tentative events as free",
            request.model_copy(update={"tentative_is_busy": False}),
        )
    for person in required:
        part, zone = person.participant, person.participant.timezone
        if len(required) > 1:
            add(
                RelaxationKind.MAKE_OPTIONAL,
                f"make {person.who} optional",
                _with(request, part.address, required=False),
                part.address,
            )
        if part.working_hours is not None:
            hours = "; ".join(w.describe() for w in part.working_hours) or "none"
            add(
                RelaxationKind.IGNORE_WORKING_HOURS,
                f"allow times outside {part.label}'s working hours ({hours}, {zone})",
                _with(request, part.address, working_hours=None),
                part.address,
            )
        if person.hard_rules:
            add(
                RelaxationKind.IGNORE_PARTICIPANT_RULES,
                f"ignore {part.label}'s hard rules"
                f" ({'; '.join(r.describe() for r in person.hard_rules)}, {zone})",
                _with(request, part.address, rules=[r for r in part.rules if not r.hard]),
                part.address,
            )
    if request.granularity > 5:
        add(
            RelaxationKind.FINER_GRANULARITY,
            "allow starts on a 5-minute grid",
            request.model_copy(update={"granularity": 5}),
        )
    return out


def relaxations(request: SchedulingRequest, problem: Problem) -> list[Relaxation]:
    """Each applicable single relaxation with the first slot it yields (None if none);
    helpful ones first, earliest slot first."""
    found = [
        Relaxation(kind=kind, participant=who, description=text, first_slot=first_slot(relaxed))
        for kind, who, text, relaxed in _candidates(request, problem)
    ]
    week, month = found[0], found[1]
    if week.first_slot is not None or month.first_slot is None:
        # Offer the longer extension only when the one-week extension is not enough.
        found.remove(month)

    def key(item: Relaxation) -> tuple[int, float, int, str]:
        slot = item.first_slot
        when = slot.start.timestamp() if slot is not None else 0.0
        return (slot is None, when, _ORDER.index(item.kind), item.participant or "")

    return sorted(found, key=key)
