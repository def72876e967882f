"""The request turned into interval lists, the feasible region, candidate starts and ranking.

Hard constraints are applied as set algebra on intervals (intersect working hours, subtract
merged busy time widened by the buffers), so the cost grows with the number of calendar
entries and days, not with minutes. Only aligned starts inside the feasible region are ever
generated, which is why no returned slot can break a hard constraint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from assistant.scheduling._time import (
    DAY,
    Interval,
    ZoneTimeline,
    contains,
    day_date,
    intersect,
    merge,
    overlaps,
    subtract,
    timeline,
    to_datetime,
    to_seconds,
    wall_seconds,
    weekday,
)
from assistant.scheduling.models import (
    CandidateSlot,
    DailyWindow,
    LocalSlot,
    Participant,
    SchedulingRequest,
    ShowAs,
    TimeRule,
)

# A tradeoff as data: (kind, participant index or -1, rule index or -1); text is rendered only
# for the slots that are returned.
Code = tuple[str, int, int]


@dataclass(slots=True)
class Person:
    """One participant's constraints as merged UTC interval lists over the search window."""

    participant: Participant
    tl: ZoneTimeline
    hours: list[Interval] | None
    hard_rules: list[TimeRule]
    forbidden: list[Interval]
    busy: list[Interval]
    blocked: list[Interval]
    free: list[Interval]
    soft: list[tuple[TimeRule, list[Interval]]]
    lunch: DailyWindow | None
    lunch_ivs: list[Interval]

    @property
    def who(self) -> str:
        """Label and zone, e.g. "Ann (Asia/Singapore)"."""
        return f"{self.participant.label} ({self.participant.timezone})"


@dataclass(slots=True)
class Problem:
    """A request normalized for the solver."""

    request: SchedulingRequest
    ref: ZoneTimeline
    lo: int
    hi: int
    duration: int
    step: int
    people: list[Person]
    time_of_day: list[Interval]
    hard_rules: list[TimeRule]
    global_forbidden: list[Interval]
    global_soft: list[tuple[TimeRule, list[Interval]]]
    base: list[Interval]
    region: list[Interval]
    prefer: int | None

    @property
    def required(self) -> list[Person]:
        """Required participants, in stable order."""
        return [p for p in self.people if p.participant.required]

    @property
    def has_soft(self) -> bool:
        """Whether anything but the start time can separate two feasible slots."""
        return bool(
            self.prefer is not None
            or self.global_soft
            or any(p.soft or p.lunch_ivs or not p.participant.required for p in self.people)
        )


def _daily(tl: ZoneTimeline, lo: int, hi: int, windows: Sequence[DailyWindow]) -> list[Interval]:
    out: list[Interval] = []
    for day in tl.days(lo, hi):
        wd = weekday(day)
        for window in windows:
            if wd not in window.days:
                continue
            start = day * DAY + wall_seconds(window.start)
            end = day * DAY + wall_seconds(window.end)
            if end <= start:
                end += DAY
            out.extend(tl.wall_to_utc(start, end))
    return intersect(merge(out), [(lo, hi)])


def _rule(tl: ZoneTimeline, lo: int, hi: int, rule: TimeRule) -> list[Interval]:
    """Instants a rule excludes: whole days, or the part of the day before/after a time."""
    out: list[Interval] = []
    every_day = not rule.weekdays and not rule.dates
    for day in tl.days(lo, hi):
        if not (every_day or weekday(day) in rule.weekdays or day_date(day) in rule.dates):
            continue
        midnight = day * DAY
        if rule.not_before is None and rule.not_after is None:
            out.extend(tl.wall_to_utc(midnight, midnight + DAY))
            continue
        if rule.not_before is not None:
            out.extend(tl.wall_to_utc(midnight, midnight + wall_seconds(rule.not_before)))
        if rule.not_after is not None:
            out.extend(tl.wall_to_utc(midnight + wall_seconds(rule.not_after), midnight + DAY))
    return intersect(merge(out), [(lo, hi)])


def _rule_key(rule: TimeRule) -> tuple[object, ...]:
    # Full content, so that equal-looking rules still sort the same whatever the input order.
    return (
        rule.describe(),
        rule.hard,
        rule.weekdays,
        rule.dates,
        str(rule.not_before),
        str(rule.not_after),
    )


