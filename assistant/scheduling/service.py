"""Find meeting slots from structured constraints, with calendars read through a connector.

The engine (:func:`assistant.scheduling.find_slots`) is pure; this module feeds it: it reads
free/busy and working hours of every participant through the tenant's
:class:`~integrations.base.CalendarConnector`, adds the calendar's owner (the executive) as
the organizer, and returns the ranked slots rendered in each participant's own zone.

Participants the connector cannot see (external people, typos) are handled by
``on_unknown``: ``"error"`` (the API's default) raises :class:`UnknownParticipantsError`
naming all of them; ``"assume_free"`` (the meeting-request flow, whose external senders no
calendar of ours can see) schedules them as free during assumed working hours
(:data:`ASSUMED_WORKING_HOURS` in the request's zone, else the organizer's) and says so in
``warnings``.
"""

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError
from assistant.scheduling.engine import find_slots
from assistant.scheduling.models import (
    BusyInterval,
    CandidateSlot,
    DailyWindow,
    Participant,
    Preferences,
    Relaxation,
    SchedulingRequest,
    ShowAs,
)
from integrations.base import CalendarConnector, FreeBusy
from integrations.base import ShowAs as ConnectorShowAs

log = structlog.stdlib.get_logger(__name__)

#: Working hours assumed for a participant whose calendar nobody can read.
ASSUMED_WORKING_HOURS = DailyWindow(days=(0, 1, 2, 3, 4), start=time(9, 0), end=time(17, 0))
#: Search window when the caller gives none: this many days from now.
DEFAULT_DAYS = 5

UnknownPolicy = Literal["error", "assume_free"]


class InvalidScheduleRequestError(AssistantError):
    """Well-formed constraints that make no sense (window order, unknown zone, ...)."""

    status_code = 400


class UnknownParticipantsError(AssistantError):
    """The calendar connector knows none of these participants."""

    status_code = 400

    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__(
            f"the calendar does not know {', '.join(addresses)}", unknown=list(addresses)
        )
        self.addresses = list(addresses)


