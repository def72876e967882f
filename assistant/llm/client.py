"""The one way the assistant calls a model: limits, retries, output checks, metering.

Triage uses :meth:`LLMClient.structured`; drafting will use :meth:`LLMClient.text` (or
``structured`` with its own schema) with its own task name, prompt and model override.
Every call, failed ones included, is metered once (after its transport retries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from assistant.core.clock import utcnow
from assistant.core.ids import new_id
from assistant.core.settings import LLMProvider, LLMSettings
from assistant.llm.errors import (
    LLMDisabledError,
    LLMError,
    LLMMalformedOutputError,
    LLMOutputLimitError,
    LLMRequestError,
    LLMUnavailableError,
)
from assistant.llm.factory import TaskModel, build_chat_model, resolve_task
from assistant.llm.limits import ConcurrencyLimits, is_retriable, wait_retry_after
from assistant.llm.metering import CallOutcome, LLMCallRecord, Meter, Usage, cost_usd
from assistant.llm.prompts import Prompt

if TYPE_CHECKING:
    # openai and langchain_core cost ~2 s of imports; they load on the first model call,
    # so that a service without an LLM (the embedded default) starts fast.
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.runnables import Runnable

log = structlog.stdlib.get_logger(__name__)

S = TypeVar("S", bound=BaseModel)
V = TypeVar("V")

_REASK = (
    "Your previous answer could not be used: it did not match the required schema. "
    "Answer again, calling the tool once with every required field."
)


@dataclass(frozen=True)
class LLMAnswer(Generic[V]):
    """A usable answer and every metered call it took (re-asks included)."""

    value: V
    model: str
    prompt: str
    calls: tuple[LLMCallRecord, ...] = field(default_factory=tuple)
    truncated: bool = False

    @property
    def usage(self) -> Usage:
        return Usage(
            input=sum(c.usage.input for c in self.calls),
            cached=sum(c.usage.cached for c in self.calls),
            output=sum(c.usage.output for c in self.calls),
        )


@dataclass
class _Exchange:
    """One call after its transport retries."""

    result: Any
    attempts: int
    latency_ms: float
    #: Streamed calls: how many chunks carried text or tool-call fragments.
    fragments: int = 0


def _text_of(content: Any) -> str:
    """The text of a message's (or chunk's) content: a string, or a list of parts."""
    if isinstance(content, str):
        return content
    return "".join(
        str(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content
    )


def usage_of(message: Any) -> Usage:
    """Token counts from LangChain's ``usage_metadata`` (filled from the API's usage block)."""
    meta = getattr(message, "usage_metadata", None) or {}
    details = meta.get("input_token_details") or {}
    return Usage(
        input=int(meta.get("input_tokens") or 0),
        cached=int(details.get("cache_read") or 0),
        output=int(meta.get("output_tokens") or 0),
    )


def _usage_of_completion(completion: Any) -> Usage:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    return Usage(
        input=usage.prompt_tokens or 0,
        cached=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
        output=usage.completion_tokens or 0,
    )


def _structured_runnable(
    chat: BaseChatModel, schema: type[BaseModel], method: str
) -> Runnable[Any, Any]:
    """The chat model bound to ask for ``schema``; the answer is parsed by
    :func:`parse_structured`, so that a malformed answer keeps its usage block and can be
    asked again (the SDK's own parser would raise and lose both)."""
    if method == "json_schema":
        import openai

        tool = openai.pydantic_function_tool(schema)["function"]
        return chat.bind(
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "schema": tool["parameters"],
                    "strict": True,
                },
            }
        )
    return chat.bind_tools([schema], tool_choice=schema.__name__, parallel_tool_calls=False)


def parse_structured(message: AIMessage, schema: type[S]) -> tuple[S | None, str | None]:
    """(answer, None) or (None, why it is unusable): the tool call named after ``schema``,
    else JSON content (servers that answer tool_choice in plain text, json_schema answers)."""
    if message.additional_kwargs.get("refusal"):
        return None, "Refusal"
    calls = [c for c in message.tool_calls if c["name"] == schema.__name__]
    try:
        if calls:
            return schema.model_validate(calls[0]["args"]), None
        content = message.content if isinstance(message.content, str) else ""
        if content.strip():
            return schema.model_validate_json(_strip_fence(content)), None
    except ValidationError:
        return None, "ValidationError"
    return None, "InvalidToolCall" if message.invalid_tool_calls else "NoStructuredAnswer"


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _correlation_id(given: str | None) -> str | None:
    if given:
        return given
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


