"""Autonomy levels per executive and action kind, promoted only on a measured record.

A grant names a tenant, an executive (or ``*`` for all of them), an action kind (or a glob
such as ``email.*``), a level, who set it, when and why. :func:`stored_level` finds the
most specific grant for a proposal (the executive's own before ``*``, an exact kind before
a glob, a longer glob before a shorter one); the action service uses it when a proposal
does not set a level, and the policy's default otherwise.

Raising a level is refused unless the record of that kind for that executive meets the
bar: at least ``min_decisions`` human decisions (approved or rejected) in the window, of
which at least ``min_accepted_unedited`` were approved without an edit. Lowering a level
takes effect at once. Both are audited, and so is a refused promotion.

Shadow mode proposes nothing for execution (the policy records a denial, "would have
..."); :func:`record_shadow_comparison` keeps what the assistant would have produced next
to what the person actually did, with an edit distance, so that the shadow period yields
the same kind of record a promotion is judged on.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import ConflictError, SeparationOfDutiesError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal, Role
from assistant.core.settings import AutonomySettings
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.edit_distance import normalized_edit_distance
from governance.models import Action, ActionApproval, ActionEdit
from governance.policy import Autonomy
from governance.production_models import AutonomyGrant, ShadowComparison
from governance.state import ActionState
from integrations.base import Capability

#: Levels from least to most autonomous.
ORDER: tuple[Autonomy, ...] = (
    Autonomy.SHADOW,
    Autonomy.SUGGEST,
    Autonomy.AUTO_WITH_UNDO,
    Autonomy.AUTO,
)
ANY_EXECUTIVE = "*"


def rank(level: Autonomy) -> int:
    return ORDER.index(level)


class PromotionRefusedError(ConflictError):
    """The measured record of the kind does not meet the bar for a higher level."""


@dataclass(frozen=True, slots=True)
class Record:
    """The measured record of one executive and kind over the window."""

    decisions: int
    approved: int
    approved_unedited: int
    rejected: int
    shadow_compared: int
    shadow_agreed: int
    window_days: int
    since: str

    @property
    def accepted_unedited(self) -> float | None:
        return self.approved_unedited / self.decisions if self.decisions else None

    def meets(self, bar: AutonomySettings) -> bool:
        rate = self.accepted_unedited
        return (
            self.decisions >= bar.min_decisions
            and rate is not None
            and rate >= bar.min_accepted_unedited
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accepted_unedited": self.accepted_unedited}


class ScopedGrant(Protocol):
    """What choosing among grants reads of one (an AutonomyGrant, or a row of its columns)."""

    @property
    def executive(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def level(self) -> str: ...


def _specificity(grant: ScopedGrant) -> tuple[int, int, int]:
    pattern = grant.kind
    is_glob = any(ch in pattern for ch in "*?[")
    literal = len(pattern.replace("*", "").replace("?", ""))
    return (grant.executive != ANY_EXECUTIVE, not is_glob, literal)


async def grants(
    session: AsyncSession, tenant_id: str, executive: str | None = None
) -> list[AutonomyGrant]:
    query = select(AutonomyGrant).where(AutonomyGrant.tenant_id == tenant_id)
    if executive is not None:
        query = query.where(AutonomyGrant.executive.in_(grant_scope(executive)))
    query = query.order_by(AutonomyGrant.executive, AutonomyGrant.kind)
    return list((await session.execute(query)).scalars())


G = TypeVar("G", bound=ScopedGrant)


def grant_scope(executive: str | None) -> tuple[str, str]:
    """The ``executive`` values of the grants that may cover ``executive``."""
    return (executive or ANY_EXECUTIVE).lower(), ANY_EXECUTIVE


def most_specific(candidates: Iterable[G], kind: str) -> G | None:
    """Of grants that may cover an executive (:func:`grant_scope`), the most specific one
    covering ``kind``."""
    covering = [g for g in candidates if fnmatch.fnmatchcase(kind.lower(), g.kind.lower())]
    return max(covering, key=_specificity, default=None)


async def matching_grant(
    session: AsyncSession, tenant_id: str, executive: str | None, kind: str
) -> AutonomyGrant | None:
    """The most specific grant that covers ``executive`` and ``kind``."""
    return most_specific(await grants(session, tenant_id, executive or ANY_EXECUTIVE), kind)


async def stored_level(
    session: AsyncSession, tenant_id: str, executive: str | None, kind: str
) -> Autonomy | None:
    """The stored autonomy level for a proposal, or None when no grant covers it."""
    grant = await matching_grant(session, tenant_id, executive, kind)
    return Autonomy(grant.level) if grant is not None else None


def _kind_filter(kind: str, column: Any = Action.kind) -> Any:
    if any(ch in kind for ch in "*?"):
        return column.like(
            kind.replace("%", r"\%").replace("_", r"\_").replace("*", "%").replace("?", "_"),
            escape="\\",
        )
    return column == kind


async def measure(
    session: AsyncSession,
    tenant_id: str,
    executive: str,
    kind: str,
    *,
    window_days: int,
    now: datetime | None = None,
) -> Record:
    """Human decisions on ``kind`` for ``executive`` in the window, and how many were
    approved without an edit (governed_actions, action_approvals, action_edits), plus the
    shadow comparisons (agreed ones count as accepted unedited)."""
    since = (now or utcnow()) - timedelta(days=window_days)
    approved_q = exists().where(ActionApproval.action_id == Action.id)
    edited_q = exists().where(ActionEdit.action_id == Action.id)
    scope = [Action.tenant_id == tenant_id, _kind_filter(kind), Action.created_at >= since]
    if executive != ANY_EXECUTIVE:
        scope.append(func.lower(Action.on_behalf_of) == executive.lower())

    async def count(*conditions: Any) -> int:
        return int(
            (
                await session.execute(
                    select(func.count()).select_from(Action).where(*scope, *conditions)
                )
            ).scalar_one()
        )

    approved = await count(approved_q)
    unedited = await count(approved_q, ~edited_q)
    rejected = await count(Action.state == ActionState.REJECTED.value)
    # In shadow mode the person's own action is the decision: a comparison that agreed
    # counts as accepted unedited, one that did not as a change.
    shadow = [
        ShadowComparison.tenant_id == tenant_id,
        _kind_filter(kind, ShadowComparison.kind),
        ShadowComparison.created_at >= since,
    ]
    if executive != ANY_EXECUTIVE:
        shadow.append(ShadowComparison.executive == executive.lower())
    compared, agreed = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((ShadowComparison.agreed.is_(True), 1), else_=0)), 0),
            ).where(*shadow)
        )
    ).one()
    return Record(
        decisions=approved + rejected + int(compared),
        approved=approved,
        approved_unedited=unedited + int(agreed),
        rejected=rejected,
        shadow_compared=int(compared),
        shadow_agreed=int(agreed),
        window_days=window_days,
        since=since.isoformat(),
    )


@dataclass(frozen=True, slots=True)
class Change:
    grant: AutonomyGrant
    previous: Autonomy
    level: Autonomy
    direction: str
    record: Record | None


async def set_level(
    session: AsyncSession,
    actor: Principal,
    *,
    executive: str,
    kind: str,
    level: Autonomy,
    reason: str,
    bar: AutonomySettings,
    default: Autonomy,
    now: datetime | None = None,
    actor_ids: Iterable[str] = (),
) -> Change:
    """Set the level of ``executive`` x ``kind``: a demotion (or no change) at once, a
    promotion only if the measured record meets ``bar``, and never by the executive
    herself, known by ``actor_ids`` (her addresses) besides her user id
    (SeparationOfDutiesError). Raises PromotionRefusedError (the caller audits the
    refusal with :func:`audit_refusal` in its own transaction)."""
    executive = executive.strip().lower()
    kind = kind.strip().lower()
    if not executive or not kind:
        raise ValidationFailedError("executive and kind are required")
    if not reason.strip():
        raise ValidationFailedError("a reason is required for every autonomy change")
    now = now or utcnow()
    current = await matching_grant(session, actor.tenant_id, executive, kind)
    previous = Autonomy(current.level) if current is not None else default
    record_: Record | None = None
    direction = (
        "promotion"
        if rank(level) > rank(previous)
        else "demotion"
        if rank(level) < rank(previous)
        else "unchanged"
    )
    own = {i.strip().lower() for i in (actor.user_id, actor.on_behalf_of or "", *actor_ids)}
    if direction == "promotion" and (
        executive in own or (executive == "*" and actor.has(Role.EXECUTIVE))
    ):
        # An admin who is also this executive (or every executive, her included) would
        # widen what runs without her own review.
        raise SeparationOfDutiesError(
            "nobody raises their own autonomy: another admin must",
            executive=executive,
            kind=kind,
        )
    if direction == "promotion":
        record_ = await measure(
            session, actor.tenant_id, executive, kind, window_days=bar.window_days, now=now
        )
        if not record_.meets(bar):
            rate = record_.accepted_unedited
            raise PromotionRefusedError(
                f"promotion of {kind} for {executive} from {previous.value} to {level.value} "
                f"refused: {record_.decisions} decision(s) in {bar.window_days} days "
                f"(need {bar.min_decisions}), "
                f"{'no' if rate is None else f'{rate:.0%}'} approved unedited "
                f"(need {bar.min_accepted_unedited:.0%})",
                record=record_.as_dict(),
                previous=previous.value,
                requested=level.value,
            )
    grant = (
        await session.execute(
            select(AutonomyGrant).where(
                AutonomyGrant.tenant_id == actor.tenant_id,
                AutonomyGrant.executive == executive,
                AutonomyGrant.kind == kind,
            )
        )
    ).scalar_one_or_none()
    evidence = record_.as_dict() if record_ is not None else None
    if grant is None:
        grant = AutonomyGrant(
            id=new_id(),
            tenant_id=actor.tenant_id,
            executive=executive,
            kind=kind,
            level=level.value,
            set_by=actor.user_id,
            reason=reason,
            evidence=evidence,
            updated_at=now,
        )
        session.add(grant)
    else:
        grant.level, grant.set_by, grant.reason = level.value, actor.user_id, reason
        grant.evidence, grant.updated_at = evidence, now
    await session.flush()
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.AUTONOMY_CHANGED,
            resource_type="autonomy",
            resource_id=f"{executive}:{kind}",
            reason=reason,
            payload={
                "executive": executive,
                "kind": kind,
                "previous": previous.value,
                "level": level.value,
                "direction": direction,
                "record": evidence,
            },
        ),
    )
    return Change(grant=grant, previous=previous, level=level, direction=direction, record=record_)


async def audit_refusal(
    session: AsyncSession,
    actor: Principal,
    *,
    executive: str,
    kind: str,
    level: Autonomy,
    reason: str,
    error: PromotionRefusedError,
) -> None:
    """Audit a refused promotion (in a transaction of its own: the request's rolls back)."""
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.AUTONOMY_PROMOTION_REFUSED,
            outcome=Outcome.DENIED,
            resource_type="autonomy",
            resource_id=f"{executive.lower()}:{kind.lower()}",
            reason=reason,
            payload={
                "executive": executive.lower(),
                "kind": kind.lower(),
                "requested": level.value,
                **error.extra,
            },
        ),
    )


