"""The executor: schedules approved actions, claims due ones, runs them through connectors.

* ``APPROVED -> SCHEDULED`` with ``not_before = approved_at + hold window`` (per kind,
  from settings; irreversible kinds always wait; ``auto_with_undo`` waits at least the
  undo window).
* A worker claims a due action by compare-and-set ``SCHEDULED -> EXECUTING`` and takes a
  lease; a worker that dies is recovered once its lease expires (``EXECUTING ->
  SCHEDULED``), and the action runs again with the **same idempotency key**, so the
  connector returns the effect of the first run instead of making a second one.
* Retriable connector errors back off (honouring ``Retry-After``); after
  ``max_attempts`` the action FAILS into the exception queue, routed to an owner.
* Kill switches keep covered actions in SCHEDULED.
* A running execution renews its lease every third of ``lease_seconds``, so only a
  silent worker's action is recovered, never a slow one's.
* Actions run concurrently, at most ``connector_concurrency`` per connector instance in
  a process: a slow peer holds up only its own actions.

Every step commits its own short transaction; no transaction is open during an external
call. The connector comes from a resolver callable, so governance never imports the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from pydantic import ValidationError
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError, ConflictError
from assistant.core.ids import new_id
from assistant.core.logging import redact_text
from assistant.core.principal import Principal, system_principal
from assistant.core.settings import GovernanceSettings
from governance.actions import (
    ActionKind,
    ExecutionContext,
    ExecutionResult,
    KindRegistry,
    RiskClass,
    registry,
)
from governance.aftercommit import after_commit
from governance.audit import AuditAction
from governance.killswitch import not_blocked
from governance.models import Action, ActionException
from governance.policy import Autonomy
from governance.state import (
    ActionState,
    Move,
    execution_key,
    transition,
    transition_through,
    update_fields,
)
from integrations.base import Capability
from integrations.errors import (
    ConnectorError,
    ConnectorUnavailableError,
    RetriableConnectorError,
    UnknownConnectorError,
)

log = structlog.stdlib.get_logger(__name__)

S = ActionState


class ConnectorResolver(Protocol):
    """Finds the tenant's connector for a capability (``ConnectorManager.get`` in the app)."""

    def get(
        self,
        tenant_id: str,
        capability: Capability,
        name: str | None = None,
        *,
        executive: str | None = None,
    ) -> Any:
        """With ``executive``: only a connector bound to (serving) that executive."""
        ...


#: Called after commit when an action becomes due at a time (wakes a runner, defers a job).
Notify = Callable[[str, datetime], Awaitable[None]]


def hold_seconds(settings: GovernanceSettings, kind: ActionKind, autonomy: str) -> float:
    """The hold window of a kind: its own setting, else its risk class's."""
    if kind.name in settings.hold_window_seconds:
        hold = settings.hold_window_seconds[kind.name]
    elif kind.risk is RiskClass.IRREVERSIBLE:
        hold = settings.hold_irreversible_seconds
    elif kind.risk is RiskClass.COMPENSABLE:
        hold = settings.hold_compensable_seconds
    else:
        hold = settings.hold_reversible_seconds
    if kind.risk is RiskClass.IRREVERSIBLE:
        # A per-kind setting may lengthen an irreversible kind's window, never shorten it.
        hold = max(hold, settings.hold_irreversible_seconds)
    if autonomy == Autonomy.AUTO_WITH_UNDO:
        hold = max(hold, settings.auto_with_undo_seconds)
    return float(hold)


class OwnerRouting(Protocol):
    """Who owns a failed action, and notifying them (governance.owners.OwnerRouter)."""

    async def owner_for(self, session: AsyncSession, action: Action) -> str: ...

    def routed(self, session: AsyncSession, exception: ActionException) -> None: ...


#: Owner recorded on the exception queue when no owner routing is configured.
UNASSIGNED_OWNER = "unassigned"


def error_text(exc: BaseException) -> str:
    """The error for the action row and the exception queue (redacted, bounded)."""
    detail = getattr(exc, "detail", None) or str(exc)
    return redact_text(f"{type(exc).__name__}: {detail}")[:1000]


