"""The executive's web app: server-rendered rooms (inbox, review, meetings, history, chat) on the
service's own sign-in. ``install(app)`` adds them to the FastAPI app.

The rooms' routers (their modules, routes and forms: about a tenth of the service's start-up)
are included on the first request under ``/app``, before that request is routed, so it and
every later one find them; the API never needs them. What changes the whole app is installed
at once: the static files, the error pages (they answer for the API's errors too) and the
security headers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from assistant.auth.sessions import cookie_secure
from assistant.web.pages import (
    EXECUTIVE_COOKIE,
    PREFIX,
    PageDep,
    SecurityHeadersMiddleware,
    install_web_errors,
)

_switch = APIRouter(prefix=PREFIX, include_in_schema=False)


@_switch.post("/serve")
async def serve_executive(
    page: PageDep, executive: Annotated[str, Form(min_length=1, max_length=64)]
) -> RedirectResponse:
    """A delegate switches between the executives she acts for (only those)."""
    from assistant.core.errors import PermissionDeniedError
    from assistant.web.pages import back

    if executive not in {e.user_id for e in page.executives}:
        raise PermissionDeniedError("you serve no such executive")
    response = back(page, f"{PREFIX}/inbox")
    response.set_cookie(
        EXECUTIVE_COOKIE,
        executive,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(page.services.settings),
        path=PREFIX,
    )
    return response


def include_rooms(app: FastAPI) -> None:
    """Add the rooms' routes to ``app`` (after every route it has: none of theirs overlaps)."""
    from assistant.web import (
        admin,
        auditor,
        chat,
        delegates,
        history,
        inbox,
        live,
        meetings,
        people,
        review,
    )

    for router in (
        inbox.router,
        review.router,
        meetings.router,
        history.router,
        live.router,
        chat.router,
        delegates.router,
    ):
        app.include_router(router)
    # The admin's and the auditor's rooms (tenant-wide; they serve no executive).
    app.include_router(admin.router)
    app.include_router(people.router)
    app.include_router(auditor.router)
    app.include_router(_switch)


class RoomsOnFirstVisit:
    """Includes the rooms into the app on the first request under ``/app``, before routing.

    The import runs synchronously on the event loop, so requests arriving together wait for
    it rather than race it; later requests pay one comparison.
    """

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.included = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.included
            and scope["type"] == "http"
            and scope.get("path", "").startswith(PREFIX)
        ):
            include_rooms(self.fastapi_app)
            self.included = True
        await self.app(scope, receive, send)


async def site_root() -> RedirectResponse:
    """``/`` is the web app: someone who types the service's address lands in her room
    (``/app`` sends each person to hers, or to sign-in) instead of on a 404."""
    return RedirectResponse(PREFIX, status_code=307)


def install(app: FastAPI) -> None:
    """Pages, their assets (from this package) and their error pages and headers."""
    app.add_api_route("/", site_root, methods=["GET"], include_in_schema=False)
    app.mount(
        f"{PREFIX}/static",
        StaticFiles(packages=[("assistant.web", "static")]),
        name="web-static",
    )
    app.add_middleware(RoomsOnFirstVisit, fastapi_app=app)
    app.add_middleware(SecurityHeadersMiddleware)
    install_web_errors(app)
