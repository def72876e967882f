"""Quality measured from the records: how people decided on proposals, how much they edited,
why they rejected, where triage was corrected, how execution went.

Every figure here is computed from rows other modules wrote (governed actions, their edits
and audit events, triage results and corrections, exceptions); nothing is self-reported.
Actions and triage results belong to the period in which they were created.

Outcome of a governed action (one each, first match wins):

* ``denied``: the policy refused it;
* ``rejected`` / ``expired``: a person rejected it, or nobody decided in time;
* ``cancelled``: withdrawn in review; ``undone``: cancelled after approval (hold window);
* ``approved_edited``: approved after a person changed it;
* ``auto_approved``: the policy approved it with no person involved;
* ``approved_unedited``: a person approved it as proposed;
* ``pending``: not decided yet.

Rates per kind divide by the *reviewed* actions: those a person decided (approved edited
or unedited, rejected, cancelled) plus those that expired waiting for one.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean, median
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.quality.period import Period
from assistant.triage.store import TriageCorrectionRow, TriageResultRow
from governance.audit import AuditAction
from governance.audit_models import AuditEvent
from governance.models import Action, ActionEdit, ActionException

OUTCOMES = (
    "approved_unedited",
    "approved_edited",
    "auto_approved",
    "rejected",
    "expired",
    "cancelled",
    "undone",
    "denied",
    "pending",
)
REVIEWED = ("approved_unedited", "approved_edited", "rejected", "expired", "cancelled")
EXECUTED_STATES = frozenset(
    {"succeeded", "failed", "compensating", "compensated", "compensation_failed"}
)
#: Triage results the pipeline left to a person have no predicted category.
DEFERRED = "(person)"


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or None when there is nothing to divide by."""
    return round(numerator / denominator, 6) if denominator else None


def classify(state: str, decision: str | None, approved_at: datetime | None, edited: bool) -> str:
    """The outcome of one action (see the module docstring)."""
    if state == "denied":
        return "denied"
    if state in {"rejected", "expired"}:
        return state
    if state == "cancelled":
        return "undone" if approved_at is not None else "cancelled"
    if approved_at is not None:
        if edited:
            return "approved_edited"
        return "auto_approved" if decision == "allow" else "approved_unedited"
    return "pending"


@dataclass
class KindQuality:
    """Decisions on one action kind over the period."""

    kind: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    edit_distances: list[float] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        return sum(self.counts[o] for o in REVIEWED)

    def rate(self, outcome: str) -> float | None:
        return ratio(self.counts[outcome], self.reviewed)

    @property
    def accepted_rate(self) -> float | None:
        return ratio(
            self.counts["approved_unedited"] + self.counts["approved_edited"], self.reviewed
        )

    def to_dict(self) -> dict[str, Any]:
        distances = self.edit_distances
        return {
            "kind": self.kind,
            "proposed": sum(self.counts.values()),
            "reviewed": self.reviewed,
            "counts": dict(self.counts),
            "acceptance_rate": self.rate("approved_unedited"),
            "edit_rate": self.rate("approved_edited"),
            "rejection_rate": self.rate("rejected"),
            "expiry_rate": self.rate("expired"),
            "cancel_rate": self.rate("cancelled"),
            "accepted_rate": self.accepted_rate,
            "edit_distance": {
                "edits_measured": len(distances),
                "mean": round(mean(distances), 4) if distances else None,
                "median": round(median(distances), 4) if distances else None,
                "max": max(distances) if distances else None,
            },
        }


@dataclass
class TriageQuality:
    """Triage results of the period against the corrections people made."""

    results: int = 0
    deferred: int = 0
    corrected: int = 0
    predicted: Counter[str] = field(default_factory=Counter)
    corrected_by_category: Counter[str] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def decided(self) -> int:
        return self.results - self.deferred

    @property
    def accuracy(self) -> float | None:
        """Share of triage decisions no person corrected."""
        return ratio(self.decided - self.corrected, self.decided)

    def to_dict(self) -> dict[str, Any]:
        categories = sorted(set(self.predicted) | set(self.corrected_by_category))
        return {
            "results": self.results,
            "decided": self.decided,
            "deferred": self.deferred,
            "corrected": self.corrected,
            "accuracy": self.accuracy,
            "correction_rate": ratio(self.corrected, self.decided),
            "by_category": [
                {
                    "category": c,
                    "predicted": self.predicted[c],
                    "corrected": self.corrected_by_category[c],
                    "correction_rate": ratio(self.corrected_by_category[c], self.predicted[c]),
                }
                for c in categories
            ],
            "confusion": [
                {"predicted": p, "corrected_to": c, "count": n}
                for (p, c), n in sorted(self.confusion.items())
            ],
        }


