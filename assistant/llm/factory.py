"""Chat models through LangChain, one per task: openai, azure_openai, openai_compatible.

SDK retries are off (``max_retries=0``): :class:`~assistant.llm.client.LLMClient` retries
itself, so that Retry-After, attempts and latency are measured in one place. The output
limit is sent in the field each provider honours (``max_tokens`` for OpenAI-compatible
servers such as llama.cpp, which ignore ``max_completion_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpx
from pydantic import SecretStr

from assistant.core.errors import ConfigurationError
from assistant.core.settings import LLMProvider, LLMSettings
from assistant.llm.errors import LLMDisabledError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

#: openai_compatible servers often need no key, but the SDK insists on one.
_NO_KEY = "not-needed"


@dataclass(frozen=True)
class TaskModel:
    """Everything about the model a task uses, resolved from the settings."""

    task: str
    provider: LLMProvider
    model: str
    endpoint: str
    max_output_tokens: int
    temperature: float
    token_param: Literal["max_tokens", "max_completion_tokens"]
    structured_method: Literal["function_calling", "json_schema"]
    timeout_s: float


def resolve_task(settings: LLMSettings, task: str) -> TaskModel:
    """The task's model, limits and request style."""
    if settings.provider is LLMProvider.NONE:
        raise LLMDisabledError("the LLM provider is 'none' (rules only)")
    own = settings.for_task(task)
    compatible = settings.provider is LLMProvider.OPENAI_COMPATIBLE
    token_param: Literal["max_tokens", "max_completion_tokens"]
    if settings.output_token_param == "auto":  # noqa: S105
        token_param = "max_tokens" if compatible else "max_completion_tokens"
    else:
        token_param = settings.output_token_param
    method: Literal["function_calling", "json_schema"]
    if settings.structured_output == "auto":
        method = "function_calling" if compatible else "json_schema"
    else:
        method = settings.structured_output
    endpoint = {
        LLMProvider.OPENAI: settings.base_url or "https://api.openai.com/v1",
        LLMProvider.AZURE_OPENAI: settings.azure_endpoint or "",
        LLMProvider.OPENAI_COMPATIBLE: settings.base_url or "",
    }[settings.provider]
    return TaskModel(
        task=task,
        provider=settings.provider,
        model=own.model or settings.model,
        endpoint=f"{settings.provider.value}:{endpoint}",
        max_output_tokens=own.max_output_tokens or settings.max_output_tokens,
        temperature=settings.temperature if own.temperature is None else own.temperature,
        token_param=token_param,
        structured_method=method,
        timeout_s=settings.timeout_s,
    )


def configuration_problems(settings: LLMSettings) -> list[str]:
    """What stops the provider from working, all at once (empty when fine)."""
    problems: list[str] = []
    if settings.provider is LLMProvider.OPENAI_COMPATIBLE and not settings.base_url:
        problems.append("llm.base_url: required for provider openai_compatible")
    if settings.provider is LLMProvider.AZURE_OPENAI:
        if not settings.azure_endpoint:
            problems.append("llm.azure_endpoint: required for provider azure_openai")
        if not settings.api_version:
            problems.append("llm.api_version: required for provider azure_openai")
    if (
        settings.provider in (LLMProvider.OPENAI, LLMProvider.AZURE_OPENAI)
        and settings.api_key is None
    ):
        problems.append(f"llm.api_key: required for provider {settings.provider.value}")
    return problems


def build_chat_model(
    settings: LLMSettings, task: TaskModel, *, http_client: httpx.AsyncClient | None = None
) -> BaseChatModel:
    """A LangChain chat model for ``task``; no network I/O happens here.

    Pass the owner's ``http_client``: LangChain's default one is cached per process and
    bound to the first event loop that used it."""
    problems = configuration_problems(settings)
    if problems:
        raise ConfigurationError("; ".join(problems), problems=problems)
    key = settings.api_key or SecretStr(_NO_KEY)
    # The limit travels in extra_body: ChatOpenAI would rename max_tokens to
    # max_completion_tokens, which OpenAI-compatible servers ignore.
    limit = {task.token_param: task.max_output_tokens}
    if settings.provider is LLMProvider.AZURE_OPENAI:
        from langchain_openai import AzureChatOpenAI

        return AzureChatOpenAI(
            azure_endpoint=settings.azure_endpoint,
            api_version=settings.api_version,
            azure_deployment=task.model,
            model=task.model,
            api_key=key,
            timeout=task.timeout_s,
            max_retries=0,
            temperature=task.temperature,
            extra_body=limit,
            http_async_client=http_client,
        )
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=task.model,
        api_key=key,
        base_url=settings.base_url,
        timeout=task.timeout_s,
        max_retries=0,
        temperature=task.temperature,
        extra_body=limit,
        http_async_client=http_client,
    )
