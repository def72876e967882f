"""The authentication of one process: built once (in ``Services``), used by every request.

A request authenticates with exactly one of: a bearer JWT (``Authorization: Bearer eyJ...``),
an API key (``Authorization: Bearer ea_...`` or ``X-API-Key: ea_...``), or the web session
cookie. A delegate adds ``X-On-Behalf-Of: <executive user id>`` to act for an executive who
granted it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, NoReturn, TypeVar
from urllib.parse import urlsplit

import structlog
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.auth.apikeys import looks_like_api_key, touch_last_used, verify_api_key
from assistant.auth.audit import anonymous, audit, audit_detached
from assistant.auth.crypto import CookieSealer
from assistant.auth.entra import EntraClient
from assistant.auth.errors import EntraTokenError, TokenRejectedError
from assistant.auth.issuer import LocalIssuer, local_issuer_url
from assistant.auth.keys import LocalKeyStore
from assistant.auth.models import User, WebSession
from assistant.auth.principal import (
    AuthenticatedPrincipal,
    AuthMethod,
    acting_as_delegate,
    parse_roles,
)
from assistant.auth.sessions import find_session
from assistant.auth.tenants import TenantDirectory
from assistant.auth.tokens import KeySource, LocalKeySource, TokenValidator
from assistant.auth.users import (
    active_delegation,
    delegation_changes,
    roles_of,
    sync_directory_roles,
)
from assistant.core.clock import utcnow
from assistant.core.errors import AuthenticationError, PermissionDeniedError
from assistant.core.principal import ActorType, Principal, Role
from assistant.core.settings import Settings
from governance.audit import AuditAction, Outcome

log = structlog.stdlib.get_logger(__name__)

ON_BEHALF_OF_HEADER = "x-on-behalf-of"
API_KEY_HEADER = "x-api-key"
SIGNIN_STATE_COOKIE = "ea_signin"
CSRF_COOKIE = "ea_csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class UserState:
    """What a request rechecks about its person: read from the database, cached briefly."""

    disabled: bool
    roles: frozenset[Role]
    source: str
    #: Entra users: roles an admin withdrew in the app (Entra's token may still carry them).
    withheld: frozenset[Role] = frozenset()


class _ReadsInProgress:
    """The keys being read from the database, so that a request missing a cached entry
    waits for the read already under way instead of starting its own.

    An entry expires for every request in flight at once: under load, each of them read it
    again, each on a pooled connection of its own, and the requests behind them waited for
    the pool (a stall of a second, every TTL, with 64 clients). The waiters then look at the
    cache again: the entry the read stored (read after they arrived, so no older than a read
    of their own would be), or, when the read failed or stored nothing, a read of their own."""

    def __init__(self) -> None:
        self._reads: dict[Hashable, asyncio.Event] = {}

    async def waited(self, key: Hashable) -> bool:
        """Wait for the read of ``key`` under way; False when there is none."""
        read = self._reads.get(key)
        if read is None:
            return False
        await read.wait()
        return True

    @contextmanager
    def reading(self, key: Hashable) -> Iterator[None]:
        done = asyncio.Event()
        self._reads[key] = done
        try:
            yield
        finally:
            # Another read of the key may have replaced this one (with no TTL, nobody waits).
            if self._reads.get(key) is done:
                del self._reads[key]
            done.set()


_Key = TypeVar("_Key", bound=Hashable)
_Value = TypeVar("_Value")


class _ExpiringCache(Generic[_Key, _Value]):
    """Entries kept ``ttl_s`` seconds (none with a TTL of 0: every request reads), bounded
    at 10,000 keys, with one database read per missing key at a time (_ReadsInProgress)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[_Key, tuple[float, _Value]] = {}
        self._reads = _ReadsInProgress()

    def _forget_if_changed(self) -> None:
        """Drop every entry when what they were read from is known to have changed."""

    async def _cached(self, key: _Key) -> tuple[bool, _Value | None, float]:
        """(found, the entry, now): the entry when fresh, after waiting for a read of the
        key under way; else not found, and the caller reads it under ``_reads.reading``."""
        while True:
            self._forget_if_changed()
            now = self._clock()
            cached = self._entries.get(key)
            if cached is not None and now - cached[0] < self.ttl_s:
                return True, cached[1], now
            # With no TTL every request reads its own (recheck on every request).
            if self.ttl_s <= 0 or not await self._reads.waited(key):
                return False, None, now

    def _keep(self, key: _Key, read_at: float, value: _Value) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) > 10_000:  # bounded: drop everything rather than grow
            self._entries.clear()
        self._entries[key] = (read_at, value)


