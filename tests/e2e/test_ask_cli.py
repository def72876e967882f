"""End to end: `assistant ask` against the sandbox and the scripted OpenAI-compatible model."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.test_cli_e2e import ASSISTANT, REPO, _env
from tests.fakes.openai_server import Answer, FakeOpenAI, _openai_server, openai_server

__all__ = ["_openai_server", "openai_server"]  # fixtures


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ASSISTANT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ask_prints_tools_cards_and_the_answer(tmp_path: Path, openai_server: FakeOpenAI) -> None:
    env = _env(tmp_path)
    for args in (("db", "upgrade"), ("sandbox", "seed")):
        assert _run(env, *args).returncode == 0
    no_model = _run(env, "ask", "What is on today?")
    assert no_model.returncode == 2 and "ServiceUnavailableError" in no_model.stderr

    env.update(
        ASSISTANT_LLM__PROVIDER="openai_compatible",
        ASSISTANT_LLM__BASE_URL=f"{openai_server.base_url}/v1",
        ASSISTANT_LLM__MODEL="fake-model",
    )
    openai_server.script(
        Answer(tool_calls=[("list_events", {"days": 1})]),
        Answer(
            tool_calls=[
                (
                    "draft_email",
                    {
                        "to": ["jordan.ellis@northwind.example"],
                        "subject": "Today",
                        "body": "Please move my 3pm.",
                    },
                )
            ]
        ),
        Answer(content="Your day is full; I drafted a note to Jordan for your approval."),
    )
    result = _run(env, "ask", "What is on today? Ask Jordan to move my 3pm.")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tool list_events: ok" in result.stderr and "tool draft_email: ok" in result.stderr
    assert "card New draft: Today -> pending_review" in result.stdout
    assert "drafted a note to Jordan" in result.stdout
    assert "3 model call(s), 2 tool call(s)" in result.stderr
    # The executive is the sandbox mailbox's owner; the tool result was delimited.
    assert "dana.whitfield@northwind.example" in openai_server.requests[0]["messages"][0]["content"]
    tool = next(m for m in openai_server.requests[1]["messages"] if m["role"] == "tool")
    assert tool["content"].startswith("<untrusted_data")
