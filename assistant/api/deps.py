"""Dependencies, as Annotated aliases: one transaction per request, committed here."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.permissions import DELEGABLE, Permission, effective_permissions
from assistant.auth.runtime import AuthRuntime
from assistant.core.db import commit, rollback
from assistant.core.errors import PermissionDeniedError, ServiceUnavailableError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from assistant.services import Services

# The dependencies below are coroutines although they do no I/O: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hand-off per dependency and request that cost
# more than the rest of a small request under load.
#
# They read the app's services from the request rather than depending on ServicesDep:
# FastAPI solves a dependency's own dependencies again wherever it is used, even when its
# value is cached for the request, and that walk was most of a small request's cost.


def app_services(request: Request) -> Services:
    """The app's services (for a hot route that reads them without a dependency)."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return app_services(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(request: Request) -> Settings:
    return app_services(request).settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's transaction: services flush, this commits (or rolls back on error).

    Function-scoped: the commit runs when the endpoint returns and before the response is
    sent, so a failed commit answers an error instead of a 201 for a row that is gone."""
    session = app_services(request).sessions()
    try:
        yield session
        if _touched(session):
            await commit(session)
    except BaseException:
        if _touched(session):
            await rollback(session)
        raise
    finally:
        if _touched(session):
            await session.close()


def _touched(session: AsyncSession) -> bool:
    """Whether the request used its session (a transaction, objects, callbacks). One it
    never touched (an authenticated read answered from the caches and the driver's own
    connection) has nothing to commit, roll back or close: each of those is a round
    through SQLAlchemy's greenlet bridge, a fifth of a small request's CPU."""
    sync = session.sync_session
    return bool(
        sync.in_transaction()
        or sync.new
        or sync.dirty
        or sync.deleted
        or sync.identity_map
        or sync.info
    )


#: scope="function": the transaction commits before the response is sent. With the default
#: ("request") FastAPI commits after sending it, and a browser that follows a 303 at once
#: (sign-in, every form of the web app) can read the state from before its own write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def _auth(request: Request) -> AuthRuntime:
    auth = app_services(request).auth
    if auth is None:
        raise ServiceUnavailableError("authentication is not configured")
    return auth


async def get_auth(request: Request) -> AuthRuntime:
    return _auth(request)


AuthDep = Annotated[AuthRuntime, Depends(get_auth)]


#: The ways to authenticate, for the OpenAPI document (security schemes, Swagger's
#: Authorize button): assistant.api.openapi declares them on every operation that depends
#: on get_principal. They are not dependencies: AuthRuntime.authenticate reads the same
#: headers and cookie itself and decides, and three more dependencies per request cost.
SECURITY_SCHEMES = (
    HTTPBearer(
        auto_error=False,
        scheme_name="bearer",
        bearerFormat="JWT or API key (ea_...)",
        description="A bearer JWT from the issuer, or an API key.",
    ),
    APIKeyHeader(
        name="X-API-Key",
        auto_error=False,
        scheme_name="apiKey",
        description="An API key (ea_...).",
    ),
    APIKeyCookie(
        name="ea_session",
        auto_error=False,
        scheme_name="session",
        description="The web session cookie (its name is auth.session_cookie).",
    ),
)


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The authenticated caller (bearer JWT, API key or session cookie); 401 without one.

    Tests replace it with ``app.dependency_overrides[get_principal]`` (see tests/conftest.py
    ``as_role``)."""
    principal = await _auth(request).authenticate(request, session)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*permissions: Permission) -> Any:
    """A dependency that returns the caller when it holds every one of ``permissions``
    (403 otherwise, audited). Use as ``principal: Annotated[Principal, require(P.X)]`` or in
    ``dependencies=[require(P.X)]``."""
    needed = frozenset(permissions)

    async def check_permissions(request: Request, principal: PrincipalDep) -> Principal:
        request.state.principal = principal  # for the audit of a later refusal
        missing = needed - effective_permissions(principal)
        if missing or not needed:
            auth = app_services(request).auth
            if auth is not None:
                await auth.audit_access_denied(request, principal, missing)
            if (
                missing
                and principal.on_behalf_of is None
                and principal.has(Role.DELEGATE)
                and missing <= DELEGABLE
            ):
                # A delegate's first call without the header was refused with no hint that
                # a delegate holds these only while acting for an executive.
                raise PermissionDeniedError(
                    "a delegate acts for an executive: send X-On-Behalf-Of with her user id"
                )
            raise PermissionDeniedError("you may not do this")
        return principal

    return Depends(check_permissions)


def RequireRole(*roles: Role) -> Any:  # noqa: N802  (reads like the type it guards)
    """A dependency that returns the caller when it holds one of ``roles`` (403 otherwise).
    Prefer :func:`require` with a permission: roles are the matrix's business."""
    wanted = frozenset(roles)

    async def check_role(request: Request, principal: PrincipalDep) -> Principal:
        if not principal.roles & wanted:
            auth = app_services(request).auth
            if auth is not None:
                await auth.audit_access_denied(
                    request, principal, [f"role:{r.value}" for r in wanted]
                )
            raise PermissionDeniedError("you may not do this")
        return principal

    return Depends(check_role)
