"""Audit events of authentication, through the tamper-evident log (governance.audit).

Failed authentications are recorded in the system chain (:data:`SYSTEM_CHAIN`), never in a
tenant's: a tenant named by a forged token or a sign-in form is only *claimed*, so it is
kept as data (``claimed_tenant``), and unauthenticated input can neither create a tenant's
chain nor write into one. They are rate-limited by a token bucket
(``audit.auth_failure_rate`` per second after a burst of ``audit.auth_failure_burst``)
kept in the database (``auth_failure_budget``) and taken in the transaction that appends
the event, so that the limit holds for all the service's processes together: past the
budget each failure is still logged, and the next recorded one carries how many were left
out (``suppressed_before``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Principal
from assistant.core.tenancy import SYSTEM_CHAIN
from governance.audit import AuditAction, AuditEventIn, Outcome, record

if TYPE_CHECKING:
    from assistant.core.settings import Settings

log = structlog.stdlib.get_logger(__name__)

__all__ = ["ANONYMOUS", "SYSTEM_CHAIN", "FailureBudget", "anonymous", "audit", "audit_detached"]

ANONYMOUS = "anonymous"


def anonymous(tenant_id: str, source_ip: str | None = None) -> Principal:
    """The actor of a failed authentication: nobody proven yet. ``tenant_id`` is only the
    tenant the caller claimed; the event goes to the system chain."""
    return Principal(user_id=ANONYMOUS, tenant_id=tenant_id, source_ip=source_ip)


_BUCKET = "auth"
_CREATE = text(
    "INSERT INTO auth_failure_budget (name, tokens, refilled_at, suppressed) "
    "VALUES (:name, :burst, :now, 0) ON CONFLICT (name) DO NOTHING"
)
# An UPDATE, not a SELECT: it takes the row's lock (PostgreSQL) or the database's write lock
# (SQLite) at once, so that two processes never spend the same token.
_LOCK = text(
    "UPDATE auth_failure_budget SET name = name WHERE name = :name "
    "RETURNING tokens, refilled_at, suppressed"
)
_STORE = text(
    "UPDATE auth_failure_budget SET tokens = :tokens, refilled_at = :now, "
    "suppressed = :suppressed WHERE name = :name"
)


@dataclass(frozen=True)
class FailureBudget:
    """A token bucket in the database: how many failed authentications are recorded one
    by one, for every process of the service together."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.time  # wall clock: processes share it, not monotonic

    async def take(self, session: AsyncSession) -> int | None:
        """In the caller's transaction (the row stays locked until it ends): None when
        over budget (counted); else how many were left out before this one."""
        now = self.clock()
        params = {"name": _BUCKET, "burst": float(self.burst), "now": now}
        row = (await session.execute(_LOCK, params)).first()
        if row is None:
            await session.execute(_CREATE, params)
            row = (await session.execute(_LOCK, params)).one()
        tokens, refilled_at, suppressed = float(row[0]), float(row[1]), int(row[2])
        # A clock that stepped back refills nothing (and never drains the bucket).
        tokens = min(float(self.burst), tokens + max(0.0, now - refilled_at) * self.rate)
        if tokens < 1:
            stored = {"tokens": tokens, "suppressed": suppressed + 1}
            await session.execute(_STORE, {**params, **stored})
            return None
        await session.execute(_STORE, {**params, "tokens": tokens - 1, "suppressed": 0})
        return suppressed


_budget = FailureBudget(rate=1.0, burst=20)


def configure_failure_budget(settings: Settings) -> None:
    """Apply ``audit.auth_failure_rate`` and ``audit.auth_failure_burst`` (at start)."""
    global _budget
    _budget = FailureBudget(settings.audit.auth_failure_rate, settings.audit.auth_failure_burst)


def _unproven(actor: Principal) -> bool:
    return actor.user_id == ANONYMOUS


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
    """Record in the caller's transaction: the change and its audit row commit together.

    An unproven actor's event goes to the system chain, within the failure budget.
    """
    if _unproven(actor):
        suppressed = await _budget.take(session)
        if suppressed is None:
            log.info("auth.failure.suppressed", action=action.value, claimed=actor.tenant_id)
            return
        payload = {**(payload or {}), "claimed_tenant": actor.tenant_id[:64]}
        if suppressed:
            payload["suppressed_before"] = suppressed
        actor = Principal(user_id=ANONYMOUS, tenant_id=SYSTEM_CHAIN, source_ip=actor.source_ip)
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
