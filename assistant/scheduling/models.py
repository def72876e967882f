"""Input and output models of the meeting-scheduling engine.

All wall-clock times (working hours, lunch, rules, earliest/latest) are local to a named IANA
zone; all instants are timezone-aware datetimes. Durations given as numbers are minutes.
"""

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WORKDAYS: tuple[int, ...] = (0, 1, 2, 3, 4)
MAX_WINDOW = timedelta(days=366)


def _check_zone(key: str) -> str:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {key!r}") from exc
    return key


def _check_naive(value: time) -> time:
    # A wall time only means something together with the zone it is read in.
    if value.tzinfo is not None:
        raise ValueError("wall-clock times must not carry a time zone")
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
WallTime = Annotated[time, AfterValidator(_check_naive)]
Weekday = Annotated[int, Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")]


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


class _Frozen(BaseModel):
    # Built with the first scheduling request (or route that uses one), not at start-up.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class ShowAs(StrEnum):
    """How a calendar entry blocks time (Outlook's free/busy status)."""

    BUSY = "busy"
    TENTATIVE = "tentative"
    OOF = "oof"
    FREE = "free"


class DailyWindow(_Frozen):
    """A local wall-clock window on some weekdays; an end at or before the start wraps past
    midnight (so 00:00-00:00 is the whole day)."""

    days: tuple[Weekday, ...] = WORKDAYS
    start: WallTime
    end: WallTime

    def describe(self) -> str:
        """E.g. "Mon-Fri 09:00-17:00"."""
        return f"{_days_text(self.days, ())} {_hhmm(self.start)}-{_hhmm(self.end)}"


class BusyInterval(_Frozen):
    """One calendar entry of a participant."""

    start: AwareDatetime
    end: AwareDatetime
    show_as: ShowAs = ShowAs.BUSY

    @model_validator(mode="after")
    def _ordered(self) -> "BusyInterval":
        if self.end <= self.start:
            raise ValueError("busy interval must end after it starts")
        return self


class TimeRule(_Frozen):
    """No meetings on some local days, or only before/after a local time on them.

    The rule applies on the listed weekdays and dates (every day when both are empty). With
    neither ``not_before`` nor ``not_after`` it excludes the whole day; ``not_before`` means
    the meeting starts at or after that time, ``not_after`` that it ends by then. A hard rule
    is a constraint, a soft one a preference that shows up as a tradeoff.
    """

    weekdays: tuple[Weekday, ...] = ()
    dates: tuple[date, ...] = ()
    not_before: WallTime | None = None
    not_after: WallTime | None = None
    hard: bool = False
    label: str | None = None

    @model_validator(mode="after")
    def _sensible(self) -> "TimeRule":
        if self.not_before is None and self.not_after is None and not (self.weekdays or self.dates):
            raise ValueError("a rule without days or times would exclude every meeting")
        if (
            self.not_before is not None
            and self.not_after is not None
            and self.not_after <= self.not_before
        ):
            raise ValueError("not_after must be later than not_before")
        return self

    def describe(self) -> str:
        """Human-readable text, e.g. "no meetings before 10:00 on Monday"."""
        if self.label:
            return self.label
        days = _days_text(self.weekdays, self.dates)
        on = f" on {days}" if days else ""
        if self.not_before is not None and self.not_after is not None:
            return f"meetings only between {_hhmm(self.not_before)} and {_hhmm(self.not_after)}{on}"
        if self.not_before is not None:
            return f"no meetings before {_hhmm(self.not_before)}{on}"
        if self.not_after is not None:
            return f"no meetings after {_hhmm(self.not_after)}{on}"
        return f"no meetings on {days}"


def _days_text(weekdays: tuple[int, ...], dates: tuple[date, ...]) -> str:
    days = tuple(sorted(set(weekdays)))
    parts = [DAY_NAMES[d] for d in days]
    if days == WORKDAYS:
        parts = ["Mon-Fri"]
    elif len(days) == 7:
        parts = ["every day"]
    parts += [d.isoformat() for d in sorted(set(dates))]
    return ", ".join(parts)


class Participant(_Frozen):
    """Someone whose calendar the meeting must (required) or should (optional) fit.

    ``working_hours=None`` means no working-hours constraint; an empty list means never
    available. ``rules`` and ``lunch`` are read in the participant's own zone.
    """

    address: str = Field(min_length=1)
    name: str | None = None
    required: bool = True
    timezone: TimeZoneName
    working_hours: list[DailyWindow] | None = None
    busy: list[BusyInterval] = Field(default_factory=list)
    rules: list[TimeRule] = Field(default_factory=list)
    lunch: DailyWindow | None = None

    @property
    def label(self) -> str:
        """Name when known, else address."""
        return self.name or self.address


class Preferences(_Frozen):
    """Soft wishes that rank slots without excluding any."""

    keep_lunch_free: bool = False
    default_lunch: DailyWindow = DailyWindow(
        days=(0, 1, 2, 3, 4, 5, 6), start=time(12, 0), end=time(13, 0)
    )
    prefer_time: WallTime | None = Field(
        default=None,
        description="Rank starts closest to this time of day (reference zone) first; "
        "None ranks the earliest first.",
    )


class SchedulingRequest(_Frozen):
    """Everything the engine needs to propose meeting slots."""

    participants: list[Participant] = Field(min_length=1)
    duration: timedelta
    window_start: AwareDatetime
    window_end: AwareDatetime
    timezone: TimeZoneName | None = Field(
        default=None,
        description="Reference zone for earliest/latest, global rules and the start grid; "
        "defaults to the first participant's (the organizer's) zone.",
    )
    earliest: WallTime | None = None
    latest: WallTime | None = None
    granularity: int = Field(default=15, ge=1, le=1440, description="minutes")
    buffer_before: int = Field(default=0, ge=0, le=24 * 60, description="minutes")
    buffer_after: int = Field(default=0, ge=0, le=24 * 60, description="minutes")
    tentative_is_busy: bool = True
    rules: list[TimeRule] = Field(default_factory=list)
    preferences: Preferences = Preferences()
    max_results: int = Field(default=5, ge=1, le=100)
    non_overlapping: bool = Field(
        default=True, description="Proposed slots do not overlap one another."
    )

    @field_validator("duration", mode="before")
    @classmethod
    def _minutes(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(minutes=value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SchedulingRequest":
        if not timedelta(0) < self.duration <= timedelta(days=7):
            raise ValueError("duration must be positive and at most 7 days")
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.window_end - self.window_start > MAX_WINDOW:
            raise ValueError("the search window may span at most 366 days")
        if 1440 % self.granularity:
            raise ValueError("granularity must divide a day (e.g. 5, 10, 15, 30, 60)")
        if self.earliest is not None and self.latest is not None and self.latest <= self.earliest:
            raise ValueError("latest must be later than earliest")
        seen: set[str] = set()
        for person in self.participants:
            key = person.address.casefold()
            if key in seen:
                raise ValueError(f"participant {person.address!r} is listed twice")
            seen.add(key)
        return self

    @property
    def reference_timezone(self) -> str:
        """The zone earliest/latest, global rules and the start grid are read in."""
        return self.timezone or self.participants[0].timezone


class LocalSlot(_Frozen):
    """A slot as one participant sees it."""

    address: str
    name: str | None
    timezone: str
    start: datetime
    end: datetime


class CandidateSlot(_Frozen):
    """One proposed slot: UTC bounds, local renderings, why it is valid and what it costs."""

    start: datetime
    end: datetime
    local: list[LocalSlot]
    satisfied: list[str]
    tradeoffs: list[str]
    optional_attendees: list[str]
    score: float


class RelaxationKind(StrEnum):
    """The ways an infeasible request can be loosened."""

    EXTEND_WINDOW = "extend_window"
    DROP_BUFFERS = "drop_buffers"
    MAKE_OPTIONAL = "make_optional"
    IGNORE_WORKING_HOURS = "ignore_working_hours"
    IGNORE_PARTICIPANT_RULES = "ignore_participant_rules"
    IGNORE_RULES = "ignore_rules"
    DROP_TIME_OF_DAY = "drop_time_of_day"
    TENTATIVE_AS_FREE = "tentative_as_free"
    FINER_GRANULARITY = "finer_granularity"


class Relaxation(_Frozen):
    """What loosening one constraint would give: the first slot, or None if it does not help."""

    kind: RelaxationKind
    participant: str | None = None
    description: str
    first_slot: CandidateSlot | None


class SchedulingResult(_Frozen):
    """Ranked slots, or why there are none and what would help."""

    feasible: bool
    slots: list[CandidateSlot]
    blocking: list[str] = Field(default_factory=list)
    relaxations: list[Relaxation] = Field(default_factory=list)
    reference_timezone: str
