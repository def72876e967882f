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
import time
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
from governance.killswitch import covers, list_switches, not_blocked
from governance.models import Action, ActionException, KillSwitch
from governance.policy import Autonomy
from governance.state import (
    ActionState,
    Move,
    execution_key,
    set_committed,
    transition,
    transition_batch,
    transition_each,
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

#: Most due actions one claim takes: one statement and one audit append for all of them.
CLAIM_BATCH = 32
#: Per connector, a worker claims ahead what that connector is expected to start within
#: this long at its recent pace; one not measured yet gets only what it runs at once, so a
#: slow peer's actions are not hoarded by one worker while others could run them.
CLAIM_AHEAD_SECONDS = 0.5
#: A claimed action that waited longer than this for its connector reads the kill switches
#: again before it starts (one read per process and period, shared): a switch on for
#: longer than this stops every action that has not started.
SWITCH_RECHECK_SECONDS = 0.2
#: Most successes one transaction records.
OUTCOME_BATCH = 64
#: While other actions of this process are executing, a success waits this long for their
#: outcomes to share its transaction.
OUTCOME_LINGER_SECONDS = 0.02
#: Columns a success writes (restored on the in-memory action when its commit fails).
_SUCCESS_COLUMNS = (
    "state",
    "version",
    "updated_at",
    "external_ids",
    "result",
    "finished_at",
    "claimed_by",
    "lease_expires_at",
    "last_error",
)

#: A success waiting for its transaction: the action, its outcome, and whether it was
#: recorded (False: the lease was lost).
PendingOutcome = tuple[Action, ExecutionResult, "asyncio.Future[bool]"]


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
        #: Actions held per connector: executing, or claimed and waiting for a slot.
        self._held: dict[ConnectorKey, int] = {}
        self._slots: dict[ConnectorKey, asyncio.Semaphore] = {}
        #: Seconds an execution holds its connector's slot, per connector (moving average).
        self._pace: dict[ConnectorKey, float] = {}
        self._claim_lock = asyncio.Lock()
        self._switch_lock = asyncio.Lock()
        self._switches: tuple[float, list[KillSwitch]] | None = None
        self._outcomes: list[PendingOutcome] = []
        self._writer: asyncio.Task[None] | None = None

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
        """Actions this executor holds now: executing, or claimed and waiting for their
        connector."""
        return len(self._running)

    async def run_due(self, limit: int = 100) -> int:
        """Recover expired leases, run due actions, and return once they are done.

        Due actions are claimed in batches (one statement, one audit append each) and run
        concurrently, at most ``connector_concurrency`` at once per connector instance: a
        slow peer delays only its own actions."""
        await self.recover_expired()
        started = 0
        pending: set[asyncio.Task[None]] = set()
        claim = True
        while True:
            if claim and started < limit:
                asked = min(limit - started, CLAIM_BATCH)
                checked, batch = await self._claim_batch(asked)
                for action in batch:
                    pending.add(self._start(action, checked))
                started += len(batch)
                if len(batch) == asked and started < limit:
                    continue  # a full batch: more may be due
            if not pending:
                return started
            # Claim again once a connector held back for want of room has room for a
            # batch: not one claim per finished action, nor one after the due rows ran out.
            held_back = self._held_back()
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            claim = bool(held_back - self._held_back())

    async def dispatch_due(
        self, limit: int = 100, *, capacity: int | None = None
    ) -> list[asyncio.Task[None]]:
        """Recover expired leases, then claim due actions and start executing them in
        tasks (not awaited): up to ``limit`` now, ``capacity`` held in total."""
        await self.recover_expired()
        started: list[asyncio.Task[None]] = []
        while len(started) < limit and (capacity is None or self.running < capacity):
            room = limit - len(started)
            if capacity is not None:
                room = min(room, capacity - self.running)
            checked, batch = await self._claim_batch(room)
            started.extend(self._start(action, checked) for action in batch)
            if len(batch) < min(room, CLAIM_BATCH):
                break
        return started

    async def run_action(self, action_id: str) -> bool:
        """Run one action if it is due and unclaimed (a background job's entry point).

        When its connector already runs ``connector_concurrency`` actions here, the action
        is left scheduled and announced again a moment later: the job slot goes to others."""
        checked, claimed = await self._claim_batch(1, action_id)
        if not claimed:
            if self.notify is not None and await self._waits_for_its_connector(action_id):
                await self.notify(action_id, self.clock() + timedelta(seconds=1))
            return False
        await self._start(claimed[0], checked)
        return True

    def _start(self, action: Action, checked: float | None = None) -> asyncio.Task[None]:
        """Execute a claimed action in a task; ``checked`` is when (monotonic) the claim
        looked at the kill switches."""
        key = connector_key(action)
        self._held[key] = self._held.get(key, 0) + 1
        task = asyncio.create_task(self._execute(action, checked), name=f"execute-{action.id}")
        self._running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._running.discard(done)
            left = self._held.get(key, 1) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)
                self._slots.pop(key, None)  # no holder left, so no waiter either
            if self.on_finished is not None:
                self.on_finished()

        task.add_done_callback(finished)
        return task

    async def cancel_running(self) -> None:
        """Stop executions in progress (their leases expire; another run resumes them).
        Outcomes already reached are still recorded."""
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*list(self._running), return_exceptions=True)
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    # ------------------------------------------------------------------ claiming

    def _cap(self, key: ConnectorKey) -> int:
        """How many actions of a connector this process may hold (executing or waiting):
        what it executes at once, plus what that connector is expected to start within
        ``CLAIM_AHEAD_SECONDS`` by its recent pace (nothing ahead before it is measured)."""
        limit = self.settings.connector_concurrency
        pace = self._pace.get(key)
        if pace is None:
            return limit
        ahead = int(limit * CLAIM_AHEAD_SECONDS / max(pace, 1e-6))
        return max(limit, min(CLAIM_BATCH, limit + ahead))

    def _room(self, key: ConnectorKey) -> int:
        return self._cap(key) - self._held.get(key, 0)

    def _held_back(self) -> set[ConnectorKey]:
        """Connectors a batch claim skips: those without room for half their share (they
        are claimed for again in batches, not one action per finished one)."""
        return {key for key in self._held if self._room(key) < max(1, self._cap(key) // 2)}

    def _saturated(self) -> list[ConnectorKey]:
        limit = self.settings.connector_concurrency
        return [key for key, held in self._held.items() if held >= limit]

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
        """Claim the next due action (or ``action_id``); None when nothing is due."""
        _, claimed = await self._claim_batch(1, action_id)
        return claimed[0] if claimed else None

    async def _claim_batch(
        self, limit: int, action_id: str | None = None
    ) -> tuple[float, list[Action]]:
        """Claim up to ``limit`` due actions (or just ``action_id``) whose connectors have
        room here, in one transaction: the due rows locked (SKIP LOCKED: workers never
        queue on each other), moved to EXECUTING by one UPDATE ... RETURNING, one audit
        event each. Returns when the kill switches were looked at (monotonic) and the
        claimed actions, in due order."""
        # One claim at a time in this process, so that the per-connector counts it reads
        # are still true when the claimed actions start.
        async with self._claim_lock:
            if action_id is None:
                skipped = list(self._held_back())
                room = self._room
            else:  # a job's own action: only if its connector can start it now
                skipped = self._saturated()
                limit = 1

                def room(key: ConnectorKey) -> int:
                    return self.settings.connector_concurrency - self._held.get(key, 0)

            checked = time.monotonic()
            async with self.sessions() as session, session.begin():
                now = self.clock()
                query = (
                    select(Action.id, Action.tenant_id, Action.capability, Action.connector)
                    .where(
                        Action.state == S.SCHEDULED.value,
                        Action.not_before <= now,
                        not_blocked(),
                    )
                    .order_by(Action.not_before, Action.id)
                    .limit(min(limit, CLAIM_BATCH))
                )
                if action_id is not None:
                    query = query.where(Action.id == action_id)
                for tenant_id, capability, connector in skipped:
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
                    # Workers skip rows another worker is claiming instead of queueing on
                    # them; rows locked here but not taken are free again at commit.
                    query = query.with_for_update(skip_locked=True, of=Action)
                left: dict[ConnectorKey, int] = {}
                picked: list[str] = []
                for row in (await session.execute(query)).all():
                    key = (row.tenant_id, row.capability, row.connector)
                    room_left = left[key] if key in left else room(key)
                    if room_left > 0:
                        picked.append(row.id)
                    left[key] = room_left - 1
                lease = timedelta(seconds=self.settings.lease_seconds)
                claimed = await transition_batch(
                    session,
                    picked,
                    S.SCHEDULED,
                    S.EXECUTING,
                    actor_for=lambda action: self.actor_for(action.tenant_id),
                    now=now,
                    values={
                        "attempts": Action.attempts + 1,
                        "claimed_by": self.worker_id,
                        "claimed_at": now,
                        "lease_expires_at": now + lease,
                    },
                    payload_for=lambda action: {
                        "attempt": action.attempts,
                        "worker": self.worker_id,
                    },
                )
        order = {action_id: i for i, action_id in enumerate(picked)}
        claimed.sort(key=lambda action: order[action.id])
        return checked, claimed

    # ------------------------------------------------------------------ executing

    @contextlib.asynccontextmanager
    async def _slot(self, key: ConnectorKey) -> AsyncIterator[None]:
        """One of the connector's ``connector_concurrency`` execution slots in this
        process; the time it is held sets the connector's pace (how far to claim ahead)."""
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self.settings.connector_concurrency)
        async with slots:
            began = time.monotonic()
            yield
            took = time.monotonic() - began
            previous = self._pace.get(key)
            self._pace[key] = took if previous is None else previous * 0.8 + took * 0.2

    async def _switch_now_covering(self, action: Action) -> KillSwitch | None:
        """The enabled kill switch covering ``action``, as read at most
        ``SWITCH_RECHECK_SECONDS`` ago (one read shared by this process's actions)."""
        async with self._switch_lock:
            if self._switches is None or (
                time.monotonic() - self._switches[0] > SWITCH_RECHECK_SECONDS
            ):
                read_at = time.monotonic()
                async with self.sessions() as session:
                    enabled = await list_switches(session, enabled_only=True)
                self._switches = (read_at, enabled)
        for switch in self._switches[1]:
            if covers(switch, action.tenant_id, action.capability, action.connector):
                return switch
        return None

    async def _unclaim(
        self,
        action: Action,
        *,
        now: datetime,
        reason: str,
        values: dict[str, Any],
        payload: dict[str, Any],
        then: Callable[[], Any] | None = None,
    ) -> None:
        """Move a claimed action back to SCHEDULED, claim and lease cleared, in its own
        transaction (ConflictError when its version moved meanwhile); ``then`` runs once
        it has committed."""
        async with self.sessions() as session, session.begin():
            await transition(
                session,
                action,
                S.SCHEDULED,
                actor=self.actor_for(action.tenant_id),
                now=now,
                audit_action=AuditAction.ACTION_RETRY_SCHEDULED,
                reason=reason,
                values={**values, "claimed_by": None, "lease_expires_at": None},
                payload=payload,
            )
            if then is not None:
                after_commit(session, then)

    async def _release(self, action: Action, switch: KillSwitch) -> None:
        """Give back a claimed action a kill switch now covers, unexecuted (the attempt it
        was counted is given back too): it waits in SCHEDULED for the switch to go off."""
        try:
            await self._unclaim(
                action,
                now=self.clock(),
                reason="a kill switch went on before it started: released unexecuted",
                values={"attempts": action.attempts - 1},
                payload={"released": True, "kill_switch": switch.id},
            )
        except ConflictError:
            log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)
            return
        log.warning("executor.released_by_kill_switch", action_id=action.id, switch=switch.id)

    async def _execute(self, action: Action, checked: float | None = None) -> None:
        bound = log.bind(
            action_id=action.id, kind=action.kind, tenant=action.tenant_id, attempt=action.attempts
        )
        try:
            kind = self.kinds.get(action.kind)
            args = kind.args_model.model_validate(action.arguments)
            # The executive's own connector: never another executive's mailbox.
            connector = self.resolver.get(
                action.tenant_id,
                Capability(action.capability),
                action.connector,
                executive=action.on_behalf_of,
            )
            # Claimed ahead, the action may wait for its connector: its lease is renewed
            # meanwhile, so that no other worker takes it for a dead worker's.
            async with self._lease_kept(action), self._slot(connector_key(action)):
                # Kill switches were checked by the claim's query; an action that waited
                # longer than a recheck period looks again before it starts.
                if checked is not None and time.monotonic() - checked > SWITCH_RECHECK_SECONDS:
                    switch = await self._switch_now_covering(action)
                    if switch is not None:
                        await self._release(action, switch)
                        return
                if kind.prepare is not None and action.snapshot is None:
                    snapshot = await kind.prepare(connector, args)
                    await self._save(action, {"snapshot": snapshot})

                async def save_progress(ids: dict[str, Any]) -> None:
                    await self._save(
                        action, {"external_ids": {**(action.external_ids or {}), **ids}}
                    )

                context = ExecutionContext(
                    connector=connector,
                    idempotency_key=execution_key(action.id),
                    snapshot=action.snapshot,
                    progress=dict(action.external_ids or {}),
                    save_progress=save_progress,
                )
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

    # ------------------------------------------------------------------ outcomes

    async def _succeed(self, action: Action, outcome: ExecutionResult) -> None:
        """Record a success. Successes reached meanwhile by this process's other actions
        share the transaction (group commit): one audit append for all of them."""
        recorded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((action, outcome, recorded))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes(), name="executor-outcomes")
        if not await recorded:
            log.warning("executor.lease_lost", action_id=action.id, worker=self.worker_id)
            return
        log.info(
            "executor.succeeded",
            action_id=action.id,
            kind=action.kind,
            tenant=action.tenant_id,
            attempt=action.attempts,
        )

    async def _write_outcomes(self) -> None:
        batch: list[PendingOutcome] = []
        try:
            while self._outcomes:
                if len(self._outcomes) < OUTCOME_BATCH and self.running > len(self._outcomes):
                    # Others are executing: let their outcomes join this transaction.
                    await asyncio.sleep(OUTCOME_LINGER_SECONDS)
                batch = self._outcomes[:OUTCOME_BATCH]
                del self._outcomes[:OUTCOME_BATCH]
                try:
                    results = await self._record_successes(batch)
                except Exception:
                    # The shared transaction failed: each outcome on its own, so that one bad
                    # row (or a blip) costs only itself.
                    log.warning("executor.outcome_batch_failed", size=len(batch), exc_info=True)
                    for action, outcome, recorded in batch:
                        try:
                            alone = await self._record_successes([(action, outcome, recorded)])
                        except Exception as exc:
                            if not recorded.done():
                                recorded.set_exception(exc)
                        else:
                            if not recorded.done():
                                recorded.set_result(alone[0])
                    continue
                for (_, _, recorded), result in zip(batch, results, strict=True):
                    if not recorded.done():
                        recorded.set_result(result)
        finally:
            # Cancelled (the loop is closing): nobody will record these; their actions
            # stay EXECUTING and are recovered after the lease, as after a crash.
            for _, _, recorded in [*batch, *self._outcomes]:
                if not recorded.done():
                    recorded.cancel()

    async def _record_successes(self, batch: list[PendingOutcome]) -> list[bool]:
        """``EXECUTING -> SUCCEEDED`` of each action in one transaction (True: recorded;
        False: its lease was lost). On failure the actions are left as they were."""
        before = [
            (action, {name: getattr(action, name) for name in _SUCCESS_COLUMNS})
            for action, _, _ in batch
        ]
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                moves = []
                for action, outcome, _ in batch:
                    external = {**(action.external_ids or {}), **outcome.external_ids}
                    values = {
                        "external_ids": external,
                        "result": outcome.result,
                        "finished_at": now,
                        "claimed_by": None,
                        "lease_expires_at": None,
                        "last_error": None,
                    }
                    payload = {"external_ids": external, "attempt": action.attempts}
                    moves.append((action, values, payload))
                results = await transition_each(
                    session,
                    moves,
                    S.SUCCEEDED,
                    actor_for=lambda action: self.actor_for(action.tenant_id),
                    now=now,
                )
        except BaseException:
            for action, values in before:
                for name, value in values.items():
                    set_committed(action, name, value)
            raise
        return results

    async def _retry_or_fail(
        self, action: Action, exc: BaseException, retry_after: float | None
    ) -> None:
        if action.attempts >= self.settings.max_attempts:
            await self._fail(action, exc)
            return
        delay = backoff_seconds(self.settings, action.attempts, retry_after)
        error = error_text(exc)
        now = self.clock()
        not_before = now + timedelta(seconds=delay)
        notify, action_id = self.notify, action.id
        then = None if notify is None else (lambda: notify(action_id, not_before))
        try:
            await self._unclaim(
                action,
                now=now,
                reason=audit_reason(exc),
                values={"not_before": not_before, "last_error": error},
                payload={
                    "attempt": action.attempts,
                    "delay_seconds": delay,
                    "not_before": not_before.isoformat(),
                },
                then=then,
            )
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
                    await self._unclaim(
                        action,
                        now=now,
                        reason=f"lease of worker {action.claimed_by} expired",
                        values={"not_before": now},
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