def _person(request: SchedulingRequest, part: Participant, lo: int, hi: int) -> Person:
    tl = timeline(part.timezone, lo, hi)
    window = [(lo, hi)]
    hours = None if part.working_hours is None else _daily(tl, lo, hi, part.working_hours)
    rules = sorted(part.rules, key=_rule_key)
    hard_rules = [r for r in rules if r.hard]
    forbidden = merge(iv for r in hard_rules for iv in _rule(tl, lo, hi, r))
    blocking = {ShowAs.BUSY, ShowAs.OOF}
    if request.tentative_is_busy:
        blocking.add(ShowAs.TENTATIVE)
    busy = merge(
        (to_seconds(b.start), to_seconds(b.end, up=True))
        for b in part.busy
        if b.show_as in blocking
    )
    # A slot [s, e) clashes with busy [b0, b1) when s - before < b1 and e + after > b0, i.e.
    # when it meets [b0 - after, b1 + before).
    before, after = request.buffer_before * 60, request.buffer_after * 60
    blocked = merge((b0 - after, b1 + before) for b0, b1 in busy)
    free = subtract(subtract(hours if hours is not None else window, forbidden), blocked)
    soft = [(r, _rule(tl, lo, hi, r)) for r in rules if not r.hard]
    lunch = part.lunch
    if lunch is None and request.preferences.keep_lunch_free:
        lunch = request.preferences.default_lunch
    lunch_ivs = (
        _daily(tl, lo, hi, [lunch])
        if lunch is not None and request.preferences.keep_lunch_free
        else []
    )
    return Person(
        part, tl, hours, hard_rules, forbidden, busy, blocked, free, soft, lunch, lunch_ivs
    )


def build(request: SchedulingRequest) -> Problem:
    """Normalize a request: every constraint becomes a merged list of UTC intervals."""
    lo, hi = to_seconds(request.window_start, up=True), to_seconds(request.window_end)
    ref = timeline(request.reference_timezone, lo, hi)
    # Sorting makes everything downstream independent of the caller's order.
    parts = sorted(request.participants, key=lambda p: (p.address.casefold(), p.address))
    people = [_person(request, p, lo, hi) for p in parts]
    if request.earliest is None and request.latest is None:
        time_of_day = [(lo, hi)]
    else:
        start = wall_seconds(request.earliest) if request.earliest is not None else 0
        end = wall_seconds(request.latest) if request.latest is not None else DAY
        time_of_day = intersect(
            merge(
                iv
                for day in ref.days(lo, hi)
                for iv in ref.wall_to_utc(day * DAY + start, day * DAY + end)
            ),
            [(lo, hi)],
        )
    rules = sorted(request.rules, key=_rule_key)
    hard_rules = [r for r in rules if r.hard]
    global_forbidden = merge(iv for r in hard_rules for iv in _rule(ref, lo, hi, r))
    global_soft = [(r, _rule(ref, lo, hi, r)) for r in rules if not r.hard]
    base = subtract(time_of_day, global_forbidden)
    region = base
    for person in people:
        if person.participant.required:
            region = intersect(region, person.free)
    prefer = request.preferences.prefer_time
    return Problem(
        request=request,
        ref=ref,
        lo=lo,
        hi=hi,
        duration=int(request.duration.total_seconds()),
        step=request.granularity * 60,
        people=people,
        time_of_day=time_of_day,
        hard_rules=hard_rules,
        global_forbidden=global_forbidden,
        global_soft=global_soft,
        base=base,
        region=region,
        prefer=wall_seconds(prefer) if prefer is not None else None,
    )


def starts(problem: Problem, region: Sequence[Interval]) -> Iterator[int]:
    """Aligned starts s (in order) with [s, s + duration) inside the region."""
    ref, dur, step = problem.ref, problem.duration, problem.step
    for a, b in region:
        last = b - dur
        if last < a:
            continue
        for seg_start, seg_end, offset in ref.segments:
            first = max(a, seg_start)
            stop = min(last, seg_end - 1)
            if first > stop:
                continue
            # Align the local wall time, so a start grid survives a DST shift (even 30 min).
            s = first + (-(first + offset)) % step
            while s <= stop:
                yield s
                s += step


def _codes(problem: Problem, s: int, e: int) -> list[Code]:
    codes: list[Code] = []
    for ri, (_, ivs) in enumerate(problem.global_soft):
        if overlaps(ivs, s, e):
            codes.append(("rule", -1, ri))
    for pi, person in enumerate(problem.people):
        if not person.participant.required and not contains(person.free, s, e):
            codes.append(("absent", pi, -1))
            continue
        for ri, (_, ivs) in enumerate(person.soft):
            if overlaps(ivs, s, e):
                codes.append(("rule", pi, ri))
        if person.lunch_ivs and overlaps(person.lunch_ivs, s, e):
            codes.append(("lunch", pi, -1))
    return codes


