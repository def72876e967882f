"""The scripted OpenAI-compatible server and LLM settings that point at it."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.core.settings import LLMSettings
from tests.fakes.openai_server import FakeOpenAI, _openai_server, openai_server  # noqa: F401


def fake_llm(fake: FakeOpenAI, **overrides: Any) -> LLMSettings:
    """openai_compatible settings against the fake server, with fast retries."""
    values: dict[str, Any] = {
        "provider": "openai_compatible",
        "base_url": f"{fake.base_url}/v1",
        "model": "fake-model",
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "timeout_s": 5.0,
        "prices": {"fake-model": {"input": 1.0, "cached_input": 0.5, "output": 2.0}},
    }
    values.update(overrides)
    return LLMSettings(**values)


@pytest.fixture
def llm_settings(openai_server: FakeOpenAI) -> LLMSettings:
    return fake_llm(openai_server)
