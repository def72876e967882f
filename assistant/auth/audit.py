"""Audit events of authentication, through the tamper-evident log (governance.audit)."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Principal
from governance.audit import AuditAction, AuditEventIn, Outcome, record

log = structlog.stdlib.get_logger(__name__)

ANONYMOUS = "anonymous"


def anonymous(tenant_id: str, source_ip: str | None = None) -> Principal:
    """The actor of a failed authentication: nobody proven yet."""
    return Principal(user_id=ANONYMOUS, tenant_id=tenant_id, source_ip=source_ip)


async def audit(
    session: AsyncSession,
    actor: Principal,
    action: AuditAction,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    resource_type: str | None = None,
    resource_id: str | None = None,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> None:
    """Record in the caller's transaction: the change and its audit row commit together."""
    await record(
        session,
        actor,
        AuditEventIn(
            action=action,
            outcome=outcome,
            resource_type=resource_type,
            resource_id=resource_id,
            reason=reason,
            payload=payload or {},
            correlation_id=correlation_id,
        ),
    )


async def audit_detached(
    sessions: async_sessionmaker[AsyncSession],
    actor: Principal,
    action: AuditAction,
    **fields: Any,
) -> None:
    """Record in a transaction of its own, for refusals whose request transaction rolls
    back. A failure to record is logged, and never turns a 401 into a 500."""
    try:
        async with sessions() as session:
            await audit(session, actor, action, **fields)
            await session.commit()
    except Exception as exc:
        log.error("auth.audit.failed", action=action.value, error=type(exc).__name__)