class LLMClient:
    """Calls models for named tasks under the deployment's limits, metering every call."""

    def __init__(
        self, settings: LLMSettings, meter: Meter, *, limits: ConcurrencyLimits | None = None
    ) -> None:
        self.settings = settings
        self.meter = meter
        self.limits = limits or ConcurrencyLimits(settings.concurrency)
        self._models: dict[str, tuple[TaskModel, BaseChatModel]] = {}
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        """Close the HTTP connections (the client is unusable afterwards)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def enabled(self) -> bool:
        return self.settings.provider is not LLMProvider.NONE

    def task_model(self, task: str) -> TaskModel:
        return self._model(task)[0]

    def _model(self, task: str) -> tuple[TaskModel, BaseChatModel]:
        if not self.enabled:
            raise LLMDisabledError("the LLM provider is 'none' (rules only)")
        if task not in self._models:
            spec = resolve_task(self.settings, task)
            if self._http is None:
                # One pool per client; the per-request timeout is the SDK's, set per task.
                self._http = httpx.AsyncClient(
                    limits=httpx.Limits(
                        max_connections=self.settings.concurrency * 2,
                        max_keepalive_connections=self.settings.concurrency,
                    )
                )
            self._models[task] = (
                spec,
                build_chat_model(self.settings, spec, http_client=self._http),
            )
        return self._models[task]

    # ------------------------------------------------------------------ public

    async def structured(
        self,
        schema: type[S],
        prompt: Prompt,
        variables: Mapping[str, str],
        *,
        task: str,
        tenant_id: str,
        correlation_id: str | None = None,
    ) -> LLMAnswer[S]:
        """An answer validated against ``schema``.

        Raises LLMMalformedOutputError (still malformed after ``malformed_retries`` re-asks),
        LLMOutputLimitError (cut at the limit, or usage above it), LLMUnavailableError,
        LLMRequestError. Never returns a partial answer.
        """
        spec, chat = self._model(task)
        runnable = _structured_runnable(chat, schema, spec.structured_method)
        messages: list[BaseMessage] = prompt.render(**variables)
        correlation = _correlation_id(correlation_id)
        calls: list[LLMCallRecord] = []
        for ask in range(self.settings.malformed_retries + 1):
            exchange = await self._exchange(
                runnable, messages, spec, prompt, tenant_id, correlation, calls
            )
            raw: AIMessage = exchange.result
            usage = usage_of(raw)
            problem = self._limit_problem(raw, usage, spec)
            if problem is not None:
                calls.append(
                    await self._meter(
                        spec,
                        prompt,
                        usage,
                        exchange,
                        problem,
                        tenant_id,
                        correlation,
                        over_limit=problem is CallOutcome.OVER_LIMIT,
                    )
                )
                raise LLMOutputLimitError(self._limit_detail(problem, spec))
            parsed, error_type = parse_structured(raw, schema)
            if parsed is not None:
                calls.append(
                    await self._meter(
                        spec, prompt, usage, exchange, CallOutcome.OK, tenant_id, correlation
                    )
                )
                return LLMAnswer(
                    value=parsed, model=spec.model, prompt=prompt.ref, calls=tuple(calls)
                )
            if usage.output >= spec.max_output_tokens:
                # Cut at the limit (some servers still say finish_reason=tool_calls): asking
                # again would be cut again.
                calls.append(
                    await self._meter(
                        spec,
                        prompt,
                        usage,
                        exchange,
                        CallOutcome.TRUNCATED,
                        tenant_id,
                        correlation,
                        error_type=error_type,
                    )
                )
                raise LLMOutputLimitError(self._limit_detail(CallOutcome.TRUNCATED, spec))
            calls.append(
                await self._meter(
                    spec,
                    prompt,
                    usage,
                    exchange,
                    CallOutcome.MALFORMED,
                    tenant_id,
                    correlation,
                    error_type=error_type,
                )
            )
            log.warning(
                "llm.answer.malformed",
                task=task,
                prompt=prompt.ref,
                model=spec.model,
                ask=ask + 1,
                error_type=error_type,
            )
            if ask == 0:
                from langchain_core.messages import HumanMessage

                messages = [*messages, HumanMessage(_REASK)]
        raise LLMMalformedOutputError(
            f"the model's answer did not fit the schema after {len(calls)} tries"
        )

    async def text(
        self,
        prompt: Prompt,
        variables: Mapping[str, str],
        *,
        task: str,
        tenant_id: str,
        correlation_id: str | None = None,
    ) -> LLMAnswer[str]:
        """A plain-text answer. An answer cut at the limit is returned with
        ``truncated=True``; usage above the limit raises LLMOutputLimitError."""
        spec, chat = self._model(task)
        correlation = _correlation_id(correlation_id)
        calls: list[LLMCallRecord] = []
        exchange = await self._exchange(
            chat, prompt.render(**variables), spec, prompt, tenant_id, correlation, calls
        )
        message: AIMessage = exchange.result
        usage = usage_of(message)
        problem = self._limit_problem(message, usage, spec)
        if problem is CallOutcome.OVER_LIMIT:
            await self._meter(
                spec, prompt, usage, exchange, problem, tenant_id, correlation, over_limit=True
            )
            raise LLMOutputLimitError(self._limit_detail(problem, spec))
        outcome = problem or CallOutcome.OK
        calls.append(
            await self._meter(spec, prompt, usage, exchange, outcome, tenant_id, correlation)
        )
        return LLMAnswer(
            value=_text_of(message.content),
            model=spec.model,
            prompt=prompt.ref,
            calls=tuple(calls),
            truncated=problem is CallOutcome.TRUNCATED,
        )

    async def tool_step(
        self,
        prompt: Prompt,
        messages: Sequence[BaseMessage],
        tools: Sequence[dict[str, Any]],
        *,
        task: str,
        tenant_id: str,
        correlation_id: str | None = None,
        tool_choice: str = "auto",
        on_text: Callable[[str], None] | None = None,
    ) -> LLMAnswer[AIMessage]:
        """One step of a tool-calling conversation: the model's message, with its tool calls
        (OpenAI function tools; ``tool_choice`` "auto" lets the model choose, a tool's name
        forces that tool). ``messages`` are already rendered (the
        caller delimits untrusted content); the call is metered under ``prompt``. A message
        cut at the output limit is returned with ``truncated=True``; usage above the limit
        raises LLMOutputLimitError.

        With ``on_text`` the reply is streamed: each fragment of its text is passed to
        ``on_text`` as it arrives (tool-call fragments are only gathered), and the message
        returned is the whole reply, checked and metered as an unstreamed one. A failure is
        retried only while no text has been passed on, so that no fragment is given twice;
        after that it raises as any failed call does. Usage comes from the stream's usage
        chunk (``stream_usage``); a server that sends none is metered with the number of
        chunks as its output tokens and no input tokens (logged as ``llm.usage.missing``)."""
        spec, chat = self._model(task)
        runnable = chat.bind_tools(list(tools), tool_choice=tool_choice) if tools else chat
        correlation = _correlation_id(correlation_id)
        calls: list[LLMCallRecord] = []
        exchange = await self._exchange(
            runnable, messages, spec, prompt, tenant_id, correlation, calls, on_text=on_text
        )
        message: AIMessage = exchange.result
        usage = usage_of(message)
        if on_text is not None and message.usage_metadata is None:
            log.warning("llm.usage.missing", task=spec.task, model=spec.model)
            usage = Usage(output=exchange.fragments)
        problem = self._limit_problem(message, usage, spec)
        if problem is CallOutcome.OVER_LIMIT:
            await self._meter(
                spec, prompt, usage, exchange, problem, tenant_id, correlation, over_limit=True
            )
            raise LLMOutputLimitError(self._limit_detail(problem, spec))
        calls.append(
            await self._meter(
                spec, prompt, usage, exchange, problem or CallOutcome.OK, tenant_id, correlation
            )
        )
        return LLMAnswer(
            value=message,
            model=spec.model,
            prompt=prompt.ref,
            calls=tuple(calls),
            truncated=problem is CallOutcome.TRUNCATED,
        )

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _limit_problem(raw: Any, usage: Usage, spec: TaskModel) -> CallOutcome | None:
        if usage.output > spec.max_output_tokens:
            return CallOutcome.OVER_LIMIT
        metadata = getattr(raw, "response_metadata", None) or {}
        if metadata.get("finish_reason") == "length":
            return CallOutcome.TRUNCATED
        return None

    @staticmethod
    def _limit_detail(problem: CallOutcome, spec: TaskModel) -> str:
        if problem is CallOutcome.OVER_LIMIT:
            return (
                f"the provider ignored the output limit of {spec.max_output_tokens} "
                "tokens; the answer was discarded"
            )
        return f"the answer was cut at the output limit of {spec.max_output_tokens} tokens"

    async def _exchange(
        self,
        runnable: Any,
        messages: Sequence[BaseMessage],
        spec: TaskModel,
        prompt: Prompt,
        tenant_id: str,
        correlation: str | None,
        calls: list[LLMCallRecord],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> _Exchange:
        """Invoke (or stream, with ``on_text``) with the concurrency slot, per-attempt
        timeout and retries. Failures are metered here and raised as typed errors."""
        import openai

        started = time.perf_counter()
        attempts = 0
        fragments = 0
        text_shown = False

        async def stream() -> AIMessage:
            """The streamed reply, its chunks added up into one message."""
            from langchain_core.messages import AIMessage, message_chunk_to_message

            nonlocal fragments, text_shown
            assert on_text is not None
            whole: Any = None
            async for chunk in runnable.astream(list(messages), stream_usage=True):
                whole = chunk if whole is None else whole + chunk
                text = _text_of(chunk.content)
                if text or chunk.tool_call_chunks:
                    fragments += 1
                if text:
                    text_shown = True
                    on_text(text)
            if whole is None:
                return AIMessage(content="")
            message = message_chunk_to_message(whole)
            assert isinstance(message, AIMessage)
            return message

        def retriable(exc: BaseException) -> bool:
            # Once text has been shown, another attempt would show it again.
            return not text_shown and is_retriable(exc)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "llm.call.retry",
                task=spec.task,
                model=spec.model,
                attempt=state.attempt_number,
                error_type=type(exc).__name__,
                status=getattr(exc, "status_code", None),
                wait_s=round(state.upcoming_sleep, 3),
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=wait_retry_after(self.settings.retry_initial_s, self.settings.retry_max_s),
            retry=retry_if_exception(retriable),
            reraise=True,
            before_sleep=before_sleep,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    fragments = 0
                    async with self.limits.slot(spec.endpoint), asyncio.timeout(spec.timeout_s):
                        if on_text is None:
                            result = await runnable.ainvoke(list(messages))
                        else:
                            result = await stream()
        except openai.LengthFinishReasonError as exc:
            # The SDK's own parse refuses a cut answer; its usage is still on the completion.
            exchange = _Exchange(None, attempts, (time.perf_counter() - started) * 1000)
            usage = _usage_of_completion(exc.completion)
            over = usage.output > spec.max_output_tokens
            outcome = CallOutcome.OVER_LIMIT if over else CallOutcome.TRUNCATED
            calls.append(
                await self._meter(
                    spec, prompt, usage, exchange, outcome, tenant_id, correlation, over_limit=over
                )
            )
            raise LLMOutputLimitError(self._limit_detail(outcome, spec)) from None
        except Exception as exc:
            exchange = _Exchange(None, attempts, (time.perf_counter() - started) * 1000)
            error: LLMError
            if text_shown and is_retriable(exc):
                outcome, error = (
                    CallOutcome.UNAVAILABLE,
                    LLMUnavailableError(
                        "the model's answer broke off while it was streaming",
                        error_type=type(exc).__name__,
                    ),
                )
            elif is_retriable(exc):
                outcome, error = (
                    CallOutcome.UNAVAILABLE,
                    LLMUnavailableError(
                        f"the model provider did not answer after {attempts} attempt(s)",
                        error_type=type(exc).__name__,
                    ),
                )
            elif isinstance(exc, openai.APIStatusError):
                outcome, error = (
                    CallOutcome.REFUSED,
                    LLMRequestError(
                        f"the model provider refused the request (HTTP {exc.status_code})"
                    ),
                )
            elif isinstance(exc, openai.OpenAIError):
                outcome, error = (
                    CallOutcome.REFUSED,
                    LLMRequestError(f"the model call failed ({type(exc).__name__})"),
                )
            else:
                outcome, error = (
                    CallOutcome.ERROR,
                    LLMError(f"the model call failed ({type(exc).__name__})"),
                )
            calls.append(
                await self._meter(
                    spec,
                    prompt,
                    Usage(),
                    exchange,
                    outcome,
                    tenant_id,
                    correlation,
                    error_type=type(exc).__name__,
                )
            )
            log.warning(
                "llm.call.failed",
                task=spec.task,
                model=spec.model,
                attempts=attempts,
                outcome=outcome.value,
                error_type=type(exc).__name__,
            )
            raise error from None
        return _Exchange(result, attempts, (time.perf_counter() - started) * 1000, fragments)

    async def _meter(
        self,
        spec: TaskModel,
        prompt: Prompt,
        usage: Usage,
        exchange: _Exchange,
        outcome: CallOutcome,
        tenant_id: str,
        correlation: str | None,
        *,
        error_type: str | None = None,
        over_limit: bool = False,
    ) -> LLMCallRecord:
        cost = cost_usd(self.settings.prices, spec.model, usage)
        if cost is None and (usage.input or usage.output):
            log.warning("llm.price.missing", model=spec.model)
        record = LLMCallRecord(
            id=new_id(),
            tenant_id=tenant_id,
            occurred_at=utcnow(),
            correlation_id=correlation,
            provider=spec.provider.value,
            model=spec.model,
            task=spec.task,
            prompt_name=prompt.name,
            prompt_version=prompt.ref,
            usage=usage,
            latency_ms=exchange.latency_ms,
            cost_usd=cost or 0.0,
            attempts=exchange.attempts,
            outcome=outcome,
            error_type=error_type,
            over_limit=over_limit,
        )
        await self.meter.record(record)
        log.info(
            "llm.call",
            task=spec.task,
            model=spec.model,
            prompt=prompt.ref,
            outcome=outcome.value,
            input_tokens=usage.input,
            cached_tokens=usage.cached,
            output_tokens=usage.output,
            latency_ms=round(exchange.latency_ms, 1),
            cost_usd=record.cost_usd,
            attempts=exchange.attempts,
        )
        return record
