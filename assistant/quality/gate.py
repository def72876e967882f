"""The go / no-go decision gate, computed from the deployment's own records.

Each criterion has a measured value, a threshold and a verdict: ``pass``, ``fail`` or
``no_data`` (nothing to measure yet). The answer:

* **NO-GO** when any *hard* criterion fails (``gate.hard`` in the settings);
* **REVISE** when a soft criterion fails or any criterion has no data (never GO without
  evidence);
* **GO** when every criterion passes.

Thresholds are inclusive: a minimum is met at exactly the minimum, a maximum at exactly the
maximum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.principal import Principal
from assistant.core.settings import GATE_CRITERIA, Settings
from assistant.quality.cost import CostReport, measure_cost
from assistant.quality.metrics import QualityReport, SeriesPoint, measure, series
from assistant.quality.monitor import list_alerts, spot_check_summary
from assistant.quality.period import Period
from governance import audit
from governance.audit import AuditAction, AuditEventIn


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105  (a verdict, not a password)
    FAIL = "fail"
    NO_DATA = "no_data"


class Decision(StrEnum):
    GO = "GO"
    NO_GO = "NO-GO"
    REVISE = "REVISE"


#: ``assistant gate report`` exits with these (2 is a usage or configuration error).
EXIT_CODES: dict[Decision, int] = {Decision.GO: 0, Decision.NO_GO: 1, Decision.REVISE: 3}

TITLES = {
    "volume": "Volume handled",
    "triage_accuracy": "Triage accuracy vs people",
    "action_acceptance": "Actions accepted by people",
    "error_rate": "Execution error rate",
    "exception_rate": "Exception rate",
    "cost_per_item": "Cost per item",
    "monthly_run_rate": "Projected monthly cost at target volume",
    "roi": "ROI at target volume",
    "owners_named": "Owners named (number missing)",
    "rollback_drill": "Last rollback drill passed (days ago)",
    "audit_chain": "Audit chain verified (1 = yes)",
}


@dataclass(frozen=True)
class Criterion:
    """One criterion of the gate, as measured."""

    name: str
    value: float | int | bool | None
    threshold: float | int | bool
    comparator: str  # ">=", "<=" or "=="
    verdict: Verdict
    hard: bool
    detail: str = ""

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "value": self.value,
            "threshold": self.threshold,
            "comparator": self.comparator,
            "verdict": self.verdict.value,
            "hard": self.hard,
            "detail": self.detail,
        }


def judge(value: float | int | None, threshold: float | int, comparator: str) -> Verdict:
    """Inclusive comparison; None is ``no_data``."""
    if value is None:
        return Verdict.NO_DATA
    met = value >= threshold if comparator == ">=" else value <= threshold
    return Verdict.PASS if met else Verdict.FAIL


def decide(criteria: list[Criterion]) -> Decision:
    """NO-GO on a failed hard criterion; REVISE on any other shortfall; else GO."""
    if any(c.verdict is Verdict.FAIL and c.hard for c in criteria):
        return Decision.NO_GO
    if any(c.verdict is not Verdict.PASS for c in criteria):
        return Decision.REVISE
    return Decision.GO


@dataclass
class Evidence:
    """What the criteria are computed from (prepared by :func:`gather`, or by tests)."""

    quality: QualityReport
    cost: CostReport
    missing_owners: list[str]
    drill_passed: bool | None
    drill_finished_at: datetime | None
    drill_summary: str
    audit_ok: bool
    audit_events: int
    audit_detail: str = ""


def evaluate(settings: Settings, evidence: Evidence, *, now: datetime) -> list[Criterion]:
    """Every criterion of the gate, in report order."""
    gate = settings.gate
    hard = set(gate.hard)
    quality, cost = evidence.quality, evidence.cost
    overall = quality.overall()
    made: dict[str, Criterion] = {}

    def add(
        name: str,
        value: float | int | None,
        threshold: float | int,
        comparator: str,
        detail: str,
        verdict: Verdict | None = None,
    ) -> None:
        made[name] = Criterion(
            name=name,
            value=None if value is None else round(value, 6),
            threshold=threshold,
            comparator=comparator,
            verdict=verdict or judge(value, threshold, comparator),
            hard=name in hard,
            detail=detail,
        )

    triage = quality.triage
    add(
        "volume",
        quality.handled_items,
        gate.min_volume,
        ">=",
        f"{triage.results} messages triaged, {quality.execution.proposed} actions proposed",
    )
    add(
        "triage_accuracy",
        triage.accuracy,
        gate.min_triage_accuracy,
        ">=",
        f"{triage.corrected} of {triage.decided} triage decisions corrected by people",
    )
    add(
        "action_acceptance",
        overall.accepted_rate,
        gate.min_action_acceptance,
        ">=",
        f"{overall.counts['approved_unedited']} approved as proposed, "
        f"{overall.counts['approved_edited']} edited, {overall.counts['rejected']} rejected, "
        f"{overall.counts['expired']} expired, {overall.counts['cancelled']} cancelled "
        f"of {overall.reviewed} reviewed",
    )
    execution = quality.execution
    add(
        "error_rate",
        execution.error_rate,
        gate.max_error_rate,
        "<=",
        f"{execution.failed} of {execution.executed} executed actions failed",
    )
    add(
        "exception_rate",
        execution.exception_rate,
        gate.max_exception_rate,
        "<=",
        f"{execution.exceptions} exceptions for {execution.proposed} proposed actions",
    )
    add(
        "cost_per_item",
        cost.cost_per_item,
        gate.max_cost_per_item,
        "<=",
        f"total {cost.total_cost:.2f} USD (LLM {cost.llm_cost:.2f}, fixed "
        f"{cost.fixed_cost:.2f}) for {cost.items} items",
    )
    add(
        "monthly_run_rate",
        cost.projected_monthly_cost,
        gate.max_monthly_run_rate,
        "<=",
        f"at {cost.target_monthly_items} items a month; current run-rate "
        f"{cost.monthly_run_rate:.2f} USD a month",
    )
    add(
        "roi",
        cost.projected_roi,
        gate.min_roi,
        ">=",
        "no cost recorded or configured"
        if cost.projected_roi is None
        else f"value of time saved {cost.value_saved(cost.target_monthly_items):.2f} USD a month "
        f"against {cost.projected_monthly_cost or 0:.2f} USD",
    )
    missing = evidence.missing_owners
    add(
        "owners_named",
        len(missing),
        0,
        "<=",
        "every owner named"
        if not missing
        else "missing: "
        + ", ".join(missing[:10])
        + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""),
    )
    drill_verdict, drill_detail = _drill(evidence, gate.drill_max_age_days, now)
    age = (
        None
        if evidence.drill_finished_at is None
        else (now - evidence.drill_finished_at).total_seconds() / 86400
    )
    add("rollback_drill", age, gate.drill_max_age_days, "<=", drill_detail, verdict=drill_verdict)
    add(
        "audit_chain",
        1 if evidence.audit_ok else 0,
        1,
        ">=",
        evidence.audit_detail or f"{evidence.audit_events} events verified",
    )
    return [made[name] for name in GATE_CRITERIA]


def _drill(evidence: Evidence, max_age_days: int, now: datetime) -> tuple[Verdict, str]:
    if evidence.drill_finished_at is None or evidence.drill_passed is None:
        return Verdict.FAIL, "no rollback drill recorded"
    when = evidence.drill_finished_at.isoformat(timespec="seconds")
    if not evidence.drill_passed:
        return Verdict.FAIL, f"the last drill ({when}) failed: {evidence.drill_summary}"
    if now - evidence.drill_finished_at > timedelta(days=max_age_days):
        return Verdict.FAIL, f"the last drill passed on {when}, more than {max_age_days} days ago"
    return Verdict.PASS, f"passed on {when}: {evidence.drill_summary}"


@dataclass
class GateReport:
    """The decision, its criteria, and the figures behind them."""

    tenant_id: str
    period: Period
    generated_at: datetime
    decision: Decision
    criteria: list[Criterion]
    quality: QualityReport
    cost: CostReport
    series: list[SeriesPoint] = field(default_factory=list)
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    spot_checks: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "decision": self.decision.value,
            "generated_at": self.generated_at.isoformat(),
            "period": {
                "label": self.period.label,
                "start": self.period.start.isoformat(),
                "end": self.period.end.isoformat(),
            },
            "criteria": [c.to_dict() for c in self.criteria],
            "quality": self.quality.to_dict(),
            "cost": self.cost.to_dict(),
            "series": [p.to_dict() for p in self.series],
            "open_alerts": self.open_alerts,
            "spot_checks": self.spot_checks,
            "rule": "NO-GO if a hard criterion fails; REVISE if a soft one fails or any "
            "has no data; GO if all pass",
        }


async def gather(
    session: AsyncSession, settings: Settings, tenant_id: str, period: Period
) -> Evidence:
    """Measure everything the gate needs from the database (and the audit chain)."""
    from governance.anchor import AnchorError, anchor_from_settings
    from governance.audit_verify import verify_tenant
    from governance.checkpoints import load_public_key
    from governance.drill import last_drill
    from governance.owners import missing_owners

    # The anchor first: a checkpoint anchored after the session's snapshot began would read
    # as a chain behind its anchor.
    anchor = anchor_from_settings(settings)
    unreadable = None
    try:
        anchored = await anchor.snapshot() if anchor is not None else None
    except AnchorError as exc:
        anchored, unreadable = None, str(exc)
    quality = await measure(session, tenant_id, period)
    cost = await measure_cost(session, settings.costs, tenant_id, period, quality.handled_items)
    missing = list(await missing_owners(session, settings, tenant_id))
    drill = await last_drill(session, tenant_id)
    key = load_public_key(settings.audit_key_file)
    verified = await verify_tenant(
        session,
        tenant_id,
        public_keys=[key] if key else [],
        anchor=anchored,
        checkpoint_every_events=settings.audit.checkpoint_every_events,
    )
    first = verified.first_problem
    return Evidence(
        quality=quality,
        cost=cost,
        missing_owners=missing,
        drill_passed=None if drill is None else drill.passed,
        drill_finished_at=None if drill is None else drill.finished_at,
        drill_summary="" if drill is None else drill.summary,
        audit_ok=verified.ok and unreadable is None,
        audit_events=verified.events,
        audit_detail=(
            f"the anchor could not be read: {unreadable}"
            if unreadable
            else ("" if first is None else f"first bad seq {first.seq}: {first.kind.value}")
        ),
    )


async def gate_report(
    session: AsyncSession, settings: Settings, actor: Principal, period: Period, *, now: datetime
) -> GateReport:
    """Evaluate the gate for ``actor``'s tenant over ``period`` and audit the answer."""
    tenant_id = actor.tenant_id
    evidence = await gather(session, settings, tenant_id, period)
    criteria = evaluate(settings, evidence, now=now)
    decision = decide(criteria)
    alerts = await list_alerts(session, tenant_id, status="open")
    report = GateReport(
        tenant_id=tenant_id,
        period=period,
        generated_at=now,
        decision=decision,
        criteria=criteria,
        quality=evidence.quality,
        cost=evidence.cost,
        series=await series(session, tenant_id, period),
        open_alerts=[
            {
                "metric": a.metric,
                "kind": a.kind,
                "value": a.value,
                "threshold": a.threshold,
                "raised_at": a.raised_at.isoformat(),
            }
            for a in alerts
        ],
        spot_checks=await spot_check_summary(session, tenant_id),
    )
    await audit.record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.GATE_REPORTED,
            resource_type="gate",
            resource_id=period.label,
            payload={
                "decision": decision.value,
                "period": period.label,
                "failed": [c.name for c in criteria if c.verdict is Verdict.FAIL],
                "no_data": [c.name for c in criteria if c.verdict is Verdict.NO_DATA],
            },
        ),
    )
    return report
