"""The chat room: ask the assistant, watch its tool runs and proposals as they happen, decide
the proposals on their cards through the review room's routes, and keep, reopen or delete
conversations.

A turn runs in the same agent as ``POST /api/v1/chat`` (:func:`assistant.api.chat.get_agent`,
its ``prepare`` and ``run``): this module only picks the principal from the page (the
executive served, or her delegate acting for her) and streams the same server-sent events.
Without script the question is an ordinary form post whose answer is the reloaded
conversation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select

from assistant.agent import store
from assistant.agent.scope import ensure_may_chat
from assistant.api.chat import get_agent, sse
from assistant.api.deps import ServicesDep, SessionDep
from assistant.auth.permissions import Permission
from assistant.core.errors import NotFoundError, PermissionDeniedError
from assistant.core.principal import Principal
from assistant.governance_app import GovernanceDep, GovernanceRuntime
from assistant.web.pages import PREFIX, Page, PageDep, back
from assistant.web.review import (
    STATE_WORDS,
    Card,
    load_owned,
    name_askers,
    owned,
    preview_of,
    zone_of,
)
from assistant.web.scope import Executive
from governance.models import Action
from governance.review import separation_of_duties
from governance.state import ActionState as S

router = APIRouter(prefix=PREFIX, include_in_schema=False)

#: Ids are 32 hex characters; anything much longer is refused before a query is made.
ConversationId = Annotated[str, Path(min_length=1, max_length=64)]
ActionId = Annotated[str, Path(min_length=1, max_length=64)]
#: As many as the API lists by default; older ones stay reachable through the API.
CONVERSATIONS_SHOWN = 50
#: The question's form field allows what the API's body allows; the agent's own (smaller,
#: configurable) limit answers 422 with its figure.
MAX_QUESTION_CHARS = 100_000


async def _chatting(page: Page) -> tuple[Executive, Principal]:
    """The executive served and the principal the agent sees: she herself, or her delegate
    acting for her (who needs the grant's mail scope, as on the API)."""
    executive = await page.require(Permission.MAIL_READ)
    principal = page.acting(executive.user_id, Permission.MAIL_READ)
    ensure_may_chat(principal)
    return executive, principal


def _may_decide(page: Page, action: Action) -> bool:
    """Whether the card offers Approve, Edit and Reject to this person. Governance decides
    again on every click; this only spares her buttons that are bound to be refused (its
    separation-of-duties rule: a delegate who asked for a proposal never approves it)."""
    if action.state != S.PENDING_REVIEW.value or not page.can(Permission.REVIEW_DECIDE):
        return False
    try:
        reviewer = page.acting(action.on_behalf_of, Permission.REVIEW_DECIDE)
    except (PermissionDeniedError, NotFoundError):
        return False
    return separation_of_duties(reviewer, action) is None


async def _cards(
    session: SessionDep,
    governance: GovernanceRuntime,
    page: Page,
    executive: Executive,
    action_ids: list[str],
) -> dict[str, Card]:
    """The current state and preview of the conversation's proposals that are hers."""
    if not action_ids or not page.can(Permission.REVIEW_READ):
        return {}
    rows = (
        await session.execute(
            select(Action).where(
                Action.id.in_(action_ids),
                Action.tenant_id == page.person.tenant_id,
                owned(executive),
            )
        )
    ).scalars()
    cards = [Card(a, await preview_of(session, governance, a)) for a in rows]
    await name_askers(session, page.person.tenant_id, cards)
    return {c.action.id: c for c in cards}


def _turns(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages grouped by turn: the question, the tool runs, the cards, the answer."""
    turns: dict[int, dict[str, Any]] = {}
    for message in messages:
        turn = turns.setdefault(
            message.turn, {"question": None, "tools": [], "answer": None, "cards": []}
        )
        if message.role == "user":
            turn["question"] = message
        elif message.role == "tool":
            turn["tools"].append(message.data)
        elif message.role == "assistant":
            turn["answer"] = message
            turn["cards"] = list(message.data.get("cards") or [])
    return [turns[t] for t in sorted(turns)]


async def _room(
    page: Page,
    session: SessionDep,
    services: ServicesDep,
    governance: GovernanceRuntime,
    request: Request,
    conversation_id: str | None,
    done: str | None,
) -> HTMLResponse:
    executive, principal = await _chatting(page)
    conversation = None
    turns: list[dict[str, Any]] = []
    cards: dict[str, Card] = {}
    if conversation_id is not None:
        # Another executive's conversation is reported as missing (404), as on the API.
        conversation = await store.get_conversation(session, principal, conversation_id)
        turns = _turns(await store.messages_of(session, conversation.id))
        wanted = [c["action_id"] for t in turns for c in t["cards"] if "action_id" in c]
        cards = await _cards(session, governance, page, executive, wanted)
    agent = get_agent(request, services, governance)
    return page.render(
        "chat.html",
        conversations=await store.list_conversations(session, principal, limit=CONVERSATIONS_SHOWN),
        conversation=conversation,
        turns=turns,
        cards=cards,
        may_decide=lambda action: _may_decide(page, action),
        enabled=agent.llm.enabled,
        max_chars=agent.settings.max_message_chars,
        states=STATE_WORDS,
        zone=await zone_of(session, governance, page, executive),
        done=done,
        quiet=True,  # the page streams its own updates: the rooms' live refresh stays off
    )


@router.get("/chat", response_class=HTMLResponse)
async def chat_room(
    page: PageDep,
    session: SessionDep,
    services: ServicesDep,
    governance: GovernanceDep,
    request: Request,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    """The conversation list and a new conversation."""
    return await _room(page, session, services, governance, request, None, done)


@router.get("/chat/cards/{action_id}", response_class=HTMLResponse)
async def chat_card(
    action_id: ActionId, page: PageDep, session: SessionDep, governance: GovernanceDep
) -> HTMLResponse:
    """One proposal's card as it stands now (the panel inserts it when the agent proposes,
    and refreshes it after a decision)."""
    executive = await page.require(Permission.REVIEW_READ)
    action = await load_owned(session, page.person.tenant_id, executive, action_id)
    card = Card(action, await preview_of(session, governance, action))
    await name_askers(session, page.person.tenant_id, [card])
    return page.render(
        "chat_card.html",
        card=card,
        stored=None,
        may_decide=lambda a: _may_decide(page, a),
        states=STATE_WORDS,
        zone=await zone_of(session, governance, page, executive),
    )


@router.get("/chat/{conversation_id}", response_class=HTMLResponse)
async def chat_conversation(
    conversation_id: ConversationId,
    page: PageDep,
    session: SessionDep,
    services: ServicesDep,
    governance: GovernanceDep,
    request: Request,
) -> HTMLResponse:
    """One conversation: its turns, tool runs, cards (with their state now) and answers."""
    return await _room(page, session, services, governance, request, conversation_id, None)


@router.post("/chat/ask", response_model=None)
async def ask(
    page: PageDep,
    session: SessionDep,
    services: ServicesDep,
    governance: GovernanceDep,
    request: Request,
    message: Annotated[str, Form(min_length=1, max_length=MAX_QUESTION_CHARS)],
    conversation_id: Annotated[str | None, Form(max_length=32)] = None,
) -> Response:
    """One turn. The panel's script asks for ``text/event-stream`` and gets the API's
    events; a plain form post waits for the turn and shows the conversation."""
    _, principal = await _chatting(page)
    # The turn writes in transactions of its own: this request's holds no lock meanwhile.
    await session.commit()
    agent = get_agent(request, services, governance)
    scope, conversation = await agent.prepare(principal, message, conversation_id or None)
    correlation = getattr(request.state, "correlation_id", None)
    if "text/event-stream" in request.headers.get("accept", ""):

        async def stream() -> AsyncIterator[str]:
            async for event in agent.run(scope, conversation, message, correlation_id=correlation):
                yield sse(event)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    async for _ in agent.run(scope, conversation, message, correlation_id=correlation):
        pass
    return back(page, f"{PREFIX}/chat/{conversation}")


@router.post("/chat/{conversation_id}/delete")
async def delete(
    conversation_id: ConversationId, page: PageDep, session: SessionDep
) -> RedirectResponse:
    """Delete a conversation (the executive herself only, as on the API; audited)."""
    executive, principal = await _chatting(page)
    await store.get_conversation(session, principal, conversation_id)  # hers, or 404
    if not executive.is_self:
        raise PermissionDeniedError("only the executive deletes her conversations")
    await store.delete_conversation(session, principal, conversation_id)
    return back(page, f"{PREFIX}/chat", done="deleted")
