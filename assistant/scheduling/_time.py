"""Interval algebra on integer UTC seconds, and wall-clock to UTC mapping per zone.

Intervals are half-open ``(start, end)`` pairs of POSIX seconds; lists of them are kept sorted,
disjoint and non-touching ("merged"), which makes containment a single bisect.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Interval = tuple[int, int]
DAY = 86_400
_EPOCH = date(1970, 1, 1)
# Samples closer than any two real transitions of one zone; a change between two samples is
# then located exactly by bisection.
_SAMPLE = 6 * 3600


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sort and coalesce overlapping or touching intervals; drop empty ones."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Intersection of two merged lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """``a`` minus ``b``, both merged."""
    out: list[Interval] = []
    j = 0
    for start, end in a:
        cur = start
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            if cur >= end:
                break
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def contains(intervals: Sequence[Interval], start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies inside one interval of a merged list."""
    i = bisect_right(intervals, (start, 2**62)) - 1
    return i >= 0 and intervals[i][0] <= start and end <= intervals[i][1]


def overlaps(intervals: Sequence[Interval], start: int, end: int) -> bool:
    """Whether ``[start, end)`` meets any interval of a merged list."""
    i = bisect_right(intervals, (end, -(2**62))) - 1
    return i >= 0 and intervals[i][1] > start


def longest(intervals: Sequence[Interval]) -> int:
    """Length of the longest interval, 0 for none."""
    return max((end - start for start, end in intervals), default=0)


def to_seconds(moment: datetime, *, up: bool = False) -> int:
    """POSIX seconds of an aware datetime, rounded down (or up)."""
    stamp = moment.timestamp()
    whole = int(stamp // 1)
    return whole + 1 if up and whole != stamp else whole


def to_datetime(seconds: int) -> datetime:
    """Aware UTC datetime of POSIX seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def wall_seconds(value: time) -> int:
    """Seconds since local midnight of a wall time."""
    return value.hour * 3600 + value.minute * 60 + value.second


def day_date(day: int) -> date:
    """Calendar date of a day number (days since 1970-01-01)."""
    return _EPOCH + timedelta(days=day)


def weekday(day: int) -> int:
    """Monday=0 weekday of a day number; 1970-01-01 was a Thursday."""
    return (day + 3) % 7


class ZoneTimeline:
    """The UTC offsets of one zone over a bounded range, as constant-offset segments.

    With them, "every instant whose local wall time lies in [a, b)" is exact arithmetic per
    segment: no assumption that a day has 24 hours, wall times skipped by a spring-forward
    gap simply have no instant, and wall times repeated at a fall-back occur twice.
    """

    __slots__ = ("_starts", "hi", "key", "lo", "segments")

    def __init__(self, key: str, lo: int, hi: int) -> None:
        self.key = key
        self.lo = lo
        self.hi = hi
        self.segments = _segments(key, lo, hi)
        self._starts = [seg[0] for seg in self.segments]

    def offset_at(self, instant: int) -> int:
        """UTC offset in seconds at an instant inside the range."""
        i = max(0, bisect_right(self._starts, instant) - 1)
        return self.segments[i][2]

    def local(self, instant: int) -> int:
        """Local wall time of an instant, as naive seconds since the epoch."""
        return instant + self.offset_at(instant)

    def wall_to_utc(self, wall_start: int, wall_end: int) -> list[Interval]:
        """All instants whose local wall time (naive seconds) lies in [wall_start, wall_end)."""
        out: list[Interval] = []
        for seg_start, seg_end, offset in self.segments:
            start = max(seg_start, wall_start - offset)
            end = min(seg_end, wall_end - offset)
            if start < end:
                if out and out[-1][1] == start:
                    out[-1] = (out[-1][0], end)
                else:
                    out.append((start, end))
        return out

    def days(self, lo: int, hi: int) -> range:
        """Local day numbers that can touch [lo, hi), with a day of margin each side."""
        return range(self.local(lo) // DAY - 1, self.local(max(lo, hi - 1)) // DAY + 2)


def _offset(zone: ZoneInfo, instant: int) -> int:
    delta = datetime.fromtimestamp(instant, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _segments(key: str, lo: int, hi: int) -> tuple[tuple[int, int, int], ...]:
    if key in ("UTC", "Etc/UTC"):
        return ((lo, hi, 0),)
    zone = ZoneInfo(key)
    segments: list[tuple[int, int, int]] = []
    seg_start, current = lo, _offset(zone, lo)
    probe = lo
    while probe < hi:
        nxt = min(probe + _SAMPLE, hi)
        after = _offset(zone, nxt)
        if after != current:
            # First instant carrying the new offset, to the second.
            left, right = probe, nxt
            while right - left > 1:
                mid = (left + right) // 2
                if _offset(zone, mid) == current:
                    left = mid
                else:
                    right = mid
            segments.append((seg_start, right, current))
            seg_start, current = right, after
        probe = nxt
    segments.append((seg_start, hi, current))
    return tuple(segments)


def timeline(key: str, lo: int, hi: int) -> ZoneTimeline:
    """A timeline covering [lo, hi) widened to whole days (for cache hits) plus margins."""
    return _timeline(key, (lo // DAY - 3) * DAY, (hi // DAY + 4) * DAY)


@lru_cache(maxsize=512)
def _timeline(key: str, lo: int, hi: int) -> ZoneTimeline:
    return ZoneTimeline(key, lo, hi)
