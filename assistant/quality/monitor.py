"""Ongoing monitoring: the spot-check queue of auto-approved actions, and drift alerts.

Sampling is deterministic: an action's bucket is a hash of its tenant and id mapped to
[0, 1), and it is sampled when the bucket is below the configured share. The same records
and share always give the same sample, and raising the share only adds actions.

An alert is raised when a rate measured over the rolling window is strictly above its
threshold with at least ``min_samples`` decisions behind it; it stays open (one per metric
and kind) until an evaluation finds the rate back at or below the threshold.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.errors import ConflictError, NotFoundError
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from assistant.core.settings import QualitySettings, Settings
from assistant.quality.metrics import QualityReport, action_facts, measure
from assistant.quality.models import QualityAlertRow, SpotCheckRow
from assistant.quality.period import Period
from governance import audit
from governance.audit import AuditAction, AuditEventIn
from governance.owners import OwnerNotice

log = structlog.stdlib.get_logger(__name__)


class SpotVerdict(StrEnum):
    OK = "ok"
    WRONG = "wrong"


def sample_bucket(tenant_id: str, action_id: str) -> float:
    """Where an action falls in [0, 1): the first 64 bits of a SHA-256."""
    digest = hashlib.sha256(f"{tenant_id}:{action_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


async def sample_spot_checks(
    session: AsyncSession,
    settings: QualitySettings,
    actor: Principal,
    period: Period,
    *,
    now: datetime,
) -> list[SpotCheckRow]:
    """Queue the period's auto-approved actions that fall in the sample; returns the new
    rows (those sampled before are kept, not duplicated). Flushes; audits each."""
    tenant_id = actor.tenant_id
    facts = [
        f for f in await action_facts(session, tenant_id, period) if f.outcome == "auto_approved"
    ]
    already = set(
        (
            await session.execute(
                select(SpotCheckRow.action_id).where(SpotCheckRow.tenant_id == tenant_id)
            )
        ).scalars()
    )
    added: list[SpotCheckRow] = []
    for fact in sorted(facts, key=lambda f: f.id):
        bucket = sample_bucket(tenant_id, fact.id)
        if fact.id in already or bucket >= settings.spot_check_share:
            continue
        row = SpotCheckRow(
            id=new_id(),
            tenant_id=tenant_id,
            action_id=fact.id,
            kind=fact.kind,
            sample_bucket=bucket,
            status="open",
            sampled_at=now,
        )
        session.add(row)
        added.append(row)
    await session.flush()
    for row in added:
        await audit.record(
            session,
            actor,
            AuditEventIn(
                action=AuditAction.QUALITY_SPOT_CHECK_SAMPLED,
                resource_type="spot_check",
                resource_id=row.id,
                action_id=row.action_id,
                payload={
                    "kind": row.kind,
                    "share": settings.spot_check_share,
                    "bucket": round(row.sample_bucket, 6),
                },
            ),
        )
    if added:
        log.info("quality.spot_checks.sampled", tenant=tenant_id, count=len(added))
    return added


async def list_spot_checks(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[SpotCheckRow]:
    query = select(SpotCheckRow).where(SpotCheckRow.tenant_id == tenant_id)
    if status is not None:
        query = query.where(SpotCheckRow.status == status)
    query = query.order_by(SpotCheckRow.sampled_at, SpotCheckRow.id).limit(limit).offset(offset)
    return list((await session.execute(query)).scalars())


async def record_verdict(
    session: AsyncSession,
    actor: Principal,
    check_id: str,
    verdict: SpotVerdict,
    note: str | None,
    *,
    now: datetime,
) -> SpotCheckRow:
    """A person's verdict on a sampled action (once); audited."""
    row = await session.get(SpotCheckRow, check_id)
    if row is None or row.tenant_id != actor.tenant_id:
        raise NotFoundError(f"no spot check {check_id}")
    if row.status != "open":
        raise ConflictError(f"spot check {check_id} already has a verdict", verdict=row.verdict)
    row.status, row.verdict, row.note = "checked", verdict.value, note
    row.checked_by, row.checked_at = actor.user_id, now
    await session.flush()
    await audit.record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.QUALITY_SPOT_CHECK_RECORDED,
            resource_type="spot_check",
            resource_id=row.id,
            action_id=row.action_id,
            reason=note,
            payload={"kind": row.kind, "verdict": verdict.value},
        ),
    )
    return row


