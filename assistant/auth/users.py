"""Users, their roles, delegations, and password sign-in with rate limiting and lockout.

Every function takes the tenant and filters by it. Services flush; the caller commits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.audit import anonymous, audit
from assistant.auth.models import Delegation, LoginAttempt, RoleGrant, User
from assistant.auth.passwords import hash_password, needs_rehash, password_problem, verify_password
from assistant.auth.permissions import DELEGABLE, Permission
from assistant.auth.sessions import revoke_user_sessions
from assistant.core.clock import utcnow
from assistant.core.db import on_commit
from assistant.core.errors import (
    ConflictError,
    NotFoundError,
    SeparationOfDutiesError,
    ValidationFailedError,
)
from assistant.core.ids import new_id
from assistant.core.principal import Principal, Role, system_principal
from assistant.core.settings import AuthSettings
from assistant.core.tenancy import check_tenant_name, is_reserved_tenant
from governance.audit import AuditAction, Outcome

log = structlog.stdlib.get_logger(__name__)


def _sorted_roles(roles: Iterable[Role]) -> list[str]:
    return sorted({Role(role).value for role in roles})


async def get_user(session: AsyncSession, tenant_id: str, user_id: str) -> User:
    user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None:
        raise NotFoundError("no such user")
    return user


async def find_user(session: AsyncSession, tenant_id: str, username: str) -> User | None:
    return await session.scalar(
        select(User).where(User.tenant_id == tenant_id, User.username == username)
    )


async def autonomy_executive(session: AsyncSession, tenant_id: str, typed: str) -> str:
    """Whom an autonomy level is for, as proposals look their grant up: a user id (a user
    name is resolved to hers), an address (an executive served by an unbound mailbox) or
    ``*``. Anything else used to be stored and shown as set while no proposal ever matched
    it: an admin lowering "dana" to shadow believed she had, and Dana's level stayed."""
    value = typed.strip()
    if value == "*" or "@" in value:
        return value
    person = await session.get(User, value)
    if person is not None and person.tenant_id == tenant_id:
        return str(person.id)
    person = await find_user(session, tenant_id, value)
    if person is not None:
        return str(person.id)
    raise ValidationFailedError(
        "no such executive: give her user name, user id or e-mail address, or * for all",
        problems=[f"executive: {value[:80]!r} is no user of this tenant"],
    )


async def list_users(session: AsyncSession, tenant_id: str) -> list[User]:
    rows = await session.scalars(
        select(User).where(User.tenant_id == tenant_id).order_by(User.username)
    )
    return list(rows)


async def roles_of(session: AsyncSession, tenant_id: str, user_id: str) -> frozenset[Role]:
    rows = await session.scalars(
        select(RoleGrant.role).where(RoleGrant.tenant_id == tenant_id, RoleGrant.user_id == user_id)
    )
    return frozenset(Role(role) for role in rows)


async def roles_by_user(session: AsyncSession, tenant_id: str) -> dict[str, frozenset[Role]]:
    rows = await session.execute(
        select(RoleGrant.user_id, RoleGrant.role).where(RoleGrant.tenant_id == tenant_id)
    )
    result: dict[str, set[Role]] = {}
    for user_id, role in rows:
        result.setdefault(user_id, set()).add(Role(role))
    return {user_id: frozenset(roles) for user_id, roles in result.items()}


def _refuse_control_characters(**fields: str | None) -> None:
    """Names are shown on pages, in audit rows and logs: no control characters (a NUL would
    also fail inside PostgreSQL as a 500 rather than a typed 422)."""
    problems = [
        f"{name}: control characters are not allowed"
        for name, value in fields.items()
        if value and any(unicodedata.category(c) == "Cc" for c in value)
    ]
    if problems:
        raise ValidationFailedError("names must be plain text", problems=problems)


