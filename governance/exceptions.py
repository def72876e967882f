"""The exception queue's decisions: retry, cancel, assign an open exception.

An exception is an action that FAILED, or whose compensation failed, routed to an owner
(:func:`governance.executor.route_exception`). An operator then decides:

* **retry**: a failed compensation is rolled back again through the compensation service
  (``COMPENSATION_FAILED -> COMPENSATING``); a failed action, whose state is final, is
  proposed again as a new action with the same kind, arguments, executive, connector and
  correlation id, so the policy, the autonomy level and the review decide it again (a
  second retry of the same exception returns the same new action);
* **cancel**: nothing more will be tried; the action keeps its state;
* **assign**: another owner takes it.

Each decision closes or changes the row under a row lock, names the person and the reason,
and is audited in the same transaction. Who may decide is the caller's check
(``exceptions.resolve``); the compensation service checks again who may roll back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import ConflictError, NotFoundError, PermissionDeniedError
from assistant.core.principal import Principal, Role
from governance.audit import AuditAction, AuditEventIn, record
from governance.models import Action, ActionException
from governance.service import Proposal
from governance.state import ActionState

if TYPE_CHECKING:
    from governance.compensation import CompensationService
    from governance.service import ActionService

OPEN = "open"
#: Owners are people's addresses or role names; the same bound as the column.
MAX_OWNER = 320


@dataclass(frozen=True)
class Retried:
    """What a retry did: the new action proposed, or the rollback tried again."""

    exception_id: str
    action_id: str
    ok: bool
    detail: str


def _ensure_operator(actor: Principal) -> None:
    # Auditors change nothing, even if a route forgot to ask (defence in depth).
    if actor.roles and actor.roles <= {Role.AUDITOR}:
        raise PermissionDeniedError("auditors change nothing")


async def _open(session: AsyncSession, actor: Principal, exception_id: str) -> ActionException:
    """The tenant's open exception, locked for this transaction."""
    row = await session.scalar(
        select(ActionException)
        .where(
            ActionException.id == exception_id,
            ActionException.tenant_id == actor.tenant_id,
        )
        .with_for_update()
    )
    if row is None:
        raise NotFoundError("no such exception", exception_id=exception_id)
    if row.status != OPEN:
        raise ConflictError(f"this exception is already {row.status}", exception_id=row.id)
    return row


async def _close(
    session: AsyncSession,
    actor: Principal,
    row: ActionException,
    status: str,
    audit_action: AuditAction,
    reason: str,
    **payload: object,
) -> None:
    row.status = status
    row.resolved_at = utcnow()
    row.resolved_by = actor.user_id
    await record(
        session,
        actor,
        AuditEventIn(
            action=audit_action,
            resource_type="exception",
            resource_id=row.id,
            action_id=row.action_id,
            reason=reason,
            payload={"kind": row.kind, "state": row.state, "owner": row.owner, **payload},
        ),
    )
    await session.flush()


async def assign(
    session: AsyncSession, actor: Principal, exception_id: str, owner: str, reason: str
) -> ActionException:
    """Give an open exception to another owner (audited with the previous one)."""
    _ensure_operator(actor)
    owner = owner.strip()
    if not owner or len(owner) > MAX_OWNER:
        raise ConflictError(f"an owner is 1 to {MAX_OWNER} characters")
    row = await _open(session, actor, exception_id)
    previous, row.owner = row.owner, owner
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.EXCEPTION_ASSIGNED,
            resource_type="exception",
            resource_id=row.id,
            action_id=row.action_id,
            reason=reason,
            payload={"kind": row.kind, "previous_owner": previous, "owner": owner},
        ),
    )
    await session.flush()
    return row


async def cancel(
    session: AsyncSession, actor: Principal, exception_id: str, reason: str
) -> ActionException:
    """Close an open exception: nothing more is tried (the action keeps its state)."""
    _ensure_operator(actor)
    row = await _open(session, actor, exception_id)
    await _close(session, actor, row, "cancelled", AuditAction.EXCEPTION_CANCELLED, reason)
    return row


async def retry(
    sessions: async_sessionmaker[AsyncSession],
    actor: Principal,
    exception_id: str,
    reason: str,
    *,
    actions: ActionService,
    compensation: CompensationService,
) -> Retried:
    """Try again (see the module's docstring), each step in a transaction of its own: the
    compensation service runs its rollback in its own transactions, so no transaction here
    stays open across it."""
    _ensure_operator(actor)
    async with sessions() as session:
        row = await _open(session, actor, exception_id)
        action = await session.get(Action, row.action_id)
        if action is None or action.tenant_id != actor.tenant_id:
            raise NotFoundError("the exception's action is gone", exception_id=row.id)
        state, action_id = action.state, action.id
    if state == ActionState.COMPENSATION_FAILED.value:
        outcome = await compensation.rollback(actor, action_id, reason)
        async with sessions() as session, session.begin():
            row = await _open(session, actor, exception_id)
            await _close(
                session,
                actor,
                row,
                "retried",
                AuditAction.EXCEPTION_RETRIED,
                reason,
                retried="compensation",
                ok=outcome.ok,
                detail=outcome.detail,
            )
        return Retried(exception_id, action_id, outcome.ok, outcome.detail or outcome.state)
    if state != ActionState.FAILED.value:
        raise ConflictError(f"the action is {state} now: nothing to retry", action_id=action_id)
    async with sessions() as session, session.begin():
        row = await _open(session, actor, exception_id)
        action = await session.get(Action, row.action_id)
        assert action is not None  # an exception's action is deleted only with it (cascade)
        again = await actions.propose(
            session,
            actor,
            Proposal(
                kind=action.kind,
                arguments=dict(action.arguments),
                on_behalf_of=action.on_behalf_of,
                correlation_id=action.correlation_id,
                connector=action.connector,
                dedupe_key=f"retry:{row.id}",
            ),
        )
        await _close(
            session,
            actor,
            row,
            "retried",
            AuditAction.EXCEPTION_RETRIED,
            reason,
            retried="action",
            new_action_id=again.id,
            new_state=again.state,
        )
        return Retried(exception_id, again.id, True, f"proposed again ({again.state})")
