"""The review room: proposed actions as cards (what will happen, and why), approve, edit then
approve, reject with a reason, bulk approve; the hold-window countdown with Undo; what became
of each approved action."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.api.deps import SessionDep
from assistant.auth.models import User
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError, NotFoundError, ValidationFailedError
from assistant.core.principal import ActorType
from assistant.drafting.limits import MAX_INSTRUCTIONS
from assistant.governance_app import GovernanceDep, GovernanceRuntime
from assistant.ingestion.models import TriageQueueItem
from assistant.llm.metering import DatabaseMeter
from assistant.web.pages import PREFIX, Page, PageDep, back
from assistant.web.scope import Executive
from governance.actions import EmailDraftArgs
from governance.aliases import bindings_of, executive_aliases
from governance.audit import AuditAction, AuditEventIn, record
from governance.models import Action, ActionEdit, ActionException
from governance.review import BulkItem
from governance.state import ActionState as S
from integrations.base import Capability

router = APIRouter(prefix=PREFIX, include_in_schema=False)

MAX_CARDS = 200
#: Each card carries the whole text to read before deciding: 50 to a page keeps it readable
#: and fast; bulk approval acts on the cards shown.
CARDS_PER_PAGE = 50
#: Decided actions stay on the review page this long, so their fate can be followed.
RECENT = timedelta(hours=24)
_AFTER = [S.APPROVED, S.SCHEDULED, S.EXECUTING, S.SUCCEEDED, S.FAILED, S.CANCELLED, S.REJECTED]
STATE_WORDS = {
    S.PENDING_REVIEW: "waiting for you",
    S.APPROVED: "approved",
    S.SCHEDULED: "scheduled",
    S.EXECUTING: "running",
    S.SUCCEEDED: "done",
    S.FAILED: "failed",
    S.CANCELLED: "cancelled",
    S.REJECTED: "rejected",
    S.EXPIRED: "expired",
    S.DENIED: "denied by policy",
    S.COMPENSATED: "rolled back",
    S.COMPENSATING: "rolling back",
    S.COMPENSATION_FAILED: "roll-back failed",
}


DRAFT_KIND = "email.draft.create"
#: A line of a body diff: ("same" | "del" | "add", text).
DiffLine = tuple[str, str]


@dataclass
class Card:
    action: Action
    preview: dict[str, Any]
    routed_to: str | None = None
    #: The text as it was against the text now, when a person edited it or had it re-drafted.
    diff: list[DiffLine] = field(default_factory=list)
    #: For the chat agent's proposals: who asked the assistant for it (a name).
    asked_by: str | None = None


def body_diff(before: str, after: str) -> list[DiffLine]:
    """Line by line, what was removed and what was added; unchanged lines kept for context."""
    lines: list[DiffLine] = []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        tag, text = line[:2], line[2:]
        if tag == "  ":
            lines.append(("same", text))
        elif tag == "- ":
            lines.append(("del", text))
        elif tag == "+ ":
            lines.append(("add", text))
    return lines


async def diffs_for(session: AsyncSession, actions: list[Action]) -> dict[str, list[DiffLine]]:
    """For each action whose text a person changed: its first edit's text (or, for a draft
    re-drafted on her instructions, the draft it replaced) against its text now."""
    ids = [a.id for a in actions]
    if not ids:
        return {}
    before: dict[str, str] = {}
    parents = {a.parent_id: a.id for a in actions if a.parent_id and a.kind == DRAFT_KIND}
    if parents:
        for parent in (
            await session.execute(select(Action).where(Action.id.in_(sorted(parents))))
        ).scalars():
            text = parent.arguments.get("body_text")
            if isinstance(text, str):
                before[parents[parent.id]] = text
    edits = await session.execute(
        select(ActionEdit.action_id, ActionEdit.previous_arguments)
        .where(ActionEdit.action_id.in_(ids))
        .order_by(ActionEdit.created_at.desc())
    )
    revised = set(parents.values())  # their first text is the draft they replaced
    for action_id, previous in edits.all():  # newest first: the first edit's text wins
        text = (previous or {}).get("body_text")
        if isinstance(text, str) and action_id not in revised:
            before[action_id] = text
    found = {}
    for action in actions:
        now = action.arguments.get("body_text")
        if action.id in before and isinstance(now, str) and before[action.id] != now:
            found[action.id] = body_diff(before[action.id], now)
    return found


async def name_askers(session: AsyncSession, tenant_id: str, cards: list[Card]) -> list[Card]:
    """Fill in who asked for each of the agent's proposals, by display name (else username)."""
    ids = {
        c.action.requested_by
        for c in cards
        if c.action.actor_type == ActorType.AGENT.value and c.action.requested_by
    }
    if not ids:
        return cards
    names = {
        row.id: row.display_name or row.username
        for row in (
            await session.execute(
                select(User.id, User.display_name, User.username).where(
                    User.tenant_id == tenant_id, User.id.in_(sorted(ids))
                )
            )
        ).all()
    }
    for card in cards:
        asker = card.action.requested_by
        if card.action.actor_type == ActorType.AGENT.value and asker:
            card.asked_by = names.get(asker, asker)
    return cards


