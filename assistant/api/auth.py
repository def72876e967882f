"""Sign-in, the local issuer's discovery documents, and the management of users, API keys
and delegations. Every /api/v1 query is scoped to the caller's tenant."""

import hmac
import html
import json
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from assistant.api.deps import AuthDep, SessionDep, require
from assistant.auth import apikeys, sessions, users
from assistant.auth.audit import anonymous, audit
from assistant.auth.entra import ACCOUNT_KEY
from assistant.auth.errors import EntraTokenError, TokenRejectedError
from assistant.auth.models import ApiKey, Delegation, User
from assistant.auth.permissions import (
    DELEGABLE,
    Permission,
    effective_permissions,
    executive_scopes,
)
from assistant.auth.runtime import CSRF_COOKIE, SIGNIN_STATE_COOKIE, AuthRuntime
from assistant.core.clock import utcnow
from assistant.core.db import on_commit
from assistant.core.errors import NotFoundError
from assistant.core.principal import ActorType, Principal, Role
from governance.audit import AuditAction, Outcome

log = structlog.stdlib.get_logger(__name__)

router = APIRouter(tags=["auth"])

DEFAULT_LANDING = "/app"
SIGNIN_STATE_MAX_AGE = 600

# ---------------------------------------------------------------------------- schemas


class DelegationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    executive_id: str
    delegate_id: str
    scopes: list[str]
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None


class MeOut(BaseModel):
    user_id: str
    tenant_id: str
    roles: list[Role]
    actor_type: ActorType
    auth_method: str | None
    on_behalf_of: str | None
    display_name: str | None
    permissions: list[str]
    delegations: list[DelegationOut] = Field(
        default_factory=list, description="Executives who let this user act for them."
    )
    executives: dict[str, list[str]] = Field(
        default_factory=dict,
        description="The executive this request acts for, with the permissions held on "
        "her data (empty for admins, auditors and service keys).",
    )


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    username: str
    display_name: str | None
    email: str | None
    source: str
    roles: list[Role] = Field(default_factory=list)
    disabled: bool
    locked: bool = False
    last_login_at: datetime | None
    created_at: datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    roles: list[Role] = Field(default_factory=list)
    password: SecretStr | None = Field(default=None, description="For password sign-in.")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None
    unlock: bool = Field(default=False, description="Clear a lockout after failed sign-ins.")


class RolesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role]


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    prefix: str
    roles: list[Role]
    created_by: str
    owner_id: str | None = None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself: shown once, store it now.")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    personal: bool = Field(
        default=False,
        description="The key is yours and acts as you (only roles you hold); otherwise a "
        "service account's key, which acts for no executive.",
    )


class DelegationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delegate_id: str = Field(min_length=1, max_length=64)
    scopes: list[str] | None = Field(
        default=None, description=f"Default: all of {sorted(p.value for p in DELEGABLE)}."
    )


# ---------------------------------------------------------------------------- discovery


@router.get("/.well-known/openid-configuration", summary="The local issuer's OpenID metadata")
async def openid_configuration(auth: AuthDep) -> dict[str, Any]:
    if auth.local_issuer is None:
        raise NotFoundError("no local issuer in entra mode")
    return auth.local_issuer.discovery()


@router.get("/.well-known/jwks.json", summary="The local issuer's public signing keys")
async def jwks(auth: AuthDep) -> JSONResponse:
    if auth.local_issuer is None:
        raise NotFoundError("no local issuer in entra mode")
    return JSONResponse(auth.local_issuer.jwks(), headers={"Cache-Control": "max-age=300"})


# ---------------------------------------------------------------------------- web sign-in


def _safe_next(value: str | None) -> str:
    """Only same-site paths: never an open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return DEFAULT_LANDING
    return value


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Executive Assistant</title>
<style>body{{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}
button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#b00020}}</style></head>
<body><h1>Sign in</h1>{message}
<form method="post" action="/auth/password">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="next" value="{next}">
<label for="tenant">Tenant</label>
<input id="tenant" name="tenant" value="{tenant}" autocomplete="organization">
<label for="username">User name</label>
<input id="username" name="username" value="{username}" autocomplete="username" required
 autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form></body></html>"""


