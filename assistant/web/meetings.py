"""The meetings room: incoming requests with the proposed slot and the constraints behind it;
choose it, adjust its duration, or pick another time the scheduler finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from sqlalchemy import select

from assistant.api.deps import SessionDep
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import NoConnectorForExecutiveError, ValidationFailedError
from assistant.governance_app import GovernanceDep
from assistant.scheduling.meeting_flow import correlation_for
from assistant.scheduling.service import ParticipantSpec, ScheduleConstraints, find_meeting_slots
from assistant.triage.models import TriageResult
from assistant.triage.store import TriageResultRow
from assistant.web.pages import PREFIX, PageDep, back
from assistant.web.review import STATE_WORDS, load_owned, zone_of
from governance.models import Action
from governance.state import ActionState as S
from integrations.base import Capability
from integrations.errors import UnknownConnectorError

router = APIRouter(prefix=PREFIX, include_in_schema=False)

EVENT_KIND = "calendar.event.create"
MAX_REQUESTS = 200
MAX_MINUTES = 8 * 60
_WHEN = TypeAdapter(AwareDatetime)


@dataclass
class MeetingRequest:
    result: TriageResult
    row: TriageResultRow
    event: Action | None = None
    reply: Action | None = None
    others: list[Action] = field(default_factory=list)

    @property
    def start(self) -> datetime | None:
        """The proposed start as an aware moment (stored in UTC): the page shows it in the
        event's zone and in hers, never as the UTC digits under a zone's name."""
        if self.event is None:
            return None
        return _WHEN.validate_python(self.event.arguments["start"])

    @property
    def minutes(self) -> int | None:
        if self.event is None:
            return None
        start = _WHEN.validate_python(self.event.arguments["start"])
        end = _WHEN.validate_python(self.event.arguments["end"])
        return int((end - start).total_seconds() // 60)


@router.get("/meetings", response_class=HTMLResponse)
async def meetings(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    executive = await page.require(Permission.CALENDAR_READ)
    tenant = page.person.tenant_id
    rows = list(
        (
            await session.execute(
                select(TriageResultRow)
                .where(
                    TriageResultRow.tenant_id == tenant,
                    TriageResultRow.mailbox.in_(sorted(executive.mailboxes)),
                    TriageResultRow.category == "schedule",
                )
                .order_by(TriageResultRow.message_date.desc())
                .limit(MAX_REQUESTS)
            )
        ).scalars()
    )
    by_correlation = {
        correlation_for(tenant, r.message_id): MeetingRequest(r.to_result(), r) for r in rows
    }
    actions = (
        await session.execute(
            select(Action)
            .where(
                Action.tenant_id == tenant,
                Action.on_behalf_of == executive.user_id,
                Action.correlation_id.in_(sorted(by_correlation)),
            )
            .order_by(Action.created_at)
        )
    ).scalars()
    for action in actions:
        request = by_correlation[action.correlation_id or ""]
        if action.kind == EVENT_KIND and request.event is None:
            request.event = action
        elif action.kind == "email.draft.create" and request.reply is None:
            request.reply = action
        else:
            request.others.append(action)
    return page.render(
        "meetings.html",
        requests=list(by_correlation.values()),
        states=STATE_WORDS,
        zone=await zone_of(session, governance, page, executive),
        done=done,
    )


async def _event(page: Any, session: Any, action_id: str) -> Action:
    executive = await page.require(Permission.REVIEW_DECIDE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    if action.kind != EVENT_KIND:
        raise ValidationFailedError("this action is not a meeting")
    return action


async def _approve_reply(page: Any, session: Any, governance: Any, event: Action) -> None:
    """The reply that offers the slot goes with it (when it still waits for review)."""
    reply = await session.scalar(
        select(Action).where(
            Action.tenant_id == event.tenant_id,
            Action.correlation_id == event.correlation_id,
            Action.kind == "email.draft.create",
            Action.state == S.PENDING_REVIEW.value,
        )
    )
    if reply is not None and reply.on_behalf_of == event.on_behalf_of:
        await governance.review.approve(
            session, page.acting(reply.on_behalf_of, Permission.REVIEW_DECIDE), reply.id
        )


@router.post("/meetings/{action_id}/choose")
async def choose(
    action_id: str, page: PageDep, session: SessionDep, governance: GovernanceDep
) -> RedirectResponse:
    event = await _event(page, session, action_id)
    await governance.review.approve(
        session, page.acting(event.on_behalf_of, Permission.REVIEW_DECIDE), event.id
    )
    await _approve_reply(page, session, governance, event)
    return back(page, f"{PREFIX}/meetings", done="chosen")


async def _reschedule(
    page: Any, session: Any, governance: Any, event: Action, start: datetime, end: datetime
) -> None:
    if end <= start or end - start > timedelta(minutes=MAX_MINUTES):
        raise ValidationFailedError(f"a meeting lasts between 1 and {MAX_MINUTES} minutes")
    arguments = {**event.arguments, "start": start.isoformat(), "end": end.isoformat()}
    await governance.review.edit(
        session,
        page.acting(event.on_behalf_of, Permission.REVIEW_DECIDE),
        event.id,
        arguments,
        "time changed",
    )


@router.post("/meetings/{action_id}/duration")
async def duration(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    minutes: Annotated[int, Form(ge=5, le=MAX_MINUTES)],
) -> RedirectResponse:
    """Keep the start, change the length, approve."""
    event = await _event(page, session, action_id)
    start = _WHEN.validate_python(event.arguments["start"])
    await _reschedule(page, session, governance, event, start, start + timedelta(minutes=minutes))
    return back(page, f"{PREFIX}/meetings", done="adjusted")


@router.get("/meetings/{action_id}/alternatives", response_class=HTMLResponse)
async def alternatives(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    minutes: Annotated[int | None, Query(ge=5, le=MAX_MINUTES)] = None,
    days: Annotated[int, Query(ge=1, le=30)] = 7,
) -> HTMLResponse:
    """Other times that fit everyone, found by the scheduler on the calendars."""
    event = await _event(page, session, action_id)
    executive = await page.require(Permission.CALENDAR_READ)
    attendees = [a["address"] for a in event.arguments.get("attendees", []) if a.get("address")]
    start = _WHEN.validate_python(event.arguments["start"])
    end = _WHEN.validate_python(event.arguments["end"])
    length = minutes or int((end - start).total_seconds() // 60)
    # Her own calendar, as POST /api/v1/schedule/find reads it: the tenant's first one may
    # be another executive's (her busy times would decide, and she would be the organizer).
    try:
        calendar = page.services.connectors.get(
            page.person.tenant_id, Capability.CALENDAR, executive=executive.user_id
        )
    except UnknownConnectorError as exc:
        raise NoConnectorForExecutiveError(
            "no calendar connector serves this executive", capability="calendar"
        ) from exc
    window_start = max(utcnow(), start - timedelta(days=1)).replace(microsecond=0)
    result = await find_meeting_slots(
        calendar,
        ScheduleConstraints(
            participants=[ParticipantSpec(address=a) for a in attendees]
            or [ParticipantSpec(address=calendar.owner)],
            duration_minutes=length,
            window_start=window_start,
            window_end=window_start + timedelta(days=days),
            max_results=8,
        ),
    )
    return page.render(
        "alternatives.html",
        event=event,
        result=result,
        minutes=length,
        zone=await zone_of(session, governance, page, executive),
    )


@router.post("/meetings/{action_id}/slot")
async def use_slot(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    start: Annotated[str, Form(max_length=64)],
    end: Annotated[str, Form(max_length=64)],
) -> RedirectResponse:
    event = await _event(page, session, action_id)
    try:
        begins, ends = _WHEN.validate_python(start), _WHEN.validate_python(end)
    except ValidationError:
        raise ValidationFailedError("start and end must be times with a zone") from None
    # The reply offering the old time stays in review: it needs her edit before it goes.
    await _reschedule(page, session, governance, event, begins, ends)
    return back(page, f"{PREFIX}/meetings", done="rescheduled")