def owned(executive: Executive) -> Any:
    """Her actions: those filed under her user id (see assistant.web.scope)."""
    return Action.on_behalf_of == executive.user_id


async def load_owned(
    session: AsyncSession, tenant_id: str, executive: Executive, action_id: str
) -> Action:
    action = await session.scalar(
        select(Action).where(
            Action.id == action_id, Action.tenant_id == tenant_id, owned(executive)
        )
    )
    if action is None:
        raise NotFoundError(f"no action {action_id!r}")  # another executive's: as if absent
    return action


async def reply_subjects(
    session: AsyncSession, tenant_id: str, actions: list[Action]
) -> dict[str, dict[str, Any]]:
    """For each reply draft (it has no subject of its own), ``{"subject": "Re: ..."}`` from
    the mail it answers, in one read: the decided list named them by the answered
    message's id, and two replies to one mail read the same.

    The mail is looked up in the draft's own mailbox (its connector and the provider id):
    provider ids are unique per connector only (IMAP numbers each mailbox's messages from
    1), so by id alone another executive's message could lend its subject."""
    answered = {
        a.id: (a.connector, a.arguments["reply_to_id"])
        for a in actions
        if a.connector
        and not a.arguments.get("subject")
        and isinstance(a.arguments.get("reply_to_id"), str)
    }
    if not answered:
        return {}
    rows = await session.execute(
        select(
            TriageQueueItem.connector, TriageQueueItem.provider_id, TriageQueueItem.message
        ).where(
            TriageQueueItem.tenant_id == tenant_id,
            tuple_(TriageQueueItem.connector, TriageQueueItem.provider_id).in_(
                sorted(set(answered.values()))
            ),
        )
    )
    subjects = {
        (connector, pid): (message or {}).get("subject") or ""
        for connector, pid, message in rows.all()
    }
    return {
        action_id: {"subject": subject if subject.lower().startswith("re:") else f"Re: {subject}"}
        for action_id, mail in answered.items()
        if (subject := subjects.get(mail))
    }


async def preview_of(
    session: AsyncSession, governance: GovernanceRuntime, action: Action
) -> dict[str, Any]:
    try:
        return await governance.review.preview(session, action)
    except Exception as exc:  # a kind that cannot preview still gets a card with its arguments
        return {"warning": f"no preview: {type(exc).__name__}", "arguments": action.arguments}


async def zone_of(
    session: AsyncSession, governance: GovernanceRuntime, page: Page, executive: Executive
) -> str:
    """Her time zone, as governance picks it for her cards: the first of her names (user
    id, e-mail, user name, mailboxes bound to her alone) that the policy configures."""
    tenant = page.person.tenant_id
    names = await executive_aliases(
        session, tenant, executive.user_id, bindings_of(page.services.connectors)
    )
    return governance.policy.current().timezone_for(names, tenant).key