class ParticipantSpec(BaseModel):
    """One participant by address."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    required: bool = True


class ScheduleConstraints(BaseModel):
    """Structured constraints of a meeting (the API body and the CLI's options)."""

    model_config = ConfigDict(extra="forbid")

    participants: list[ParticipantSpec] = Field(min_length=1, max_length=50)
    duration_minutes: int = Field(gt=0, le=7 * 24 * 60)
    window_start: AwareDatetime | None = Field(
        default=None, description="Default: now. Give both ends, or neither."
    )
    window_end: AwareDatetime | None = Field(
        default=None, description="Default: window_start + days."
    )
    days: int = Field(
        default=DEFAULT_DAYS,
        ge=1,
        le=366,
        description="Window length when window_end is not given.",
    )
    timezone: str | None = Field(
        default=None,
        description="IANA zone of earliest/latest and the start grid; default: the organizer's.",
    )
    earliest: time | None = Field(default=None, description="No start before (local).")
    latest: time | None = Field(default=None, description="No end after (local).")
    buffer_before: int = Field(default=0, ge=0, le=240, description="minutes")
    buffer_after: int = Field(default=0, ge=0, le=240, description="minutes")
    granularity: int = Field(default=15, ge=1, le=1440, description="minutes")
    max_results: int = Field(default=5, ge=1, le=50)
    keep_lunch_free: bool = False
    prefer_time: time | None = None
    tentative_is_busy: bool = True
    include_organizer: bool = Field(
        default=True, description="Fit the organizer's (the executive's) calendar too."
    )
    on_unknown: UnknownPolicy = "error"


class ScheduleResult(BaseModel):
    """Slots (each with every participant's local times), or why there are none."""

    organizer: str
    reference_timezone: str
    window_start: datetime
    window_end: datetime
    feasible: bool
    slots: list[CandidateSlot]
    blocking: list[str] = Field(default_factory=list)
    relaxations: list[Relaxation] = Field(default_factory=list)
    unknown_participants: list[str] = Field(default_factory=list)
    participant_timezones: dict[str, str] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


def _zone(name: str, what: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleRequestError(
            f"unknown IANA time zone {name!r} ({what})", field=what
        ) from None


def _window(c: ScheduleConstraints, now: datetime) -> tuple[datetime, datetime]:
    start = c.window_start or now
    end = c.window_end or start + timedelta(days=c.days)
    if end <= start:
        raise InvalidScheduleRequestError(
            "window_end must be after window_start", field="window_end"
        )
    return start, end


def _busy(fb: FreeBusy) -> list[BusyInterval]:
    mapping = {
        ConnectorShowAs.BUSY: ShowAs.BUSY,
        ConnectorShowAs.OOF: ShowAs.OOF,
        ConnectorShowAs.TENTATIVE: ShowAs.TENTATIVE,
    }
    # free and working-elsewhere time is available for meetings.
    return [
        BusyInterval(start=b.start, end=b.end, show_as=mapping[b.show_as])
        for b in fb.busy
        if b.show_as in mapping and b.end > b.start
    ]


def _participant(fb: FreeBusy, *, required: bool, name: str | None = None) -> Participant:
    hours = fb.working_hours
    if hours is None:
        return Participant(
            address=fb.person, name=name, required=required, timezone=fb.timezone, busy=_busy(fb)
        )
    window = DailyWindow(days=tuple(hours.days), start=hours.start, end=hours.end)
    return Participant(
        address=fb.person,
        name=name,
        required=required,
        timezone=hours.timezone,
        working_hours=[window],
        busy=_busy(fb),
    )


async def find_meeting_slots(
    calendar: CalendarConnector,
    constraints: ScheduleConstraints,
    *,
    now: datetime | None = None,
    names: dict[str, str] | None = None,
) -> ScheduleResult:
    """Read everyone's free/busy through ``calendar`` and rank slots that fit them all.

    The organizer is the calendar's owner. Raises :class:`InvalidScheduleRequestError` for
    nonsensical constraints and :class:`UnknownParticipantsError` (with ``on_unknown="error"``)
    when the calendar does not know some participants.
    """
    now = now or utcnow()
    start, end = _window(constraints, now)
    if constraints.timezone:
        _zone(constraints.timezone, "timezone")
    organizer = calendar.owner.lower()
    specs: dict[str, bool] = {}
    if constraints.include_organizer:
        specs[organizer] = True
    for spec in constraints.participants:
        address = spec.address.strip().lower()
        # Listed twice: required wins over optional.
        specs[address] = specs.get(address, False) or spec.required
    # Buffers reach outside the window; read a day either side so no entry is missed.
    pad = timedelta(days=1)
    free_busy = await calendar.get_free_busy(list(specs), start - pad, end + pad)
    by_person = {fb.person.lower(): fb for fb in free_busy}
    unknown = [a for a in specs if (fb := by_person.get(a)) is None or fb.error is not None]
    if unknown and constraints.on_unknown == "error":
        raise UnknownParticipantsError(unknown)
    organizer_fb = by_person.get(organizer)
    organizer_zone = (
        organizer_fb.working_hours.timezone
        if organizer_fb and organizer_fb.working_hours
        else organizer_fb.timezone
        if organizer_fb
        else "UTC"
    )
    assumed_zone = constraints.timezone or organizer_zone
    warnings: list[str] = []
    participants: list[Participant] = []
    names = names or {}
    for address, required in specs.items():
        fb = by_person.get(address)
        if fb is None or fb.error is not None:
            participants.append(
                Participant(
                    address=address,
                    name=names.get(address),
                    required=required,
                    timezone=assumed_zone,
                    working_hours=[ASSUMED_WORKING_HOURS],
                )
            )
            warnings.append(
                f"{address}: calendar not available; assumed free "
                f"{ASSUMED_WORKING_HOURS.describe()} {assumed_zone}"
            )
            continue
        participants.append(_participant(fb, required=required, name=names.get(address)))
    try:
        request = SchedulingRequest(
            participants=participants,
            duration=timedelta(minutes=constraints.duration_minutes),
            window_start=start,
            window_end=end,
            timezone=constraints.timezone,
            earliest=constraints.earliest,
            latest=constraints.latest,
            granularity=constraints.granularity,
            buffer_before=constraints.buffer_before,
            buffer_after=constraints.buffer_after,
            tentative_is_busy=constraints.tentative_is_busy,
            preferences=Preferences(
                keep_lunch_free=constraints.keep_lunch_free, prefer_time=constraints.prefer_time
            ),
            max_results=constraints.max_results,
        )
    except ValidationError as exc:
        problems = [str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors()]
        raise InvalidScheduleRequestError("; ".join(problems), problems=problems) from None
    result = find_slots(request)
    log.info(
        "scheduling.find",
        organizer=organizer,
        participants=len(participants),
        unknown=len(unknown),
        feasible=result.feasible,
        slots=len(result.slots),
    )
    return ScheduleResult(
        organizer=organizer,
        reference_timezone=result.reference_timezone,
        window_start=start,
        window_end=end,
        feasible=result.feasible,
        slots=result.slots,
        blocking=result.blocking,
        relaxations=result.relaxations,
        unknown_participants=unknown,
        participant_timezones={p.address: p.timezone for p in participants},
        warnings=warnings,
    )


def constraints_from(values: dict[str, Any]) -> ScheduleConstraints:
    """Validate plain values (CLI, tests) into constraints; a typed error when malformed."""
    try:
        return ScheduleConstraints.model_validate(values)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise InvalidScheduleRequestError("; ".join(problems), problems=problems) from None
