"""After triage: propose what a person would do next, as governed actions only.

``respond`` mail gets a reply draft (:func:`~assistant.drafting.drafter.draft_reply`),
proposed as ``email.draft.create``; ``schedule`` mail goes to the meeting flow
(:func:`assistant.scheduling.meeting_flow.propose_meeting`: slots, one event and one reply
offering them). Nothing is created or sent here: the policy decides, and a person reviews
what it holds back. The model is called with no transaction open; each proposal is stored
in its own short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, agent_principal, system_principal
from assistant.core.settings import DraftingSettings
from assistant.drafting.drafter import DraftProposal, NotDraftableError, draft_reply
from assistant.llm.client import LLMClient
from assistant.triage.models import Category, TriageResult
from governance.models import Action
from governance.policy import Autonomy
from governance.service import ActionService, Proposal
from integrations.base import EmailMessage

log = structlog.stdlib.get_logger(__name__)

DRAFT_KIND = "email.draft.create"


def dedupe_key(tenant_id: str, mailbox: str, message_id: str) -> str:
    """One reply draft per message: a re-run returns the first proposal."""
    return f"reply-draft:{tenant_id}:{mailbox.lower()}:{message_id}"


async def propose_draft(
    session: AsyncSession,
    actions: ActionService,
    principal: Principal,
    proposal: DraftProposal,
    *,
    mailbox: str,
    on_behalf_of: str | None = None,
    correlation_id: str | None = None,
    connector: str | None = None,
) -> Action:
    """Propose ``proposal`` as a governed ``email.draft.create`` (flushes, never commits)."""
    return await actions.propose(
        session,
        principal,
        Proposal(
            kind=DRAFT_KIND,
            arguments=proposal.arguments(),
            on_behalf_of=on_behalf_of,
            correlation_id=correlation_id,
            connector=connector,
            dedupe_key=dedupe_key(principal.tenant_id, mailbox, proposal.message_id),
        ),
    )


async def propose_revision(
    session: AsyncSession,
    actions: ActionService,
    original: Action,
    proposal: DraftProposal,
    *,
    requested_by: Principal,
) -> Action:
    """Propose ``proposal`` (re-drafted from ``original`` on ``requested_by``'s instructions)
    as a new ``email.draft.create`` by the assistant, child of ``original``: at most
    ``suggest``, so that it waits for review whatever autonomy drafts have. The assistant
    proposes at her request, as in the chat: a delegate who wrote the instructions does not
    approve the result herself (governance.review.separation_of_duties). Flushes, never
    commits; the caller retires ``original``."""
    return await actions.propose(
        session,
        agent_principal(requested_by, executive=original.on_behalf_of),
        Proposal(
            kind=DRAFT_KIND,
            arguments=proposal.arguments(),
            on_behalf_of=original.on_behalf_of,
            correlation_id=original.correlation_id,
            connector=original.connector,
            parent_id=original.id,
            autonomy=Autonomy.SUGGEST,
            autonomy_at_most=True,
        ),
    )


@dataclass
class StepOutcome:
    """What the step did for one message."""

    kind: Literal["draft", "meeting", "skipped"]
    actions: list[Action] = field(default_factory=list)
    draft: DraftProposal | None = None
    reason: str | None = None


class DraftingStep:
    """The post-triage step of one run: one correlation id, one proposer (the pipeline)."""

    def __init__(
        self,
        actions: ActionService,
        settings: DraftingSettings,
        llm: LLMClient | None,
        *,
        tenant_id: str,
        correlation_id: str | None,
        principal: Principal | None = None,
    ) -> None:
        self.actions = actions
        self.settings = settings
        self.llm = llm if llm is not None and llm.enabled else None
        self.tenant_id = tenant_id
        self.correlation_id = correlation_id
        self.principal = principal or system_principal(tenant_id, "pipeline")

    async def handle(
        self,
        sessions: async_sessionmaker[AsyncSession],
        message: EmailMessage,
        triage: TriageResult,
        *,
        mailbox: str,
        connector: str | None = None,
        calendar: Any = None,
        executive: str | None = None,
    ) -> StepOutcome:
        """Propose the next step for ``message``, for ``executive`` (the user the mailbox's
        connector is bound to; default: the mailbox address). Never raises for one
        message's trouble: the outcome says why nothing was proposed."""
        if not self.settings.enabled:
            return StepOutcome("skipped", reason="drafting is disabled")
        if triage.needs_human:
            # The triage itself asked for a person: no reply is drafted before one decided.
            return StepOutcome("skipped", reason="the triage needs a person first")
        owner = executive or mailbox
        if triage.category is Category.RESPOND:
            return await self._reply(
                sessions, message, triage, mailbox=mailbox, connector=connector, executive=owner
            )
        if triage.category is Category.SCHEDULE:
            return await self._meeting(
                sessions, message, triage, mailbox=mailbox, calendar=calendar, executive=owner
            )
        return StepOutcome("skipped", reason="nothing to answer")

    async def _reply(
        self,
        sessions: async_sessionmaker[AsyncSession],
        message: EmailMessage,
        triage: TriageResult,
        *,
        mailbox: str,
        connector: str | None,
        executive: str,
    ) -> StepOutcome:
        try:
            proposal = await draft_reply(
                message,
                triage,
                self.settings,
                self.llm,
                tenant_id=self.tenant_id,
                correlation_id=self.correlation_id,
            )
        except NotDraftableError as exc:
            return StepOutcome("skipped", reason=exc.detail)
        async with sessions() as session, session.begin():
            action = await propose_draft(
                session,
                self.actions,
                self.principal,
                proposal,
                mailbox=mailbox,
                on_behalf_of=executive,
                correlation_id=self.correlation_id,
                connector=connector,
            )
        log.info(
            "drafting.proposed",
            message_id=message.id,
            action_id=action.id,
            state=action.state,
            source=proposal.source,
        )
        return StepOutcome("draft", actions=[action], draft=proposal)

    async def _meeting(
        self,
        sessions: async_sessionmaker[AsyncSession],
        message: EmailMessage,
        triage: TriageResult,
        *,
        mailbox: str,
        calendar: Any,
        executive: str,
    ) -> StepOutcome:
        try:
            from assistant.scheduling.meeting_flow import propose_meeting
        except ImportError:  # the scheduling flow is optional for this step
            return StepOutcome("skipped", reason="the meeting flow is not installed")
        if calendar is None:
            return StepOutcome("skipped", reason="no calendar connector")
        try:
            async with sessions() as session, session.begin():
                plan = await propose_meeting(
                    session,
                    self.actions,
                    self.principal,
                    message=message,
                    triage=triage,
                    calendar=calendar,
                    on_behalf_of=executive,
                )
        except AssistantError as exc:
            return StepOutcome("skipped", reason=exc.detail)
        proposed = [a for a in (plan.event_action, plan.reply_action) if a is not None]
        return StepOutcome(
            "meeting", actions=proposed, reason=None if proposed else "no common free slot"
        )
