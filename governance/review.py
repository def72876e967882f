"""The review queue: people approve, edit, reject or cancel what the policy held back.

Rules a reviewer meets here:

* only a holder of one of the rule's approver roles may approve or edit; auditors
  approve nothing, whatever else they hold;
* nobody approves their own request (:func:`separation_of_duties`): the person (or
  service) who proposed an action through the API cannot approve it; what the chat agent
  proposed at a person's request, she may approve only if she is the action's executive
  acting in her own right (a delegate who asked never approves it);
* "four-eyes" rules need N distinct approvers, counted as persons (two keys of one person
  are one approver); each approval short of N is a recorded
  ``PENDING_REVIEW -> PENDING_REVIEW`` step;
* an edit re-validates the arguments against the kind's schema, is stored as an
  RFC 6902 JSON patch, counts as the editor's approval, and drops approvals given to the
  previous wording; if the policy denies the edited action, the edit is refused;
* reviews expire after the rule's TTL (a periodic job closes them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

import jsonpatch
import structlog
from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.clock import utcnow
from assistant.core.errors import (
    AssistantError,
    ConflictError,
    DuplicateApprovalError,
    NotFoundError,
    OwnershipError,
    PermissionDeniedError,
    SeparationOfDutiesError,
    ValidationFailedError,
)
from assistant.core.ids import new_id
from assistant.core.principal import ActorType, Principal, Role, system_principal
from governance import audit
from governance.actions import PreviewContext
from governance.audit import AuditAction, AuditEventIn, Outcome
from governance.edit_distance import normalized_edit_distance
from governance.models import Action, ActionApproval, ActionEdit
from governance.policy import Autonomy, Effect, PolicyInput
from governance.service import (
    ActionService,
    ensure_can_manage,
    is_agent,
    is_system,
    visibility,
)
from governance.state import ActionState, IllegalTransitionError, Move, transition
from integrations.errors import ConnectorError, ConnectorUnavailableError, UnknownConnectorError

log = structlog.stdlib.get_logger(__name__)

S = ActionState
#: The delegated scope that lets a delegate approve (assistant.auth.permissions).
REVIEW_DECIDE = "review.decide"

Decision = Literal["approve", "edit", "reject", "cancel"]


@dataclass
class BulkItem:
    action_id: str
    decision: Decision
    reason: str | None = None
    arguments: dict[str, Any] | None = None


@dataclass
class BulkResult:
    action_id: str
    ok: bool
    state: str | None = None
    error: str | None = None
    detail: str | None = None


def separation_of_duties(principal: Principal, action: Action) -> str | None:
    """Why ``principal`` may not approve ``action`` as the one who asked for it, or None.

    The rule, in one place: the proposer never approves her own API proposal; what the
    chat agent proposed (actor type ``agent``) at a person's request (``requested_by``) is
    the agent's proposal, so the executive it serves may approve it in her own right, but a
    delegate who asked for it may not (her executive, or another delegate, does). Four-eyes
    rules count distinct persons (:meth:`ReviewService._add_approval`), so the requesting
    executive gives at most one of N approvals."""
    if action.actor_type == ActorType.AGENT.value:
        if principal.user_id != action.requested_by:
            return None
        if principal.in_own_right and principal.acts_for(action.on_behalf_of):
            return None
        return "you asked the assistant for this as a delegate: your executive approves it"
    if principal.user_id in {action.actor_id, action.requested_by}:
        return "nobody approves their own request"
    return None


class ReviewService:
    """Decisions on PENDING_REVIEW actions, in the caller's transaction."""

    def __init__(self, actions: ActionService, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.actions = actions
        self.clock = clock

    # ------------------------------------------------------------------ reading

    async def pending(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        owner: str | None = None,
        kind: str | None = None,
        older_than_seconds: float | None = None,
        limit: int = 50,
        offset: int = 0,
        after: tuple[datetime, str] | None = None,
    ) -> list[Action]:
        """The principal's review queue, newest first."""
        filters = self._queue(principal, owner, older_than_seconds)
        if filters is None:
            return []
        return await self.actions.list(
            session, principal, kind=kind, limit=limit, offset=offset, after=after, **filters
        )

    async def pending_rows(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        columns: Sequence[Any] | None = None,
        owner: str | None = None,
        kind: str | None = None,
        older_than_seconds: float | None = None,
        limit: int = 50,
        offset: int = 0,
        after: tuple[datetime, str] | None = None,
    ) -> Sequence[Sequence[Any]]:
        """:meth:`pending` as rows of ``columns`` (see ActionService.list_rows)."""
        filters = self._queue(principal, owner, older_than_seconds)
        if filters is None:
            return []
        return await self.actions.list_rows(
            session,
            principal,
            columns=columns,
            kind=kind,
            limit=limit,
            offset=offset,
            after=after,
            **filters,
        )

    def _queue(
        self, principal: Principal, owner: str | None, older_than_seconds: float | None
    ) -> dict[str, Any] | None:
        """The listing filters of a review queue; None when it is empty by rule."""
        created_before = None
        if older_than_seconds is not None:
            created_before = self.clock() - timedelta(seconds=older_than_seconds)
        if not is_system(principal):
            # A review queue is the executive's own: an admin who is also an executive
            # reviews hers, not the tenant's (reading every action is GET /actions).
            if owner is not None and owner != principal.acting_for:
                return None
            owner = principal.acting_for
        return {"states": [S.PENDING_REVIEW], "owner": owner, "created_before": created_before}

    async def preview(self, session: AsyncSession, action: Action) -> dict[str, Any]:
        """The action as it would happen: the email as sent, the event as created. Times are
        in the executive's zone, which the policy may list under any of her names (e-mail,
        mailbox) while the action is filed under her user id."""
        kind = self.actions.kinds.get(action.kind)
        args = kind.args_model.model_validate(action.arguments)
        names = await self.actions.aliases_of(session, action.tenant_id, action.on_behalf_of)
        zone = self.actions.policy.current().timezone_for(names, action.tenant_id)
        context = PreviewContext(timezone=zone, on_behalf_of=action.on_behalf_of)
        try:
            connector = self.actions.connector_for(action)
            return await kind.preview(connector, args, context)
        except (ConnectorError, UnknownConnectorError, ConnectorUnavailableError) as exc:
            preview = await kind.preview(None, args, context)
            preview["warning"] = f"preview without the mailbox or calendar: {type(exc).__name__}"
            return preview

    # ------------------------------------------------------------------ decisions

    async def _pending(self, session: AsyncSession, principal: Principal, action_id: str) -> Action:
        action = await self.actions.get(session, principal, action_id)
        self._ensure_pending(action)
        return action

    async def _pending_with_approvals(
        self, session: AsyncSession, principal: Principal, action_id: str
    ) -> tuple[Action, int, bool]:
        """:meth:`_pending`, with its approvals so far and whether ``principal`` gave one,
        in one statement. They come from the snapshot the action was read in, and every
        approval moves the action (a new version): an approval committed since fails the
        approver's compare-and-set, as one counted after the insert would."""
        approvals = (
            select(func.count())
            .where(ActionApproval.action_id == Action.id)
            .correlate(Action)
            .scalar_subquery()
        )
        mine = (
            exists()
            .where(
                ActionApproval.action_id == Action.id,
                ActionApproval.approver_id == principal.user_id,
            )
            .correlate(Action)
        )
        row = (
            await session.execute(
                select(Action, approvals, mine).where(Action.id == action_id, visibility(principal))
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"no action {action_id!r}")
        action, count, given = row
        self._ensure_pending(action)
        return action, int(count), bool(given)

    def _ensure_pending(self, action: Action) -> None:
        if action.state != S.PENDING_REVIEW:
            raise IllegalTransitionError(
                f"action {action.id} is {action.state}, not pending review",
                action_id=action.id,
                state=action.state,
            )
        if action.review_expires_at is not None and action.review_expires_at <= self.clock():
            raise ConflictError(
                f"the review of action {action.id} has expired", action_id=action.id
            )

    def _ensure_can_approve(self, principal: Principal, action: Action) -> Role | None:
        """The role in which ``principal`` approves ``action``, or a refusal.

        Only the action's executive (for herself) or her delegate holding the
        ``review.decide`` scope approves; an admin or another executive never does, whatever
        roles they hold. The rule's approver roles then say which of the two may."""
        if is_system(principal):
            return None
        if is_agent(principal):
            raise PermissionDeniedError(
                "the assistant's agent approves nothing", action_id=action.id
            )
        if principal.has(Role.AUDITOR):
            raise PermissionDeniedError("auditors approve nothing", action_id=action.id)
        if not principal.acts_for(action.on_behalf_of) or not principal.holds_scope(REVIEW_DECIDE):
            raise OwnershipError(
                "only the action's executive, or her delegate with the review.decide "
                "scope, approves it",
                action_id=action.id,
            )
        role = Role.EXECUTIVE if principal.in_own_right else Role.DELEGATE
        allowed = {Role(r) for r in action.approver_roles or []}
        if role not in allowed:
            raise PermissionDeniedError(
                "approving this action needs one of the roles: "
                + ", ".join(sorted(r.value for r in allowed)),
                action_id=action.id,
            )
        refusal = separation_of_duties(principal, action)
        if refusal is not None:
            raise SeparationOfDutiesError(refusal, action_id=action.id)
        return role

    async def _approvals(self, session: AsyncSession, action: Action) -> int:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(ActionApproval)
                    .where(ActionApproval.action_id == action.id)
                )
            ).scalar_one()
        )

    async def _add_approval(
        self, session: AsyncSession, principal: Principal, action: Action
    ) -> int:
        already = (
            await session.execute(
                select(ActionApproval.id).where(
                    ActionApproval.action_id == action.id,
                    ActionApproval.approver_id == principal.user_id,
                )
            )
        ).first()
        if already:
            self._refuse_second_approval(action)
        session.add(self._approval(principal, action))
        await session.flush()
        return await self._approvals(session, action)

    @staticmethod
    def _refuse_second_approval(action: Action) -> NoReturn:
        raise DuplicateApprovalError(
            "you have already approved this action; a second approver is needed",
            action_id=action.id,
        )

    def _approval(self, principal: Principal, action: Action) -> ActionApproval:
        return ActionApproval(
            id=new_id(),
            tenant_id=action.tenant_id,
            action_id=action.id,
            approver_id=principal.user_id,
            roles=sorted(r.value for r in principal.roles),
            created_at=self.clock(),
        )

    async def approve(
        self,
        session: AsyncSession,
        principal: Principal,
        action_id: str,
        comment: str | None = None,
    ) -> Action:
        action, approvals, mine = await self._pending_with_approvals(session, principal, action_id)
        self._ensure_can_approve(principal, action)
        if mine:
            self._refuse_second_approval(action)
        session.add(self._approval(principal, action))
        await session.flush()
        await self._after_approval(
            session, principal, action, approvals + 1, AuditAction.ACTION_APPROVED, comment, {}
        )
        return action

    async def _after_approval(
        self,
        session: AsyncSession,
        principal: Principal,
        action: Action,
        count: int,
        audit_action: AuditAction,
        comment: str | None,
        extra: dict[str, Any],
        values: dict[str, Any] | None = None,
    ) -> None:
        now = self.clock()
        required = max(1, action.approvals_required)
        payload = {"approvals": count, "required": required, "final": count >= required, **extra}
        if count >= required:
            # Approved and scheduled in one UPDATE (an event each).
            approval = Move(
                S.APPROVED,
                principal,
                values={**(values or {}), "approved_at": now},
                audit_action=audit_action,
                reason=comment,
                payload=payload,
            )
            await self.actions.executor.approve_and_schedule(session, action, approval)
        else:
            await transition(
                session,
                action,
                S.PENDING_REVIEW,
                actor=principal,
                now=now,
                audit_action=audit_action,
                reason=comment,
                payload=payload,
                values=values,
            )
        log.info(
            "review.approved",
            action_id=action.id,
            approvals=count,
            required=required,
            final=count >= required,
        )

    async def edit(
        self,
        session: AsyncSession,
        principal: Principal,
        action_id: str,
        arguments: dict[str, Any],
        comment: str | None = None,
    ) -> Action:
        """Replace the arguments (re-validated), record the patch, approve the result."""
        action = await self._pending(session, principal, action_id)
        role = self._ensure_can_approve(principal, action)
        kind = self.actions.kinds.get(action.kind)
        args = kind.validate(arguments)
        if kind.complete is not None and self.actions.resolver is not None:
            # Failing that, recipients stay unknown: the policy treats them as external.
            with contextlib.suppress(
                ConnectorError, UnknownConnectorError, ConnectorUnavailableError
            ):
                args = await kind.complete(self.actions.connector_for(action), args)
        new_arguments = kind.dump(args)
        patch = jsonpatch.make_patch(action.arguments, new_arguments).patch
        if not patch:
            return await self.approve(session, principal, action_id, comment)
        values: dict[str, Any] = {"arguments": new_arguments}
        # The edit may change what the policy sees (an added external recipient): ask again.
        policy = self.actions.policy.current()
        facts = kind.facts(args)
        aliases = await self.actions.aliases_of(session, action.tenant_id, action.on_behalf_of)
        decision = policy.evaluate(
            PolicyInput(
                kind=kind.name,
                tenant=action.tenant_id,
                actor=action.actor_id,
                at=self.clock(),
                capability=action.capability,
                connector=action.connector,
                on_behalf_of=action.on_behalf_of,
                on_behalf_of_aliases=aliases,
                recipients=facts.recipients,
                amount=facts.amount,
                autonomy=Autonomy(action.autonomy),
            )
        )
        if decision.effect is Effect.DENY:
            raise ValidationFailedError(
                f"the policy denies the edited action: {decision.reason}",
                rule=decision.rule_id,
                policy_version=decision.policy_version,
            )
        if decision.effect is Effect.REQUIRE_APPROVAL and decision.approval is not None:
            values.update(
                approvals_required=max(action.approvals_required, decision.approval.approvals),
                approver_roles=sorted(r.value for r in decision.approval.roles),
                policy_rule_id=decision.rule_id,
                policy_version=decision.policy_version,
                decision_reason=decision.reason,
                explanation=decision.explanation_dicts(),
            )
        if (
            "approver_roles" in values
            and role is not None
            and role.value not in values["approver_roles"]
        ):
            raise PermissionDeniedError(
                "the edited action needs another approver role", action_id=action.id
            )
        session.add(
            ActionEdit(
                id=new_id(),
                tenant_id=action.tenant_id,
                action_id=action.id,
                editor_id=principal.user_id,
                patch=patch,
                previous_arguments=dict(action.arguments),
                created_at=self.clock(),
            )
        )
        # Approvals were given to the previous wording.
        await session.execute(delete(ActionApproval).where(ActionApproval.action_id == action.id))
        await session.flush()
        count = await self._add_approval(session, principal, action)
        paths = sorted({op["path"] for op in patch})
        # The patch alone cannot say how much changed (it holds new values only); the
        # distance is measured here, where both wordings are known, for quality monitoring.
        distance = normalized_edit_distance(action.arguments, new_arguments)
        await self._after_approval(
            session,
            principal,
            action,
            count,
            AuditAction.ACTION_EDITED,
            comment,
            {"changed_paths": paths, "operations": len(patch), "edit_distance": distance},
            values=values,
        )
        return action

    async def reject(
        self, session: AsyncSession, principal: Principal, action_id: str, reason: str
    ) -> Action:
        if not reason or not reason.strip():
            raise ValidationFailedError("a rejection needs a reason")
        action = await self._pending(session, principal, action_id)
        if principal.has(Role.AUDITOR):
            raise PermissionDeniedError("auditors decide nothing", action_id=action.id)
        # Stopping is always safe for an admin; otherwise the same people who approve.
        admin = principal.has(Role.ADMIN) and principal.on_behalf_of is None
        if not (is_system(principal) or admin) and not (
            principal.acts_for(action.on_behalf_of) and principal.holds_scope(REVIEW_DECIDE)
        ):
            raise OwnershipError(
                "only the action's executive, her delegate with the review.decide scope, "
                "or an admin rejects it",
                action_id=action.id,
            )
        now = self.clock()
        await transition(
            session,
            action,
            S.REJECTED,
            actor=principal,
            now=now,
            reason=reason,
            values={"finished_at": now, "result": {"review": "rejected"}},
        )
        log.info("review.rejected", action_id=action.id)
        return action

    async def cancel(
        self, session: AsyncSession, principal: Principal, action_id: str, reason: str | None = None
    ) -> Action:
        action = await self._pending(session, principal, action_id)
        if principal.has(Role.AUDITOR) and not principal.has(
            Role.ADMIN, Role.DELEGATE, Role.EXECUTIVE
        ):
            raise PermissionDeniedError("auditors decide nothing", action_id=action.id)
        ensure_can_manage(principal, action)
        now = self.clock()
        await transition(
            session,
            action,
            S.CANCELLED,
            actor=principal,
            now=now,
            reason=reason or "cancelled in review",
            values={"finished_at": now},
        )
        return action

    async def bulk(
        self, session: AsyncSession, principal: Principal, items: list[BulkItem]
    ) -> list[BulkResult]:
        """Each item in its own savepoint: one failure does not undo the others.

        Every refused item leaves its own audit event (``governance.refused``: who, which
        action, which decision, why), as a single refused decision does; they are recorded
        after the decisions, in the caller's transaction, which commits with the results.
        """
        results: list[BulkResult] = []
        refused: list[tuple[BulkItem, AssistantError]] = []
        for item in items:
            try:
                async with session.begin_nested():
                    action = await self.decide(session, principal, item)
                results.append(BulkResult(action_id=item.action_id, ok=True, state=action.state))
            except AssistantError as exc:
                refused.append((item, exc))
                results.append(
                    BulkResult(
                        action_id=item.action_id,
                        ok=False,
                        error=type(exc).__name__,
                        detail=exc.detail,
                    )
                )
        await self.audit_refused(session, principal, refused)
        return results

    async def audit_refused(
        self,
        session: AsyncSession,
        principal: Principal,
        refused: list[tuple[BulkItem, AssistantError]],
    ) -> None:
        """One ``governance.refused`` audit event per refused item of a bulk decision."""
        for item, exc in refused:
            await audit.record(
                session,
                principal,
                AuditEventIn(
                    action=AuditAction.GOVERNANCE_REFUSED,
                    outcome=Outcome.DENIED,
                    resource_type="action",
                    resource_id=item.action_id[:64],
                    action_id=item.action_id[:64],
                    reason=exc.detail[:500],
                    payload={
                        "error": type(exc).__name__,
                        "decision": item.decision,
                        "bulk": True,
                        **{key: str(value)[:200] for key, value in exc.extra.items()},
                    },
                ),
            )
        if refused:
            log.info(
                "review.bulk.refused",
                tenant=principal.tenant_id,
                refused=len(refused),
            )

    async def decide(self, session: AsyncSession, principal: Principal, item: BulkItem) -> Action:
        if item.decision == "approve":
            return await self.approve(session, principal, item.action_id, item.reason)
        if item.decision == "edit":
            if item.arguments is None:
                raise ValidationFailedError("an edit needs arguments")
            return await self.edit(session, principal, item.action_id, item.arguments, item.reason)
        if item.decision == "reject":
            return await self.reject(session, principal, item.action_id, item.reason or "")
        return await self.cancel(session, principal, item.action_id, item.reason)

    # ------------------------------------------------------------------ expiry

    async def expire_due(self, session: AsyncSession, *, limit: int = 500) -> int:
        """Close reviews past their TTL (PENDING_REVIEW -> EXPIRED); flushes."""
        now = self.clock()
        due = list(
            (
                await session.execute(
                    select(Action)
                    .where(
                        Action.state == S.PENDING_REVIEW.value,
                        Action.review_expires_at <= now,
                    )
                    .limit(limit)
                )
            ).scalars()
        )
        expired = 0
        for action in due:
            try:
                async with session.begin_nested():
                    await transition(
                        session,
                        action,
                        S.EXPIRED,
                        actor=system_principal(action.tenant_id, "review-expiry"),
                        now=now,
                        reason="no decision before the review expired",
                        values={"finished_at": now},
                    )
                expired += 1
            except ConflictError:
                continue
        return expired