async def record_shadow_comparison(
    session: AsyncSession,
    actor: Principal,
    *,
    executive: str,
    kind: str,
    subject_id: str,
    assistant_output: str,
    human_output: str,
) -> ShadowComparison:
    """Keep what the assistant would have done next to what the person did (shadow mode).

    ``agreed`` when the outputs are equal ignoring case and surrounding space; the
    normalized edit distance says how far apart they are.
    """
    agreed = assistant_output.strip().lower() == human_output.strip().lower()
    row = ShadowComparison(
        id=new_id(),
        tenant_id=actor.tenant_id,
        executive=executive.lower(),
        kind=kind,
        subject_id=subject_id,
        assistant_output=assistant_output[:10_000],
        human_output=human_output[:10_000],
        agreed=agreed,
        distance=normalized_edit_distance(assistant_output, human_output),
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.SHADOW_COMPARED,
            resource_type="shadow_comparison",
            resource_id=row.id,
            payload={
                "executive": row.executive,
                "kind": kind,
                "subject_id": subject_id,
                "agreed": agreed,
                "distance": row.distance,
            },
        ),
    )
    return row


async def shadow_summary(
    session: AsyncSession, tenant_id: str, executive: str | None = None
) -> list[dict[str, Any]]:
    """Per executive and kind: comparisons, agreements and the mean edit distance."""
    query = select(
        ShadowComparison.executive,
        ShadowComparison.kind,
        func.count(),
        func.sum(case((ShadowComparison.agreed.is_(True), 1), else_=0)),
        func.avg(ShadowComparison.distance),
    ).where(ShadowComparison.tenant_id == tenant_id)
    if executive is not None:
        query = query.where(ShadowComparison.executive == executive.lower())
    query = query.group_by(ShadowComparison.executive, ShadowComparison.kind)
    return [
        {
            "executive": e,
            "kind": k,
            "comparisons": int(n),
            "agreed": int(a or 0),
            "mean_distance": None if d is None else float(d),
        }
        for e, k, n, a, d in (await session.execute(query)).all()
    ]


