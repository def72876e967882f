"""ASGI middleware: correlation ids, request size limits and Prometheus request metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.core.ids import new_id

log = structlog.stdlib.get_logger(__name__)

CORRELATION_HEADER = "x-correlation-id"
_ACCEPTED_HEADERS = (b"x-correlation-id", b"x-request-id")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CorrelationIdMiddleware:
    """Takes X-Correlation-ID (or X-Request-ID) when it is well formed, else makes one;
    binds it to every log line of the request and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = None
        for name, value in scope.get("headers", []):
            if name in _ACCEPTED_HEADERS:
                candidate = value.decode("latin-1")
                if _SAFE_ID.match(candidate):
                    correlation_id = candidate
                    break
        correlation_id = correlation_id or new_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.encode(), correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_header(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            # Handled here, not by Starlette's outermost handler: there the correlation id
            # is gone from both the log context and the response headers.
            log.exception("request.failed", path=scope.get("path"), error=type(exc).__name__)
            if started:
                raise
            await send_error(
                send_with_header,
                500,
                "InternalError",
                "an internal error occurred; quote the correlation id to the operators",
                correlation_id,
            )
        finally:
            structlog.contextvars.clear_contextvars()


async def send_error(
    send: Send, status: int, error: str, detail: str, correlation_id: str | None
) -> None:
    """Answer ``{"error", "detail", "correlation_id"}`` from middleware, outside the app."""
    body: dict[str, Any] = {"error": error, "detail": detail}
    if correlation_id:
        body["correlation_id"] = correlation_id
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# A JSON string (escapes included, possibly unterminated) or one bracket: strings are skipped
# so that brackets inside them do not count. The alternatives are disjoint: linear time.
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)
_JSON_TYPES = re.compile(r"^application/(?:[\w.+-]+\+)?json\b", re.I)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when arrays and objects in ``body`` nest deeper than ``limit`` (one linear pass).

    The standard parser recurses once per level in C and fails with RecursionError (a 500)
    somewhere past a few thousand; this answers before it is called.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        # Fewer openings than the limit (strings' brackets counted too): it cannot nest
        # deeper. Most bodies stop here, in C, instead of a Python loop over every string.
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


class _BodyTooLargeError(StarletteHTTPException):
    """Raised from ``receive``: an HTTP error, so that FastAPI's body and form readers pass
    it on (they turn other exceptions into a 400) and the app answers it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


class RequestLimitsMiddleware:
    """Caps the request line and headers, the body and the nesting of JSON bodies.

    Runs outside routing and authentication, so an oversized request is refused before any
    of it is parsed or any credential is looked at: 431 for headers, 413 for bodies (on the
    declared Content-Length at once, else as soon as the streamed body passes the limit),
    422 for JSON nested deeper than the limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, max_header_bytes: int, max_json_depth: int
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_headers = max_header_bytes
        self.max_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = scope.get("state", {}).get("correlation_id")
        headers = scope.get("headers", [])
        header_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        header_bytes += sum(len(name) + len(value) + 4 for name, value in headers)
        if header_bytes > self.max_headers:
            await self._refuse(send, scope, 431, "RequestHeaderFieldsTooLarge", correlation_id)
            return
        declared: int | None = None
        content_type = ""
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        if declared is not None and declared > self.max_body:
            await self._refuse(send, scope, 413, "PayloadTooLarge", correlation_id)
            return
        if _JSON_TYPES.match(content_type):
            await self._json(scope, receive, send, correlation_id)
            return
        received = 0
        response_started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLargeError(self.max_body)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLargeError:
            if response_started:
                raise
            await self._refuse(send, scope, 413, "PayloadTooLarge", correlation_id)

    async def _json(
        self, scope: Scope, receive: Receive, send: Send, correlation_id: str | None
    ) -> None:
        # JSON bodies are read whole here (bounded), checked once, then replayed to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(send, scope, 413, "PayloadTooLarge", correlation_id)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        if json_depth_exceeds(body, self.max_depth):
            await self._refuse(send, scope, 422, "JSONTooDeep", correlation_id)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, send: Send, scope: Scope, status: int, error: str, correlation_id: str | None
    ) -> None:
        details = {
            413: f"the request body exceeds {self.max_body} bytes",
            422: f"JSON nested deeper than {self.max_depth} levels",
            431: f"the request line and headers exceed {self.max_headers} bytes",
        }
        log.warning("request.refused", status=status, error=error, path=scope.get("path"))
        await send_error(send, status, error, details[status], correlation_id)


class RequestMetrics:
    """Request counters and latency histograms in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "assistant_http_requests_total",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "assistant_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class MetricsMiddleware:
    """Counts each request under its route template (never the raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            labels = (scope["method"], template, str(status["code"]))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)