async def spot_check_summary(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    """How many sampled actions wait for a person, were checked, and were found wrong."""
    rows = (
        await session.execute(
            select(SpotCheckRow.status, SpotCheckRow.verdict, func.count())
            .where(SpotCheckRow.tenant_id == tenant_id)
            .group_by(SpotCheckRow.status, SpotCheckRow.verdict)
        )
    ).all()
    summary = {"open": 0, "checked": 0, "wrong": 0}
    for status, verdict, count in rows:
        summary["open" if status == "open" else "checked"] += int(count)
        summary["wrong"] += int(count) if verdict == SpotVerdict.WRONG.value else 0
    return summary


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True)
class Reading:
    """One rate measured over the window, against its threshold."""

    metric: str
    kind: str
    value: float | None
    samples: int
    threshold: float

    @property
    def judged(self) -> bool:
        return self.value is not None

    @property
    def breached(self) -> bool:
        return self.value is not None and self.value > self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "value": self.value,
            "samples": self.samples,
            "threshold": self.threshold,
            "breached": self.breached,
        }


def readings(report: QualityReport, settings: QualitySettings) -> list[Reading]:
    """Every monitored rate of ``report``; too few samples read as no value."""

    def gated(value: float | None, samples: int) -> float | None:
        return value if samples >= settings.min_samples else None

    found: list[Reading] = []
    for kind in sorted(report.kinds):
        quality = report.kinds[kind]
        found.append(
            Reading(
                "rejection_rate",
                kind,
                gated(quality.rate("rejected"), quality.reviewed),
                quality.reviewed,
                settings.max_rejection_rate,
            )
        )
        found.append(
            Reading(
                "edit_rate",
                kind,
                gated(quality.rate("approved_edited"), quality.reviewed),
                quality.reviewed,
                settings.max_edit_rate,
            )
        )
    triage = report.triage
    found.append(
        Reading(
            "triage_correction_rate",
            "",
            gated(1 - triage.accuracy if triage.accuracy is not None else None, triage.decided),
            triage.decided,
            settings.max_triage_correction_rate,
        )
    )
    execution = report.execution
    found.append(
        Reading(
            "error_rate",
            "",
            gated(execution.error_rate, execution.executed),
            execution.executed,
            settings.max_error_rate,
        )
    )
    return found


@dataclass(frozen=True)
class AlertChange:
    change: str  # raised | resolved
    alert: QualityAlertRow


async def alert_owner(session: AsyncSession, settings: Settings, tenant_id: str) -> str | None:
    """Who quality alerts go to: the exception queue's owner, else the deployment's."""
    from governance.owners import owner_entries

    entries = {(e.scope, e.subject): e for e in await owner_entries(session, settings, tenant_id)}
    for key in (("exceptions", ""), ("deployment", "")):
        entry = entries.get(key)
        if entry is not None and entry.owner is not None:
            return entry.owner.person
    return None


def _alert_facts(alert: QualityAlertRow) -> dict[str, Any]:
    return {
        "metric": alert.metric,
        "kind": alert.kind,
        "value": alert.value,
        "threshold": alert.threshold,
        "samples": alert.samples,
        "window_days": alert.window_days,
    }