@dataclass
class ExecutionQuality:
    executed: int = 0
    failed: int = 0
    compensation_failed: int = 0
    exceptions: int = 0
    proposed: int = 0

    @property
    def error_rate(self) -> float | None:
        return ratio(self.failed, self.executed)

    @property
    def exception_rate(self) -> float | None:
        return ratio(self.exceptions, self.proposed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "proposed": self.proposed,
            "executed": self.executed,
            "failed": self.failed,
            "compensation_failed": self.compensation_failed,
            "exceptions": self.exceptions,
            "error_rate": self.error_rate,
            "exception_rate": self.exception_rate,
        }


@dataclass
class QualityReport:
    """Everything quality monitoring measures over one period."""

    period: Period
    kinds: dict[str, KindQuality]
    rejection_reasons: Counter[str]
    triage: TriageQuality
    execution: ExecutionQuality

    def overall(self) -> KindQuality:
        total = KindQuality(kind="*")
        for quality in self.kinds.values():
            for outcome, count in quality.counts.items():
                total.counts[outcome] += count
            total.edit_distances.extend(quality.edit_distances)
        return total

    @property
    def handled_items(self) -> int:
        """Items the assistant handled: messages triaged plus actions proposed."""
        return self.triage.results + self.execution.proposed

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": {
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
                "label": self.period.label,
            },
            "handled_items": self.handled_items,
            "overall": self.overall().to_dict(),
            "by_kind": [self.kinds[k].to_dict() for k in sorted(self.kinds)],
            "rejection_reasons": [
                {"reason": r, "count": n} for r, n in self.rejection_reasons.most_common()
            ],
            "triage": self.triage.to_dict(),
            "execution": self.execution.to_dict(),
        }


@dataclass(frozen=True)
class ActionFacts:
    id: str
    kind: str
    state: str
    decision: str | None
    approved_at: datetime | None
    created_at: datetime
    edited: bool

    @property
    def outcome(self) -> str:
        return classify(self.state, self.decision, self.approved_at, self.edited)


async def action_facts(session: AsyncSession, tenant_id: str, period: Period) -> list[ActionFacts]:
    """The period's actions, with whether a person edited each."""
    rows = (
        await session.execute(
            select(
                Action.id,
                Action.kind,
                Action.state,
                Action.decision,
                Action.approved_at,
                Action.created_at,
            ).where(
                Action.tenant_id == tenant_id,
                Action.created_at >= period.start,
                Action.created_at < period.end,
            )
        )
    ).all()
    edited = set(
        (
            await session.execute(
                select(ActionEdit.action_id)
                .where(ActionEdit.tenant_id == tenant_id, ActionEdit.created_at >= period.start)
                .distinct()
            )
        ).scalars()
    )
    return [
        ActionFacts(
            id=r.id,
            kind=r.kind,
            state=r.state,
            decision=r.decision,
            approved_at=r.approved_at,
            created_at=r.created_at,
            edited=r.id in edited,
        )
        for r in rows
    ]


def normalize_reason(reason: str | None) -> str:
    """Rejection reasons grouped by their wording, case and spacing aside."""
    text = re.sub(r"\s+", " ", (reason or "").strip().lower()).rstrip(".")
    return text[:120] or "(no reason given)"


async def _decision_events(
    session: AsyncSession, tenant_id: str, period: Period, action: AuditAction
) -> list[AuditEvent]:
    # Decisions come after the proposal, so nothing before the period's start matters.
    return list(
        (
            await session.execute(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant_id,
                    AuditEvent.action == action.value,
                    AuditEvent.occurred_at >= period.start,
                )
                .order_by(AuditEvent.seq)
            )
        ).scalars()
    )


async def triage_quality(session: AsyncSession, tenant_id: str, period: Period) -> TriageQuality:
    results = (
        await session.execute(
            select(TriageResultRow.id, TriageResultRow.category, TriageResultRow.stage).where(
                TriageResultRow.tenant_id == tenant_id,
                TriageResultRow.created_at >= period.start,
                TriageResultRow.created_at < period.end,
            )
        )
    ).all()
    corrections = (
        await session.execute(
            select(
                TriageCorrectionRow.result_id,
                TriageCorrectionRow.original_category,
                TriageCorrectionRow.category,
            )
            .join(TriageResultRow, TriageResultRow.id == TriageCorrectionRow.result_id)
            .where(
                TriageCorrectionRow.tenant_id == tenant_id,
                TriageResultRow.created_at >= period.start,
                TriageResultRow.created_at < period.end,
            )
            .order_by(TriageCorrectionRow.created_at)
        )
    ).all()
    # The first correction holds what the pipeline predicted; the last, what people settled on.
    first: dict[str, str | None] = {}
    last: dict[str, str] = {}
    for row in corrections:
        first.setdefault(row.result_id, row.original_category)
        last[row.result_id] = row.category
    quality = TriageQuality(results=len(results))
    for row in results:
        predicted = first.get(row.id, row.category)
        if predicted is None:
            quality.deferred += 1
            continue
        quality.predicted[predicted] += 1
        if row.id in last and last[row.id] != predicted:
            quality.corrected += 1
            quality.corrected_by_category[predicted] += 1
            quality.confusion[(predicted, last[row.id])] += 1
    return quality


