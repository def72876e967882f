"""Ask the assistant: ``POST /api/v1/chat`` streams one turn as server-sent events;
conversations are listed, read and deleted by the executive they belong to.

Events, in order: ``turn`` (conversation id and turn number), then for each tool call a
``tool`` event (name and status) and, for a proposal, a ``card`` (the governed action to
approve, edit or reject through ``/api/v1/review``), then ``budget`` or ``error`` when the
turn stopped early, the ``answer`` and ``done`` (tokens, cost, latency). While the model
writes, ``answer.delta`` events (``{"text": fragment}``) carry its text as it comes; their
fragments joined are the text so far. ``answer.reset`` (``{}``) withdraws what streamed
when the model went on to call tools instead of answering. The final ``answer``
(``{"text"}``) is authoritative: it replaces whatever streamed (a budget or an error may
have replaced the answer), so a client may ignore the deltas. Only the native tool
protocol streams; with ``agent.tool_protocol: step`` (or ``agent.stream_answer: false``)
the answer comes whole. A bad
question, a caller who may not chat or someone else's conversation are refused before the
stream starts, with ``{"error", "detail"}`` and a 4xx status (audited as ``chat.refused``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.agent import store
from assistant.agent.scope import ensure_may_chat
from assistant.api.deps import ServicesDep, SessionDep, require
from assistant.auth.permissions import Permission
from assistant.core.errors import PermissionDeniedError
from assistant.core.principal import Principal
from assistant.governance_app import GovernanceDep
from assistant.services import Services

if TYPE_CHECKING:
    from assistant.agent.agent import Agent, ChatEvent

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])

# The chat reads the executive's mail: executives, and delegates granted it.
Chatter = Annotated[Principal, require(Permission.MAIL_READ)]


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=100_000)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=32)


def get_agent(request: Request, services: ServicesDep, governance: GovernanceDep) -> Agent:
    """One agent per app (its model client keeps one connection pool)."""
    agent: Agent | None = getattr(request.app.state, "agent", None)
    if agent is None:
        agent = build_agent(services, governance.actions)
        request.app.state.agent = agent
    return agent


def build_agent(services: Services, actions: object) -> Agent:
    # The agent, its tools and the model client load with the first turn, not at start-up.
    from assistant.agent.agent import Agent
    from assistant.llm.client import LLMClient
    from assistant.llm.metering import DatabaseMeter
    from governance.service import ActionService

    assert isinstance(actions, ActionService)
    return Agent(
        sessions=services.sessions,
        connectors=services.connectors,
        actions=actions,
        llm=LLMClient(services.settings.llm, DatabaseMeter(services.sessions)),
        settings=services.settings.agent,
    )


def sse(event: ChatEvent) -> str:
    """One server-sent event: its type, and its data as one line of JSON."""
    return f"event: {event.type}\ndata: {json.dumps(event.data, default=str)}\n\n"


@router.post(
    "",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "The turn's events: turn, tool, card, answer.delta, answer.reset, "
            "budget, error, answer (the whole final text, authoritative), done.",
        }
    },
)
async def chat(
    body: ChatIn,
    principal: Chatter,
    request: Request,
    services: ServicesDep,
    governance: GovernanceDep,
) -> StreamingResponse:
    """Ask one question; the turn streams as server-sent events: ``turn``; per tool call
    ``tool`` and, for a proposal, ``card``; ``answer.delta`` (``{"text": fragment}``) as the
    model writes its answer, ``answer.reset`` when that text was withdrawn (the model called
    tools after all); ``budget`` or ``error`` when the turn stopped early; ``answer`` (the
    whole final text, which replaces what streamed); ``done``. The ``step`` tool protocol
    (and ``agent.stream_answer: false``) sends no deltas."""
    agent = get_agent(request, services, governance)
    scope, conversation_id = await agent.prepare(principal, body.message, body.conversation_id)
    # The middleware's id (the caller's X-Correlation-ID, else a new one): the turn's model
    # calls, proposals and audit events carry it, as the response header does.
    correlation = getattr(request.state, "correlation_id", None)

    async def stream() -> AsyncIterator[str]:
        async for event in agent.run(
            scope, conversation_id, body.message, correlation_id=correlation
        ):
            yield sse(event)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/conversations", response_model=list[store.ConversationOut])
async def list_conversations(
    principal: Chatter,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[store.ConversationOut]:
    """The conversations of the executive the caller is (or acts for), newest first."""
    ensure_may_chat(principal)
    rows = await store.list_conversations(session, principal, limit=limit)
    return [store.ConversationOut.of(r) for r in rows]


@router.get("/conversations/{conversation_id}", response_model=store.ConversationOut)
async def get_conversation(
    conversation_id: str, principal: Chatter, session: SessionDep
) -> store.ConversationOut:
    """One conversation with its questions, tool runs, cards and answers."""
    ensure_may_chat(principal)
    row = await store.get_conversation(session, principal, conversation_id)
    return store.ConversationOut.of(row, await store.messages_of(session, row.id))


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_conversation(
    conversation_id: str, principal: Chatter, session: SessionDep
) -> None:
    """Delete a conversation: the executive herself only (audited, without its text)."""
    ensure_may_chat(principal)
    await store.get_conversation(session, principal, conversation_id)
    if principal.on_behalf_of is not None:
        raise PermissionDeniedError("only the executive deletes her conversations")
    await store.delete_conversation(session, principal, conversation_id)