def alert_notice(alert: QualityAlertRow, settings: Settings) -> OwnerNotice:
    """What the owner is told when ``alert`` is raised (email or webhook, audited)."""
    what = alert.metric.replace("_", " ")
    subject = f"[assistant] quality alert: {what} for {alert.kind} ({alert.value:.3f})"
    link = f"{settings.server.public_url.rstrip('/')}/api/v1/quality/alerts"
    body = (
        f"A quality rate drifted past its threshold over the last {alert.window_days} days.\n\n"
        f"tenant: {alert.tenant_id}\nmetric: {alert.metric}\nkind: {alert.kind}\n"
        f"value: {alert.value:.3f} (threshold {alert.threshold:.3f}, "
        f"{alert.samples} samples)\n\n{link}\n"
    )
    facts = {"alert_id": alert.id, **_alert_facts(alert)}
    return OwnerNotice(
        tenant_id=alert.tenant_id,
        key=f"quality-alert-{alert.id}",
        subject=subject,
        body=body,
        document={"event": "quality.alert.raised", "tenant": alert.tenant_id, **facts},
        resource_type="quality_alert",
        resource_id=alert.id,
        audit=facts,
    )


async def evaluate_alerts(
    session: AsyncSession,
    settings: QualitySettings,
    actor: Principal,
    *,
    now: datetime,
    owner: str | None = None,
) -> list[AlertChange]:
    """Measure the rolling window; raise alerts for rates past their threshold and resolve
    those back within it. A raised alert names ``owner`` (see :func:`alert_owner`) as the
    person it is routed to. Flushes; audits each change."""
    tenant_id = actor.tenant_id
    window = Period(
        start=now - timedelta(days=settings.window_days), end=now, label=f"{settings.window_days}d"
    )
    report = await measure(session, tenant_id, window)
    open_alerts = {
        (a.metric, a.kind): a
        for a in (
            await session.execute(
                select(QualityAlertRow).where(
                    QualityAlertRow.tenant_id == tenant_id, QualityAlertRow.status == "open"
                )
            )
        ).scalars()
    }
    changes: list[AlertChange] = []
    for reading in readings(report, settings):
        existing = open_alerts.get((reading.metric, reading.kind))
        if reading.breached and existing is None and reading.value is not None:
            alert = QualityAlertRow(
                id=new_id(),
                tenant_id=tenant_id,
                metric=reading.metric,
                kind=reading.kind,
                value=reading.value,
                threshold=reading.threshold,
                samples=reading.samples,
                window_days=settings.window_days,
                status="open",
                raised_at=now,
                routed_to=owner,
            )
            session.add(alert)
            changes.append(AlertChange("raised", alert))
        elif existing is not None and reading.judged and not reading.breached:
            existing.status, existing.resolved_at = "resolved", now
            changes.append(AlertChange("resolved", existing))
    await session.flush()
    for change in changes:
        alert = change.alert
        raised = change.change == "raised"
        await audit.record(
            session,
            actor,
            AuditEventIn(
                action=AuditAction.QUALITY_ALERT_RAISED
                if raised
                else AuditAction.QUALITY_ALERT_RESOLVED,
                resource_type="quality_alert",
                resource_id=alert.id,
                payload={
                    **_alert_facts(alert),
                    "routed_to": alert.routed_to,
                },
            ),
        )
        log.warning(
            "quality.alert." + change.change,
            tenant=tenant_id,
            metric=alert.metric,
            kind=alert.kind,
            value=alert.value,
            threshold=alert.threshold,
        )
    return changes


async def list_alerts(
    session: AsyncSession, tenant_id: str, *, status: str | None = None, limit: int = 100
) -> list[QualityAlertRow]:
    query = select(QualityAlertRow).where(QualityAlertRow.tenant_id == tenant_id)
    if status is not None:
        query = query.where(QualityAlertRow.status == status)
    return list(
        (
            await session.execute(
                query.order_by(QualityAlertRow.raised_at.desc(), QualityAlertRow.id).limit(limit)
            )
        ).scalars()
    )