async def create_user(
    session: AsyncSession,
    actor: Principal,
    *,
    tenant_id: str,
    username: str,
    roles: Iterable[Role],
    password: str | None = None,
    display_name: str | None = None,
    email: str | None = None,
    source: str = "local",
    user_id: str | None = None,
) -> User:
    """A new user with its roles (audited). The password, if any, is stored as a hash."""
    check_tenant_name(tenant_id)
    username = username.strip()
    if not username:
        raise ValidationFailedError("a username is required")
    _refuse_control_characters(username=username, display_name=display_name, email=email)
    if await find_user(session, tenant_id, username) is not None:
        raise ConflictError(f"user {username!r} already exists in this tenant")
    if password is not None and (problem := password_problem(password)):
        raise ValidationFailedError(problem)
    now = utcnow()
    user = User(
        id=user_id or new_id(),
        tenant_id=tenant_id,
        username=username,
        display_name=display_name,
        email=email,
        source=source,
        password_hash=hash_password(password) if password is not None else None,
        disabled=False,
        withheld_roles=[],
        failed_logins=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()  # before its role grants (no ORM relationship orders them)
    role_list = _sorted_roles(roles)
    for role in role_list:
        session.add(
            RoleGrant(
                user_id=user.id,
                role=role,
                tenant_id=tenant_id,
                granted_by=actor.user_id,
                granted_at=now,
            )
        )
    await session.flush()
    await audit(
        session,
        actor,
        AuditAction.AUTH_USER_CREATED,
        resource_type="user",
        resource_id=user.id,
        payload={"username": username, "roles": role_list, "source": source},
    )
    log.info("auth.user.created", tenant=tenant_id, user=user.id, roles=role_list)
    return user


async def set_roles(
    session: AsyncSession, actor: Principal, user: User, roles: Iterable[Role]
) -> frozenset[Role]:
    """Replace ``user``'s roles (audited); a tenant never loses its last admin.

    An Entra user's roles are assigned in Entra: here they can only be withdrawn (and a
    withdrawal undone); a withdrawal outlives the next sign-in.
    """
    before = await roles_of(session, user.tenant_id, user.id)
    after = frozenset(Role(role) for role in roles)
    if before == after:
        return after
    if actor.user_id == user.id and after - before:
        raise SeparationOfDutiesError(
            "nobody grants roles to themselves: another admin must",
            roles=",".join(_sorted_roles(after - before)),
        )
    if Role.ADMIN in before and Role.ADMIN not in after:
        admins = await session.scalar(
            select(func.count())
            .select_from(RoleGrant)
            .where(RoleGrant.tenant_id == user.tenant_id, RoleGrant.role == Role.ADMIN.value)
        )
        if (admins or 0) <= 1:
            raise ConflictError("this is the tenant's last admin; make another admin first")
    withheld = frozenset(Role(role) for role in user.withheld_roles or ())
    if user.source == "entra" and (after - before - withheld):
        raise ConflictError(
            "this person's roles are assigned in Entra (app roles); the app can only withdraw them",
            roles=",".join(_sorted_roles(after - before - withheld)),
        )
    if user.source == "entra":
        user.withheld_roles = _sorted_roles((withheld - after) | (before - after))
    await _replace_grants(session, user, before, after, granted_by=actor.user_id)
    await audit(
        session,
        actor,
        AuditAction.AUTH_ROLE_CHANGED,
        resource_type="user",
        resource_id=user.id,
        payload={"before": _sorted_roles(before), "after": _sorted_roles(after)},
    )
    log.info(
        "auth.user.roles_changed",
        tenant=user.tenant_id,
        user=user.id,
        before=_sorted_roles(before),
        after=_sorted_roles(after),
    )
    return after


async def _replace_grants(
    session: AsyncSession,
    user: User,
    before: frozenset[Role],
    after: frozenset[Role],
    *,
    granted_by: str,
) -> None:
    now = utcnow()
    for role in before - after:
        grant = await session.get(RoleGrant, (user.id, role.value))
        if grant is not None:
            await session.delete(grant)
    for role in after - before:
        session.add(
            RoleGrant(
                user_id=user.id,
                role=role.value,
                tenant_id=user.tenant_id,
                granted_by=granted_by,
                granted_at=now,
            )
        )
    user.updated_at = now
    await session.flush()


def effective_directory_roles(user: User, directory_roles: Iterable[Role]) -> frozenset[Role]:
    """What an Entra user may use: what Entra grants, less what an admin withdrew here."""
    withheld = frozenset(Role(role) for role in user.withheld_roles or ())
    return frozenset(directory_roles) - withheld


async def sync_directory_roles(
    session: AsyncSession, user: User, directory_roles: Iterable[Role]
) -> frozenset[Role]:
    """Mirror the roles Entra just confirmed (less the withdrawn ones) into the user's
    grants, so that listings and every count of persons by role see them; audited when
    they change. Returns the effective roles."""
    before = await roles_of(session, user.tenant_id, user.id)
    after = effective_directory_roles(user, directory_roles)
    if before != after:
        await _replace_grants(session, user, before, after, granted_by="entra")
        await audit(
            session,
            system_principal(user.tenant_id, "entra"),
            AuditAction.AUTH_ROLE_CHANGED,
            resource_type="user",
            resource_id=user.id,
            payload={
                "before": _sorted_roles(before),
                "after": _sorted_roles(after),
                "source": "entra",
            },
        )
        log.info(
            "auth.user.directory_roles_changed",
            tenant=user.tenant_id,
            user=user.id,
            before=_sorted_roles(before),
            after=_sorted_roles(after),
        )
    return after


async def set_disabled(session: AsyncSession, actor: Principal, user: User, disabled: bool) -> bool:
    """Disable (her sessions end at once) or enable ``user``; audited. Nobody disables
    themselves: another admin must. Returns whether anything changed."""
    if disabled == user.disabled:
        return False
    if disabled and user.id == actor.user_id:
        raise SeparationOfDutiesError("nobody disables themselves: another admin must")
    user.disabled = disabled
    user.updated_at = utcnow()
    if disabled:
        await revoke_user_sessions(session, user.tenant_id, user.id)
    await session.flush()
    await audit(
        session,
        actor,
        AuditAction.AUTH_ROLE_CHANGED,
        resource_type="user",
        resource_id=user.id,
        payload={"change": {"disabled": disabled}},
    )
    log.info("auth.user.disabled" if disabled else "auth.user.enabled", user=user.id)
    return True


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    if problem := password_problem(password):
        raise ValidationFailedError(problem)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = utcnow()
    await session.flush()


async def upsert_directory_user(
    session: AsyncSession,
    actor: Principal,
    *,
    tenant_id: str,
    user_id: str,
    username: str,
    display_name: str | None,
    email: str | None,
) -> User:
    """An Entra user seen at sign-in, recorded so that delegations can name it."""
    user = await session.scalar(select(User).where(User.tenant_id == tenant_id, User.id == user_id))
    if user is None:
        if await find_user(session, tenant_id, username) is not None:
            username = f"{username}#{user_id[:8]}"
        return await create_user(
            session,
            actor,
            tenant_id=tenant_id,
            username=username,
            roles=(),
            display_name=display_name,
            email=email,
            source="entra",
            user_id=user_id,
        )
    user.display_name = display_name or user.display_name
    user.email = email or user.email
    user.updated_at = utcnow()
    await session.flush()
    return user


# ---------------------------------------------------------------------------- sign-in


class SignInOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class SignInResult:
    outcome: SignInOutcome
    user: User | None = None
    roles: frozenset[Role] = frozenset()
    retry_after: int = 0


async def password_sign_in(
    session: AsyncSession,
    settings: AuthSettings,
    *,
    tenant_id: str,
    username: str,
    password: str,
    source: str,
) -> SignInResult:
    """Check a password; record the attempt, count failures, lock after repeated ones.

    Returns instead of raising, so that the caller commits the failure's bookkeeping and its
    audit row. Every failure looks the same to the caller (no account probing).
    """
    now = utcnow()
    window_start = now - timedelta(seconds=settings.signin_rate_window_s)
    recent_failures = await session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.source == source,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at >= window_start,
        )
    )
    actor = anonymous(tenant_id, source)
    if (recent_failures or 0) >= settings.signin_rate_limit:
        await audit(
            session,
            actor,
            AuditAction.AUTH_SIGNIN_FAILED,
            outcome=Outcome.DENIED,
            reason="rate limited",
            payload={"username": username, "source": source},
        )
        log.warning("auth.signin.rate_limited", tenant=tenant_id, source=source)
        return SignInResult(SignInOutcome.RATE_LIMITED, retry_after=settings.signin_rate_window_s)
    # Nobody signs in to a reserved name (the system chain's): it is never even looked up.
    user = None if is_reserved_tenant(tenant_id) else await find_user(session, tenant_id, username)
    reason: str | None = None
    if user is None or user.disabled or user.password_hash is None:
        verify_password(None, password)  # same cost as a real check
        reason = "unknown user" if user is None else "account disabled or without password"
    elif user.locked_until is not None and user.locked_until > now:
        verify_password(None, password)
        reason = "account locked"
    elif not verify_password(user.password_hash, password):
        reason = "wrong password"
        user.failed_logins += 1
        if user.failed_logins >= settings.lockout_threshold:
            user.locked_until = now + timedelta(seconds=settings.lockout_s)
            user.failed_logins = 0
            await audit(
                session,
                actor,  # still unproven: the system chain, the tenant as claimed
                AuditAction.AUTH_LOCKOUT,
                outcome=Outcome.DENIED,
                resource_type="user",
                resource_id=user.id,
                reason=f"{settings.lockout_threshold} failed sign-ins",
                payload={"locked_until": user.locked_until.isoformat()},
            )
            log.warning("auth.signin.locked_out", tenant=tenant_id, user=user.id)
    session.add(
        LoginAttempt(
            tenant_id=tenant_id,
            username=username[:200],
            source=source,
            succeeded=reason is None,
            attempted_at=now,
        )
    )
    if reason is not None or user is None:
        await audit(
            session,
            actor,
            AuditAction.AUTH_SIGNIN_FAILED,
            outcome=Outcome.FAILURE,
            resource_type="user",
            resource_id=user.id if user else None,
            reason=reason,
            payload={"username": username, "source": source, "method": "password"},
        )
        log.info("auth.signin.failed", tenant=tenant_id, reason=reason, source=source)
        await session.flush()
        return SignInResult(SignInOutcome.FAILED)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    assert user.password_hash is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    roles = await roles_of(session, tenant_id, user.id)
    await audit(
        session,
        Principal(user_id=user.id, tenant_id=tenant_id, roles=roles, source_ip=source),
        AuditAction.AUTH_SIGNIN_SUCCEEDED,
        resource_type="user",
        resource_id=user.id,
        payload={"method": "password", "source": source},
    )
    await session.flush()
    log.info("auth.signin.succeeded", tenant=tenant_id, user=user.id, method="password")
    return SignInResult(SignInOutcome.OK, user=user, roles=roles)


