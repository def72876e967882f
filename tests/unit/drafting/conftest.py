"""The scripted OpenAI-compatible server, for the drafting tests."""

from __future__ import annotations

from tests.fakes.openai_server import _openai_server, openai_server  # noqa: F401
