"""One turn of the chat agent: the question, the model's tool calls, the answer.

The loop is LangChain messages over :meth:`LLMClient.tool_step` (metered, limited, every
provider). The tools are the fixed set of :mod:`assistant.agent.tools` that the caller
may use, bound once per turn: a tool result is a ``ToolMessage`` whose content is
delimited as untrusted data, so it can neither add a tool nor speak as the system. A call
to a tool that was not offered is refused and reported back as an error.

The answer streams (``agent.stream_answer``): with the native tool protocol the model's
reply is streamed, and each fragment of its text is reported (``answer.delta``) as it
arrives; if the reply turns out to call tools, the text said on the way is withdrawn
(``answer.reset``). The ``answer`` event that follows always carries the whole, final
text (the budget or an error may replace what streamed). The step protocol's answer is an
argument of its tool call and arrives whole.

Each tool runs in its own short transaction (committed: a proposal is a stored, governed
action the moment it is made), and no transaction is open while the model is called. The
turn stops at the budget (model calls, tool calls, tokens) with a clear message. The turn
is stored in the conversation and audited as ``chat.turn`` with the question's hash, the
tools that ran and the actions proposed, never the text.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.agent import store
from assistant.agent.scope import AgentScope, resolve_scope
from assistant.agent.tools import AgentTool, ToolContext, tools_for
from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError, ServiceUnavailableError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from assistant.core.settings import AgentSettings
from assistant.llm.client import LLMClient
from assistant.llm.errors import LLMError
from assistant.llm.prompts import delimit, load_prompt
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.service import ActionService
from integrations.errors import ConnectorError

if TYPE_CHECKING:
    # langchain_core.messages takes ~1 s to import: loaded with the first turn, not at start-up.
    from langchain_core.messages import AIMessage, BaseMessage

log = structlog.stdlib.get_logger(__name__)

TASK = "agent"


class ChatInputError(ValidationFailedError):
    """The question is empty or too long."""


@dataclass(frozen=True)
class ChatEvent:
    """One thing a turn reports, in order (the API streams them as server-sent events)."""

    type: str  # turn | tool | card | answer.delta | answer.reset | answer | budget | error | done
    data: dict[str, Any]


@dataclass
class TurnTally:
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    model_latency_ms: float = 0.0
    tools: list[dict[str, Any]] = field(default_factory=list)
    proposed: list[dict[str, Any]] = field(default_factory=list)
    budget_exceeded: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Agent:
    """Runs turns for one process: sessions, connectors, governance and the model client."""

    sessions: async_sessionmaker[AsyncSession]
    connectors: Any
    actions: ActionService
    llm: LLMClient
    settings: AgentSettings
    #: Sees each tool result as the model gets it (the injection suite counts exposures).
    observer: Callable[[str, str], None] | None = None

    async def prepare(
        self, principal: Principal, question: str, conversation_id: str | None
    ) -> tuple[AgentScope, str]:
        """Check the caller and the question before anything streams: typed errors here
        become 4xx answers (audited as ``chat.refused``)."""
        text = question.strip()
        try:
            async with self.sessions() as session, session.begin():
                if not self.llm.enabled:
                    raise ServiceUnavailableError(
                        "no language model is configured (llm.provider is 'none')"
                    )
                if not text:
                    raise ChatInputError("the question is empty")
                if len(text) > self.settings.max_message_chars:
                    raise ChatInputError(
                        f"the question is longer than {self.settings.max_message_chars} characters"
                    )
                scope = await resolve_scope(session, principal, self.connectors)
                if conversation_id is None:
                    conversation_id = (await store.create_conversation(session, principal, text)).id
                else:
                    await store.get_conversation(session, principal, conversation_id)
        except AssistantError as exc:
            # Its own transaction: the refused attempt is audited although nothing else stays.
            async with self.sessions() as session, session.begin():
                await _refused(session, principal, exc, text)
            raise
        return scope, conversation_id

    async def run(
        self,
        scope: AgentScope,
        conversation_id: str,
        question: str,
        *,
        correlation_id: str | None = None,
        now: datetime | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """Run one turn, yielding its events. Errors of the model end the turn with an
        ``error`` event; the turn is stored and audited either way."""
        from langchain_core.messages import ToolMessage

        text = question.strip()
        correlation = correlation_id or new_id()
        started = time.perf_counter()
        tally = TurnTally()
        principal = scope.principal
        clock_now = now or utcnow()
        prompt = load_prompt(self.settings.prompt)
        offered = tools_for(scope)
        by_name = {t.name: t for t in offered}
        async with self.sessions() as session, session.begin():
            conversation = await store.get_conversation(session, principal, conversation_id)
            history = await store.messages_of(session, conversation.id)
            conversation.turns += 1
            turn = conversation.turns
            await store.append(
                session,
                conversation,
                turn=turn,
                role="user",
                content=text,
                author=principal.user_id,
            )
        trusted = "\n".join([*(m.content for m in history if m.role == "user"), text])
        yield ChatEvent("turn", {"conversation_id": conversation_id, "turn": turn})

        stepwise = self.settings.tool_protocol == "step"
        notes = ("Not available: " + "; ".join(scope.notes) + ".") if scope.notes else ""
        if stepwise:
            notes = f"{notes}\n{step_catalogue(offered)}".strip()
        messages: list[BaseMessage] = prompt.render(
            executive=scope.executive,
            today=clock_now.date().isoformat(),
            notes=notes,
            question=text,
        )
        messages[1:1] = _history(history, self.settings.history_turns)
        schemas = [step_schema(offered)] if stepwise else [t.openai_schema() for t in offered]
        # The step protocol's answer is a tool call's argument: it comes whole.
        streaming = self.settings.stream_answer and not stepwise
        answer = ""
        error: str | None = None
        while True:
            if tally.model_calls >= self.settings.max_model_calls:
                tally.budget_exceeded = (
                    f"this turn reached its limit of {self.settings.max_model_calls} model calls"
                )
                break
            fragments: asyncio.Queue[str | None] = asyncio.Queue()
            reply = asyncio.create_task(
                self.llm.tool_step(
                    prompt,
                    messages,
                    schemas,
                    task=TASK,
                    tenant_id=scope.tenant_id,
                    correlation_id=correlation,
                    tool_choice=STEP_TOOL if stepwise else "auto",
                    on_text=fragments.put_nowait if streaming else None,
                )
            )
            reply.add_done_callback(functools.partial(_reply_ended, fragments))
            streamed = False
            try:
                while (fragment := await fragments.get()) is not None:
                    streamed = True
                    yield ChatEvent("answer.delta", {"text": fragment})
                step = await reply
            except LLMError as exc:
                error = f"the model could not answer ({type(exc).__name__}): {exc}"
                log.warning("agent.model_failed", error=type(exc).__name__)
                break
            finally:
                # The reader went away mid-stream: the model call goes with it.
                reply.cancel()
            tally.model_calls += 1
            for metered in step.calls:
                tally.input_tokens += metered.usage.input
                tally.output_tokens += metered.usage.output
                tally.cost_usd += metered.cost_usd
                tally.model_latency_ms += metered.latency_ms
            message = step.value
            if tally.tokens > self.settings.max_tokens:
                tally.budget_exceeded = (
                    f"this turn used {tally.tokens} tokens, over its limit of "
                    f"{self.settings.max_tokens}"
                )
                break
            calls = from_step(message) if stepwise else list(message.tool_calls)
            if not calls:
                answer = _step_answer(message) if stepwise else _text(message)
                break
            if streamed:
                # What streamed was said on the way to a tool call, not the answer.
                yield ChatEvent("answer.reset", {})
            messages.append(message)
            for call in calls:
                if tally.tool_calls >= self.settings.max_tool_calls:
                    tally.budget_exceeded = (
                        f"this turn reached its limit of {self.settings.max_tool_calls} tool calls"
                    )
                    break
                tally.tool_calls += 1
                result, event_data, card = await self._call_tool(
                    scope, by_name, call, trusted, correlation, clock_now
                )
                tally.tools.append(event_data)
                yield ChatEvent("tool", event_data)
                if card is not None:
                    tally.proposed.append(card)
                    yield ChatEvent("card", card)
                if self.observer is not None:
                    self.observer(str(call["name"]), result)
                messages.append(
                    ToolMessage(
                        content=delimit(result, f"tool:{call['name']}"[:60]),
                        tool_call_id=call.get("id") or new_id(),
                    )
                )
            if tally.budget_exceeded:
                break

        if tally.budget_exceeded:
            yield ChatEvent("budget", {"detail": tally.budget_exceeded})
            answer = answer or _stopped(tally)
        if error is not None:
            yield ChatEvent("error", {"error": "LLMError", "detail": error})
            answer = answer or _stopped(tally)
        if not answer.strip():
            answer = _stopped(tally)
        yield ChatEvent("answer", {"text": answer})
        latency_ms = (time.perf_counter() - started) * 1000
        summary = {
            "conversation_id": conversation_id,
            "turn": turn,
            "model_calls": tally.model_calls,
            "tool_calls": tally.tool_calls,
            "input_tokens": tally.input_tokens,
            "output_tokens": tally.output_tokens,
            "cost_usd": round(tally.cost_usd, 8),
            "latency_ms": round(latency_ms, 1),
            "model_latency_ms": round(tally.model_latency_ms, 1),
            "budget_exceeded": tally.budget_exceeded,
            "proposed": [c["action_id"] for c in tally.proposed],
            "correlation_id": correlation,
        }
        await self._finish(scope, conversation_id, turn, text, answer, tally, summary, error)
        yield ChatEvent("done", summary)

    async def _call_tool(
        self,
        scope: AgentScope,
        by_name: dict[str, AgentTool],
        call: Any,
        trusted: str,
        correlation: str,
        now: datetime,
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """Run one tool call in its own transaction: (result for the model, event, card)."""
        name = str(call.get("name"))
        tool = by_name.get(name)
        if tool is None:
            log.warning("agent.tool_refused", tool=name[:64])
            return (
                json.dumps({"error": f"there is no tool named {name[:64]!r}"}),
                {"name": name[:64], "status": "refused", "detail": "no such tool"},
                None,
            )
        try:
            args = tool.args_model.model_validate(call.get("args") or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )[:500]
            return (
                json.dumps({"error": f"invalid arguments: {problems}"}),
                {"name": name, "status": "invalid", "detail": problems},
                None,
            )
        ctx: ToolContext | None = None
        try:
            async with self.sessions() as session, session.begin():
                ctx = ToolContext(
                    scope=scope,
                    session=session,
                    actions=self.actions,
                    trusted_text=trusted,
                    correlation_id=correlation,
                    now=lambda: now,
                )
                value = await tool.run(ctx, args)
        except (AssistantError, ConnectorError) as exc:
            detail = getattr(exc, "detail", None) or str(exc)
            status = "refused" if type(exc).__name__ == "UntrustedSourceError" else "error"
            return (
                json.dumps({"error": type(exc).__name__, "detail": detail[:500]}),
                {
                    "name": name,
                    "status": status,
                    "error": type(exc).__name__,
                    "detail": detail[:500],
                },
                None,
            )
        except Exception as exc:  # a broken tool ends its call, not the turn
            log.exception("agent.tool_crashed", tool=name, error=type(exc).__name__)
            return (
                json.dumps({"error": "the tool failed"}),
                {"name": name, "status": "error", "error": type(exc).__name__},
                None,
            )
        card = ctx.proposed[-1] if ctx and ctx.proposed else None
        result = json.dumps(value, default=str)
        if len(result) > self.settings.max_tool_result_chars:
            result = result[: self.settings.max_tool_result_chars] + " [... cut]"
        event: dict[str, Any] = {"name": name, "status": "ok"}
        if card is not None:
            event["action_id"] = card["action_id"]
        return result, event, card

    async def _finish(
        self,
        scope: AgentScope,
        conversation_id: str,
        turn: int,
        question: str,
        answer: str,
        tally: TurnTally,
        summary: dict[str, Any],
        error: str | None,
    ) -> None:
        principal = scope.principal
        async with self.sessions() as session, session.begin():
            conversation = await store.get_conversation(session, principal, conversation_id)
            for item in tally.tools:
                await store.append(
                    session, conversation, turn=turn, role="tool", tool=item["name"], data=item
                )
            await store.append(
                session,
                conversation,
                turn=turn,
                role="assistant",
                content=answer,
                data={"cards": tally.proposed, **summary},
            )
            await record(
                session,
                principal,
                AuditEventIn(
                    action=AuditAction.CHAT_TURN,
                    outcome=Outcome.FAILURE if error else Outcome.SUCCESS,
                    resource_type="agent_conversation",
                    resource_id=conversation_id,
                    correlation_id=summary["correlation_id"],
                    reason=tally.budget_exceeded or ("model_failed" if error else None),
                    payload={
                        "executive": scope.executive,
                        "question_sha256": store.digest(question),
                        "question_chars": len(question),
                        "tools": [{"name": t["name"], "status": t["status"]} for t in tally.tools],
                        "proposed": [
                            {"action_id": c["action_id"], "kind": c["kind"], "state": c["state"]}
                            for c in tally.proposed
                        ],
                        **{
                            k: summary[k]
                            for k in (
                                "turn",
                                "model_calls",
                                "tool_calls",
                                "input_tokens",
                                "output_tokens",
                                "cost_usd",
                                "latency_ms",
                                "budget_exceeded",
                            )
                        },
                    },
                ),
            )
        log.info(
            "agent.turn",
            conversation=conversation_id,
            turn=turn,
            tools=tally.tool_calls,
            proposed=len(tally.proposed),
            tokens=tally.tokens,
            budget_exceeded=bool(tally.budget_exceeded),
        )


#: The one tool of the step protocol: each model step names the tool it wants, or answers.
STEP_TOOL = "agent_step"


def step_schema(offered: list[AgentTool]) -> dict[str, Any]:
    """``agent_step``: which tool (or ``answer``), its arguments, the answer text."""
    return {
        "type": "function",
        "function": {
            "name": STEP_TOOL,
            "description": "Take the next step: call one tool, or give the final answer.",
            "parameters": {
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [t.name for t in offered] + ["answer"]},
                    "arguments": {"type": "object"},
                    "answer": {"type": "string"},
                },
                "required": ["tool", "arguments", "answer"],
            },
        },
    }


def step_catalogue(offered: list[AgentTool]) -> str:
    """The tools in a few lines, for the step protocol's system message."""
    lines = [
        f"Each step, call {STEP_TOOL} once: tool = one of the names below with its "
        'arguments, or tool = "answer" with the final answer in "answer". Tools:'
    ]
    for tool in offered:
        fields = tool.args_model.model_fields
        required = [n for n, f in fields.items() if f.is_required()]
        optional = [n for n, f in fields.items() if not f.is_required()]
        args = ", ".join([*required, *(f"{n}?" for n in optional)])
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


