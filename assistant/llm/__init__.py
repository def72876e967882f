"""The LLM layer: chat models per task, limits, versioned prompts, metering."""

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
