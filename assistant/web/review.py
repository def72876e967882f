"""The review room: proposed actions as cards (what will happen, and why), approve, edit then
approve, reject with a reason, bulk approve; the hold-window countdown with Undo; what became
of each approved action."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.api.deps import SessionDep
from assistant.auth.models import User
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import ValidationFailedError
from assistant.core.principal import ActorType
from assistant.governance_app import GovernanceDep, GovernanceRuntime
from assistant.web.pages import PREFIX, Page, PageDep, back
from assistant.web.scope import Executive
from governance.models import Action, ActionException
from governance.review import BulkItem
from governance.state import ActionState as S

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


@dataclass
class Card:
    action: Action
    preview: dict[str, Any]
    routed_to: str | None = None
    #: For the chat agent's proposals: who asked the assistant for it (a name).
    asked_by: str | None = None


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
    return Action.on_behalf_of.in_(sorted(executive.ids))


async def load_owned(
    session: AsyncSession, tenant_id: str, executive: Executive, action_id: str
) -> Action:
    from assistant.core.errors import NotFoundError

    action = await session.scalar(
        select(Action).where(
            Action.id == action_id, Action.tenant_id == tenant_id, owned(executive)
        )
    )
    if action is None:
        raise NotFoundError(f"no action {action_id!r}")  # another executive's: as if absent
    return action


async def preview_of(governance: GovernanceRuntime, action: Action) -> dict[str, Any]:
    try:
        return await governance.review.preview(action)
    except Exception as exc:  # a kind that cannot preview still gets a card with its arguments
        return {"warning": f"no preview: {type(exc).__name__}", "arguments": action.arguments}


def zone_of(governance: GovernanceRuntime, page: Page, executive: Executive) -> str:
    owner = max(executive.ids, key=lambda i: "@" in i)
    return governance.policy.current().timezone_for(owner, page.person.tenant_id).key


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
    cards = await name_askers(
        session, tenant, [Card(a, await preview_of(governance, a)) for a in pending]
    )
    return page.render(
        "review.html",
        cards=cards,
        total=int(total or 0),
        offset=offset,
        per_page=CARDS_PER_PAGE,
        recent=[Card(a, {}, routed.get(a.id)) for a in recent],
        kinds=kinds,
        kind=kind,
        now=utcnow(),
        states=STATE_WORDS,
        zone=zone_of(governance, page, executive),
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
        session, page.acting(action.on_behalf_of or ""), action.id, (comment or "").strip() or None
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
        page.acting(action.on_behalf_of or ""),
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
        session, page.acting(action.on_behalf_of or ""), action.id, reason.strip()
    )
    return back(page, f"{PREFIX}/review", done="rejected")


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
    for wanted in chosen:
        action = await load_owned(session, page.person.tenant_id, executive, wanted)
        results = await governance.review.bulk(
            session,
            page.acting(action.on_behalf_of or ""),
            [BulkItem(action_id=action.id, decision="approve")],
        )
        refused += sum(not r.ok for r in results)
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
        session, page.acting(action.on_behalf_of or ""), action.id, "undone on the web"
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
    owner = action.on_behalf_of or ""
    await session.commit()  # compensation writes in sessions of its own: hold no lock here
    outcome = await governance.compensation.rollback(
        page.acting(owner), action_id, (reason or "").strip() or None
    )
    if not outcome.ok:
        raise ValidationFailedError(f"the roll-back did not complete: {outcome.detail}")
    return back(page, f"{PREFIX}/history", done="rolled-back")
