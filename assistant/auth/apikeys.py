"""API keys of service accounts: ``ea_<prefix>_<secret>``.

Only the SHA-256 of a key is stored (a key has 256 random bits, so a fast hash is enough);
the prefix stays visible for listings and audit rows. Keys carry roles, can expire, are
revocable, and remember when they were last used.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.auth.audit import audit
from assistant.auth.errors import TokenRejectedError
from assistant.auth.models import ApiKey
from assistant.core.clock import utcnow
from assistant.core.errors import NotFoundError, SeparationOfDutiesError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal, Role
from assistant.core.tenancy import check_tenant_name
from governance.audit import AuditAction

log = structlog.stdlib.get_logger(__name__)

KEY_PREFIX = "ea_"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LENGTH = 10
#: last_used_at is written at most this often per key (not on every request).
LAST_USED_GRANULARITY = timedelta(seconds=60)
#: Roles a service account may hold: a delegate is a person acting for another.
SERVICE_ROLES = frozenset({Role.EXECUTIVE, Role.ADMIN, Role.AUDITOR})


def looks_like_api_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and value.count("_") >= 2


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """(prefix, full key)."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    return prefix, f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"


async def create_api_key(
    session: AsyncSession,
    actor: Principal,
    *,
    tenant_id: str,
    name: str,
    roles: Iterable[Role],
    expires_at: datetime | None = None,
    personal: bool = False,
) -> tuple[ApiKey, str]:
    """A new key (audited). The full key is returned once and never stored.

    ``personal``: the key belongs to ``actor`` and acts as them (four-eyes counts it as
    them, not as another approver); it may hold only roles ``actor`` holds, and keeps only
    those they still hold at each request. Nobody mints a key for another person: it
    would let them act as that person."""
    check_tenant_name(tenant_id)
    chosen = sorted({Role(role).value for role in roles})
    if not chosen:
        raise ValidationFailedError("an API key needs at least one role")
    if not set(chosen) <= {role.value for role in SERVICE_ROLES}:
        raise ValidationFailedError("an API key may hold executive, admin or auditor")
    if not name.strip():
        raise ValidationFailedError("an API key needs a name")
    owner_id: str | None = None
    if personal:
        from assistant.auth.users import roles_of

        held = await roles_of(session, tenant_id, actor.user_id)
        extra = set(chosen) - {role.value for role in held}
        if extra:
            raise SeparationOfDutiesError(
                "a personal key holds only roles its owner holds: nobody grants roles "
                "to themselves through a key",
                roles=",".join(sorted(extra)),
            )
        owner_id = actor.user_id
    prefix, key = generate_key()
    row = ApiKey(
        id=new_id(),
        tenant_id=tenant_id,
        name=name.strip(),
        prefix=prefix,
        key_hash=_hash(key),
        roles=chosen,
        created_by=actor.user_id,
        created_at=utcnow(),
        expires_at=expires_at,
        owner_id=owner_id,
    )
    session.add(row)
    await session.flush()
    await audit(
        session,
        actor,
        AuditAction.AUTH_APIKEY_CREATED,
        resource_type="api_key",
        resource_id=row.id,
        payload={
            "prefix": prefix,
            "name": row.name,
            "roles": chosen,
            "owner": owner_id,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    log.info("auth.apikey.created", tenant=tenant_id, prefix=prefix, roles=chosen)
    return row, key


async def list_api_keys(session: AsyncSession, tenant_id: str) -> list[ApiKey]:
    return list(
        await session.scalars(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
        )
    )


async def find_api_key(session: AsyncSession, tenant_id: str, ref: str) -> ApiKey:
    """A key of the tenant by id or by prefix."""
    row = await session.scalar(
        select(ApiKey).where(
            ApiKey.tenant_id == tenant_id, (ApiKey.id == ref) | (ApiKey.prefix == ref)
        )
    )
    if row is None:
        raise NotFoundError("no such API key")
    return row


async def revoke_api_key(session: AsyncSession, actor: Principal, row: ApiKey) -> ApiKey:
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.revoked_by = actor.user_id
        await session.flush()
        await audit(
            session,
            actor,
            AuditAction.AUTH_APIKEY_REVOKED,
            resource_type="api_key",
            resource_id=row.id,
            payload={"prefix": row.prefix, "name": row.name},
        )
        log.info("auth.apikey.revoked", tenant=row.tenant_id, prefix=row.prefix)
    return row


async def verify_api_key(session: AsyncSession, presented: str) -> ApiKey:
    """The live key matching ``presented``, or :class:`TokenRejectedError`."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX.rstrip("_") or not parts[1]:
        raise TokenRejectedError("malformed API key", "invalid API key")
    row = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or not hmac.compare_digest(row.key_hash, _hash(presented)):
        raise TokenRejectedError(
            "unknown API key",
            "invalid API key",
            tenant_id=row.tenant_id if row else None,
            subject=f"apikey:{parts[1]}",
        )
    if row.revoked_at is not None:
        raise TokenRejectedError(
            "revoked API key",
            "invalid API key",
            tenant_id=row.tenant_id,
            subject=f"apikey:{row.prefix}",
        )
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise TokenRejectedError(
            "expired API key",
            "invalid API key",
            tenant_id=row.tenant_id,
            subject=f"apikey:{row.prefix}",
        )
    return row


async def touch_last_used(sessions: async_sessionmaker[AsyncSession], row: ApiKey) -> None:
    """Record use in a short transaction of its own, at most once a minute per key."""
    now = utcnow()
    if row.last_used_at is not None and now - row.last_used_at < LAST_USED_GRANULARITY:
        return
    try:
        async with sessions() as session:
            await session.execute(
                update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now)
            )
            await session.commit()
    except Exception as exc:  # bookkeeping must not fail the request
        log.warning("auth.apikey.touch_failed", prefix=row.prefix, error=type(exc).__name__)
