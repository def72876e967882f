"""The page shell shared by every room: sign-in check, the executive being served, CSRF,
templates, security headers and error pages."""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.api.deps import AuthDep, ServicesDep, SessionDep
from assistant.api.errors import audit_refusal
from assistant.auth.permissions import Permission, effective_permissions
from assistant.core.errors import AssistantError, AuthenticationError, PermissionDeniedError
from assistant.core.principal import Principal
from assistant.services import Services
from assistant.web.scope import Executive, choose, executives_for

if TYPE_CHECKING:
    from jinja2 import Environment

log = structlog.stdlib.get_logger(__name__)

PREFIX = "/app"
#: Which executive a delegate (or an executive who is also a delegate) is serving.
EXECUTIVE_COOKIE = "ea_executive"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

#: No inline script or style, nothing from another origin, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make form posts send Origin: null
    (b"x-frame-options", b"DENY"),
]


class CsrfRejectedError(PermissionDeniedError):
    """A form or request of the web app without this session's CSRF token."""


class SignInRequiredError(AuthenticationError):
    """No live web session: pages redirect to the sign-in form."""


# ---------------------------------------------------------------------------- templates


def _local_time(value: datetime | None, zone: str = "UTC", fmt: str = "%a %d %b %H:%M") -> str:
    if value is None:
        return ""
    try:
        return value.astimezone(ZoneInfo(zone)).strftime(fmt)
    except (KeyError, ValueError):
        return value.strftime(fmt) + " UTC"


def _when(value: str | datetime | None, fmt: str = "%a %d %b %H:%M") -> str:
    """An ISO time as written, in the zone it carries (previews give her local times)."""
    if value is None:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except ValueError:
        return str(value)
    return moment.strftime(fmt)


def _asset_version() -> str:
    """A digest of the static files: their URLs change with their content, so browsers may
    keep them for a day without ever running an old script against a new page."""
    digest = hashlib.sha256()
    for path in sorted(resources.files("assistant.web").joinpath("static").iterdir(), key=str):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def templates() -> Environment:
    """The pages' templates, made with the first page or error page (Jinja2 is not needed
    to start the service)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("assistant.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["asset_version"] = _asset_version()
    environment.filters["local"] = _local_time
    environment.filters["when"] = _when
    return environment


# ---------------------------------------------------------------------------- the page


def csrf_token(secret: str, session_cookie: str) -> str:
    """Bound to the session: a token is worthless with another session, and needs no storage."""
    mac = hmac.new(secret.encode(), b"web-csrf:" + session_cookie.encode(), hashlib.sha256)
    return mac.hexdigest()[:32]  # 128 bits: enough, and a page of 200 forms stays small


@dataclass
class Page:
    """A signed-in person on a page, the executive she is serving, and what she may do."""

    request: Request
    services: Services
    person: Principal
    executives: list[Executive]
    executive: Executive | None
    permissions: frozenset[Permission]
    csrf: str

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def person_can(self, permission: Permission) -> bool:
        """What the person may do herself, whoever she is serving (her own settings)."""
        return permission in effective_permissions(self.person)

    async def require(self, permission: Permission) -> Executive:
        """The executive served, when the person may do ``permission`` for her (403 otherwise,
        audited)."""
        if self.executive is None or permission not in self.executive.permissions:
            if self.services.auth is not None:
                await self.services.auth.audit_access_denied(
                    self.request, self.person, [permission.value]
                )
            raise PermissionDeniedError("you may not do this")
        return self.executive

    def acting(self, owner: str | None, permission: Permission) -> Principal:
        """Who acts when the person uses ``permission`` on data filed under ``owner``."""
        if self.executive is None:
            raise PermissionDeniedError("you serve no executive")
        return self.executive.acting(owner, permission)

    @property
    def timezone(self) -> str:
        policy_zone = getattr(self.request.app.state, "web_timezone", None)
        return str(policy_zone or "UTC")

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        partial = self.request.headers.get("x-partial") == "main"
        body = (
            templates()
            .get_template(template)
            .render(
                page=self,
                partial=partial,
                P=Permission,
                path=self.request.url.path,
                **context,
            )
        )
        return HTMLResponse(body, status_code=status_code)


async def get_page(
    request: Request, services: ServicesDep, auth: AuthDep, session: SessionDep
) -> Page:
    """The page's person from the web session cookie (no cookie: the sign-in page), with the
    CSRF check of every state-changing request."""
    cookie = request.cookies.get(auth.settings.auth.session_cookie)
    if not cookie:
        raise SignInRequiredError("sign in to continue")
    try:
        person = await auth.authenticate(request, session)
    except AuthenticationError:
        raise SignInRequiredError("the session has ended; sign in again") from None
    token = csrf_token(auth.settings.secret_key.get_secret_value(), cookie)
    if request.method not in {"GET", "HEAD"}:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not sent or not hmac.compare_digest(sent, token):
            await auth.audit_access_denied(request, person, ["csrf"])
            raise CsrfRejectedError("the form expired or came from another site; reload the page")
    executives = await executives_for(session, person, services.connectors)
    executive = choose(executives, request.cookies.get(EXECUTIVE_COOKIE))
    # What the navigation offers: a delegate serving an executive is that delegate only.
    permissions = effective_permissions(executive.principal if executive else person)
    request.state.principal = person
    return Page(
        request=request,
        services=services,
        person=person,
        executives=executives,
        executive=executive,
        permissions=permissions,
        csrf=token,
    )


PageDep = Annotated[Page, Depends(get_page)]


def back(page: Page, default: str, **notice: str) -> RedirectResponse:
    """After a form: back to the room (303, so a reload does not post twice)."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in notice.items())
    return RedirectResponse(f"{default}{'?' + query if query else ''}", status_code=303)


