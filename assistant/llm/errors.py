"""Typed errors of the LLM layer. Details never carry prompts, answers or provider messages
(those can echo message content or key fragments)."""

from __future__ import annotations

from assistant.core.errors import AssistantError


class LLMError(AssistantError):
    """Base of every LLM failure."""

    status_code = 502


class LLMDisabledError(LLMError):
    """The provider is ``none``: nothing may call a model."""

    status_code = 503


class LLMUnavailableError(LLMError):
    """The provider could not answer: 429, 5xx, timeouts or connection errors after retries."""

    status_code = 503


class LLMRequestError(LLMError):
    """The provider refused the request (4xx other than 429): configuration or credentials."""


class LLMOutputError(LLMError):
    """The provider answered, but the answer cannot be used."""


class LLMMalformedOutputError(LLMOutputError):
    """The answer does not fit the requested schema, after the allowed re-asks."""


class LLMOutputLimitError(LLMOutputError):
    """The answer hit or broke the output-token limit (cut short, or usage over the limit)."""