class UserStateCache(_ExpiringCache[tuple[str, str], UserState | None]):
    """The current state of users, kept ``ttl_s`` seconds: a disabled account, a removed
    role or a revoked key's owner stops working within that time, whatever the token says."""

    async def get(self, session: AsyncSession, tenant_id: str, user_id: str) -> UserState | None:
        key = (tenant_id, user_id)
        found, cached, now = await self._cached(key)
        if found:
            return cached
        with self._reads.reading(key):
            user = await session.get(User, user_id)
            state = None
            if user is not None and user.tenant_id == tenant_id:
                state = UserState(
                    disabled=user.disabled,
                    roles=await roles_of(session, tenant_id, user_id),
                    source=user.source,
                    withheld=frozenset(Role(role) for role in user.withheld_roles or ()),
                )
            self._keep(key, now, state)
            return state


class DelegationCache(_ExpiringCache[tuple[str, str, str], tuple[str, ...]]):
    """Live delegations (executive, delegate) -> scopes, kept ``ttl_s`` seconds like
    :class:`UserStateCache`: a grant revoked or narrowed in another process stops working
    within that time, in this one at once (:func:`users.delegation_changes`). Only grants
    found are kept, so a refusal is always read from the database."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_s, clock)
        self._changes = delegation_changes()

    def _forget_if_changed(self) -> None:
        changes = delegation_changes()
        if changes != self._changes:
            self._entries.clear()
            self._changes = changes

    async def scopes(
        self, session: AsyncSession, tenant_id: str, executive_id: str, delegate_id: str
    ) -> tuple[str, ...] | None:
        """The scopes of the delegate's live grant from the executive; None without one."""
        key = (tenant_id, executive_id, delegate_id)
        found, cached, now = await self._cached(key)
        if found:
            return cached
        with self._reads.reading(key):
            grant = await active_delegation(session, tenant_id, executive_id, delegate_id)
            if grant is None:
                self._entries.pop(key, None)
                return None
            scopes = tuple(grant.scopes)
            self._keep(key, now, scopes)
            return scopes


