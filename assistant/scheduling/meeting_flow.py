"""From a triaged meeting request to proposals: slots, one event, one reply offering times.

Given a message whose triage says ``schedule`` (with the meeting constraints the model
extracted, or none), :func:`propose_meeting`:

1. resolves the participants: the sender plus the mentioned participants, keeping only
   addresses that are on the thread (sender, reply-to, to, cc) or that the executive's
   calendar knows. Addresses found only in the extracted constraints, which come from the
   untrusted body, are ignored and listed in ``ignored_participants``;
2. finds slots in the executive's calendar and the participants' (people no calendar of
   ours can see are assumed free during working hours, see :mod:`.service`);
3. proposes ONE ``calendar.event.create`` (the best slot, the resolved attendees, a title
   from the subject) and ONE ``email.draft.create`` reply offering the top three slots in
   the sender's zone and the executive's, under one correlation id and with autonomy
   ``suggest``, so both wait for a person; nothing is created or sent here.

Both proposals carry a dedupe key derived from the message id: running the flow again for
the same message returns the same actions, and the executor's idempotency key (derived
from the action id) is therefore stable per message too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.clock import utcnow
from assistant.core.errors import ValidationFailedError
from assistant.core.principal import Principal
from assistant.scheduling.models import CandidateSlot, LocalSlot
from assistant.scheduling.service import (
    DEFAULT_DAYS,
    InvalidScheduleRequestError,
    ParticipantSpec,
    ScheduleConstraints,
    ScheduleResult,
    find_meeting_slots,
)
from assistant.triage.models import Category, MeetingConstraints, TriageResult
from governance.actions import EmailDraftArgs, EventCreateArgs
from governance.models import Action
from governance.policy import Autonomy
from governance.service import ActionService, Proposal
from integrations.base import (
    Attendee,
    AttendeeType,
    CalendarConnector,
    DraftMode,
    EmailAddress,
    EmailMessage,
)

log = structlog.stdlib.get_logger(__name__)

DEFAULT_DURATION = 30
OFFERED_SLOTS = 3
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


class NotAMeetingRequestError(ValidationFailedError):
    """The message's triage does not make it a meeting request the assistant may answer."""


@dataclass
class MeetingPlan:
    """What the flow found and proposed for one message."""

    message_id: str
    correlation_id: str
    constraints: ScheduleConstraints
    result: ScheduleResult
    attendees: list[Attendee]
    ignored_participants: list[str] = field(default_factory=list)
    event_action: Action | None = None
    reply_action: Action | None = None

    @property
    def offered(self) -> list[CandidateSlot]:
        return self.result.slots[:OFFERED_SLOTS]


def meeting_title(subject: str, sender: EmailAddress | None) -> str:
    """The subject without reply/forward prefixes; "Meeting with <sender>" when empty."""
    title = _PREFIX.sub("", subject or "").strip()
    if title:
        return title[:500]
    who = (sender.name or sender.address) if sender else "the sender"
    return f"Meeting with {who}"


def correlation_for(tenant_id: str, message_id: str) -> str:
    """One stable id for everything proposed about one message."""
    digest = hashlib.sha256(f"{tenant_id}\x00{message_id}".encode()).hexdigest()
    return f"meeting-{digest[:24]}"


def _localize(value: datetime | None, zone: str | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone or "UTC"))


def _valid_zone(name: str | None) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


async def _trusted_addresses(message: EmailMessage, calendar: CalendarConnector) -> set[str]:
    trusted = {a.address.lower() for a in message.participants}
    try:
        trusted |= {c.owner.lower() for c in await calendar.list_calendars()}
    except Exception as exc:  # contacts only widen the set; the thread still counts
        log.warning("meeting.contacts_unavailable", error=type(exc).__name__)
    return trusted


def _constraints(
    meeting: MeetingConstraints | None, sender: str, others: list[str], now: datetime
) -> ScheduleConstraints:
    zone = _valid_zone(meeting.timezone if meeting else None)
    start = _localize(meeting.window_start if meeting else None, zone)
    end = _localize(meeting.window_end if meeting else None, zone)
    if start is not None and start < now:
        start = now  # the past is not on offer
    if start is None and end is not None and end <= now:
        start = end  # a window wholly in the past: let the service say so
    return ScheduleConstraints(
        participants=[ParticipantSpec(address=a) for a in [sender, *others]],
        duration_minutes=(
            meeting.duration_minutes if meeting and meeting.duration_minutes else DEFAULT_DURATION
        ),
        window_start=start,
        window_end=end,
        days=DEFAULT_DAYS,
        timezone=zone,
        max_results=OFFERED_SLOTS,
        on_unknown="assume_free",
    )


def _local(slot: CandidateSlot, address: str) -> LocalSlot | None:
    return next((x for x in slot.local if x.address == address), None)


def _when(item: LocalSlot) -> str:
    return (
        f"{item.start.strftime('%a %d %b, %H:%M')}-{item.end.strftime('%H:%M')} ({item.timezone})"
    )


