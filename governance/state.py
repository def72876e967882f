"""The action lifecycle: states, allowed transitions, and the one way to move between them.

Every transition is a compare-and-set on ``governed_actions.version``
(``UPDATE ... WHERE id = ? AND version = ?``; no row updated -> :class:`ConflictError`)
and records exactly one audit event in the same transaction. An action's audit events
therefore number exactly its ``version``: one for the proposal, one per transition.

Beyond the lifecycle of the design, three edges exist on purpose:

* ``PENDING_REVIEW -> PENDING_REVIEW``: one approval of several (four-eyes), or an edit
  that still needs approvals.
* ``EXECUTING -> SCHEDULED``: a retry after a retriable error, a lease recovered from a
  worker that died, or a claim released because a kill switch went on.
* ``COMPENSATION_FAILED -> COMPENSATING``: an operator retries a rollback.

:func:`transition_batch` moves many rows at once (the executor's claim of a batch of due
actions): one UPDATE guarded by the source state instead of each row's version, the rows
it did not move left out, and still one audit event per moved row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import column, update
from sqlalchemy import values as sa_values
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from assistant.core.errors import ConflictError
from assistant.core.logging import redact_text
from assistant.core.principal import Principal
from governance import audit
from governance.audit import AuditAction, AuditEventIn, Outcome
from governance.models import Action


class ActionState(StrEnum):
    PROPOSED = "proposed"
    DENIED = "denied"
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


S = ActionState

#: Every allowed move; anything else raises :class:`IllegalTransitionError`.
TRANSITIONS: dict[ActionState, frozenset[ActionState]] = {
    S.PROPOSED: frozenset({S.DENIED, S.PENDING_REVIEW, S.APPROVED}),
    S.PENDING_REVIEW: frozenset({S.PENDING_REVIEW, S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED}),
    S.APPROVED: frozenset({S.SCHEDULED}),
    S.SCHEDULED: frozenset({S.EXECUTING, S.CANCELLED}),
    S.EXECUTING: frozenset({S.SUCCEEDED, S.FAILED, S.SCHEDULED}),
    S.SUCCEEDED: frozenset({S.COMPENSATING}),
    S.COMPENSATING: frozenset({S.COMPENSATED, S.COMPENSATION_FAILED}),
    S.COMPENSATION_FAILED: frozenset({S.COMPENSATING}),
    S.DENIED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.COMPENSATED: frozenset(),
}

TERMINAL: frozenset[ActionState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

#: The audit action recorded for arriving in a state (callers may name a more precise one).
DEFAULT_AUDIT: dict[ActionState, AuditAction] = {
    S.PROPOSED: AuditAction.ACTION_PROPOSED,
    S.DENIED: AuditAction.ACTION_DENIED,
    S.PENDING_REVIEW: AuditAction.ACTION_PENDING_REVIEW,
    S.APPROVED: AuditAction.ACTION_APPROVED,
    S.REJECTED: AuditAction.ACTION_REJECTED,
    S.EXPIRED: AuditAction.ACTION_EXPIRED,
    S.CANCELLED: AuditAction.ACTION_CANCELLED,
    S.SCHEDULED: AuditAction.ACTION_SCHEDULED,
    S.EXECUTING: AuditAction.ACTION_EXECUTING,
    S.SUCCEEDED: AuditAction.ACTION_SUCCEEDED,
    S.FAILED: AuditAction.ACTION_FAILED,
    S.COMPENSATING: AuditAction.ACTION_COMPENSATING,
    S.COMPENSATED: AuditAction.ACTION_COMPENSATED,
    S.COMPENSATION_FAILED: AuditAction.ACTION_COMPENSATION_FAILED,
}


class IllegalTransitionError(ConflictError):
    """The action is not in a state from which the requested move is allowed."""


def can_move(current: ActionState | str, target: ActionState | str) -> bool:
    return ActionState(target) in TRANSITIONS[ActionState(current)]


def arguments_digest(arguments: dict[str, Any]) -> str:
    """SHA-256 of the canonical arguments: audit rows name them without holding them."""
    canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _event(
    action: Action,
    audit_action: AuditAction,
    *,
    previous: str | None,
    target: str,
    reason: str | None,
    outcome: Outcome,
    payload: dict[str, Any] | None,
) -> AuditEventIn:
    body: dict[str, Any] = {
        "from": previous,
        "to": target,
        "version": action.version,
        "kind": action.kind,
        "arguments_digest": arguments_digest(action.arguments),
    }
    body.update(payload or {})
    return AuditEventIn(
        action=audit_action,
        outcome=outcome,
        resource_type="action",
        resource_id=action.id,
        connector=action.connector or action.capability,
        reason=redact_text(reason)[:2000] if reason else None,
        correlation_id=action.correlation_id,
        action_id=action.id,
        idempotency_key=execution_key(action.id),
        payload=body,
    )


def execution_key(action_id: str) -> str:
    """The idempotency key every external call of the action carries."""
    return f"act-{action_id}"


async def insert_proposed(session: AsyncSession, action: Action) -> None:
    """Insert a new PROPOSED action (version 1); its event follows (:func:`audit_proposed`)."""
    if action.state != S.PROPOSED or action.version != 1:
        raise IllegalTransitionError("a new action starts PROPOSED at version 1")
    session.add(action)
    await session.flush()


async def audit_proposed(
    session: AsyncSession,
    action: Action,
    actor: Principal,
    payload: dict[str, Any] | None = None,
) -> None:
    """The PROPOSED event of an action :func:`insert_proposed` stored (chained at commit)."""
    await audit.record_at_commit(
        session,
        actor,
        _event(
            action,
            AuditAction.ACTION_PROPOSED,
            previous=None,
            target=S.PROPOSED,
            reason=None,
            outcome=Outcome.SUCCESS,
            payload=payload,
        ),
    )


async def transition(
    session: AsyncSession,
    action: Action,
    target: ActionState,
    *,
    actor: Principal,
    now: datetime,
    values: dict[str, Any] | None = None,
    audit_action: AuditAction | None = None,
    reason: str | None = None,
    outcome: Outcome | None = None,
    payload: dict[str, Any] | None = None,
) -> Action:
    """Move ``action`` to ``target`` by compare-and-set, with its one audit event.

    ``values`` are further columns to set in the same UPDATE. The in-memory ``action`` is
    updated to the new row. Raises :class:`IllegalTransitionError` for a move the
    lifecycle does not allow and :class:`ConflictError` when the row changed meanwhile.
    """
    current = ActionState(action.state)
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(
            f"action {action.id} cannot go from {current.value} to {target.value}",
            action_id=action.id,
            state=current.value,
        )
    changes: dict[str, Any] = {
        "state": target.value,
        "version": action.version + 1,
        "updated_at": now,
        **(values or {}),
    }
    result = await session.execute(
        update(Action)
        .where(Action.id == action.id, Action.version == action.version)
        .values(**changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"action {action.id} changed concurrently; reload and retry", action_id=action.id
        )
    for key, value in changes.items():
        set_committed(action, key, value)
    if outcome is None:
        outcome = (
            Outcome.FAILURE
            if target in {S.FAILED, S.COMPENSATION_FAILED}
            else (Outcome.DENIED if target is S.DENIED else Outcome.SUCCESS)
        )
    # Chained when the transaction commits: the tenant's chain is locked for the commit
    # only, not from this transition to the end of the caller's work.
    await audit.record_at_commit(
        session,
        actor,
        _event(
            action,
            audit_action or DEFAULT_AUDIT[target],
            previous=current.value,
            target=target.value,
            reason=reason,
            outcome=outcome,
            payload=payload,
        ),
    )
    return action


async def _audit_transition(
    session: AsyncSession,
    action: Action,
    current: ActionState,
    target: ActionState,
    *,
    actor: Principal,
    audit_action: AuditAction | None,
    reason: str | None,
    outcome: Outcome | None,
    payload: dict[str, Any] | None,
) -> None:
    """The one audit event of a move ``action`` (already moved) has made, as
    :func:`transition` records it, for the batch moves below."""
    if outcome is None:
        outcome = (
            Outcome.FAILURE
            if target in {S.FAILED, S.COMPENSATION_FAILED}
            else (Outcome.DENIED if target is S.DENIED else Outcome.SUCCESS)
        )
    # Chained when the transaction commits: the tenant's chain is locked for the commit
    # only, not from this transition to the end of the caller's work.
    await audit.record_at_commit(
        session,
        actor,
        _event(
            action,
            audit_action or DEFAULT_AUDIT[target],
            previous=current.value,
            target=target.value,
            reason=reason,
            outcome=outcome,
            payload=payload,
        ),
    )


async def transition_batch(
    session: AsyncSession,
    ids: Sequence[str],
    source: ActionState,
    target: ActionState,
    *,
    actor_for: Callable[[Action], Principal],
    now: datetime,
    values: dict[str, Any] | None = None,
    payload_for: Callable[[Action], dict[str, Any]] | None = None,
) -> list[Action]:
    """Move every action of ``ids`` still in ``source`` to ``target`` in one UPDATE ...
    RETURNING, with one audit event per moved action; returns the moved actions (the
    others changed meanwhile and are left alone).

    The guard is the source state, not each row's version: the caller holds the rows
    (locked by its SELECT ... FOR UPDATE on PostgreSQL) or accepts whichever are still in
    ``source``. ``values`` may hold SQL expressions on the row (``Action.attempts + 1``).
    """
    if target not in TRANSITIONS[source]:
        raise IllegalTransitionError(f"actions cannot go from {source.value} to {target.value}")
    if not ids:
        return []
    statement = (
        update(Action)
        .where(Action.id.in_(list(ids)), Action.state == source.value)
        .values(state=target.value, version=Action.version + 1, updated_at=now, **(values or {}))
        .returning(Action)
        .execution_options(synchronize_session=False)
    )
    moved = list((await session.scalars(statement)).all())
    for action in moved:
        await _audit_transition(
            session,
            action,
            source,
            target,
            actor=actor_for(action),
            audit_action=None,
            reason=None,
            outcome=None,
            payload=payload_for(action) if payload_for is not None else None,
        )
    return moved


async def transition_each(
    session: AsyncSession,
    moves: Sequence[tuple[Action, dict[str, Any], dict[str, Any] | None]],
    target: ActionState,
    *,
    actor_for: Callable[[Action], Principal],
    now: datetime,
) -> list[bool]:
    """:func:`transition` of several actions to ``target``, each with its own ``values``
    (the same columns for all) and audit ``payload``: True for each action moved, False
    for one that changed meanwhile. On PostgreSQL one UPDATE ... FROM (VALUES ...) does
    every compare-and-set; elsewhere (SQLite: no round trips) one UPDATE each.
    """
    if not moves:
        return []
    if session.get_bind().dialect.name != "postgresql":
        moved: list[bool] = []
        for action, values, payload in moves:
            try:
                await transition(
                    session,
                    action,
                    target,
                    actor=actor_for(action),
                    now=now,
                    values=values,
                    payload=payload,
                )
            except IllegalTransitionError:
                raise
            except ConflictError:
                moved.append(False)
            else:
                moved.append(True)
        return moved
    for action, _, _ in moves:
        if target not in TRANSITIONS[ActionState(action.state)]:
            raise IllegalTransitionError(
                f"action {action.id} cannot go from {action.state} to {target.value}",
                action_id=action.id,
                state=action.state,
            )
    # Values all moves share are set as such; only the others travel in the VALUES list.
    first = moves[0][1]
    shared = {k: v for k, v in first.items() if all(m[1][k] == v for m in moves)}
    names = [name for name in first if name not in shared]
    table = Action.__table__.c
    rows = sa_values(
        column("id", table["id"].type),
        column("version", table["version"].type),
        *(column(name, table[name].type) for name in names),
        name="moves",
    ).data([(a.id, a.version, *(values[n] for n in names)) for a, values, _ in moves])
    statement = (
        update(Action)
        .where(Action.id == rows.c.id, Action.version == rows.c.version)
        .values(
            state=target.value,
            version=Action.version + 1,
            updated_at=now,
            **shared,
            **{name: rows.c[name] for name in names},
        )
        .returning(Action.id)
        .execution_options(synchronize_session=False)
    )
    done = set((await session.scalars(statement)).all())
    for action, values, payload in moves:
        if action.id not in done:
            continue
        current = ActionState(action.state)
        changes = {"state": target.value, "version": action.version + 1, "updated_at": now}
        for key, value in {**changes, **values}.items():
            set_committed(action, key, value)
        await _audit_transition(
            session,
            action,
            current,
            target,
            actor=actor_for(action),
            audit_action=None,
            reason=None,
            outcome=None,
            payload=payload,
        )
    return [action.id in done for action, _, _ in moves]


async def update_fields(
    session: AsyncSession,
    action: Action,
    values: dict[str, Any],
    *,
    claimed_by: str | None = None,
) -> None:
    """Change bookkeeping columns without a transition (no version bump, no audit).

    Guarded by the version (and the claim), so a worker that lost its lease writes nothing.
    """
    conditions = [Action.id == action.id, Action.version == action.version]
    if claimed_by is not None:
        conditions.append(Action.claimed_by == claimed_by)
    result = await session.execute(
        update(Action)
        .where(*conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(f"action {action.id} changed concurrently", action_id=action.id)
    for key, value in values.items():
        set_committed(action, key, value)


def set_committed(action: Action, key: str, value: Any) -> None:
    """Reflect a column written by an UPDATE on the loaded object, without dirtying it."""
    set_committed_value(action, key, value)