def from_step(message: AIMessage) -> list[Any]:
    """The tool call an ``agent_step`` names (none for an answer or a malformed step)."""
    for call in message.tool_calls:
        if call["name"] != STEP_TOOL:
            continue
        args = call.get("args") or {}
        tool = str(args.get("tool") or "answer")
        if tool == "answer":
            return []
        arguments = args.get("arguments")
        return [
            {
                "name": tool,
                "args": arguments if isinstance(arguments, dict) else {},
                "id": call.get("id"),
            }
        ]
    return []


def _step_answer(message: AIMessage) -> str:
    for call in message.tool_calls:
        if call["name"] == STEP_TOOL:
            return str((call.get("args") or {}).get("answer") or "")
    return _text(message)


def _history(rows: list[Any], turns: int) -> list[BaseMessage]:
    """The last ``turns`` questions and answers (tool runs are not replayed)."""
    if turns <= 0:
        return []
    kept = [r for r in rows if r.role in ("user", "assistant")]
    wanted = {r.turn for r in kept}
    last = sorted(wanted)[-turns:]
    from langchain_core.messages import AIMessage, HumanMessage

    out: list[BaseMessage] = []
    for row in kept:
        if row.turn in last:
            out.append(HumanMessage(row.content) if row.role == "user" else AIMessage(row.content))
    return out


def _text(message: AIMessage) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(
        str(part.get("text", "")) if isinstance(part, dict) else str(part)
        for part in message.content
    )


def _reply_ended(fragments: asyncio.Queue[str | None], _reply: object) -> None:
    """The model's reply is in (or failed): no more fragments will come."""
    fragments.put_nowait(None)


def _stopped(tally: TurnTally) -> str:
    parts = []
    if tally.budget_exceeded:
        parts.append(f"I stopped: {tally.budget_exceeded}. Ask a narrower question.")
    else:
        parts.append("I could not finish this answer.")
    if tally.proposed:
        parts.append(f"{len(tally.proposed)} proposal(s) wait for your approval.")
    return " ".join(parts)


async def _refused(
    session: AsyncSession, principal: Principal, exc: AssistantError, question: str
) -> None:
    await record(
        session,
        principal,
        AuditEventIn(
            action=AuditAction.CHAT_REFUSED,
            outcome=Outcome.DENIED,
            resource_type="agent_conversation",
            reason=type(exc).__name__,
            payload={
                "error": type(exc).__name__,
                "question_sha256": store.digest(question),
                "question_chars": len(question),
            },
        ),
    )
