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
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Update, bindparam, column, inspect, update
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
    digest: str | None = None,
) -> AuditEventIn:
    """``digest`` is :func:`arguments_digest` of the action's arguments when the caller
    has it already (a new action's two events name the same arguments)."""
    body: dict[str, Any] = {
        "from": previous,
        "to": target,
        "version": action.version,
        "kind": action.kind,
        "arguments_digest": digest or arguments_digest(action.arguments),
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


def proposed_event(
    action: Action, payload: dict[str, Any] | None = None, *, digest: str | None = None
) -> AuditEventIn:
    """The PROPOSED event of a new action (version 1), before any move (:func:`decide_new`).
    ``digest``: :func:`arguments_digest` of its arguments, when the caller computed it."""
    if action.state != S.PROPOSED or action.version != 1:
        raise IllegalTransitionError("a new action starts PROPOSED at version 1")
    return _event(
        action,
        AuditAction.ACTION_PROPOSED,
        previous=None,
        target=S.PROPOSED,
        reason=None,
        outcome=Outcome.SUCCESS,
        payload=payload,
        digest=digest,
    )


def _move(
    action: Action,
    state: ActionState,
    version: int,
    target: ActionState,
    now: datetime,
    values: dict[str, Any] | None,
) -> dict[str, Any]:
    """The columns a move of ``action`` from ``state`` at ``version`` to ``target`` sets."""
    if target not in TRANSITIONS[state]:
        raise IllegalTransitionError(
            f"action {action.id} cannot go from {state.value} to {target.value}",
            action_id=action.id,
            state=state.value,
        )
    return {"state": target.value, "version": version + 1, "updated_at": now, **(values or {})}


def _moved_event(
    action: Action,
    current: ActionState,
    target: ActionState,
    *,
    audit_action: AuditAction | None,
    reason: str | None,
    outcome: Outcome | None,
    payload: dict[str, Any] | None,
    digest: str | None = None,
) -> AuditEventIn:
    """The event of a move, built from the action as it stands after it."""
    if outcome is None:
        outcome = (
            Outcome.FAILURE
            if target in {S.FAILED, S.COMPENSATION_FAILED}
            else (Outcome.DENIED if target is S.DENIED else Outcome.SUCCESS)
        )
    return _event(
        action,
        audit_action or DEFAULT_AUDIT[target],
        previous=current.value,
        target=target.value,
        reason=reason,
        outcome=outcome,
        payload=payload,
        digest=digest,
    )


def decide_new(
    action: Action,
    target: ActionState,
    *,
    now: datetime,
    values: dict[str, Any] | None = None,
    reason: str | None = None,
    payload: dict[str, Any] | None = None,
    digest: str | None = None,
) -> AuditEventIn:
    """Move a new action, not stored yet, from PROPOSED to the policy's ``target`` in memory
    and return the move's event. :func:`insert_new` then stores the row as it stands after
    the move (version 2), in one INSERT instead of an INSERT and an UPDATE: no other
    transaction sees a row before it commits, so the move's compare-and-set has nothing to
    compare against. Its events are those :func:`transition` would have recorded."""
    if inspect(action).persistent or action.state != S.PROPOSED or action.version != 1:
        raise IllegalTransitionError("only a new PROPOSED action is decided before it is stored")
    changes = _move(action, S.PROPOSED, 1, target, now, values)
    for key, value in changes.items():
        setattr(action, key, value)
    return _moved_event(
        action,
        S.PROPOSED,
        target,
        audit_action=None,
        reason=reason,
        outcome=None,
        payload=payload,
        digest=digest,
    )


async def insert_new(session: AsyncSession, action: Action) -> None:
    """Insert a new action: PROPOSED at version 1, or decided (:func:`decide_new`). Its
    events are the caller's to record (:func:`proposed_event`, :func:`decide_new`)."""
    if inspect(action).persistent or action.version not in (1, 2):
        raise IllegalTransitionError("a new action starts PROPOSED at version 1")
    session.add(action)
    await session.flush()


async def insert_many(session: AsyncSession, actions: Sequence[Action]) -> None:
    """:func:`insert_new` of several new actions in one flush (a multi-row INSERT)."""
    for action in actions:
        if inspect(action).persistent or action.version not in (1, 2):
            raise IllegalTransitionError("a new action starts PROPOSED at version 1")
    session.add_all(actions)
    await session.flush()


@dataclass(frozen=True)
class Move:
    """One move of :func:`transition_through`: the target state, who moves it, the further
    columns it sets, and its audit event's action, reason, outcome and payload."""

    target: ActionState
    actor: Principal
    values: dict[str, Any] | None = None
    audit_action: AuditAction | None = None
    reason: str | None = None
    outcome: Outcome | None = None
    payload: dict[str, Any] | None = None


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
    move = Move(target, actor, values, audit_action, reason, outcome, payload)
    return await transition_through(session, action, [move], now=now)


@lru_cache(maxsize=256)
def _compare_and_set(columns: tuple[str, ...]) -> Update:
    """``UPDATE governed_actions SET <columns> WHERE id = :cas_id AND version = :cas_version``,
    built once per set of columns (a transition's statement is otherwise built, and its
    cache key computed, on every call)."""
    table = Action.__table__
    return (
        update(Action)
        .where(Action.id == bindparam("cas_id"), Action.version == bindparam("cas_version"))
        .values({name: bindparam(f"set_{name}", type_=table.c[name].type) for name in columns})
        .execution_options(synchronize_session=False)
    )


async def transition_through(
    session: AsyncSession, action: Action, moves: Sequence[Move], *, now: datetime
) -> Action:
    """Several moves in a row (APPROVED then SCHEDULED) as one compare-and-set: one UPDATE
    from the version read to that version plus the number of moves, and one audit event
    per move, each as :func:`transition` would have recorded it. Every move is checked
    against the lifecycle before anything is written."""
    if not moves:
        raise ValueError("transition_through needs at least one move")
    state, version = ActionState(action.state), action.version
    steps: list[tuple[ActionState, dict[str, Any]]] = []
    merged: dict[str, Any] = {}
    for move in moves:
        changes = _move(action, state, version, move.target, now, move.values)
        steps.append((state, changes))
        version += 1
        merged.update(changes)
        state = move.target
    params = {f"set_{key}": value for key, value in merged.items()}
    result = await session.execute(
        _compare_and_set(tuple(sorted(merged))),
        {**params, "cas_id": action.id, "cas_version": action.version},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"action {action.id} changed concurrently; reload and retry", action_id=action.id
        )
    for move, (previous, changes) in zip(moves, steps, strict=True):
        # The object as it stood after this move, for the move's event.
        for key, value in changes.items():
            set_committed(action, key, value)
        # Chained when the transaction commits: the tenant's chain is locked for the commit
        # only, not from this transition to the end of the caller's work.
        await audit.record_at_commit(
            session,
            move.actor,
            _moved_event(
                action,
                previous,
                move.target,
                audit_action=move.audit_action,
                reason=move.reason,
                outcome=move.outcome,
                payload=move.payload,
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
    # Chained when the transaction commits: the tenant's chain is locked for the commit
    # only, not from this transition to the end of the caller's work.
    await audit.record_at_commit(
        session,
        actor,
        _moved_event(
            action,
            current,
            target,
            audit_action=audit_action,
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
