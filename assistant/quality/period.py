"""Report periods: ``30d``, ``12h`` or ``2w`` back from now, and their time buckets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from assistant.core.errors import ValidationFailedError

_PERIOD = re.compile(r"^\s*(\d{1,4})\s*([hdw])\s*$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
#: Average days in a month, for monthly run-rates.
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Period:
    """The half-open interval ``[start, end)`` a report measures."""

    start: datetime
    end: datetime
    label: str

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def buckets(self) -> list[tuple[datetime, datetime]]:
        """Consecutive slices for charts: days up to 31 days, weeks beyond."""
        step = timedelta(days=1) if self.days <= 31 else timedelta(weeks=1)
        if self.days < 2:
            step = timedelta(hours=1)
        slices: list[tuple[datetime, datetime]] = []
        cursor = self.start
        while cursor < self.end:
            slices.append((cursor, min(cursor + step, self.end)))
            cursor += step
        return slices


def parse_period(text: str, now: datetime) -> Period:
    """``"30d"`` -> the 30 days up to ``now``; hours (h), days (d) or weeks (w)."""
    match = _PERIOD.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValidationFailedError(
            f"period {text!r}: expected a number and a unit h, d or w, e.g. 30d"
        )
    span = _UNIT[match.group(2)] * int(match.group(1))
    if span > timedelta(days=3660):
        raise ValidationFailedError(f"period {text!r}: at most ten years")
    return Period(start=now - span, end=now, label=f"{match.group(1)}{match.group(2)}")