def _distance(problem: Problem, s: int) -> int:
    if problem.prefer is None:
        return 0
    gap = abs(problem.ref.local(s) % DAY - problem.prefer)
    return min(gap, DAY - gap)


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen start with what it costs."""

    start: int
    codes: tuple[Code, ...]
    distance: int


def rank(problem: Problem, limit: int) -> list[Pick]:
    """The best ``limit`` slots: fewest tradeoffs, then nearest the preferred time, then
    earliest; optionally pairwise non-overlapping."""
    dur = problem.duration
    spread = problem.request.non_overlapping
    picks: list[Pick] = []
    if not problem.has_soft:
        # Every feasible slot ties on cost, so start order is rank order: stop early.
        for s in starts(problem, problem.region):
            if spread and picks and s < picks[-1].start + dur:
                continue
            picks.append(Pick(s, (), 0))
            if len(picks) >= limit:
                break
        return picks
    scored = []
    for s in starts(problem, problem.region):
        codes = _codes(problem, s, s + dur)
        scored.append((len(codes), _distance(problem, s), s, codes))
    scored.sort(key=lambda item: (item[0], item[1], item[2]))
    for _, distance, s, codes in scored:
        if spread and any(abs(s - p.start) < dur for p in picks):
            continue
        picks.append(Pick(s, tuple(codes), distance))
        if len(picks) >= limit:
            break
    return picks


def _hhmm(moment_local_seconds: int) -> str:
    sec = moment_local_seconds % DAY
    return f"{sec // 3600:02d}:{sec % 3600 // 60:02d}"


def _local_span(tl: ZoneTimeline, s: int, e: int) -> str:
    ls, le = tl.local(s), tl.local(e)
    start = f"{day_date(ls // DAY):%a %Y-%m-%d} {_hhmm(ls)}"
    end = _hhmm(le) if ls // DAY == le // DAY else f"{day_date(le // DAY):%a} {_hhmm(le)}"
    return f"{start}-{end} {tl.key}"


def _buffers(problem: Problem) -> str:
    before, after = problem.request.buffer_before, problem.request.buffer_after
    if not (before or after):
        return ""
    return f", keeping {before} min before and {after} min after clear"


def satisfied(problem: Problem, s: int, e: int) -> list[str]:
    """One sentence per hard constraint the slot meets."""
    req = problem.request
    ref = problem.ref
    out = [
        f"inside the search window {to_datetime(problem.lo):%Y-%m-%d %H:%M}"
        f" to {to_datetime(problem.hi):%Y-%m-%d %H:%M} UTC"
    ]
    if req.earliest is not None or req.latest is not None:
        low = req.earliest.strftime("%H:%M") if req.earliest else "00:00"
        high = req.latest.strftime("%H:%M") if req.latest else "24:00"
        out.append(f"between {low} and {high} {ref.key} ({_local_span(ref, s, e)})")
    out.extend(f"respects the rule: {r.describe()} ({ref.key})" for r in problem.hard_rules)
    for person in problem.required:
        label = person.participant.label
        if person.hours is not None:
            out.append(f"inside {label}'s working hours ({_local_span(person.tl, s, e)})")
        out.append(f"{label} has no conflicting event{_buffers(problem)}")
        out.extend(
            f"respects {label}'s rule: {r.describe()} ({person.tl.key})" for r in person.hard_rules
        )
    out.append(f"starts on the {req.granularity}-minute grid of {ref.key}")
    return out


def _absence(problem: Problem, person: Person, s: int, e: int) -> str:
    if person.hours is not None and not contains(person.hours, s, e):
        why = "outside their working hours"
    elif overlaps(person.forbidden, s, e):
        why = "excluded by their own rules"
    else:
        why = (
            "busy"
            if not problem.request.buffer_before and not problem.request.buffer_after
            else "busy (buffers included)"
        )
    return f"optional participant {person.participant.label} cannot attend: {why}"


def tradeoff_text(problem: Problem, code: Code, s: int, e: int) -> str:
    """Render one tradeoff code."""
    kind, pi, ri = code
    if kind == "rule" and pi < 0:
        return f"breaks the preference: {problem.global_soft[ri][0].describe()} ({problem.ref.key})"
    person = problem.people[pi]
    label, key = person.participant.label, person.tl.key
    if kind == "rule":
        return f"breaks {label}'s preference: {person.soft[ri][0].describe()} ({key})"
    if kind == "lunch" and person.lunch is not None:
        window = person.lunch
        return f"overlaps {label}'s lunch {window.start:%H:%M}-{window.end:%H:%M} ({key})"
    return _absence(problem, person, s, e)


def render(problem: Problem, pick: Pick) -> CandidateSlot:
    """The public view of a chosen slot."""
    s, e = pick.start, pick.start + problem.duration
    if not contains(problem.region, s, e):  # cheap guard: the solver must never get here
        raise RuntimeError("internal error: slot outside the feasible region")
    start, end = to_datetime(s), to_datetime(e)
    local = [
        LocalSlot(
            address=p.participant.address,
            name=p.participant.name,
            timezone=p.tl.key,
            start=start.astimezone(ZoneInfo(p.tl.key)),
            end=end.astimezone(ZoneInfo(p.tl.key)),
        )
        for p in problem.people
    ]
    tradeoffs = [tradeoff_text(problem, c, s, e) for c in pick.codes]
    optional = [
        p.participant.address
        for p in problem.people
        if not p.participant.required and contains(p.free, s, e)
    ]
    score = 100.0 - 10.0 * len(pick.codes) - pick.distance / 3600
    return CandidateSlot(
        start=start,
        end=end,
        local=local,
        satisfied=satisfied(problem, s, e),
        tradeoffs=tradeoffs,
        optional_attendees=optional,
        score=round(score, 2),
    )


def first_slot(request: SchedulingRequest) -> CandidateSlot | None:
    """The best slot of a request, or None."""
    problem = build(request)
    picks = rank(problem, 1)
    return render(problem, picks[0]) if picks else None