# ---------------------------------------------------------------------------- errors, headers


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "") and not request.headers.get(CSRF_HEADER)


def install_web_errors(app: FastAPI) -> None:
    """Errors on /app: the sign-in page for no session; an error page naming the typed error
    for browsers; ``{"error", "detail"}`` JSON for scripts (as the API answers)."""
    api_handler = app.exception_handlers[AssistantError]

    async def api_answer(request: Request, exc: Exception) -> Response:
        answer = api_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    async def handler(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await api_answer(request, exc)
        assert isinstance(exc, AssistantError)
        if isinstance(exc, AuthenticationError):
            if request.method in {"GET", "HEAD"} and _wants_html(request):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(
                    f"/auth/login?next={quote(target, safe='')}", status_code=303
                )
            if _wants_html(request):
                return RedirectResponse("/auth/login", status_code=303)
        if not _wants_html(request):
            return await api_answer(request, exc)
        if exc.audit_refusal:
            # A refusal made in a browser is audited like one made through the API.
            await audit_refusal(request, exc)
        log.info(
            "web.error",
            error=type(exc).__name__,
            detail=exc.detail,
            path=request.url.path,
            status=exc.status_code,
        )
        return error_page(request, type(exc).__name__, exc.detail, exc.status_code)

    app.add_exception_handler(AssistantError, handler)

    api_invalid = app.exception_handlers[RequestValidationError]

    async def invalid(request: Request, exc: Exception) -> Response:
        # A page's malformed query or form (a search longer than its limit, an old link)
        # answered a browser with raw JSON; browsers get the error page, scripts the JSON.
        if not (request.url.path.startswith(PREFIX) and _wants_html(request)):
            answer = api_invalid(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        assert isinstance(exc, RequestValidationError)
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'the request'}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        log.info("web.invalid", path=request.url.path, errors=len(problems))
        return error_page(request, "RequestValidationError", "; ".join(problems), 422)

    app.add_exception_handler(RequestValidationError, invalid)


class SecurityHeadersMiddleware:
    """A strict Content-Security-Policy and friends on every /app response; pages are not
    cached (they hold mail)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        static = path.startswith(f"{PREFIX}/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_SECURITY_HEADERS)
                headers.append(
                    (b"cache-control", b"public, max-age=86400" if static else b"no-store")
                )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def error_page(request: Request, error: str, detail: str, status: int) -> HTMLResponse:
    """The error page a browser gets: the typed error, its detail and the request's id."""
    body = (
        templates()
        .get_template("error.html")
        .render(
            page=None,
            partial=False,
            path=request.url.path,
            error=error,
            detail=detail,
            status=status,
            correlation_id=getattr(request.state, "correlation_id", None),
        )
    )
    return HTMLResponse(body, status_code=status)


def json_error(exc: AssistantError) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status_code)
