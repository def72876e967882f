"""Exception handlers: every error answers ``{"error": ClassName, "detail": ...}``.

Unexpected exceptions become a 500 in :class:`assistant.core.middleware.CorrelationIdMiddleware`,
where the correlation id is still bound to the log line and the response headers.
"""

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.core.errors import AssistantError, DatabaseUnavailableError
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
    if exc.audit_refusal:
        await audit_refusal(request, exc)
    body = redact_value(exc.to_body())
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(int(retry_after))
    return JSONResponse(
        body | _correlation(request), status_code=exc.status_code, headers=headers or None
    )


async def audit_refusal(request: Request, exc: AssistantError) -> None:
    """A governance refusal leaves an audit event even though the request's transaction
    rolls back: who tried what, on which route, and why it was refused."""
    from assistant.auth.audit import anonymous, audit_detached
    from governance.audit import AuditAction, Outcome

    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    principal = getattr(request.state, "principal", None) or anonymous(
        services.settings.auth.default_tenant,
        request.client.host if request.client else None,
    )
    await audit_detached(
        services.sessions,
        principal,
        AuditAction.GOVERNANCE_REFUSED,
        outcome=Outcome.DENIED,
        reason=exc.detail[:500],
        resource_type="route",
        resource_id=f"{request.method} {request.url.path}"[:200],
        payload={"error": type(exc).__name__, **{k: str(v)[:200] for k, v in exc.extra.items()}},
        correlation_id=getattr(request.state, "correlation_id", None),
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


def is_database_outage(exc: BaseException) -> bool:
    """A lost or unreachable database, as opposed to a bad statement or a constraint."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    # The pool's own timeout, and socket errors some drivers raise unwrapped on connect.
    return isinstance(exc, sa_exc.TimeoutError | ConnectionError)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_outage(exc):
        # Any other database error is a 500, answered (with its correlation id) by the
        # correlation middleware like every unhandled error.
        raise exc
    # Handled here (not re-raised to the server), so the keep-alive connection stays open.
    log.warning("request.database_unavailable", path=request.url.path, error=type(exc).__name__)
    return await _assistant_error(request, DatabaseUnavailableError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AssistantError, _assistant_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(ConnectionError, _database_error)