# ---------------------------------------------------------------------------- delegations


def default_delegate_scopes() -> list[str]:
    return sorted(permission.value for permission in DELEGABLE)


_delegation_changes = 0


def delegation_changes() -> int:
    """How many grants or revocations of delegations this process has committed: caches of
    live grants (the auth runtime's) drop what they hold when it moves. Another process's
    changes reach them within ``auth.recheck_s``."""
    return _delegation_changes


async def _count_delegation_change() -> None:
    global _delegation_changes
    _delegation_changes += 1


async def grant_delegation(
    session: AsyncSession,
    actor: Principal,
    *,
    executive: User,
    delegate: User,
    scopes: Iterable[str] | None = None,
) -> Delegation:
    """``executive`` lets ``delegate`` act for them within ``scopes`` (audited)."""
    if executive.tenant_id != delegate.tenant_id:
        raise NotFoundError("no such user")
    if executive.id == delegate.id:
        raise ValidationFailedError("an executive cannot delegate to themselves")
    chosen = sorted(set(scopes)) if scopes is not None else default_delegate_scopes()
    unknown = [s for s in chosen if s not in {p.value for p in DELEGABLE}]
    if unknown or not chosen:
        raise ValidationFailedError(
            f"scopes must be a non-empty subset of {default_delegate_scopes()}; "
            f"not delegable: {unknown}"
        )
    if Role.EXECUTIVE not in await roles_of(session, executive.tenant_id, executive.id):
        raise ValidationFailedError("only an executive's data can be delegated")
    existing = await active_delegation(session, executive.tenant_id, executive.id, delegate.id)
    now = utcnow()
    if existing is not None:
        existing.revoked_at = now
        existing.revoked_by = actor.user_id
    grant = Delegation(
        id=new_id(),
        tenant_id=executive.tenant_id,
        executive_id=executive.id,
        delegate_id=delegate.id,
        scopes=chosen,
        granted_by=actor.user_id,
        granted_at=now,
    )
    session.add(grant)
    await session.flush()
    on_commit(session, _count_delegation_change)
    await audit(
        session,
        actor,
        AuditAction.AUTH_ROLE_CHANGED,
        resource_type="delegation",
        resource_id=grant.id,
        payload={
            "executive": executive.id,
            "delegate": delegate.id,
            "scopes": chosen,
            "change": "granted",
        },
    )
    return grant


