"""Browser sessions: a random cookie value, its SHA-256 in ``auth_sessions``.

Server-side rows make sign-out and revocation immediate. Cookies are HttpOnly, SameSite and
Secure (except plain-http development, where browsers would drop a Secure cookie).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from fastapi import Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.models import WebSession
from assistant.core.clock import utcnow
from assistant.core.principal import Role
from assistant.core.settings import Settings


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def cookie_secure(settings: Settings) -> bool:
    if settings.auth.cookie_secure is not None:
        return settings.auth.cookie_secure
    return settings.is_production or settings.server.public_url.startswith("https://")


async def create_session(
    session: AsyncSession,
    settings: Settings,
    *,
    tenant_id: str,
    user_id: str,
    roles: Iterable[Role],
    source: str,
    display_name: str | None = None,
    account_id: str | None = None,
) -> str:
    """A new session; returns the cookie value (shown once, stored only as a hash)."""
    value = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            id=_digest(value),
            tenant_id=tenant_id,
            user_id=user_id,
            source=source,
            roles=sorted(Role(role).value for role in roles),
            display_name=display_name,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.auth.session_ttl_s),
            account_id=account_id,
            roles_checked_at=now,
        )
    )
    await session.flush()
    return value


async def find_session(session: AsyncSession, value: str) -> WebSession | None:
    """The live session of a cookie value, or None."""
    row = await session.get(WebSession, _digest(value))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row


async def revoke_session(session: AsyncSession, value: str) -> WebSession | None:
    row = await session.get(WebSession, _digest(value))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def revoke_user_sessions(session: AsyncSession, tenant_id: str, user_id: str) -> None:
    await session.execute(
        update(WebSession)
        .where(
            WebSession.tenant_id == tenant_id,
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, max_age: int, path: str = "/"
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        secure=cookie_secure(settings),
        samesite=settings.auth.cookie_samesite,
    )


def clear_cookie(response: Response, settings: Settings, name: str, path: str = "/") -> None:
    response.delete_cookie(
        name,
        path=path,
        httponly=True,
        secure=cookie_secure(settings),
        samesite=settings.auth.cookie_samesite,
    )


async def live_sessions(session: AsyncSession, tenant_id: str, user_id: str) -> list[WebSession]:
    return list(
        await session.scalars(
            select(WebSession).where(
                WebSession.tenant_id == tenant_id,
                WebSession.user_id == user_id,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > utcnow(),
            )
        )
    )