@router.get("/review", response_class=HTMLResponse)
async def review(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    done: Annotated[str | None, Query(max_length=40)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    executive = await page.require(Permission.REVIEW_READ)
    tenant = page.person.tenant_id
    query = select(Action).where(
        Action.tenant_id == tenant, owned(executive), Action.state == S.PENDING_REVIEW.value
    )
    if kind:
        query = query.where(Action.kind == kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    pending = list(
        (
            await session.execute(
                query.order_by(Action.created_at.desc(), Action.id)
                .limit(CARDS_PER_PAGE)
                .offset(offset)
            )
        )
        .scalars()
        .all()
    )
    kinds = sorted(
        set(
            (
                await session.execute(
                    select(Action.kind).where(
                        Action.tenant_id == tenant,
                        owned(executive),
                        Action.state == S.PENDING_REVIEW.value,
                    )
                )
            ).scalars()
        )
    )
    recent = list(
        (
            await session.execute(
                select(Action)
                .where(
                    Action.tenant_id == tenant,
                    owned(executive),
                    Action.state.in_([s.value for s in _AFTER]),
                    Action.updated_at >= utcnow() - RECENT,
                )
                .order_by(Action.updated_at.desc())
                .limit(50)
            )
        ).scalars()
    )
    routed = dict(
        (
            await session.execute(
                select(ActionException.action_id, ActionException.owner).where(
                    ActionException.tenant_id == tenant,
                    ActionException.action_id.in_([a.id for a in recent]),
                )
            )
        ).all()
    )
    diffs = await diffs_for(session, [*pending, *recent])
    replies = await reply_subjects(session, tenant, recent)
    cards = await name_askers(
        session,
        tenant,
        [
            Card(a, await preview_of(session, governance, a), diff=diffs.get(a.id, []))
            for a in pending
        ],
    )
    return page.render(
        "review.html",
        cards=cards,
        total=int(total or 0),
        offset=offset,
        per_page=CARDS_PER_PAGE,
        recent=[
            Card(a, replies.get(a.id, {}), routed.get(a.id), diffs.get(a.id, [])) for a in recent
        ],
        kinds=kinds,
        kind=kind,
        now=utcnow(),
        states=STATE_WORDS,
        zone=await zone_of(session, governance, page, executive),
        done=done,
    )


@router.post("/review/{action_id}/approve")
async def approve(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    comment: Annotated[str | None, Form(max_length=2000)] = None,
) -> RedirectResponse:
    executive = await page.require(Permission.REVIEW_DECIDE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    await governance.review.approve(
        session,
        page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE),
        action.id,
        (comment or "").strip() or None,
    )
    return back(page, f"{PREFIX}/review", done="approved")


@router.post("/review/{action_id}/edit")
async def edit(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    body_text: Annotated[str | None, Form(max_length=20000)] = None,
    subject: Annotated[str | None, Form(max_length=1000)] = None,
    comment: Annotated[str | None, Form(max_length=2000)] = None,
) -> RedirectResponse:
    """Edit the text the action will send (subject, body), then approve the result."""
    executive = await page.require(Permission.REVIEW_DECIDE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    arguments = dict(action.arguments)
    # The page fills the text box from the card when opened (one copy of each text per
    # page); left empty, the text stays as it is.
    if body_text is not None and body_text.strip():
        if "body_text" not in arguments:
            raise ValidationFailedError("this action has no text to edit")
        arguments["body_text"] = body_text.replace("\r\n", "\n")
    if subject is not None and "subject" in arguments:
        arguments["subject"] = subject
    await governance.review.edit(
        session,
        page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE),
        action.id,
        arguments,
        (comment or "").strip() or None,
    )
    return back(page, f"{PREFIX}/review", done="edited")


@router.post("/review/{action_id}/reject")
async def reject(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    executive = await page.require(Permission.REVIEW_DECIDE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    if not reason.strip():
        raise ValidationFailedError("a rejection needs a reason")
    await governance.review.reject(
        session,
        page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE),
        action.id,
        reason.strip(),
    )
    return back(page, f"{PREFIX}/review", done="rejected")


@router.post("/review/{action_id}/revise")
async def revise(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    instructions: Annotated[str, Form(max_length=MAX_INSTRUCTIONS)] = "",
) -> RedirectResponse:
    """Answer a proposed reply draft with instructions ("shorter, and propose Thursday
    instead"): the assistant re-drafts it with the configured model, proposes the result
    (it waits for her review) and retires the draft it replaces. The audit row says who,
    which model and how long the instructions were, never the text."""
    executive = await page.require(Permission.REVIEW_DECIDE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    person = page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE)
    if action.kind != DRAFT_KIND or action.state != S.PENDING_REVIEW.value:
        raise ValidationFailedError("only a reply draft that waits for review can be re-drafted")
    if not instructions.strip():
        raise ValidationFailedError("say how the draft should change")
    draft = EmailDraftArgs.model_validate(action.arguments)
    if draft.reply_to_id is None:
        raise ValidationFailedError("only a reply can be re-drafted")
    message = await _original_message(page, executive, action, draft.reply_to_id)
    services = page.services
    await session.commit()  # no transaction stays open while the model writes
    # The drafter and the model client load on the first re-draft, not at start-up.
    from assistant.drafting import propose_revision, redraft_reply
    from assistant.llm.client import LLMClient

    llm = LLMClient(services.settings.llm, DatabaseMeter(services.sessions))
    try:
        proposal = await redraft_reply(
            message,
            draft,
            instructions,
            services.settings.drafting,
            llm,
            tenant_id=action.tenant_id,
            correlation_id=action.correlation_id,
        )
    finally:
        await llm.aclose()
    # She (or her delegate) may have decided meanwhile: the draft must still wait.
    original = await load_owned(session, page.person.tenant_id, executive, action_id)
    await session.refresh(original)
    if original.state != S.PENDING_REVIEW.value:
        raise ValidationFailedError("the draft was decided meanwhile; nothing re-drafted")
    revised = await propose_revision(
        session, governance.actions, original, proposal, requested_by=person
    )
    if revised.state != S.PENDING_REVIEW.value:
        raise ValidationFailedError(
            f"the policy did not hold the re-drafted reply for review ({revised.state}): "
            "the draft stays as it was"
        )
    await governance.review.cancel(
        session, person, original.id, "replaced by a draft re-written on instructions"
    )
    await record(
        session,
        person,
        AuditEventIn(
            action=AuditAction.ACTION_REVISED,
            resource_type="action",
            resource_id=original.id,
            action_id=original.id,
            correlation_id=original.correlation_id,
            reason="re-drafted on instructions",
            payload={
                "revised_action_id": revised.id,
                "instruction_chars": len(instructions.strip()),
                "body_chars": len(proposal.args.body_text),
                "model": proposal.model,
                "prompt_version": proposal.prompt_version,
            },
        ),
    )
    return back(page, f"{PREFIX}/review", done="revised")


async def _original_message(
    page: Page, executive: Executive, action: Action, message_id: str
) -> Any:
    """The mail a draft answers, from her mailbox that the draft goes through."""
    for instance in page.services.connectors.instances_for(
        page.person.tenant_id, executive.user_id, Capability.EMAIL
    ):
        if instance.connector is None:
            continue
        if action.connector is None or instance.name == action.connector:
            try:
                return await instance.connector.get_message(message_id)
            except AssistantError as exc:
                raise NotFoundError(f"the mail this draft answers is gone: {exc.detail}") from exc
    raise NotFoundError("the mailbox of this draft is not connected")


@router.post("/review/bulk")
async def bulk_approve(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    action_id: Annotated[list[str] | None, Form(max_length=MAX_CARDS)] = None,
) -> RedirectResponse:
    """Approve the ticked cards; each is decided on its own (one refusal stops no other)."""
    executive = await page.require(Permission.REVIEW_DECIDE)
    chosen = list(dict.fromkeys(action_id or []))[:MAX_CARDS]
    if not chosen:
        raise ValidationFailedError("tick at least one card to approve")
    refused = 0
    not_hers: list[tuple[BulkItem, AssistantError]] = []
    for wanted in chosen:
        item = BulkItem(action_id=wanted, decision="approve")
        try:
            action = await load_owned(session, page.person.tenant_id, executive, wanted)
        except NotFoundError as exc:  # a card of another executive (or none): refused alone
            not_hers.append((item, exc))
            continue
        results = await governance.review.bulk(
            session, page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE), [item]
        )
        refused += sum(not r.ok for r in results)
    await governance.review.audit_refused(session, page.person, not_hers)
    refused += len(not_hers)
    return back(page, f"{PREFIX}/review", done="bulk-partial" if refused else "bulk")


@router.post("/actions/{action_id}/undo")
async def undo(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    back_to: Annotated[str | None, Form(max_length=200)] = None,
) -> RedirectResponse:
    """Undo inside the hold window (governance refuses once the action ran)."""
    executive = await page.require(Permission.ACTIONS_CANCEL)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    await governance.actions.undo(
        session,
        page.acting(action.on_behalf_of, Permission.ACTIONS_CANCEL),
        action.id,
        "undone on the web",
    )
    target = f"{PREFIX}/history" if back_to == "history" else f"{PREFIX}/review"
    return back(page, target, done="undone")


@router.post("/actions/{action_id}/rollback")
async def rollback(
    action_id: str,
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    reason: Annotated[str | None, Form(max_length=2000)] = None,
) -> RedirectResponse:
    """Compensate an action that ran (governance says when it cannot)."""
    executive = await page.require(Permission.ACTIONS_COMPENSATE)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    acting = page.acting(action.on_behalf_of, Permission.ACTIONS_COMPENSATE)
    await session.commit()  # compensation writes in sessions of its own: hold no lock here
    outcome = await governance.compensation.rollback(
        acting, action_id, (reason or "").strip() or None
    )
    if not outcome.ok:
        raise ValidationFailedError(f"the roll-back did not complete: {outcome.detail}")
    return back(page, f"{PREFIX}/history", done="rolled-back")