SHADOW_DRAFT_KINDS = ("email.draft.create", "email.send")


async def _sent_messages(connector: Any) -> list[Any]:
    messages: list[Any] = []
    cursor: str | None = None
    while True:
        batch = await connector.sync("sent", cursor)
        messages.extend(batch.messages)
        if not batch.more:
            return messages
        cursor = batch.cursor


async def compare_shadow_drafts(
    sessions: async_sessionmaker[AsyncSession],
    resolver: Any,
    actor: Principal,
    *,
    since: datetime,
) -> int:
    """Compare each shadow-mode reply draft with the reply the person actually sent.

    A draft proposed in shadow mode is denied (nothing executes); once the person has
    answered the same message (their sent reply names it in In-Reply-To), the two bodies
    are recorded side by side with their edit distance. Drafts already compared, and those
    the person has not answered yet, are skipped. Returns how many were recorded.
    """
    tenant_id = actor.tenant_id
    async with sessions() as session:
        drafts = list(
            (
                await session.execute(
                    select(Action)
                    .where(
                        Action.tenant_id == tenant_id,
                        Action.autonomy == Autonomy.SHADOW.value,
                        Action.state == ActionState.DENIED.value,
                        Action.kind.in_(SHADOW_DRAFT_KINDS),
                        Action.created_at >= since,
                    )
                    .order_by(Action.created_at)
                )
            ).scalars()
        )
        done = set(
            (
                await session.execute(
                    select(ShadowComparison.subject_id).where(
                        ShadowComparison.tenant_id == tenant_id,
                        ShadowComparison.kind.in_(SHADOW_DRAFT_KINDS),
                    )
                )
            ).scalars()
        )
    pending = [d for d in drafts if d.id not in done and d.arguments.get("reply_to_id")]
    if not pending:
        return 0
    connector = resolver.get(tenant_id, Capability.EMAIL)
    replies: dict[str, Any] = {}
    for message in await _sent_messages(connector):
        if message.in_reply_to:
            replies.setdefault(message.in_reply_to, message)
    recorded = 0
    for draft in pending:
        original = await connector.get_message(draft.arguments["reply_to_id"])
        sent = replies.get(original.message_id or "")
        if sent is None:
            continue
        async with sessions() as session, session.begin():
            await record_shadow_comparison(
                session,
                actor,
                executive=draft.on_behalf_of or "",
                kind=draft.kind,
                subject_id=draft.id,
                assistant_output=str(draft.arguments.get("body_text", "")),
                human_output=sent.text,
            )
        recorded += 1
    return recorded