def _login_page(
    auth: AuthRuntime,
    *,
    next_path: str,
    tenant: str,
    username: str = "",
    message: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    auth_settings = auth.settings
    csrf = secrets.token_urlsafe(24)
    body = _PAGE.format(
        csrf=csrf,
        next=html.escape(next_path),
        tenant=html.escape(tenant),
        username=html.escape(username),
        message=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
    )
    response = HTMLResponse(body, status_code=status_code, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    )
    sessions.set_cookie(
        response, auth_settings, CSRF_COOKIE, csrf, max_age=SIGNIN_STATE_MAX_AGE, path="/auth"
    )
    return response


def _error_page(message: str, status_code: int) -> HTMLResponse:
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in '
        f"failed</title></head><body><h1>Sign-in failed</h1><p>{html.escape(message)}</p>"
        f'<p><a href="/auth/login">Try again</a></p></body></html>',
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


@router.get(
    "/auth/login",
    summary="Sign in: a password form (local) or Entra (entra mode)",
    response_class=HTMLResponse,
)
async def login(
    request: Request, auth: AuthDep, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    next_path = _safe_next(next)
    if auth.entra is None:
        return _login_page(auth, next_path=next_path, tenant=auth.settings.auth.default_tenant)
    redirect_uri = f"{auth.settings.server.public_url.rstrip('/')}/auth/callback"
    flow = await auth.entra.begin_sign_in(redirect_uri)
    response = RedirectResponse(flow["auth_uri"], status_code=302)
    sealed = auth.sealer.seal(json.dumps({"flow": flow, "next": next_path}).encode())
    sessions.set_cookie(
        response,
        auth.settings,
        SIGNIN_STATE_COOKIE,
        sealed,
        max_age=SIGNIN_STATE_MAX_AGE,
        path="/auth",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in(auth: AuthRuntime, cookie_value: str, next_path: str) -> RedirectResponse:
    response = RedirectResponse(next_path, status_code=303)
    sessions.set_cookie(
        response,
        auth.settings,
        auth.settings.auth.session_cookie,
        cookie_value,
        max_age=auth.settings.auth.session_ttl_s,
    )
    sessions.clear_cookie(response, auth.settings, CSRF_COOKIE, path="/auth")
    sessions.clear_cookie(response, auth.settings, SIGNIN_STATE_COOKIE, path="/auth")
    return response


@router.post(
    "/auth/password",
    summary="Sign in with a user name and password (local mode)",
    response_class=HTMLResponse,
    responses={
        303: {"description": "Signed in: on to the page asked for, with the session cookie."},
        **{
            status: {"description": why, "content": {"text/html": {}}}
            for status, why in (
                (400, "The form expired or is incomplete: the form again."),
                (401, "Wrong user name or password: the form again."),
                (429, "Too many attempts: the form again, later."),
            )
        },
    },
)
async def password_sign_in(
    request: Request,
    auth: AuthDep,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[SecretStr, Form(max_length=1024)],
    csrf: Annotated[str, Form(max_length=200)],
    tenant: Annotated[str | None, Form(max_length=64)] = None,
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    if auth.local_issuer is None:
        raise NotFoundError("password sign-in exists only in local mode")
    tenant_id = (tenant or "").strip() or auth.settings.auth.default_tenant
    next_path = _safe_next(next)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return _login_page(
            auth,
            next_path=next_path,
            tenant=tenant_id,
            username=username,
            message="The form expired; please sign in again.",
            status_code=400,
        )
    source = request.client.host if request.client else "unknown"
    result = await users.password_sign_in(
        session,
        auth.settings.auth,
        tenant_id=tenant_id,
        username=username.strip(),
        password=password.get_secret_value(),
        source=source,
    )
    if result.outcome is users.SignInOutcome.RATE_LIMITED:
        return _login_page(
            auth,
            next_path=next_path,
            tenant=tenant_id,
            username=username,
            message="Too many failed attempts; try again later.",
            status_code=429,
            headers={"Retry-After": str(result.retry_after)},
        )
    if result.outcome is not users.SignInOutcome.OK or result.user is None:
        return _login_page(
            auth,
            next_path=next_path,
            tenant=tenant_id,
            username=username,
            message="Wrong user name or password, or the account is locked.",
            status_code=401,
        )
    value = await sessions.create_session(
        session,
        auth.settings,
        tenant_id=tenant_id,
        user_id=result.user.id,
        roles=result.roles,
        source="local",
        display_name=result.user.display_name or result.user.username,
    )
    return _signed_in(auth, value, next_path)


@router.get(
    "/auth/callback", summary="Where Entra returns after sign-in", response_class=HTMLResponse
)
async def callback(request: Request, auth: AuthDep, session: SessionDep) -> Response:
    if auth.entra is None:
        raise NotFoundError("no Entra sign-in in local mode")
    source = request.client.host if request.client else None
    default_tenant = auth.settings.auth.default_tenant
    state = request.cookies.get(SIGNIN_STATE_COOKIE)

    async def failed(reason: str, tenant_id: str = default_tenant) -> HTMLResponse:
        await audit(
            session,
            anonymous(tenant_id, source),
            AuditAction.AUTH_SIGNIN_FAILED,
            outcome=Outcome.FAILURE,
            reason=reason,
            payload={"method": "entra", "source": source},
        )
        log.info("auth.signin.failed", method="entra", reason=reason)
        response = _error_page("The sign-in could not be completed.", 401)
        sessions.clear_cookie(response, auth.settings, SIGNIN_STATE_COOKIE, path="/auth")
        return response

    if not state:
        return await failed("no sign-in state")
    try:
        saved = json.loads(auth.sealer.open(state, SIGNIN_STATE_MAX_AGE))
    except Exception:
        return await failed("sign-in state expired or altered")
    params = {key: value for key, value in request.query_params.items()}
    if "error" in params:
        return await failed(f"entra error: {params['error'][:100]}")
    try:
        result = await auth.entra.finish_sign_in(saved["flow"], params)
        verified = await auth.validator.validate(
            result["id_token"], audiences=[auth.entra.client_id]
        )
    except EntraTokenError as exc:
        return await failed(f"{exc.detail} ({exc.reason})")
    except TokenRejectedError as exc:
        return await failed(f"id token rejected: {exc.reason}", exc.tenant_id or default_tenant)
    claims = verified.claims
    actor = Principal(
        user_id=verified.subject,
        tenant_id=verified.tenant_id,
        roles=verified.roles,
        source_ip=source,
    )
    username = str(claims.get("preferred_username") or claims.get("email") or verified.subject)
    user = await users.upsert_directory_user(
        session,
        actor,
        tenant_id=verified.tenant_id,
        user_id=verified.subject,
        username=username,
        display_name=verified.display_name,
        email=str(claims["email"]) if claims.get("email") else None,
    )
    if user.disabled:
        return await failed("account disabled in the assistant", verified.tenant_id)
    await users.sync_directory_roles(session, user, verified.roles)
    value = await sessions.create_session(
        session,
        auth.settings,
        tenant_id=verified.tenant_id,
        user_id=verified.subject,
        roles=verified.roles,
        source="entra",
        display_name=verified.display_name,
        account_id=result.get(ACCOUNT_KEY),
    )
    await audit(
        session,
        actor,
        AuditAction.AUTH_SIGNIN_SUCCEEDED,
        resource_type="user",
        resource_id=verified.subject,
        payload={"method": "entra", "source": source},
    )
    log.info(
        "auth.signin.succeeded", tenant=verified.tenant_id, user=verified.subject, method="entra"
    )
    return _signed_in(auth, value, _safe_next(saved.get("next")))


@router.post(
    "/auth/logout",
    summary="Sign out: end the web session",
    response_class=RedirectResponse,
    status_code=303,
    responses={303: {"description": "To the sign-in page, with the session cookie cleared."}},
)
async def logout(request: Request, auth: AuthDep, session: SessionDep) -> Response:
    cookie = request.cookies.get(auth.settings.auth.session_cookie)
    if cookie:
        row = await sessions.revoke_session(session, cookie)
        if row is not None:
            await audit(
                session,
                Principal(
                    user_id=row.user_id,
                    tenant_id=row.tenant_id,
                    source_ip=request.client.host if request.client else None,
                ),
                AuditAction.AUTH_SIGNOUT,
                resource_type="session",
            )
            entra, account_id = auth.entra, row.account_id
            if entra is not None and account_id is not None:
                others = await sessions.live_sessions(session, row.tenant_id, row.user_id)
                if not any(other.account_id == account_id for other in others):
                    # Her refresh token should not outlive her last session (after the
                    # commit: msal's cache is written in a transaction of its own).
                    on_commit(session, lambda: entra.forget_account(account_id))
    response = RedirectResponse("/auth/login", status_code=303)
    sessions.clear_cookie(response, auth.settings, auth.settings.auth.session_cookie)
    return response


# ---------------------------------------------------------------------------- me


@router.get("/api/v1/me", summary="Who the caller is and what it may do")
async def me(
    principal: Annotated[Principal, require(Permission.ME_READ)], session: SessionDep
) -> MeOut:
    received: list[DelegationOut] = []
    if principal.actor_type is ActorType.USER:
        grants = await users.list_delegations(
            session, principal.tenant_id, user_id=principal.user_id
        )
        received = [
            DelegationOut.model_validate(g) for g in grants if g.delegate_id == principal.user_id
        ]
    return MeOut(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        roles=sorted(principal.roles),
        actor_type=principal.actor_type,
        auth_method=str(getattr(principal, "auth_method", "")) or None,
        on_behalf_of=principal.on_behalf_of,
        display_name=principal.display_name,
        permissions=sorted(p.value for p in effective_permissions(principal)),
        delegations=received,
        executives={
            executive: sorted(p.value for p in held)
            for executive, held in executive_scopes(principal).items()
        },
    )


# ---------------------------------------------------------------------------- users


def _user_out(user: User, roles: frozenset[Role]) -> UserOut:
    out = UserOut.model_validate(user)
    out.roles = sorted(roles)
    out.locked = users.is_locked(user)
    return out


@router.get("/api/v1/users", summary="Users of the tenant")
async def list_users(
    principal: Annotated[Principal, require(Permission.USERS_READ)], session: SessionDep
) -> list[UserOut]:
    roles = await users.roles_by_user(session, principal.tenant_id)
    return [
        _user_out(user, roles.get(user.id, frozenset()))
        for user in await users.list_users(session, principal.tenant_id)
    ]


@router.post("/api/v1/users", status_code=201, summary="Create a user (local sign-in)")
async def create_user(
    body: UserCreate,
    principal: Annotated[Principal, require(Permission.USERS_MANAGE)],
    session: SessionDep,
) -> UserOut:
    user = await users.create_user(
        session,
        principal,
        tenant_id=principal.tenant_id,
        username=body.username,
        roles=body.roles,
        display_name=body.display_name,
        email=body.email,
        password=body.password.get_secret_value() if body.password else None,
    )
    return _user_out(user, frozenset(body.roles))


@router.get("/api/v1/users/{user_id}", summary="One user of the tenant")
async def get_user(
    user_id: str,
    principal: Annotated[Principal, require(Permission.USERS_READ)],
    session: SessionDep,
) -> UserOut:
    user = await users.get_user(session, principal.tenant_id, user_id)
    return _user_out(user, await users.roles_of(session, principal.tenant_id, user.id))


@router.patch("/api/v1/users/{user_id}", summary="Rename, disable, enable or unlock a user")
async def patch_user(
    user_id: str,
    body: UserPatch,
    principal: Annotated[Principal, require(Permission.USERS_MANAGE)],
    session: SessionDep,
) -> UserOut:
    user = await users.get_user(session, principal.tenant_id, user_id)
    changes: dict[str, Any] = {}
    if body.display_name is not None:
        user.display_name = changes["display_name"] = body.display_name
    if body.disabled is not None:  # one rule for the API and the people page (audited)
        await users.set_disabled(session, principal, user, body.disabled)
    if body.unlock and (user.locked_until is not None or user.failed_logins):
        user.locked_until = None
        user.failed_logins = 0
        changes["unlocked"] = True
    if changes:
        user.updated_at = utcnow()
        await session.flush()
        await audit(
            session,
            principal,
            AuditAction.AUTH_ROLE_CHANGED,
            resource_type="user",
            resource_id=user.id,
            payload={"change": changes},
        )
    return _user_out(user, await users.roles_of(session, principal.tenant_id, user.id))


@router.put("/api/v1/users/{user_id}/roles", summary="Replace a user's roles")
async def put_roles(
    user_id: str,
    body: RolesIn,
    principal: Annotated[Principal, require(Permission.USERS_MANAGE)],
    session: SessionDep,
) -> UserOut:
    user = await users.get_user(session, principal.tenant_id, user_id)
    roles = await users.set_roles(session, principal, user, body.roles)
    return _user_out(user, roles)


# ---------------------------------------------------------------------------- API keys


@router.get("/api/v1/api-keys", summary="API keys of the tenant's service accounts")
async def list_api_keys(
    principal: Annotated[Principal, require(Permission.APIKEYS_MANAGE)], session: SessionDep
) -> list[ApiKeyOut]:
    return [
        ApiKeyOut.model_validate(row)
        for row in await apikeys.list_api_keys(session, principal.tenant_id)
    ]


@router.post(
    "/api/v1/api-keys", status_code=201, summary="Create an API key (the key is shown once)"
)
async def create_api_key(
    body: ApiKeyCreate,
    principal: Annotated[Principal, require(Permission.APIKEYS_MANAGE)],
    session: SessionDep,
) -> ApiKeyCreated:
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    row, key = await apikeys.create_api_key(
        session,
        principal,
        tenant_id=principal.tenant_id,
        name=body.name,
        roles=body.roles,
        expires_at=expires,
        personal=body.personal,
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.delete("/api/v1/api-keys/{key_id}", summary="Revoke an API key")
async def revoke_api_key(
    key_id: str,
    principal: Annotated[Principal, require(Permission.APIKEYS_MANAGE)],
    session: SessionDep,
) -> ApiKeyOut:
    row: ApiKey = await apikeys.find_api_key(session, principal.tenant_id, key_id)
    return ApiKeyOut.model_validate(await apikeys.revoke_api_key(session, principal, row))


# ---------------------------------------------------------------------------- delegations


@router.get(
    "/api/v1/delegations",
    summary="Delegations: an executive's own; the whole tenant's for admins, auditors",
)
async def list_delegations(
    principal: Annotated[Principal, require(Permission.DELEGATIONS_READ)],
    session: SessionDep,
    include_revoked: bool = False,
) -> list[DelegationOut]:
    oversight = principal.has(Role.ADMIN, Role.AUDITOR)
    rows = await users.list_delegations(
        session,
        principal.tenant_id,
        user_id=None if oversight else principal.user_id,
        include_revoked=include_revoked,
    )
    return [DelegationOut.model_validate(row) for row in rows]


@router.post(
    "/api/v1/delegations",
    status_code=201,
    summary="Let a delegate act for you (executives, for themselves only)",
)
async def grant_delegation(
    body: DelegationCreate,
    principal: Annotated[Principal, require(Permission.DELEGATIONS_GRANT)],
    session: SessionDep,
) -> DelegationOut:
    try:
        executive = await users.get_user(session, principal.tenant_id, principal.user_id)
    except NotFoundError:
        raise NotFoundError(
            "your user is not registered here yet: sign in on the web "
            "once, or ask an admin to add you"
        ) from None
    delegate = await users.get_user(session, principal.tenant_id, body.delegate_id)
    grant: Delegation = await users.grant_delegation(
        session, principal, executive=executive, delegate=delegate, scopes=body.scopes
    )
    return DelegationOut.model_validate(grant)


@router.delete("/api/v1/delegations/{delegation_id}", summary="Revoke a delegation")
async def revoke_delegation(
    delegation_id: str,
    principal: Annotated[Principal, require(Permission.DELEGATIONS_REVOKE)],
    session: SessionDep,
) -> DelegationOut:
    only = None if principal.has(Role.ADMIN) else principal.user_id
    grant = await users.revoke_delegation(
        session, principal, principal.tenant_id, delegation_id, only_executive=only
    )
    return DelegationOut.model_validate(grant)
