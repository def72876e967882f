"""Audit events of authentication, through the tamper-evident log (governance.audit).

Failed authentications are recorded in the system chain (:data:`SYSTEM_CHAIN`), never in a
tenant's: a tenant named by a forged token or a sign-in form is only *claimed*, so it is
kept as data (``claimed_tenant``), and unauthenticated input can neither create a tenant's
chain nor write into one. They are rate-limited (a token bucket per process,
``audit.auth_failure_rate`` per second after a burst of ``audit.auth_failure_burst``): past
the budget each failure is still logged, and the next recorded one carries how many were
left out (``suppressed_before``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Principal
from governance.audit import AuditAction, AuditEventIn, Outcome, record

if TYPE_CHECKING:
    from assistant.core.settings import Settings

log = structlog.stdlib.get_logger(__name__)

ANONYMOUS = "anonymous"
#: The chain of events no tenant has vouched for (tenant names never start with "_").
SYSTEM_CHAIN = "_system"


def anonymous(tenant_id: str, source_ip: str | None = None) -> Principal:
    """The actor of a failed authentication: nobody proven yet. ``tenant_id`` is only the
    tenant the caller claimed; the event goes to the system chain."""
    return Principal(user_id=ANONYMOUS, tenant_id=tenant_id, source_ip=source_ip)


class FailureBudget:
    """A token bucket: how many failed authentications are recorded one by one."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._suppressed = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """None when over budget (counted); else how many were suppressed before this one."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1:
                self._suppressed += 1
                return None
            self._tokens -= 1
            suppressed, self._suppressed = self._suppressed, 0
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
        suppressed = _budget.take()
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
