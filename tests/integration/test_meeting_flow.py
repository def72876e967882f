"""The meeting-request flow on the sandbox: a triaged request (m14, Sophie, "Thursday 2-5pm
London time") becomes slots, one governed event and one governed reply, and nothing is
created or sent until a person approves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Role, system_principal
from assistant.core.settings import AutonomySettings
from assistant.scheduling.meeting_flow import (
    MeetingPlan,
    NotAMeetingRequestError,
    correlation_for,
    meeting_title,
    propose_meeting,
)
from assistant.triage.models import Category, MeetingConstraints, Provenance, TriageResult
from governance.models import Action
from governance.state import ActionState
from integrations.base import EmailAddress, EmailMessage
from integrations.sandbox.models import SandboxEvent, SandboxMessage
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    EXECUTIVE,
    TENANT,
    Clock,
    Harness,
    build_harness,
    person,
    seeded_db,
    seeded_template,
)

__all__ = ["seeded_db", "seeded_template"]  # fixtures

SOPHIE = "sophie.turner@northwind.example"
RAJ = "raj.patel@northwind.example"
LONDON = ZoneInfo("Europe/London")
THURSDAY_2PM = datetime(2026, 11, 26, 14, 0)
THURSDAY_5PM = datetime(2026, 11, 26, 17, 0)
S = ActionState


@pytest.fixture
def harness(seeded_db: async_sessionmaker[AsyncSession]) -> Harness:
    return build_harness(seeded_db, Clock(FIXED_NOW))


async def seeded(harness: Harness, key: str) -> EmailMessage:
    async with harness.sessions() as session:
        row = (
            await session.execute(select(SandboxMessage).where(SandboxMessage.seed_key == key))
        ).scalar_one()
    message: EmailMessage = await harness.resolver.email.get_message(row.id)
    return message


def triaged(
    message: EmailMessage, *, category: Category = Category.SCHEDULE, **meeting: Any
) -> TriageResult:
    """What the LLM stage would hand over for m14."""
    values: dict[str, Any] = {
        "participants": [SOPHIE],
        "duration_minutes": 30,
        "window_description": "Thursday 2-5pm London time",
        "window_start": THURSDAY_2PM,
        "window_end": THURSDAY_5PM,
        "timezone": "Europe/London",
    }
    values.update(meeting)
    return TriageResult(
        message_id=message.id,
        category=category,
        meeting=MeetingConstraints(**values),
        provenance=Provenance(stage="model", model="m", prompt_version="triage@1"),
        confidence=0.9,
    )


async def run_flow(harness: Harness, message: EmailMessage, triage: TriageResult) -> MeetingPlan:
    async with harness.sessions() as session, session.begin():
        return await propose_meeting(
            session,
            harness.actions,
            system_principal(TENANT, "pipeline"),
            message=message,
            triage=triage,
            calendar=harness.resolver.calendar,
            on_behalf_of=EXECUTIVE,
            now=FIXED_NOW,
        )


async def created_by_assistant(harness: Harness) -> tuple[list[SandboxEvent], list[SandboxMessage]]:
    async with harness.sessions() as session:
        events = list(
            (
                await session.execute(
                    select(SandboxEvent).where(SandboxEvent.uid.like("%@assistant"))
                )
            ).scalars()
        )
        drafts = list(
            (
                await session.execute(
                    select(SandboxMessage).where(
                        SandboxMessage.folder.in_(["drafts", "sent"]),
                        SandboxMessage.seed_key.is_(None),
                    )
                )
            ).scalars()
        )
    return events, drafts


async def test_m14_becomes_one_event_and_one_reply_waiting_for_review(harness: Harness) -> None:
    message = await seeded(harness, "m14")
    plan = await run_flow(harness, message, triaged(message))

    # The slots satisfy the constraints: 30 minutes, Thursday 14:00-17:00 London, clear of
    # everyone's calendar (Sophie's pricing committee 15:30-16:30 included).
    assert plan.result.feasible and plan.offered
    window = (THURSDAY_2PM.replace(tzinfo=LONDON), THURSDAY_5PM.replace(tzinfo=LONDON))
    free_busy = await harness.resolver.calendar.get_free_busy(
        [EXECUTIVE, SOPHIE], window[0] - timedelta(days=1), window[1] + timedelta(days=1)
    )
    for slot in plan.result.slots:
        assert slot.end - slot.start == timedelta(minutes=30)
        assert window[0] <= slot.start and slot.end <= window[1]
        for fb in free_busy:
            assert not any(b.start < slot.end and slot.start < b.end for b in fb.busy), fb.person
    best = plan.result.slots[0]
    assert best.start.astimezone(LONDON).strftime("%H:%M") == "16:30"  # as the seed promises

    # Two proposals, one correlation id, both waiting for a person.
    event, reply = plan.event_action, plan.reply_action
    assert event is not None and reply is not None
    assert (event.kind, reply.kind) == ("calendar.event.create", "email.draft.create")
    assert event.correlation_id == reply.correlation_id == correlation_for(TENANT, message.id)
    assert event.state == reply.state == S.PENDING_REVIEW
    assert event.on_behalf_of == reply.on_behalf_of == EXECUTIVE
    assert event.dedupe_key and message.id not in event.correlation_id  # derived, not raw

    args = event.arguments
    assert args["subject"] == "EMEA Q1 hiring plan — 30 min on Thursday?"
    assert datetime.fromisoformat(args["start"]) == best.start
    assert datetime.fromisoformat(args["end"]) == best.end
    assert args["timezone"] == "America/New_York"
    assert [(a["address"], a["type"]) for a in args["attendees"]] == [(SOPHIE, "required")]

    body = reply.arguments["body_text"]
    assert reply.arguments["mode"] == "reply"
    assert reply.arguments["reply_to_id"] == message.id
    assert [a["address"] for a in reply.arguments["to"]] == [SOPHIE]  # from the original
    assert body.startswith("Hi Sophie,")
    assert "Thu 26 Nov, 16:30-17:00 (Europe/London)" in body
    assert "Thu 26 Nov, 11:30-12:00 (America/New_York)" in body
    assert body.count("(Europe/London)") == len(plan.offered) <= 3

    # Nothing exists in the sandbox yet, and no worker may run it.
    assert await harness.executor.run_due() == 0
    assert await created_by_assistant(harness) == ([], [])

    # Running the flow again for the same message proposes nothing new.
    again = await run_flow(harness, message, triaged(message))
    assert again.event_action is not None and again.reply_action is not None
    assert (again.event_action.id, again.reply_action.id) == (event.id, reply.id)

    # Once the executive approves, the executor creates exactly what was proposed.
    executive = person(EXECUTIVE, Role.EXECUTIVE)
    async with harness.sessions() as session, session.begin():
        for action_id in (event.id, reply.id):
            await harness.review.approve(session, executive, action_id)
    assert await harness.executor.run_due() == 2
    events, drafts = await created_by_assistant(harness)
    assert len(events) == 1 and len(drafts) == 1
    assert events[0].owner == EXECUTIVE and SOPHIE in (events[0].attendees or [])
    assert drafts[0].folder == "drafts"  # a draft: still not sent
    async with harness.sessions() as session:
        states = {
            a.kind: a.state
            for a in (
                await session.execute(
                    select(Action).where(Action.correlation_id == event.correlation_id)
                )
            ).scalars()
        }
    assert states == {"calendar.event.create": S.SUCCEEDED, "email.draft.create": S.SUCCEEDED}


async def test_participants_only_from_the_thread_or_the_calendar(harness: Harness) -> None:
    message = await seeded(harness, "m14")
    triage = triaged(message, participants=[SOPHIE, RAJ, "attacker@evil.example", EXECUTIVE])
    plan = await run_flow(harness, message, triage)
    assert [a.address for a in plan.attendees] == [SOPHIE, RAJ]  # Raj: a calendar contact
    assert plan.ignored_participants == ["attacker@evil.example"]
    assert plan.event_action is not None
    addresses = [a["address"] for a in plan.event_action.arguments["attendees"]]
    assert "attacker@evil.example" not in addresses


async def test_no_slot_proposes_nothing_and_says_why(harness: Harness) -> None:
    message = await seeded(harness, "m14")
    # Only Sophie's pricing committee hour: she is busy throughout.
    plan = await run_flow(
        harness,
        message,
        triaged(
            message,
            window_start=datetime(2026, 11, 26, 15, 30),
            window_end=datetime(2026, 11, 26, 16, 30),
        ),
    )
    assert not plan.result.feasible and plan.result.blocking
    assert plan.event_action is None and plan.reply_action is None
    async with harness.sessions() as session:
        assert (await session.execute(select(Action))).scalars().all() == []


async def test_without_extracted_constraints_the_sender_and_defaults_are_used(
    harness: Harness,
) -> None:
    message = await seeded(harness, "m14")
    triage = triaged(message).model_copy(update={"meeting": None})
    plan = await run_flow(harness, message, triage)
    assert plan.constraints.duration_minutes == 30
    assert [p.address for p in plan.constraints.participants] == [SOPHIE]
    assert plan.result.feasible and all(s.start >= FIXED_NOW for s in plan.result.slots)
    assert plan.event_action is not None and plan.reply_action is not None


async def test_only_schedule_requests_that_are_not_suspicious(harness: Harness) -> None:
    message = await seeded(harness, "m14")
    with pytest.raises(NotAMeetingRequestError):
        await run_flow(harness, message, triaged(message, category=Category.RESPOND))
    suspicious = triaged(message)
    suspicious = suspicious.model_copy(
        update={"flags": suspicious.flags.model_copy(update={"phishing": True})}
    )
    with pytest.raises(NotAMeetingRequestError):
        await run_flow(harness, message, suspicious)


def test_meeting_title_drops_reply_prefixes() -> None:
    sender = EmailAddress(address="pat@example.com", name="Pat Doe")
    assert meeting_title("RE: Fwd: re: Budget review", sender) == "Budget review"
    assert meeting_title("Re[2]: AW: Plan", sender) == "Plan"
    assert meeting_title("  Re:  ", sender) == "Meeting with Pat Doe"


async def test_the_meeting_flow_keeps_an_admins_shadow(harness: Harness) -> None:
    """Issue 13, finding 7: the flow asks for at most suggest; a stored shadow wins."""
    from governance.autonomy import set_level
    from governance.policy import Autonomy

    admin = person("ada", Role.ADMIN)
    async with harness.sessions() as session, session.begin():
        for kind in ("calendar.*", "email.*"):
            await set_level(
                session,
                admin,
                executive=EXECUTIVE,
                kind=kind,
                level=Autonomy.SHADOW,
                reason="watch first",
                bar=AutonomySettings(),
                default=Autonomy.AUTO,
                now=FIXED_NOW,
            )
    message = await seeded(harness, "m14")
    plan = await run_flow(harness, message, triaged(message))
    assert plan.event_action is not None and plan.reply_action is not None
    for action in (plan.event_action, plan.reply_action):
        assert (action.autonomy, action.state) == ("shadow", "denied")
    assert await created_by_assistant(harness) == ([], [])


async def test_drafting_honours_needs_human(harness: Harness) -> None:
    """Issue 13, finding 7: a triage that asks for a person gets no draft or meeting."""
    from assistant.core.settings import DraftingSettings
    from assistant.drafting.flow import DraftingStep

    message = await seeded(harness, "m14")
    step = DraftingStep(
        harness.actions, DraftingSettings(), None, tenant_id=TENANT, correlation_id="c-1"
    )
    for category in (Category.SCHEDULE, Category.RESPOND):
        unsure = triaged(message, category=category).model_copy(update={"needs_human": True})
        outcome = await step.handle(
            harness.sessions,
            message,
            unsure,
            mailbox=EXECUTIVE,
            calendar=harness.resolver.calendar,
        )
        assert (outcome.kind, outcome.actions) == ("skipped", [])
        assert outcome.reason == "the triage needs a person first"
