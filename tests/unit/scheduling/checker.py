"""An independent brute-force checker of the engine's hard constraints and soft costs.

It shares nothing with the engine but the request models: every minute of a slot is converted
to each zone's wall clock with zoneinfo and tested directly against the request, so a bug in
the engine's interval arithmetic or DST handling cannot hide in both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from assistant.scheduling import DailyWindow, Participant, SchedulingRequest, ShowAs, TimeRule

MINUTE = timedelta(minutes=1)


def wall(moment: datetime, zone: str | ZoneInfo) -> datetime:
    """Local wall time of an instant (aware; only its date and time fields are used)."""
    return moment.astimezone(zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone))


def in_windows(windows: list[DailyWindow], local: datetime) -> bool:
    """Whether a local wall time lies in one of the daily windows (end <= start wraps)."""
    t, wd = local.time(), local.weekday()
    for w in windows:
        if w.start < w.end:
            if wd in w.days and w.start <= t < w.end:
                return True
        else:
            if wd in w.days and t >= w.start:
                return True
            if (wd - 1) % 7 in w.days and t < w.end:
                return True
    return False


def rule_excludes(rule: TimeRule, local: datetime) -> bool:
    """Whether a rule excludes this local wall time."""
    every = not rule.weekdays and not rule.dates
    if not (every or local.weekday() in rule.weekdays or local.date() in rule.dates):
        return False
    if rule.not_before is None and rule.not_after is None:
        return True
    t = local.time()
    if rule.not_before is not None and t < rule.not_before:
        return True
    return rule.not_after is not None and t >= rule.not_after


def _blocks(request: SchedulingRequest, show_as: ShowAs) -> bool:
    if show_as is ShowAs.FREE:
        return False
    return show_as is not ShowAs.TENTATIVE or request.tentative_is_busy


class Checker:
    """Per-minute verdicts over a request's window, precomputed once (prefix sums make each
    slot check O(1) plus its busy entries)."""

    def __init__(self, request: SchedulingRequest) -> None:
        self.request = request
        self.start = request.window_start.astimezone(UTC)
        self.end = request.window_end.astimezone(UTC)
        self.minutes = int((self.end - self.start) / MINUTE)
        self.ref = request.reference_timezone
        self.people = sorted(request.participants, key=lambda p: p.address.casefold())
        # Each minute's wall time in each zone, converted once with zoneinfo.
        zones = {self.ref} | {p.timezone for p in self.people}
        self.local = {}
        for zone in zones:
            info = ZoneInfo(zone)
            self.local[zone] = [wall(self.start + i * MINUTE, info) for i in range(self.minutes)]
        self.global_ok = self._prefix(self.ref, self._global_ok)
        self.person_ok = {
            p.address: self._prefix(p.timezone, lambda local, p=p: self._person_ok(p, local))
            for p in self.people
        }
        self.soft_global = [
            self._prefix(self.ref, lambda local, r=r: not rule_excludes(r, local))
            for r in request.rules
            if not r.hard
        ]
        self.soft_person = {
            p.address: [
                self._prefix(p.timezone, lambda local, r=r: not rule_excludes(r, local))
                for r in p.rules
                if not r.hard
            ]
            for p in self.people
        }

    def _prefix(self, zone: str, ok: Callable[[datetime], bool]) -> list[int]:
        """Prefix sums of minutes where ``ok`` fails on the zone's wall time."""
        sums = [0]
        for local in self.local[zone]:
            sums.append(sums[-1] + (0 if ok(local) else 1))
        return sums

    def _global_ok(self, local: datetime) -> bool:
        req = self.request
        if req.earliest is not None and local.time() < req.earliest:
            return False
        if req.latest is not None and local.time() >= req.latest:
            return False
        return not any(rule_excludes(r, local) for r in req.rules if r.hard)

    def _person_ok(self, person: Participant, local: datetime) -> bool:
        if person.working_hours is not None and not in_windows(person.working_hours, local):
            return False
        return not any(rule_excludes(r, local) for r in person.rules if r.hard)

    def _clear(self, sums: list[int], start: datetime) -> bool:
        i = int((start - self.start) / MINUTE)
        j = i + int(self.request.duration / MINUTE)
        return sums[j] - sums[i] == 0

    def aligned(self, start: datetime) -> bool:
        """Whether a start is on the granularity grid of the reference zone's wall clock."""
        i = int((start - self.start) / MINUTE)
        local = self.local[self.ref][i] if 0 <= i < self.minutes else wall(start, self.ref)
        minute_of_day = local.hour * 60 + local.minute
        return local.second == 0 and minute_of_day % self.request.granularity == 0

    def attends(self, person: Participant, start: datetime) -> bool:
        """Working hours, own hard rules and busy time (with buffers) all allow the slot."""
        req = self.request
        end = start + req.duration
        if not self._clear(self.person_ok[person.address], start):
            return False
        before, after = timedelta(minutes=req.buffer_before), timedelta(minutes=req.buffer_after)
        return not any(
            _blocks(req, b.show_as) and start - before < b.end and end + after > b.start
            for b in person.busy
        )

    def feasible(self, start: datetime) -> bool:
        """Every hard constraint holds for the slot starting here."""
        req = self.request
        start = start.astimezone(UTC)
        if start < self.start or start + req.duration > self.end:
            return False
        if (start - self.start) % MINUTE or not self.aligned(start):
            return False
        if not self._clear(self.global_ok, start):
            return False
        return all(self.attends(p, start) for p in self.people if p.required)

    def all_feasible(self) -> list[datetime]:
        """Every feasible aligned start, in time order."""
        out = []
        span = int(self.request.duration / MINUTE)
        for i in range(self.minutes - span + 1):
            start = self.start + i * MINUTE
            if self.feasible(start):
                out.append(start)
        return out

    def cost(self, start: datetime) -> int:
        """Number of tradeoffs: soft rules broken, optional participants missing."""
        start = start.astimezone(UTC)
        n = sum(not self._clear(sums, start) for sums in self.soft_global)
        for person in self.people:
            if not person.required and not self.attends(person, start):
                n += 1
                continue
            n += sum(not self._clear(sums, start) for sums in self.soft_person[person.address])
        return n


def at(text: str, zone: str = "UTC") -> datetime:
    """Aware datetime from "YYYY-MM-DD HH:MM" in a zone (fold 0)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def hm(text: str) -> time:
    """A wall time from "HH:MM"."""
    return time.fromisoformat(text)