def audit_reason(exc: BaseException | str) -> str:
    """The error as the audit log keeps it: its class only. Connector messages may echo
    argument values (an address, a subject), and arguments stay out of the audit log."""
    return exc if isinstance(exc, str) else type(exc).__name__


async def route_exception(
    session: AsyncSession,
    action: Action,
    *,
    state: ActionState,
    error: str | None,
    owner: str,
    now: datetime,
    routing: OwnerRouting | None = None,
) -> ActionException:
    """Put a failed action on the exception queue (same transaction as the transition);
    with ``routing``, its owner is notified once that transaction commits."""
    row = ActionException(
        id=new_id(),
        tenant_id=action.tenant_id,
        action_id=action.id,
        kind=action.kind,
        state=state.value,
        owner=owner,
        error=error,
        status="open",
        created_at=now,
    )
    session.add(row)
    await session.flush()
    if routing is not None:
        routing.routed(session, row)
    return row


def backoff_seconds(settings: GovernanceSettings, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff, never sooner than the peer's Retry-After."""
    delay = min(
        settings.backoff_max_seconds, settings.backoff_initial_seconds * (2 ** max(0, attempt - 1))
    )
    return max(delay, retry_after or 0.0)


#: Actions are limited per (tenant, capability, connector name or None for the default).
ConnectorKey = tuple[str, str, str | None]


def connector_key(action: Action) -> ConnectorKey:
    return (action.tenant_id, action.capability, action.connector)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()[:6]}"