async def execution_quality(
    session: AsyncSession, tenant_id: str, period: Period, facts: list[ActionFacts]
) -> ExecutionQuality:
    exceptions = int(
        (
            await session.execute(
                select(func.count())
                .select_from(ActionException)
                .where(
                    ActionException.tenant_id == tenant_id,
                    ActionException.created_at >= period.start,
                    ActionException.created_at < period.end,
                )
            )
        ).scalar_one()
    )
    return ExecutionQuality(
        proposed=len(facts),
        executed=sum(1 for f in facts if f.state in EXECUTED_STATES),
        failed=sum(1 for f in facts if f.state == "failed"),
        compensation_failed=sum(1 for f in facts if f.state == "compensation_failed"),
        exceptions=exceptions,
    )


async def measure(session: AsyncSession, tenant_id: str, period: Period) -> QualityReport:
    """Quality of ``tenant_id`` over ``period``."""
    facts = await action_facts(session, tenant_id, period)
    kinds: dict[str, KindQuality] = {}
    by_id: dict[str, ActionFacts] = {}
    for fact in facts:
        kinds.setdefault(fact.kind, KindQuality(kind=fact.kind)).counts[fact.outcome] += 1
        by_id[fact.id] = fact
    for event in await _decision_events(session, tenant_id, period, AuditAction.ACTION_EDITED):
        edited = by_id.get(event.action_id or "")
        distance = event.payload.get("edit_distance")
        if edited is not None and isinstance(distance, int | float):
            kinds[edited.kind].edit_distances.append(float(distance))
    reasons: Counter[str] = Counter()
    for event in await _decision_events(session, tenant_id, period, AuditAction.ACTION_REJECTED):
        if (event.action_id or "") in by_id:
            reasons[normalize_reason(event.reason)] += 1
    return QualityReport(
        period=period,
        kinds=kinds,
        rejection_reasons=reasons,
        triage=await triage_quality(session, tenant_id, period),
        execution=await execution_quality(session, tenant_id, period, facts),
    )


@dataclass
class SeriesPoint:
    """One time slice of the rates and costs, for charts."""

    start: datetime
    reviewed: int = 0
    accepted: int = 0
    edited: int = 0
    rejected: int = 0
    triaged: int = 0
    corrected: int = 0
    llm_cost: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "reviewed": self.reviewed,
            "acceptance_rate": ratio(self.accepted, self.reviewed),
            "edit_rate": ratio(self.edited, self.reviewed),
            "rejection_rate": ratio(self.rejected, self.reviewed),
            "triaged": self.triaged,
            "triage_correction_rate": ratio(self.corrected, self.triaged),
            "llm_cost": round(self.llm_cost, 6),
        }


async def series(session: AsyncSession, tenant_id: str, period: Period) -> list[SeriesPoint]:
    """Rates and LLM cost per day (or hour, or week) of ``period``."""
    from assistant.llm.models import LLMCallRow

    slices = period.buckets()
    points = [SeriesPoint(start=s) for s, _ in slices]

    def slot(moment: datetime) -> SeriesPoint | None:
        for (start, end), point in zip(slices, points, strict=True):
            if start <= moment < end:
                return point
        return None

    for fact in await action_facts(session, tenant_id, period):
        point = slot(fact.created_at)
        if point is None or fact.outcome not in REVIEWED:
            continue
        point.reviewed += 1
        point.accepted += fact.outcome == "approved_unedited"
        point.edited += fact.outcome == "approved_edited"
        point.rejected += fact.outcome == "rejected"
    corrected_ids = set(
        (
            await session.execute(
                select(TriageCorrectionRow.result_id).where(
                    TriageCorrectionRow.tenant_id == tenant_id,
                    TriageCorrectionRow.created_at >= period.start,
                )
            )
        ).scalars()
    )
    for result_id, created_at in (
        await session.execute(
            select(TriageResultRow.id, TriageResultRow.created_at).where(
                TriageResultRow.tenant_id == tenant_id,
                TriageResultRow.created_at >= period.start,
                TriageResultRow.created_at < period.end,
            )
        )
    ).all():
        point = slot(created_at)
        if point is not None:
            point.triaged += 1
            point.corrected += result_id in corrected_ids
    for occurred_at, cost in (
        await session.execute(
            select(LLMCallRow.occurred_at, LLMCallRow.cost_usd).where(
                LLMCallRow.tenant_id == tenant_id,
                LLMCallRow.occurred_at >= period.start,
                LLMCallRow.occurred_at < period.end,
            )
        )
    ).all():
        point = slot(occurred_at)
        if point is not None:
            point.llm_cost += float(cost or 0.0)
    return points


def group_by_kind(facts: list[ActionFacts]) -> dict[str, list[ActionFacts]]:
    grouped: dict[str, list[ActionFacts]] = defaultdict(list)
    for fact in facts:
        grouped[fact.kind].append(fact)
    return grouped