def reply_body(
    plan_slots: list[CandidateSlot],
    *,
    sender: EmailAddress,
    organizer: str,
    organizer_name: str | None,
    duration: int,
) -> str:
    """The reply offering times, each in the sender's zone and the executive's."""
    lines = [
        f"Hi {(sender.name or '').split(' ')[0] or 'there'},",
        "",
        f"Thanks for your message. These times would work for {duration} minutes:",
        "",
    ]
    for index, slot in enumerate(plan_slots, 1):
        theirs, ours = _local(slot, sender.address), _local(slot, organizer)
        parts = [_when(x) for x in (theirs, ours) if x is not None]
        if theirs is not None and ours is not None and theirs.timezone == ours.timezone:
            parts = parts[:1]
        lines.append(f"  {index}. " + " / ".join(parts))
    # Matches the proposed event, which holds the first slot.
    lines += [
        "",
        "I will send an invitation for the first one unless another suits you better.",
        "",
        "Best regards,",
    ]
    if organizer_name:
        lines.append(organizer_name)
    return "\n".join(lines)


async def propose_meeting(
    session: AsyncSession,
    actions: ActionService,
    principal: Principal,
    *,
    message: EmailMessage,
    triage: TriageResult,
    calendar: CalendarConnector,
    on_behalf_of: str | None = None,
    now: datetime | None = None,
) -> MeetingPlan:
    """Find slots for a triaged meeting request and propose the event and the reply.

    Flushes, never commits. With no slot, proposes nothing: ``result.blocking`` and
    ``result.relaxations`` say why, for a person to decide.
    """
    if triage.category is not Category.SCHEDULE:
        raise NotAMeetingRequestError(
            "the message is not triaged as a meeting request", category=triage.category
        )
    if triage.flags.phishing or triage.flags.prompt_injection:
        raise NotAMeetingRequestError("the message is flagged as suspicious")
    if message.sender is None:
        raise NotAMeetingRequestError("the message has no sender to answer")
    now = now or utcnow()
    organizer = calendar.owner.lower()
    sender = message.sender.address.lower()
    trusted = await _trusted_addresses(message, calendar)
    mentioned = [a.strip().lower() for a in (triage.meeting.participants if triage.meeting else [])]
    others: list[str] = []
    ignored: list[str] = []
    for address in mentioned:
        if address in {sender, organizer} or address in others:
            continue
        (others if address in trusted else ignored).append(address)
    if ignored:
        log.warning("meeting.participants_ignored", message_id=message.id, count=len(ignored))
    names = {a.address.lower(): a.name for a in message.participants if a.name}
    correlation = correlation_for(principal.tenant_id, message.id)
    attendees = [
        Attendee(address=a, name=names.get(a), type=AttendeeType.REQUIRED)
        for a in [sender, *others]
    ]
    try:
        constraints = _constraints(triage.meeting, sender, others, now)
        result = await find_meeting_slots(calendar, constraints, now=now, names=names)
    except InvalidScheduleRequestError as exc:
        constraints = _constraints(None, sender, others, now)
        result = ScheduleResult(
            organizer=organizer,
            reference_timezone="UTC",
            window_start=now,
            window_end=now,
            feasible=False,
            slots=[],
            blocking=[exc.detail],
        )
    plan = MeetingPlan(
        message_id=message.id,
        correlation_id=correlation,
        constraints=constraints,
        result=result,
        attendees=attendees,
        ignored_participants=ignored,
    )
    if not result.feasible:
        log.info("meeting.no_slot", message_id=message.id, blocking=len(result.blocking))
        return plan

    best = result.slots[0]
    organizer_zone = result.participant_timezones.get(organizer, result.reference_timezone)
    title = meeting_title(message.subject, message.sender)
    event = EventCreateArgs(
        subject=title,
        start=best.start,
        end=best.end,
        timezone=organizer_zone,
        attendees=attendees,
        body=f"Requested by {message.sender.formatted()} by email ({message.subject!r}).",
    )
    plan.event_action = await actions.propose(
        session,
        principal,
        Proposal(
            kind="calendar.event.create",
            arguments=event.model_dump(mode="json"),
            on_behalf_of=on_behalf_of,
            correlation_id=correlation,
            # At most suggest: an admin's shadow (or a lower stored level) still applies.
            autonomy=Autonomy.SUGGEST,
            autonomy_at_most=True,
            dedupe_key=f"{correlation}:event",
        ),
    )
    reply = EmailDraftArgs(
        mode=DraftMode.REPLY,
        reply_to_id=message.id,
        body_text=reply_body(
            plan.offered,
            sender=message.sender,
            organizer=organizer,
            organizer_name=names.get(organizer),
            duration=constraints.duration_minutes,
        ),
    )
    plan.reply_action = await actions.propose(
        session,
        principal,
        Proposal(
            kind="email.draft.create",
            arguments=reply.model_dump(mode="json", exclude_none=True),
            on_behalf_of=on_behalf_of,
            correlation_id=correlation,
            autonomy=Autonomy.SUGGEST,
            autonomy_at_most=True,
            dedupe_key=f"{correlation}:reply",
        ),
    )
    log.info(
        "meeting.proposed",
        message_id=message.id,
        correlation_id=correlation,
        event_action=plan.event_action.id,
        event_state=plan.event_action.state,
        reply_action=plan.reply_action.id,
        reply_state=plan.reply_action.state,
    )
    return plan
