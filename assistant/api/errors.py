"""Exception handlers: every error answers ``{"error": ClassName, "detail": ...}``.

Unexpected exceptions become a 500 in :class:`assistant.core.middleware.CorrelationIdMiddleware`,
where the correlation id is still bound to the log line and the response headers.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.core.errors import AssistantError
from assistant.core.logging import redact_value

log = structlog.stdlib.get_logger(__name__)

_HTTP_ERROR_NAMES = {
    400: "BadRequest",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
}


def _correlation(request: Request) -> dict[str, Any]:
    cid = getattr(request.state, "correlation_id", None)
    return {"correlation_id": cid} if cid else {}


async def _assistant_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AssistantError)
    level = log.warning if exc.status_code < 500 else log.error
    level(
        "request.error",
        error=type(exc).__name__,
        detail=exc.detail,
        path=request.url.path,
        status=exc.status_code,
    )
    body = redact_value(exc.to_body())
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(
        body | _correlation(request), status_code=exc.status_code, headers=headers or None
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    log.info("request.invalid", path=request.url.path, errors=len(errors))
    return JSONResponse(
        {
            "error": "RequestValidationError",
            "detail": f"{len(errors)} problem(s) in the request",
            "errors": errors,
        }
        | _correlation(request),
        status_code=422,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    return JSONResponse(
        {"error": name, "detail": detail} | _correlation(request),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AssistantError, _assistant_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
