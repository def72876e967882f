"""Provider limits: concurrency slots, retry policy honouring Retry-After, output limits."""

from __future__ import annotations

import asyncio
import email.utils
import time
from datetime import UTC
from typing import Any

import httpx
from tenacity import RetryCallState
from tenacity.wait import wait_base


class ConcurrencyLimits:
    """At most ``limit`` requests in flight per provider endpoint.

    Semaphores are made on first use, in the running loop; an instance belongs to one event
    loop (one per :class:`~assistant.llm.client.LLMClient`).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots: dict[str, asyncio.Semaphore] = {}

    def slot(self, endpoint: str) -> asyncio.Semaphore:
        semaphore = self._slots.get(endpoint)
        if semaphore is None:
            semaphore = self._slots[endpoint] = asyncio.Semaphore(self.limit)
        return semaphore


def is_retriable(exc: BaseException) -> bool:
    """429, 408/409, 5xx, timeouts and connection errors are worth another attempt."""
    import openai  # loaded with the first model call, not at start-up

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError | TimeoutError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, httpx.TransportError)


def retry_after_seconds(exc: BaseException | None, *, now: float | None = None) -> float | None:
    """What the provider asked us to wait: ``retry-after-ms``, then ``Retry-After`` (seconds
    or an HTTP date). None when it said nothing usable."""
    response: Any = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:  # RFC 7231 dates are GMT
        parsed = parsed.replace(tzinfo=UTC)
    return max(parsed.timestamp() - (now if now is not None else time.time()), 0.0)


class wait_retry_after(wait_base):  # noqa: N801  (tenacity's naming)
    """Exponential backoff from ``initial``, capped at ``maximum``. The provider's Retry-After,
    when it sends one, replaces the backoff (capped too, so a hostile header cannot park a
    worker)."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.initial * 2 ** max(retry_state.attempt_number - 1, 0)
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None and outcome.failed else None
        asked = retry_after_seconds(exc)
        wait = backoff if asked is None else max(asked, 0.0)
        return min(wait, self.maximum)
