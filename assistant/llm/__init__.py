"""The LLM layer: chat models per task, limits, versioned prompts, metering.

The names below load with their module on first use (PEP 562): the model client and its
retry machinery are not needed to start the service (change control reads only the
prompts' directory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.core.lazy import lazy_exports

if TYPE_CHECKING:
    from assistant.llm.client import LLMAnswer, LLMClient
    from assistant.llm.errors import (
        LLMDisabledError,
        LLMError,
        LLMMalformedOutputError,
        LLMOutputError,
        LLMOutputLimitError,
        LLMRequestError,
        LLMUnavailableError,
    )
    from assistant.llm.factory import TaskModel, build_chat_model, resolve_task
    from assistant.llm.metering import (
        CallOutcome,
        DatabaseMeter,
        FanOutMeter,
        LLMCallRecord,
        MemoryMeter,
        Meter,
        Usage,
        cost_usd,
    )
    from assistant.llm.prompts import Prompt, delimit, load_prompt

_MODULE_OF = {
    "LLMAnswer": "client",
    "LLMClient": "client",
    "LLMDisabledError": "errors",
    "LLMError": "errors",
    "LLMMalformedOutputError": "errors",
    "LLMOutputError": "errors",
    "LLMOutputLimitError": "errors",
    "LLMRequestError": "errors",
    "LLMUnavailableError": "errors",
    "TaskModel": "factory",
    "build_chat_model": "factory",
    "resolve_task": "factory",
    "CallOutcome": "metering",
    "DatabaseMeter": "metering",
    "FanOutMeter": "metering",
    "LLMCallRecord": "metering",
    "MemoryMeter": "metering",
    "Meter": "metering",
    "Usage": "metering",
    "cost_usd": "metering",
    "Prompt": "prompts",
    "delimit": "prompts",
    "load_prompt": "prompts",
}

__all__ = [
    "CallOutcome",
    "DatabaseMeter",
    "FanOutMeter",
    "LLMAnswer",
    "LLMCallRecord",
    "LLMClient",
    "LLMDisabledError",
    "LLMError",
    "LLMMalformedOutputError",
    "LLMOutputError",
    "LLMOutputLimitError",
    "LLMRequestError",
    "LLMUnavailableError",
    "MemoryMeter",
    "Meter",
    "Prompt",
    "TaskModel",
    "Usage",
    "build_chat_model",
    "cost_usd",
    "delimit",
    "load_prompt",
    "resolve_task",
]

__getattr__ = lazy_exports(__name__, _MODULE_OF)
