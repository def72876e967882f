"""Dependencies, as Annotated aliases: one transaction per request, committed here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.permissions import Permission, effective_permissions
from assistant.auth.runtime import AuthRuntime
from assistant.core.db import commit, rollback
from assistant.core.errors import PermissionDeniedError, ServiceUnavailableError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from assistant.services import Services


# The dependencies below are coroutines although they do no I/O: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hand-off per dependency and request that cost
# more than the rest of a small request under load.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    """The request's transaction: services flush, this commits (or rolls back on error).

    Function-scoped: the commit runs when the endpoint returns and before the response is
    sent, so a failed commit answers an error instead of a 201 for a row that is gone."""
    async with services.sessions() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await rollback(session)
            raise


#: scope="function": the transaction commits before the response is sent. With the default
#: ("request") FastAPI commits after sending it, and a browser that follows a 303 at once
#: (sign-in, every form of the web app) can read the state from before its own write.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_auth(services: ServicesDep) -> AuthRuntime:
    if services.auth is None:
        raise ServiceUnavailableError("authentication is not configured")
    return services.auth


AuthDep = Annotated[AuthRuntime, Depends(get_auth)]


# Declared for the OpenAPI document (security schemes, Swagger's Authorize button) only:
# AuthRuntime.authenticate reads the same headers and cookie itself and decides.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT or API key (ea_...)",
    description="A bearer JWT from the issuer, or an API key.",
)
_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key (ea_...)."
)
_session_cookie = APIKeyCookie(
    name="ea_session",
    auto_error=False,
    scheme_name="session",
    description="The web session cookie (its name is auth.session_cookie).",
)


async def get_principal(
    request: Request,
    auth: AuthDep,
    session: SessionDep,
    _bearer_token: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    _api_key_value: Annotated[str | None, Security(_api_key)],
    _cookie: Annotated[str | None, Security(_session_cookie)],
) -> Principal:
    """The authenticated caller (bearer JWT, API key or session cookie); 401 without one.

    Tests replace it with ``app.dependency_overrides[get_principal]`` (see tests/conftest.py
    ``as_role``)."""
    principal = await auth.authenticate(request, session)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(*permissions: Permission) -> Any:
    """A dependency that returns the caller when it holds every one of ``permissions``
    (403 otherwise, audited). Use as ``principal: Annotated[Principal, require(P.X)]`` or in
    ``dependencies=[require(P.X)]``."""
    needed = frozenset(permissions)

    async def check_permissions(
        request: Request, principal: PrincipalDep, services: ServicesDep
    ) -> Principal:
        request.state.principal = principal  # for the audit of a later refusal
        missing = needed - effective_permissions(principal)
        if missing or not needed:
            if services.auth is not None:
                await services.auth.audit_access_denied(request, principal, missing)
            raise PermissionDeniedError("you may not do this")
        return principal

    return Depends(check_permissions)


def RequireRole(*roles: Role) -> Any:  # noqa: N802  (reads like the type it guards)
    """A dependency that returns the caller when it holds one of ``roles`` (403 otherwise).
    Prefer :func:`require` with a permission: roles are the matrix's business."""
    wanted = frozenset(roles)

    async def check_role(
        request: Request, principal: PrincipalDep, services: ServicesDep
    ) -> Principal:
        if not principal.roles & wanted:
            if services.auth is not None:
                await services.auth.audit_access_denied(
                    request, principal, [f"role:{r.value}" for r in wanted]
                )
            raise PermissionDeniedError("you may not do this")
        return principal

    return Depends(check_role)
