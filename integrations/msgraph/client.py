"""A small Microsoft Graph HTTP client shared by the mail and calendar connectors.

It adds the bearer token, retries 429/503 (and other transient failures) honouring
``Retry-After``, maps Graph errors onto :mod:`integrations.errors`, and follows
``@odata.nextLink``. Nothing in here knows about mail or calendars.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from integrations.errors import (
    ConnectorAuthError,
    ConnectorConflictError,
    ConnectorError,
    ConnectorNotFoundError,
    CursorExpiredError,
    FatalConnectorError,
    RetriableConnectorError,
)
from integrations.msgraph.auth import TokenProvider

if TYPE_CHECKING:
    import httpx

log = structlog.stdlib.get_logger(__name__)

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
_RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of a Graph error body; tolerant of non-JSON bodies."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))[:300]
    if isinstance(error, str):  # OAuth-style {"error": "...", "error_description": ...}
        return error, str(body.get("error_description", ""))[:300]
    return "", ""


def map_error(response: httpx.Response, *, connector: str) -> ConnectorError:
    """The typed error for a failed Graph response."""
    status = response.status_code
    code, message = _graph_error(response)
    detail = f"Graph {response.request.method} answered {status}"
    if code:
        detail += f" {code}"
    if message:
        detail += f": {message}"
    if status in _RETRIABLE_STATUS:
        return RetriableConnectorError(
            detail,
            connector=connector,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return ConnectorAuthError(detail, connector=connector)
    if status == 404:
        return ConnectorNotFoundError(detail, connector=connector)
    if status in (409, 412):
        return ConnectorConflictError(detail, connector=connector)
    if status == 410:  # delta tokens and sync states expire with 410 Gone
        return CursorExpiredError(detail, connector=connector)
    return FatalConnectorError(detail, connector=connector)


class GraphClient:
    """``httpx.AsyncClient`` wrapper for Graph: auth, retries, errors, paging.

    ``base_url`` is configurable so that tests point it at an emulator. ``requests``
    counts HTTP requests sent (retries included), which the benchmarks report.
    """

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        base_url: str = GRAPH_BASE_URL,
        http_client: httpx.AsyncClient | None = None,
        connector: str = "msgraph",
        max_attempts: int = 5,
        max_retry_wait_s: float = 120.0,
        timeout_s: float = 30.0,
        owns_http: bool | None = None,
    ) -> None:
        self._token_provider = token_provider
        self.base_url = base_url.rstrip("/")
        import httpx  # with the first Graph client, not with connector discovery

        self._http = http_client or httpx.AsyncClient(timeout=timeout_s)
        # A client passed in is the caller's to close, unless it says otherwise.
        self._owns_http = http_client is None if owns_http is None else owns_http
        self.connector = connector
        self._max_attempts = max_attempts
        self._max_retry_wait_s = max_retry_wait_s
        self._backoff = wait_exponential_jitter(multiplier=0.5, max=30.0)
        self.requests = 0

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("https://", "http://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetriableConnectorError) and error.retry_after is not None:
            return min(error.retry_after, self._max_retry_wait_s)
        return float(self._backoff(state))

    async def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        content: bytes | str | None,
    ) -> httpx.Response:
        import httpx

        token = await self._token_provider()
        all_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        all_headers.update(headers or {})
        self.requests += 1
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, url, params=params, json=json, headers=all_headers, content=content
            )
        except httpx.TimeoutException as exc:
            raise RetriableConnectorError(
                f"Graph {method} timed out ({type(exc).__name__})", connector=self.connector
            ) from None
        except httpx.TransportError as exc:
            raise RetriableConnectorError(
                f"Graph {method} failed ({type(exc).__name__})", connector=self.connector
            ) from None
        if response.status_code >= 400:
            error = map_error(response, connector=self.connector)
            log.info(
                "msgraph.request_failed",
                connector=self.connector,
                method=method,
                status=response.status_code,
                error=type(error).__name__,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            raise error
        return response

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
    ) -> httpx.Response:
        """Send one request, retrying transient failures; raise a typed error otherwise."""
        url = self.url(path_or_url)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetriableConnectorError),
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._send_once(
                    method, url, params=params, json=json, headers=headers, content=content
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_json(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        response = await self.request("GET", path_or_url, params=params, headers=headers)
        return _json(response)

    async def post_json(
        self,
        path_or_url: str,
        json: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return _json(await self.request("POST", path_or_url, json=json, headers=headers))

    async def patch_json(
        self,
        path_or_url: str,
        json: Any,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        return _json(await self.request("PATCH", path_or_url, json=json, headers=headers))

    async def delete(self, path_or_url: str, *, missing_ok: bool = False) -> None:
        try:
            await self.request("DELETE", path_or_url)
        except ConnectorNotFoundError:
            if not missing_ok:
                raise

    async def pages(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a collection, following ``@odata.nextLink`` (params go on page 1)."""
        url: str | None = path_or_url
        first = True
        while url:
            page = await self.get_json(url, params=params if first else None, headers=headers)
            first = False
            yield page
            next_link = page.get("@odata.nextLink")
            url = str(next_link) if next_link else None

    async def items(
        self,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a collection across pages."""
        async for page in self.pages(path_or_url, params=params, headers=headers):
            for item in page.get("value", []):
                yield item

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code == 204 or not response.content:
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {"value": body}