@dataclass
class AuthRuntime:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    directory: TenantDirectory
    validator: TokenValidator
    sealer: CookieSealer
    local_issuer: LocalIssuer | None = None
    entra: EntraClient | None = None
    states: UserStateCache | None = None
    delegations: DelegationCache | None = None

    def __post_init__(self) -> None:
        if self.states is None:
            self.states = UserStateCache(self.settings.auth.recheck_s)
        if self.delegations is None:
            self.delegations = DelegationCache(self.settings.auth.recheck_s)

    @classmethod
    def build(cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> AuthRuntime:
        local: LocalIssuer | None = None
        sources: dict[str, KeySource] = {}
        if settings.auth.mode == "local":
            keystore = LocalKeyStore.for_data_dir(settings.data_dir, settings.secret_key)
            local = LocalIssuer(settings, keystore)
            sources[local.issuer] = LocalKeySource(keystore, settings)
        directory = TenantDirectory(settings, local.issuer if local else None)
        validator = TokenValidator(settings, directory, sources)
        entra = (
            EntraClient(settings, sessions, directory) if settings.auth.mode == "entra" else None
        )
        return cls(
            settings=settings,
            sessions=sessions,
            directory=directory,
            validator=validator,
            sealer=CookieSealer(settings.secret_key, "cookies"),
            local_issuer=local,
            entra=entra,
        )

    @property
    def issuer(self) -> str:
        return self.local_issuer.issuer if self.local_issuer else local_issuer_url(self.settings)

    def mint(
        self,
        user_id: str,
        tenant_id: str,
        roles: Iterable[Role],
        *,
        ttl_s: int | None = None,
        username: str | None = None,
        display_name: str | None = None,
    ) -> str:
        """A local access token (local mode only)."""
        if self.local_issuer is None:
            raise AuthenticationError("local tokens exist only in local mode")
        return self.local_issuer.mint(
            user_id=user_id,
            tenant_id=self.directory.tid_of(tenant_id),
            roles=roles,
            ttl_s=ttl_s,
            username=username,
            display_name=display_name,
        )

    # ---------------------------------------------------------------- authentication

    async def authenticate(self, request: Request, session: AsyncSession) -> AuthenticatedPrincipal:
        """The caller of ``request``, or AuthenticationError / PermissionDeniedError."""
        source_ip = request.client.host if request.client else None
        authorization = request.headers.get("authorization")
        api_key = request.headers.get(API_KEY_HEADER)
        try:
            if authorization:
                scheme, _, credentials = authorization.partition(" ")
                credentials = credentials.strip()
                if scheme.lower() != "bearer" or not credentials:
                    raise TokenRejectedError(
                        "unsupported authorization scheme", "use Authorization: Bearer <token>"
                    )
                if looks_like_api_key(credentials):
                    principal = await self._from_api_key(session, credentials, source_ip)
                else:
                    principal = await self._from_jwt(session, credentials, source_ip)
            elif api_key:
                principal = await self._from_api_key(session, api_key.strip(), source_ip)
            else:
                cookie = request.cookies.get(self.settings.auth.session_cookie)
                if not cookie:
                    raise AuthenticationError(
                        "authentication required: send a bearer token "
                        "or an API key, or sign in at /auth/login"
                    )
                principal = await self._from_session(request, session, cookie, source_ip)
        except TokenRejectedError as exc:
            await self._audit_rejection(request, exc, source_ip)
            raise
        principal = await self._delegation(request, session, principal)
        structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, user=principal.user_id)
        return principal

    async def _state(self, session: AsyncSession, tenant_id: str, user_id: str) -> UserState | None:
        assert self.states is not None
        return await self.states.get(session, tenant_id, user_id)

    async def _from_jwt(
        self, session: AsyncSession, token: str, source_ip: str | None
    ) -> AuthenticatedPrincipal:
        verified = await self.validator.validate(token)
        roles = verified.roles
        if not verified.is_app:
            # A token outlives changes to its person: recheck them (within recheck_s).
            state = await self._state(session, verified.tenant_id, verified.subject)
            if state is not None and state.disabled:
                raise TokenRejectedError(
                    "disabled user",
                    "this account is disabled",
                    tenant_id=verified.tenant_id,
                    subject=verified.subject,
                )
            if state is not None and state.source == "local":
                # Our own users: a role removed since minting is gone; none is added.
                roles = roles & state.roles
            elif state is not None:
                # Entra's users: Entra assigns roles; a withdrawal in the app still applies.
                roles = roles - state.withheld
        return AuthenticatedPrincipal(
            user_id=verified.subject,
            tenant_id=verified.tenant_id,
            roles=roles,
            actor_type=ActorType.SERVICE if verified.is_app else ActorType.USER,
            display_name=verified.display_name,
            source_ip=source_ip,
            auth_method=AuthMethod.BEARER,
        )

    async def _from_api_key(
        self, session: AsyncSession, presented: str, source_ip: str | None
    ) -> AuthenticatedPrincipal:
        row = await verify_api_key(session, presented)
        await touch_last_used(self.sessions, row)
        if row.owner_id is not None:
            # A person's key acts as that person, with no role they do not hold now.
            state = await self._state(session, row.tenant_id, row.owner_id)
            if state is None or state.disabled:
                raise TokenRejectedError(
                    "the key's owner is disabled or gone",
                    "invalid API key",
                    tenant_id=row.tenant_id,
                    subject=f"apikey:{row.prefix}",
                )
            return AuthenticatedPrincipal(
                user_id=row.owner_id,
                tenant_id=row.tenant_id,
                roles=parse_roles(row.roles) & state.roles,
                actor_type=ActorType.USER,
                display_name=row.name,
                source_ip=source_ip,
                auth_method=AuthMethod.API_KEY,
                credential=f"apikey:{row.prefix}",
            )
        return AuthenticatedPrincipal(
            user_id=f"apikey:{row.prefix}",
            tenant_id=row.tenant_id,
            roles=parse_roles(row.roles),
            actor_type=ActorType.SERVICE,
            display_name=row.name,
            source_ip=source_ip,
            auth_method=AuthMethod.API_KEY,
        )

    async def _from_session(
        self, request: Request, session: AsyncSession, cookie: str, source_ip: str | None
    ) -> AuthenticatedPrincipal:
        row = await find_session(session, cookie)
        if row is None:
            raise AuthenticationError("the session has ended; sign in again at /auth/login")
        if request.method not in _SAFE_METHODS:
            self._check_origin(request)
        roles = parse_roles(row.roles)
        display_name = row.display_name
        if row.source == "local":
            # Local users' roles and status are read now: a change applies at once.
            user = await session.get(User, row.user_id)
            if user is None or user.tenant_id != row.tenant_id:
                raise AuthenticationError("the session has ended; sign in again at /auth/login")
            if user.disabled:
                raise self._disabled(row)
            roles = await roles_of(session, row.tenant_id, row.user_id)
            display_name = user.display_name or user.username
        else:
            # What the app controls, within recheck_s; what only Entra knows, within
            # auth.entra.session_recheck_s (the session asks Entra again, or ends).
            state = await self._state(session, row.tenant_id, row.user_id)
            if state is None or state.disabled:
                raise self._disabled(row)
            roles = await self._entra_session_roles(row) - state.withheld
        return AuthenticatedPrincipal(
            user_id=row.user_id,
            tenant_id=row.tenant_id,
            roles=roles,
            display_name=display_name,
            source_ip=source_ip,
            auth_method=AuthMethod.SESSION,
        )

    @staticmethod
    def _disabled(row: WebSession) -> TokenRejectedError:
        return TokenRejectedError(
            "disabled user",
            "this account is disabled",
            tenant_id=row.tenant_id,
            subject=row.user_id,
        )

    async def _entra_session_roles(self, row: WebSession) -> frozenset[Role]:
        """The session's roles as Entra last confirmed them, asking again when that answer
        is older than ``auth.entra.session_recheck_s``; a refusal ends the session."""
        interval = timedelta(seconds=self.settings.auth.entra.session_recheck_s)
        checked = row.roles_checked_at or row.created_at
        now = utcnow()
        if now - checked < interval:
            return parse_roles(row.roles)
        if self.entra is None or row.account_id is None:
            # No way to ask Entra (mode changed, or a session from before rechecks): end it.
            await self._end_session(row, "the session cannot be renewed with Entra")
        assert self.entra is not None and row.account_id is not None
        try:
            result = await self.entra.refresh_session(row.account_id)
            verified = await self.validator.validate(
                result["id_token"], audiences=[self.entra.client_id]
            )
        except EntraTokenError as exc:
            await self._end_session(row, f"Entra refused to renew it ({exc.reason})")
        except TokenRejectedError as exc:
            await self._end_session(row, f"Entra's renewed id token was rejected ({exc.reason})")
        if verified.subject != row.user_id or verified.tenant_id != row.tenant_id:
            await self._end_session(row, "Entra renewed the session for another person")
        async with self.sessions() as own, own.begin():
            stored = await own.get(WebSession, row.id)
            user = await own.get(User, row.user_id)
            if stored is not None:
                stored.roles = sorted(role.value for role in verified.roles)
                stored.roles_checked_at = now
            if user is not None:
                await sync_directory_roles(own, user, verified.roles)
        log.info(
            "auth.session.renewed",
            tenant=row.tenant_id,
            user=row.user_id,
            roles=sorted(role.value for role in verified.roles),
        )
        return verified.roles

    async def _end_session(self, row: WebSession, reason: str) -> NoReturn:
        """Revoke the session (its own transaction: the request's rolls back) and audit."""
        async with self.sessions() as own, own.begin():
            stored = await own.get(WebSession, row.id)
            if stored is not None and stored.revoked_at is None:
                stored.revoked_at = utcnow()
            await audit(
                own,
                Principal(user_id=row.user_id, tenant_id=row.tenant_id),
                AuditAction.AUTH_SESSION_ENDED,
                outcome=Outcome.DENIED,
                reason=reason[:500],
                resource_type="session",
                resource_id=row.user_id,
            )
        log.info("auth.session.ended", tenant=row.tenant_id, user=row.user_id, reason=reason)
        raise AuthenticationError("the session has ended; sign in again at /auth/login")

    def _check_origin(self, request: Request) -> None:
        """Cookie-authenticated writes come from our own pages (SameSite backs this up)."""
        origin = request.headers.get("origin")
        if origin is None:  # not a browser's cross-origin request
            return
        allowed = {
            _origin(self.settings.server.public_url),
            _origin(str(request.base_url)),
            *(_origin(o) for o in self.settings.server.cors_origins if o != "*"),
        }
        if origin.lower() not in allowed:
            raise PermissionDeniedError("cross-site request refused")

    async def _delegation(
        self, request: Request, session: AsyncSession, principal: AuthenticatedPrincipal
    ) -> AuthenticatedPrincipal:
        executive_id = request.headers.get(ON_BEHALF_OF_HEADER)
        if not executive_id:
            return principal
        executive_id = executive_id.strip()
        scopes = None
        if principal.actor_type is ActorType.USER and executive_id != principal.user_id:
            assert self.delegations is not None
            # Within recheck_s, like the person's own state (UserStateCache).
            scopes = await self.delegations.scopes(
                session, principal.tenant_id, executive_id, principal.user_id
            )
        if scopes is None:
            await audit_detached(
                self.sessions,
                principal,
                AuditAction.AUTH_ACCESS_DENIED,
                outcome=Outcome.DENIED,
                reason="no delegation from that executive",
                resource_type="user",
                resource_id=executive_id[:64],
                correlation_id=getattr(request.state, "correlation_id", None),
            )
            raise PermissionDeniedError("you hold no delegation from that executive")
        return acting_as_delegate(principal, executive_id, scopes)

    async def _audit_rejection(
        self, request: Request, exc: TokenRejectedError, source_ip: str | None
    ) -> None:
        tenant = exc.tenant_id or self.settings.auth.default_tenant
        log.info(
            "auth.credentials.rejected",
            reason=exc.reason,
            tenant=tenant,
            source=source_ip,
            path=request.url.path,
        )
        await audit_detached(
            self.sessions,
            anonymous(tenant, source_ip),
            AuditAction.AUTH_TOKEN_REJECTED,
            outcome=Outcome.DENIED,
            reason=exc.reason,
            payload={"claimed_subject": exc.subject, "path": request.url.path, "source": source_ip},
            correlation_id=getattr(request.state, "correlation_id", None),
        )

    async def audit_access_denied(
        self, request: Request, principal: Principal, needed: Iterable[str]
    ) -> None:
        await audit_detached(
            self.sessions,
            principal,
            AuditAction.AUTH_ACCESS_DENIED,
            outcome=Outcome.DENIED,
            reason="missing permission",
            resource_type="route",
            resource_id=f"{request.method} {request.url.path}"[:200],
            payload={"needed": sorted(needed)},
            correlation_id=getattr(request.state, "correlation_id", None),
        )
