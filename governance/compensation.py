"""Rollback by compensation: ``SUCCEEDED -> COMPENSATING -> COMPENSATED | COMPENSATION_FAILED``.

Each kind's compensator makes a new effect that takes the old one back (delete the draft,
move the message back, cancel the event, restore the previous values, recreate a
cancelled event). A sent email cannot be unsent: its compensator says so and proposes a
follow-up draft, which goes through the policy like any proposal.

Rolling back a correlation id first cancels its actions that have not run (so nothing
new happens meanwhile), then compensates the executed ones newest first; every item's
outcome is reported and a failure does not stop the others.

Like the executor, each step commits its own transaction and no transaction is open
during the external call; a compensation whose worker dies is turned into
COMPENSATION_FAILED by the executor's lease recovery, and an operator may retry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError, ConflictError, ValidationFailedError
from assistant.core.principal import Principal, system_principal
from governance.actions import CompensationContext, CompensationResult
from governance.executor import audit_reason, error_text
from governance.models import Action
from governance.service import ActionService, Proposal, ensure_can_manage, visibility
from governance.state import ActionState, execution_key, transition
from integrations.errors import ConnectorError

log = structlog.stdlib.get_logger(__name__)

S = ActionState

_CANCEL_FIRST = {S.PENDING_REVIEW.value, S.SCHEDULED.value}
_COMPENSATE = {S.SUCCEEDED.value, S.COMPENSATION_FAILED.value}


@dataclass
class RollbackOutcome:
    action_id: str
    kind: str
    ok: bool
    state: str
    detail: str = ""
    effect_undone: bool | None = None
    follow_up_action_id: str | None = None
    result: dict[str, object] = field(default_factory=dict)


class CompensationService:
    """Rolls back one action, or every action of a correlation id in reverse order."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        actions: ActionService,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.actions = actions
        self.clock = clock

    async def rollback(
        self, principal: Principal, action_id: str, reason: str | None = None
    ) -> RollbackOutcome:
        async with self.sessions() as session:
            action = await self.actions.get(session, principal, action_id)
        ensure_can_manage(principal, action)
        return await self._rollback_one(principal, action, reason)

    async def rollback_correlation(
        self, principal: Principal, correlation_id: str, reason: str | None = None
    ) -> list[RollbackOutcome]:
        async with self.sessions() as session:
            rows = list(
                (
                    await session.execute(
                        select(Action).where(
                            visibility(principal),
                            Action.correlation_id == correlation_id,
                        )
                    )
                ).scalars()
            )
        if not rows:
            raise ValidationFailedError(f"no actions with correlation id {correlation_id!r}")
        for action in rows:
            ensure_can_manage(principal, action)
        not_run = [a for a in rows if a.state in _CANCEL_FIRST]
        executed = sorted(
            (a for a in rows if a.state not in _CANCEL_FIRST),
            key=lambda a: (a.finished_at or a.updated_at, a.created_at),
            reverse=True,
        )
        outcomes = []
        for action in [*not_run, *executed]:
            outcomes.append(await self._rollback_one(principal, action, reason))
        return outcomes

    async def _rollback_one(
        self, principal: Principal, action: Action, reason: str | None
    ) -> RollbackOutcome:
        if action.state in _CANCEL_FIRST:
            return await self._cancel(principal, action, reason)
        if action.state not in _COMPENSATE:
            return RollbackOutcome(
                action.id,
                action.kind,
                ok=action.state
                in {
                    S.COMPENSATED.value,
                    S.CANCELLED.value,
                    S.DENIED.value,
                    S.REJECTED.value,
                    S.EXPIRED.value,
                },
                state=action.state,
                detail=f"nothing to roll back in state {action.state}",
            )
        kind = self.actions.kinds.get(action.kind)
        if kind.compensate is None:
            return RollbackOutcome(
                action.id,
                action.kind,
                ok=False,
                state=action.state,
                detail=f"{action.kind} has no compensation",
            )
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                await transition(
                    session,
                    action,
                    S.COMPENSATING,
                    actor=principal,
                    now=now,
                    reason=reason,
                    values={
                        "claimed_by": f"rollback:{principal.user_id}",
                        "claimed_at": now,
                        "lease_expires_at": now
                        + timedelta(seconds=self.actions.settings.lease_seconds),
                    },
                )
        except ConflictError as exc:
            return RollbackOutcome(
                action.id, action.kind, ok=False, state=action.state, detail=exc.detail
            )
        try:
            args = kind.args_model.model_validate(action.arguments)
            connector = self.actions.connector_for(action)
            assert kind.compensate is not None
            outcome = await kind.compensate(
                CompensationContext(
                    connector=connector,
                    idempotency_key=execution_key(action.id) + "-comp",
                    snapshot=action.snapshot,
                    external_ids=dict(action.external_ids or {}),
                    result=dict(action.result or {}),
                ),
                args,
            )
        except (AssistantError, ConnectorError, ValueError) as exc:
            return await self._failed(action, exc)
        except Exception as exc:
            log.exception(
                "compensation.unexpected_error", action_id=action.id, error=type(exc).__name__
            )
            return await self._failed(action, exc)
        return await self._compensated(principal, action, outcome)

    async def _cancel(
        self, principal: Principal, action: Action, reason: str | None
    ) -> RollbackOutcome:
        try:
            async with self.sessions() as session, session.begin():
                now = self.clock()
                await transition(
                    session,
                    action,
                    S.CANCELLED,
                    actor=principal,
                    now=now,
                    reason=reason or "rolled back before it ran",
                    values={"finished_at": now},
                    payload={"rollback": True},
                )
        except ConflictError as exc:
            return RollbackOutcome(
                action.id, action.kind, ok=False, state=action.state, detail=exc.detail
            )
        return RollbackOutcome(
            action.id,
            action.kind,
            ok=True,
            state=action.state,
            detail="cancelled before it ran",
            effect_undone=True,
        )

    async def _compensated(
        self, principal: Principal, action: Action, outcome: CompensationResult
    ) -> RollbackOutcome:
        follow_up_id = None
        async with self.sessions() as session, session.begin():
            now = self.clock()
            if outcome.follow_up is not None:
                proposer = system_principal(action.tenant_id, "compensation")
                follow_up = await self.actions.propose(
                    session,
                    proposer,
                    Proposal(
                        kind=outcome.follow_up.kind,
                        arguments=outcome.follow_up.arguments,
                        on_behalf_of=action.on_behalf_of,
                        correlation_id=action.correlation_id,
                        connector=action.connector,
                        parent_id=action.id,
                        dedupe_key=f"followup-{action.id}",
                    ),
                )
                follow_up_id = follow_up.id
            result = {
                **outcome.result,
                "effect_undone": outcome.effect_undone,
                **({"follow_up_action_id": follow_up_id} if follow_up_id else {}),
            }
            await transition(
                session,
                action,
                S.COMPENSATED,
                actor=principal,
                now=now,
                reason=outcome.follow_up.reason if outcome.follow_up else None,
                values={
                    "compensation_result": result,
                    "claimed_by": None,
                    "lease_expires_at": None,
                },
                payload={
                    "effect_undone": outcome.effect_undone,
                    "follow_up_action_id": follow_up_id,
                },
            )
        log.info(
            "compensation.done",
            action_id=action.id,
            kind=action.kind,
            effect_undone=outcome.effect_undone,
        )
        return RollbackOutcome(
            action.id,
            action.kind,
            ok=True,
            state=action.state,
            detail="compensated"
            if outcome.effect_undone
            else (outcome.follow_up.reason if outcome.follow_up else "not undone"),
            effect_undone=outcome.effect_undone,
            follow_up_action_id=follow_up_id,
            result=dict(outcome.result),
        )

    async def _failed(self, action: Action, exc: BaseException) -> RollbackOutcome:
        error = error_text(exc)
        try:
            async with self.sessions() as session, session.begin():
                owner = await self.actions.executor.fail_to_owner(
                    session,
                    action,
                    S.COMPENSATION_FAILED,
                    error=error,
                    reason=audit_reason(exc),
                    values={"claimed_by": None, "lease_expires_at": None},
                )
        except ConflictError as conflict:
            return RollbackOutcome(
                action.id, action.kind, ok=False, state=action.state, detail=conflict.detail
            )
        log.warning(
            "compensation.failed",
            action_id=action.id,
            kind=action.kind,
            owner=owner,
            error=type(exc).__name__,
        )
        return RollbackOutcome(action.id, action.kind, ok=False, state=action.state, detail=error)