class Executor:
    """Runs due actions. Safe to run in several processes at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        resolver: ConnectorResolver,
        settings: GovernanceSettings,
        *,
        kinds: KindRegistry = registry,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        notify: Notify | None = None,
        owners: OwnerRouting | None = None,
    ) -> None:
        self.owners = owners
        self.sessions = sessions
        self.resolver = resolver
        self.settings = settings
        self.kinds = kinds
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.notify = notify
        #: Called whenever an execution ends (a runner claims more at once).
        self.on_finished: Callable[[], None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._busy: dict[ConnectorKey, int] = {}
        self._claim_lock = asyncio.Lock()

    def actor_for(self, tenant_id: str) -> Principal:
        return system_principal(tenant_id, f"executor:{self.worker_id}")

    async def owner_for(self, session: AsyncSession, action: Action) -> str:
        """Owner of a failed action (``unassigned`` without owner routing)."""
        if self.owners is None:
            return UNASSIGNED_OWNER
        return await self.owners.owner_for(session, action)

    async def fail_to_owner(
        self,
        session: AsyncSession,
        action: Action,
        state: ActionState,
        *,
        error: str,
        reason: str,
        values: dict[str, Any],
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Move ``action`` to a failure ``state`` and route the exception to its owner.

        Both happen in the caller's transaction, so the exception row, the state change
        and its audit event commit together. Returns the owner it was routed to.
        """
        now = self.clock()
        owner = await self.owner_for(session, action)
        routed = await route_exception(
            session, action, state=state, error=error, owner=owner, now=now, routing=self.owners
        )
        await transition(
            session,
            action,
            state,
            actor=self.actor_for(action.tenant_id),
            now=now,
            reason=reason,
            values={**values, "last_error": error},
            payload={**(payload or {}), "exception_id": routed.id, "owner": owner},
        )
        return owner

    # ------------------------------------------------------------------ scheduling

    async def schedule(self, session: AsyncSession, action: Action) -> Action:
        """``APPROVED -> SCHEDULED`` in the caller's transaction; notifies after commit."""
        return await self.approve_and_schedule(session, action, None)

    async def approve_and_schedule(
        self, session: AsyncSession, action: Action, approval: Move | None
    ) -> Action:
        """``approval`` (a move to APPROVED that sets ``approved_at``) and then
        ``APPROVED -> SCHEDULED``, as one compare-and-set (one UPDATE, an event each);
        without ``approval``, the action is APPROVED already. Notifies after commit."""
        kind = self.kinds.get(action.kind)
        now = self.clock()
        approved_at = (approval.values or {}).get("approved_at") if approval else None
        approved_at = approved_at or action.approved_at or now
        hold = hold_seconds(self.settings, kind, action.autonomy)
        not_before = approved_at + timedelta(seconds=hold)
        scheduled = Move(
            S.SCHEDULED,
            self.actor_for(action.tenant_id),
            values={"hold_seconds": hold, "not_before": not_before},
            payload={"not_before": not_before.isoformat(), "hold_seconds": hold},
        )
        moves = [scheduled] if approval is None else [approval, scheduled]
        await transition_through(session, action, moves, now=now)
        if self.notify is not None:
            notify, action_id = self.notify, action.id
            after_commit(session, lambda: notify(action_id, not_before))
        return action

    # ------------------------------------------------------------------ running

    @property
    def running(self) -> int:
        """Actions this executor is executing now."""
        return len(self._running)

    async def run_due(self, limit: int = 100) -> int:
        """Recover expired leases, run due actions, and return once they are done.

        Actions run concurrently, at most ``connector_concurrency`` per connector instance:
        a slow peer delays only its own actions."""
        await self.recover_expired()
        started = 0
        pending: set[asyncio.Task[None]] = set()
        while True:
            while started < limit:
                action = await self._claim()
                if action is None:  # nothing due, or only for connectors at their limit
                    break
                pending.add(self._start(action))
                started += 1
            if not pending:
                return started
            # One finished: its connector has room again, or new work may be due.
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)

    async def dispatch_due(
        self, limit: int = 100, *, capacity: int | None = None
    ) -> list[asyncio.Task[None]]:
        """Recover expired leases, then claim due actions and start executing them in
        tasks (not awaited): up to ``limit`` now, ``capacity`` running in total."""
        await self.recover_expired()
        started: list[asyncio.Task[None]] = []
        while len(started) < limit and (capacity is None or self.running < capacity):
            action = await self._claim()
            if action is None:
                break
            started.append(self._start(action))
        return started

    async def run_action(self, action_id: str) -> bool:
        """Run one action if it is due and unclaimed (a background job's entry point).

        When its connector already runs ``connector_concurrency`` actions here, the action
        is left scheduled and announced again a moment later: the job slot goes to others."""
        action = await self._claim(action_id)
        if action is None:
            if self.notify is not None and await self._waits_for_its_connector(action_id):
                await self.notify(action_id, self.clock() + timedelta(seconds=1))
            return False
        await self._start(action)
        return True

    def _start(self, action: Action) -> asyncio.Task[None]:
        key = connector_key(action)
        self._busy[key] = self._busy.get(key, 0) + 1
        task = asyncio.create_task(self._execute(action), name=f"execute-{action.id}")
        self._running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._running.discard(done)
            left = self._busy.get(key, 1) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)
            if self.on_finished is not None:
                self.on_finished()

        task.add_done_callback(finished)
        return task

    async def cancel_running(self) -> None:
        """Stop executions in progress (their leases expire; another run resumes them)."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*list(self._running), return_exceptions=True)

    def _saturated(self) -> list[ConnectorKey]:
        limit = self.settings.connector_concurrency
        return [key for key, busy in self._busy.items() if busy >= limit]

    async def _waits_for_its_connector(self, action_id: str) -> bool:
        saturated = set(self._saturated())
        if not saturated:
            return False
        async with self.sessions() as session:
            action = await session.get(Action, action_id)
        return (
            action is not None
            and action.state == S.SCHEDULED.value
            and connector_key(action) in saturated
        )

    async def _claim(self, action_id: str | None = None) -> Action | None:
        """Claim the next due action (or ``action_id``) whose connector has room here;
        None when nothing is due."""
        # One claim at a time in this process, so that the per-connector count it reads
        # is still true when the claimed action starts.
        async with self._claim_lock:
            for _ in range(5):
                try:
                    return await self._claim_once(action_id, self._saturated())
                except ConflictError:
                    continue  # another worker took that row first: look again
            return None

    async def _claim_once(
        self, action_id: str | None, saturated: list[ConnectorKey]
    ) -> Action | None:
        async with self.sessions() as session, session.begin():
            now = self.clock()
            query = (
                select(Action)
                .where(Action.state == S.SCHEDULED.value, Action.not_before <= now, not_blocked())
                .order_by(Action.not_before, Action.id)
                .limit(1)
            )
            if action_id is not None:
                query = query.where(Action.id == action_id)
            for tenant_id, capability, connector in saturated:
                query = query.where(
                    ~and_(
                        Action.tenant_id == tenant_id,
                        Action.capability == capability,
                        Action.connector.is_(None)
                        if connector is None
                        else Action.connector == connector,
                    )
                )
            if session.get_bind().dialect.name == "postgresql":
                # Workers skip rows another worker is claiming instead of queueing on them.
                query = query.with_for_update(skip_locked=True, of=Action)
            action = (await session.execute(query)).scalar_one_or_none()
            if action is None:
                return None
            attempt = action.attempts + 1
            await transition(
                session,
                action,
                S.EXECUTING,
                actor=self.actor_for(action.tenant_id),
                now=now,
                values={
                    "attempts": attempt,
                    "claimed_by": self.worker_id,
                    "claimed_at": now,
                    "lease_expires_at": now + timedelta(seconds=self.settings.lease_seconds),
                },
                payload={"attempt": attempt, "worker": self.worker_id},
            )
        return action

    async def _execute(self, action: Action) -> None:
        bound = log.bind(
            action_id=action.id, kind=action.kind, tenant=action.tenant_id, attempt=action.attempts
        )
        try:
            kind = self.kinds.get(action.kind)
            args = kind.args_model.model_validate(action.arguments)
            # Kill switches were checked by the claim's query (in the same statement).
            # The executive's own connector: never another executive's mailbox.
            connector = self.resolver.get(
                action.tenant_id,
                Capability(action.capability),
                action.connector,
                executive=action.on_behalf_of,
            )
            if kind.prepare is not None and action.snapshot is None:
                snapshot = await kind.prepare(connector, args)
                await self._save(action, {"snapshot": snapshot})

            async def save_progress(ids: dict[str, Any]) -> None:
                await self._save(action, {"external_ids": {**(action.external_ids or {}), **ids}})

            context = ExecutionContext(
                connector=connector,
                idempotency_key=execution_key(action.id),
                snapshot=action.snapshot,
                progress=dict(action.external_ids or {}),
                save_progress=save_progress,
            )
            async with self._lease_kept(action):
                outcome = await kind.execute(context, args)
        except ConflictError:
            bound.warning("executor.lease_lost", worker=self.worker_id)
        except RetriableConnectorError as exc:
            bound.warning(
                "executor.retriable_error", error=type(exc).__name__, retry_after=exc.retry_after
            )
            await self._retry_or_fail(action, exc, exc.retry_after)
        except (UnknownConnectorError, ConnectorUnavailableError) as exc:
            bound.warning("executor.connector_unavailable", error=type(exc).__name__)
            await self._retry_or_fail(action, exc, None)
        except (ConnectorError, AssistantError, ValidationError) as exc:
            bound.warning("executor.failed", error=type(exc).__name__)
            await self._fail(action, exc)
        except Exception as exc:  # a bug or an outage we do not know: retry, then fail
            bound.exception("executor.unexpected_error", error=type(exc).__name__)
            await self._retry_or_fail(action, exc, None)
        else:
            await self._succeed(action, outcome)

    @contextlib.asynccontextmanager
    async def _lease_kept(self, action: Action) -> AsyncIterator[None]:
        """Renew the action's lease while its execution runs, so that a slow peer is not
        mistaken for a dead worker and the action started a second time."""
        renewer = asyncio.create_task(self._renew_lease(action), name=f"lease-{action.id}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew_lease(self, action: Action) -> None:
        period = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                lease = timedelta(seconds=self.settings.lease_seconds)
                await self._save(action, {"lease_expires_at": self.clock() + lease})
            except ConflictError:  # recovered by another worker: its outcome write will fail too
                log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)
                return
            except Exception as exc:  # a database blip: try again next period, lease permitting
                log.warning(
                    "executor.lease_renewal_failed", action_id=action.id, error=type(exc).__name__
                )

    async def _save(self, action: Action, values: dict[str, Any]) -> None:
        async with self.sessions() as session, session.begin():
            await update_fields(session, action, values, claimed_by=self.worker_id)

    async def _succeed(self, action: Action, outcome: ExecutionResult) -> None:
        external = {**(action.external_ids or {}), **outcome.external_ids}
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                await transition(
                    session,
                    action,
                    S.SUCCEEDED,
                    actor=self.actor_for(action.tenant_id),
                    now=now,
                    values={
                        "external_ids": external,
                        "result": outcome.result,
                        "finished_at": now,
                        "claimed_by": None,
                        "lease_expires_at": None,
                        "last_error": None,
                    },
                    payload={"external_ids": external, "attempt": action.attempts},
                )
        except ConflictError:
            log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)
            return
        log.info(
            "executor.succeeded",
            action_id=action.id,
            kind=action.kind,
            tenant=action.tenant_id,
            attempt=action.attempts,
        )

    async def _retry_or_fail(
        self, action: Action, exc: BaseException, retry_after: float | None
    ) -> None:
        if action.attempts >= self.settings.max_attempts:
            await self._fail(action, exc)
            return
        delay = backoff_seconds(self.settings, action.attempts, retry_after)
        error = error_text(exc)
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                not_before = now + timedelta(seconds=delay)
                await transition(
                    session,
                    action,
                    S.SCHEDULED,
                    actor=self.actor_for(action.tenant_id),
                    now=now,
                    audit_action=AuditAction.ACTION_RETRY_SCHEDULED,
                    reason=audit_reason(exc),
                    values={
                        "not_before": not_before,
                        "claimed_by": None,
                        "lease_expires_at": None,
                        "last_error": error,
                    },
                    payload={
                        "attempt": action.attempts,
                        "delay_seconds": delay,
                        "not_before": not_before.isoformat(),
                    },
                )
                if self.notify is not None:
                    notify, action_id = self.notify, action.id
                    after_commit(session, lambda: notify(action_id, not_before))
        except ConflictError:
            log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)

    async def _fail(self, action: Action, exc: BaseException | str) -> None:
        error = exc if isinstance(exc, str) else error_text(exc)
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                owner = await self.fail_to_owner(
                    session,
                    action,
                    S.FAILED,
                    error=error,
                    reason=audit_reason(exc),
                    values={"finished_at": now, "claimed_by": None, "lease_expires_at": None},
                    payload={"attempt": action.attempts},
                )
        except ConflictError:
            log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)
            return
        log.warning(
            "executor.action_failed",
            action_id=action.id,
            kind=action.kind,
            tenant=action.tenant_id,
            owner=owner,
        )

    # ------------------------------------------------------------------ recovery

    async def recover_expired(self) -> int:
        """Reschedule actions whose worker went silent; fail interrupted compensations."""
        now = self.clock()
        async with self.sessions() as session:
            stale = list(
                (
                    await session.execute(
                        select(Action)
                        .where(
                            Action.state.in_([S.EXECUTING.value, S.COMPENSATING.value]),
                            Action.lease_expires_at < now,
                        )
                        .limit(100)
                    )
                ).scalars()
            )
        recovered = 0
        for action in stale:
            try:
                if action.state == S.COMPENSATING:
                    await self._interrupted_compensation(action)
                elif action.attempts >= self.settings.max_attempts:
                    await self._fail(
                        action,
                        f"worker {action.claimed_by} went silent on the "
                        f"last attempt ({action.attempts})",
                    )
                else:
                    async with self.sessions() as session, session.begin():
                        await transition(
                            session,
                            action,
                            S.SCHEDULED,
                            actor=self.actor_for(action.tenant_id),
                            now=now,
                            audit_action=AuditAction.ACTION_RETRY_SCHEDULED,
                            reason=f"lease of worker {action.claimed_by} expired",
                            values={
                                "not_before": now,
                                "claimed_by": None,
                                "lease_expires_at": None,
                            },
                            payload={"attempt": action.attempts, "recovered": True},
                        )
                recovered += 1
                log.warning(
                    "executor.lease_recovered", action_id=action.id, worker=action.claimed_by
                )
            except ConflictError:
                continue
        return recovered

    async def _interrupted_compensation(self, action: Action) -> None:
        error = "the compensation was interrupted (its worker went silent); retry it"
        async with self.sessions() as session, session.begin():
            await self.fail_to_owner(
                session,
                action,
                S.COMPENSATION_FAILED,
                error=error,
                reason=error,
                values={"claimed_by": None, "lease_expires_at": None},
            )
