"""LLMClient against the scripted OpenAI-compatible server, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from assistant.core.settings import LLMSettings
from assistant.llm import (
    CallOutcome,
    LLMClient,
    LLMDisabledError,
    LLMMalformedOutputError,
    LLMOutputLimitError,
    LLMRequestError,
    LLMUnavailableError,
    MemoryMeter,
    load_prompt,
)
from assistant.llm.metering import Usage
from tests.fakes.openai_server import Answer, FakeOpenAI
from tests.unit.llm.conftest import fake_llm

PROMPT = load_prompt("triage@1")
VARS = {"context": "Executive: dana@northwind.example", "email": "Subject: hello\n\nhi"}


class Verdict(BaseModel):
    """A tiny structured answer."""

    label: str
    score: int


def client(settings: LLMSettings) -> tuple[LLMClient, MemoryMeter]:
    meter = MemoryMeter()
    return LLMClient(settings, meter), meter


async def ask(llm: LLMClient) -> Verdict:
    answer = await llm.structured(
        Verdict, PROMPT, VARS, task="triage", tenant_id="t1", correlation_id="corr-1"
    )
    return answer.value


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_structured_answer_and_usage(openai_server: FakeOpenAI, method: str) -> None:
    llm, meter = client(fake_llm(openai_server, structured_output=method))
    openai_server.script(
        Answer(
            arguments={"label": "ok", "score": 3},
            prompt_tokens=1200,
            cached_tokens=1000,
            completion_tokens=17,
        )
    )
    assert await ask(llm) == Verdict(label="ok", score=3)
    body = openai_server.last
    if method == "function_calling":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Verdict"}}
        assert body["tools"][0]["function"]["parameters"]["required"] == ["label", "score"]
    else:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
    [call] = meter.calls
    assert (call.usage.input, call.usage.cached, call.usage.output) == (1200, 1000, 17)
    assert call.outcome is CallOutcome.OK and call.attempts == 1
    assert (call.provider, call.model, call.task) == ("openai_compatible", "fake-model", "triage")
    assert (call.prompt_name, call.prompt_version) == ("triage", "triage@1")
    assert call.correlation_id == "corr-1" and call.tenant_id == "t1"
    # 200 uncached + 1000 cached at half price + 17 output, per 1M tokens
    assert call.cost_usd == pytest.approx((200 * 1.0 + 1000 * 0.5 + 17 * 2.0) / 1e6)


async def test_openai_compatible_sends_max_tokens(openai_server: FakeOpenAI) -> None:
    llm, _ = client(fake_llm(openai_server, max_output_tokens=300))
    openai_server.script(Answer(arguments={"label": "a", "score": 1}))
    await ask(llm)
    assert openai_server.last["max_tokens"] == 300
    assert "max_completion_tokens" not in openai_server.last


async def test_openai_sends_max_completion_tokens(openai_server: FakeOpenAI) -> None:
    settings = LLMSettings(
        provider="openai",
        api_key="sk-test",
        base_url=f"{openai_server.base_url}/v1",
        max_output_tokens=250,
    )
    llm, _ = client(settings)
    openai_server.script(Answer(arguments={"label": "a", "score": 1}))
    await ask(llm)
    assert openai_server.last["max_completion_tokens"] == 250
    assert "max_tokens" not in openai_server.last
    assert "response_format" in openai_server.last  # auto: json_schema on OpenAI
    assert openai_server.headers[-1]["authorization"] == "Bearer sk-test"


async def test_azure_deployment_url_and_limit(openai_server: FakeOpenAI) -> None:
    settings = LLMSettings(
        provider="azure_openai",
        api_key="azure-key",
        azure_endpoint=openai_server.base_url,
        api_version="2024-10-21",
        model="my-deployment",
        max_output_tokens=111,
    )
    llm, meter = client(settings)
    openai_server.script(Answer(arguments={"label": "a", "score": 1}))
    await ask(llm)
    assert openai_server.paths[-1] == "/openai/deployments/my-deployment/chat/completions"
    assert openai_server.headers[-1]["api-key"] == "azure-key"
    assert openai_server.last["max_completion_tokens"] == 111
    assert meter.calls[0].provider == "azure_openai"


async def test_model_per_task(openai_server: FakeOpenAI) -> None:
    settings = fake_llm(
        openai_server,
        tasks={
            "triage": {"model": "small-model", "max_output_tokens": 64},
            "drafting": {"model": "big-model"},
        },
    )
    llm, meter = client(settings)
    openai_server.script(Answer(arguments={"label": "a", "score": 1}), Answer(content="Dear"))
    await ask(llm)
    assert (openai_server.last["model"], openai_server.last["max_tokens"]) == ("small-model", 64)
    drafted = await llm.text(PROMPT, VARS, task="drafting", tenant_id="t1")
    assert drafted.value == "Dear" and not drafted.truncated
    assert (openai_server.last["model"], openai_server.last["max_tokens"]) == ("big-model", 1024)
    assert [c.task for c in meter.calls] == ["triage", "drafting"]


async def test_429_honours_retry_after_then_succeeds(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(
        Answer.rate_limited("0"),
        Answer.rate_limited("0"),
        Answer(arguments={"label": "late", "score": 2}),
    )
    assert (await ask(llm)).label == "late"
    assert len(openai_server.requests) == 3
    [call] = meter.calls
    assert call.attempts == 3 and call.outcome is CallOutcome.OK


async def test_500_until_retries_run_out(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=2))
    openai_server.script(*[Answer.server_error()] * 3)
    with pytest.raises(LLMUnavailableError):
        await ask(llm)
    assert len(openai_server.requests) == 3
    [call] = meter.calls
    assert call.outcome is CallOutcome.UNAVAILABLE and call.attempts == 3
    assert call.error_type in {"InternalServerError", "OpenAIAPIError"}


async def test_timeout_is_retried_then_reported(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, timeout_s=0.3, max_retries=1))
    openai_server.script(
        Answer(arguments={"label": "slow", "score": 1}, delay_s=3),
        Answer(arguments={"label": "slow", "score": 1}, delay_s=3),
    )
    with pytest.raises(LLMUnavailableError):
        await ask(llm)
    assert meter.calls[0].outcome is CallOutcome.UNAVAILABLE
    assert meter.calls[0].attempts == 2


async def test_timeout_then_success(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, timeout_s=0.3, max_retries=1))
    openai_server.script(
        Answer(arguments={"label": "x", "score": 1}, delay_s=3),
        Answer(arguments={"label": "fast", "score": 1}),
    )
    assert (await ask(llm)).label == "fast"
    assert meter.calls[0].attempts == 2


async def test_client_error_is_not_retried(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(Answer(status=401, error_message="Incorrect API key sk-secret"))
    with pytest.raises(LLMRequestError) as caught:
        await ask(llm)
    assert "sk-secret" not in str(caught.value.to_body())
    assert len(openai_server.requests) == 1
    assert meter.calls[0].outcome is CallOutcome.REFUSED


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_malformed_answer_is_asked_again(openai_server: FakeOpenAI, method: str) -> None:
    llm, meter = client(fake_llm(openai_server, structured_output=method))
    openai_server.script(
        Answer(arguments='{"label": "cut", "sco'), Answer(arguments={"label": "fixed", "score": 5})
    )
    assert (await ask(llm)).label == "fixed"
    assert [c.outcome for c in meter.calls] == [CallOutcome.MALFORMED, CallOutcome.OK]
    # The malformed answer's usage is still metered.
    assert meter.calls[0].usage.output == 20
    # The re-ask says what went wrong, without repeating the broken answer.
    assert "did not match the required schema" in openai_server.last["messages"][-1]["content"]


async def test_malformed_twice_raises_typed_error(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server))
    openai_server.script(
        Answer(arguments="not json at all"), Answer(arguments={"label": "missing score"})
    )
    with pytest.raises(LLMMalformedOutputError):
        await ask(llm)
    assert [c.outcome for c in meter.calls] == [CallOutcome.MALFORMED] * 2


async def test_usage_over_the_limit_is_rejected(openai_server: FakeOpenAI) -> None:
    # A server that ignored the limit: the answer is discarded and the call flagged.
    llm, meter = client(fake_llm(openai_server, max_output_tokens=50))
    openai_server.script(Answer(arguments={"label": "long", "score": 1}, completion_tokens=400))
    with pytest.raises(LLMOutputLimitError):
        await ask(llm)
    [call] = meter.calls
    assert call.outcome is CallOutcome.OVER_LIMIT and call.over_limit
    assert call.usage.output == 400


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
async def test_answer_cut_at_the_limit(openai_server: FakeOpenAI, method: str) -> None:
    llm, meter = client(fake_llm(openai_server, max_output_tokens=50, structured_output=method))
    openai_server.script(
        Answer(arguments='{"label": "trunc', completion_tokens=50, finish_reason="length")
    )
    with pytest.raises(LLMOutputLimitError):
        await ask(llm)
    assert meter.calls[0].outcome is CallOutcome.TRUNCATED
    assert meter.calls[0].usage.output == 50


async def test_tool_call_cut_at_the_limit_is_not_asked_again(openai_server: FakeOpenAI) -> None:
    # llama.cpp reports finish_reason=tool_calls even when the arguments were cut.
    llm, meter = client(fake_llm(openai_server, max_output_tokens=50))
    openai_server.script(Answer(arguments='{"label": "trunc', completion_tokens=50))
    with pytest.raises(LLMOutputLimitError):
        await ask(llm)
    assert [c.outcome for c in meter.calls] == [CallOutcome.TRUNCATED]
    assert len(openai_server.requests) == 1


async def test_text_cut_at_the_limit_is_flagged(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_output_tokens=5))
    openai_server.script(Answer(content="Dear Ms", completion_tokens=5, finish_reason="length"))
    answer = await llm.text(PROMPT, VARS, task="drafting", tenant_id="t1")
    assert answer.truncated and answer.value == "Dear Ms"
    assert meter.calls[0].outcome is CallOutcome.TRUNCATED


async def test_concurrency_limit_per_provider(openai_server: FakeOpenAI) -> None:
    llm, _ = client(fake_llm(openai_server, concurrency=2))
    openai_server.default = Answer(arguments={"label": "x", "score": 1}, delay_s=0.2)
    await asyncio.gather(*(ask(llm) for _ in range(6)))
    assert len(openai_server.requests) == 6
    assert openai_server.max_in_flight == 2


async def test_provider_none_refuses() -> None:
    llm, _ = client(LLMSettings())
    assert not llm.enabled
    with pytest.raises(LLMDisabledError):
        await ask(llm)


# ---------------------------------------------------------------- streamed tool steps

AGENT = load_prompt("agent@1")
SEARCH = {
    "type": "function",
    "function": {
        "name": "search_mail",
        "description": "Search the mailbox.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}


async def stream_step(llm: LLMClient, shown: list[str]) -> Any:
    from langchain_core.messages import HumanMessage

    return await llm.tool_step(
        AGENT,
        [HumanMessage("What did Raj write?")],
        [SEARCH],
        task="agent",
        tenant_id="t1",
        on_text=shown.append,
    )


async def test_streamed_step_relays_text_and_meters_the_usage_chunk(
    openai_server: FakeOpenAI,
) -> None:
    llm, meter = client(fake_llm(openai_server))
    openai_server.script(
        Answer(
            content="Raj wrote about the review.",
            prompt_tokens=300,
            cached_tokens=100,
            completion_tokens=11,
        )
    )
    shown: list[str] = []
    answer = await stream_step(llm, shown)
    assert len(shown) > 1 and "".join(shown) == "Raj wrote about the review."
    assert answer.value.content == "Raj wrote about the review." and not answer.value.tool_calls
    assert openai_server.last["stream"] is True
    assert openai_server.last["stream_options"] == {"include_usage": True}
    [call] = meter.calls
    assert call.usage == Usage(input=300, cached=100, output=11)
    assert call.cost_usd == pytest.approx((200 * 1.0 + 100 * 0.5 + 11 * 2.0) / 1_000_000)
    assert call.outcome is CallOutcome.OK and call.attempts == 1


async def test_streamed_tool_calls_are_gathered_not_shown(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server))
    openai_server.script(
        Answer(
            tool_calls=[
                ("search_mail", {"query": "Raj and the budget"}),
                ("search_mail", {"query": "board"}),
            ]
        )
    )
    shown: list[str] = []
    answer = await stream_step(llm, shown)
    assert shown == []
    assert [(c["name"], c["args"]) for c in answer.value.tool_calls] == [
        ("search_mail", {"query": "Raj and the budget"}),
        ("search_mail", {"query": "board"}),
    ]
    assert all(c["id"] for c in answer.value.tool_calls)
    assert meter.calls[0].usage.output == 20


async def test_429_before_the_stream_is_retried_without_repeating_text(
    openai_server: FakeOpenAI,
) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(
        Answer.rate_limited("0"), Answer.server_error(), Answer(content="At last.")
    )
    shown: list[str] = []
    await stream_step(llm, shown)
    assert "".join(shown) == "At last."
    [call] = meter.calls
    assert call.attempts == 3 and call.outcome is CallOutcome.OK


async def test_401_before_the_stream_is_a_request_error(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(Answer(status=401, error_message="Incorrect API key"))
    with pytest.raises(LLMRequestError):
        await stream_step(llm, [])
    assert len(openai_server.requests) == 1
    assert meter.calls[0].outcome is CallOutcome.REFUSED


async def test_a_stream_broken_after_text_is_not_retried(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(Answer(content="one two three four", break_after_chunks=3))
    shown: list[str] = []
    with pytest.raises(LLMUnavailableError) as caught:
        await stream_step(llm, shown)
    assert "broke off" in str(caught.value)
    assert "".join(shown) == "one two"
    assert len(openai_server.requests) == 1
    [call] = meter.calls
    assert call.outcome is CallOutcome.UNAVAILABLE and call.attempts == 1


async def test_a_stream_broken_before_any_text_is_retried(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_retries=3))
    openai_server.script(
        Answer(content="lost", break_after_chunks=1), Answer(content="Kept, once.")
    )
    shown: list[str] = []
    await stream_step(llm, shown)
    assert "".join(shown) == "Kept, once."
    assert meter.calls[0].attempts == 2 and meter.calls[0].outcome is CallOutcome.OK


async def test_a_timeout_after_text_is_not_retried(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, timeout_s=0.5, max_retries=2))
    openai_server.script(Answer(content="slow words keep coming", chunk_delay_s=0.2))
    shown: list[str] = []
    with pytest.raises(LLMUnavailableError):
        await stream_step(llm, shown)
    assert shown and "".join(shown) != "slow words keep coming"
    assert len(openai_server.requests) == 1
    assert meter.calls[0].outcome is CallOutcome.UNAVAILABLE


async def test_streamed_answer_at_and_over_the_limit(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server, max_output_tokens=5))
    openai_server.script(Answer(content="Dear Ms", completion_tokens=5, finish_reason="length"))
    answer = await stream_step(llm, [])
    assert answer.truncated and meter.calls[0].outcome is CallOutcome.TRUNCATED
    openai_server.script(Answer(content="Far too long", completion_tokens=9))
    with pytest.raises(LLMOutputLimitError):
        await stream_step(llm, [])
    assert meter.calls[-1].outcome is CallOutcome.OVER_LIMIT


async def test_a_stream_without_usage_counts_its_chunks(openai_server: FakeOpenAI) -> None:
    llm, meter = client(fake_llm(openai_server))
    openai_server.script(Answer(content="three short words", stream_usage=False))
    await stream_step(llm, [])
    assert meter.calls[0].usage == Usage(input=0, cached=0, output=3)


async def test_streamed_steps_keep_the_concurrency_limit(openai_server: FakeOpenAI) -> None:
    llm, _ = client(fake_llm(openai_server, concurrency=2))
    openai_server.default = Answer(content="a b c", chunk_delay_s=0.05)
    await asyncio.gather(*(stream_step(llm, []) for _ in range(5)))
    assert len(openai_server.requests) == 5
    assert openai_server.max_in_flight == 2