async def active_delegation(
    session: AsyncSession, tenant_id: str, executive_id: str, delegate_id: str
) -> Delegation | None:
    return await session.scalar(
        select(Delegation).where(
            Delegation.tenant_id == tenant_id,
            Delegation.executive_id == executive_id,
            Delegation.delegate_id == delegate_id,
            Delegation.revoked_at.is_(None),
        )
    )


async def list_delegations(
    session: AsyncSession,
    tenant_id: str,
    *,
    user_id: str | None = None,
    include_revoked: bool = False,
) -> list[Delegation]:
    """A tenant's delegations; with ``user_id``, those it granted or received."""
    query = select(Delegation).where(Delegation.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(
            (Delegation.executive_id == user_id) | (Delegation.delegate_id == user_id)
        )
    if not include_revoked:
        query = query.where(Delegation.revoked_at.is_(None))
    return list(await session.scalars(query.order_by(Delegation.granted_at)))


async def revoke_delegation(
    session: AsyncSession,
    actor: Principal,
    tenant_id: str,
    delegation_id: str,
    *,
    only_executive: str | None = None,
) -> Delegation:
    grant = await session.scalar(
        select(Delegation).where(Delegation.tenant_id == tenant_id, Delegation.id == delegation_id)
    )
    if grant is None or (only_executive is not None and grant.executive_id != only_executive):
        raise NotFoundError("no such delegation")
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
        grant.revoked_by = actor.user_id
        await session.flush()
        on_commit(session, _count_delegation_change)
        await audit(
            session,
            actor,
            AuditAction.AUTH_ROLE_CHANGED,
            resource_type="delegation",
            resource_id=grant.id,
            payload={
                "executive": grant.executive_id,
                "delegate": grant.delegate_id,
                "change": "revoked",
            },
        )
    return grant


def scopes_as_permissions(scopes: Iterable[str]) -> frozenset[Permission]:
    return frozenset(Permission(s) for s in scopes if s in {p.value for p in DELEGABLE})


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())
