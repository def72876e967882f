"""The decision gate and quality monitoring, for admins and auditors.

Reading (report, quality, cost, alerts, spot checks) is read-only oversight; sampling,
evaluating alerts and recording spot-check verdicts are an admin's.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.api.deps import ServicesDep, SessionDep, SettingsDep, require
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.limits import OffsetQuery
from assistant.core.principal import Principal
from assistant.quality import monitor
from assistant.quality.cost import measure_cost
from assistant.quality.gate import gate_report
from assistant.quality.metrics import measure
from assistant.quality.models import QualityAlertRow, SpotCheckRow
from assistant.quality.period import parse_period
from assistant.quality.render import to_html, to_markdown

router = APIRouter(tags=["gate"])

GateReader = Annotated[Principal, require(Permission.GATE_READ)]
QualityReader = Annotated[Principal, require(Permission.QUALITY_READ)]
QualityManager = Annotated[Principal, require(Permission.QUALITY_MANAGE)]
PeriodQuery = Annotated[
    str,
    Query(description="Back from now: hours (h), days (d) or weeks (w), e.g. 30d.", max_length=8),
]


class ReportFormat(StrEnum):
    JSON = "json"
    MD = "md"
    HTML = "html"


class SpotCheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    action_id: str
    kind: str
    sample_bucket: float
    status: str
    verdict: str | None
    note: str | None
    checked_by: str | None
    sampled_at: datetime
    checked_at: datetime | None

    @classmethod
    def of(cls, row: SpotCheckRow) -> "SpotCheckOut":
        return cls.model_validate(row)


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    metric: str
    kind: str
    value: float
    threshold: float
    samples: int
    window_days: int
    status: str
    routed_to: str | None
    raised_at: datetime
    resolved_at: datetime | None

    @classmethod
    def of(cls, row: QualityAlertRow) -> "AlertOut":
        return cls.model_validate(row)


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: monitor.SpotVerdict
    note: str | None = Field(default=None, max_length=1000)


class EvaluateOut(BaseModel):
    sampled: list[SpotCheckOut]
    raised: list[AlertOut]
    resolved: list[AlertOut]


@router.get(
    "/api/v1/gate/report",
    response_model=None,
    responses={
        200: {
            "description": "The report: JSON, Markdown or one HTML page (by `format`).",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    },
)
async def report(
    principal: GateReader,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery = "30d",
    format: ReportFormat = ReportFormat.JSON,
) -> Any:
    """GO, NO-GO or REVISE with every criterion's value, threshold and verdict (audited)."""
    now = utcnow()
    result = await gate_report(session, settings, principal, parse_period(period, now), now=now)
    if format is ReportFormat.MD:
        return PlainTextResponse(to_markdown(result), media_type="text/markdown")
    if format is ReportFormat.HTML:
        # The page carries no script; forbid any anyway.
        return HTMLResponse(
            to_html(result),
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )
    body: dict[str, Any] = result.to_dict()
    return body


@router.get("/api/v1/quality/summary")
async def quality_summary(
    principal: QualityReader, session: SessionDep, period: PeriodQuery = "30d"
) -> dict[str, Any]:
    """Acceptance, edit and rejection rates per kind, edit distance, rejection reasons,
    triage corrections per category, execution errors."""
    result = await measure(session, principal.tenant_id, parse_period(period, utcnow()))
    return result.to_dict()


@router.get("/api/v1/quality/costs")
async def quality_costs(
    principal: QualityReader,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery = "30d",
) -> dict[str, Any]:
    """Total cost, cost per item, run-rate, projection, time saved and ROI."""
    window = parse_period(period, utcnow())
    quality = await measure(session, principal.tenant_id, window)
    cost = await measure_cost(
        session, settings.costs, principal.tenant_id, window, quality.handled_items
    )
    return cost.to_dict()


@router.get("/api/v1/quality/alerts", response_model=list[AlertOut])
async def alerts(
    principal: QualityReader,
    session: SessionDep,
    status: Annotated[str | None, Query(pattern="^(open|resolved)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    """Drift alerts, newest first."""
    rows = await monitor.list_alerts(session, principal.tenant_id, status=status, limit=limit)
    return [AlertOut.of(r) for r in rows]


@router.get("/api/v1/quality/spot-checks", response_model=list[SpotCheckOut])
async def spot_checks(
    principal: QualityReader,
    session: SessionDep,
    status: Annotated[str | None, Query(pattern="^(open|checked)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: OffsetQuery = 0,
) -> list[SpotCheckOut]:
    """The spot-check queue of sampled auto-approved actions, oldest first."""
    rows = await monitor.list_spot_checks(
        session, principal.tenant_id, status=status, limit=limit, offset=offset
    )
    return [SpotCheckOut.of(r) for r in rows]


@router.post("/api/v1/quality/spot-checks/{check_id}/verdict", response_model=SpotCheckOut)
async def spot_check_verdict(
    check_id: str, body: VerdictIn, principal: QualityManager, session: SessionDep
) -> SpotCheckOut:
    """Record a person's verdict on a sampled action (once; audited)."""
    row = await monitor.record_verdict(
        session, principal, check_id, body.verdict, body.note, now=utcnow()
    )
    return SpotCheckOut.of(row)


@router.post("/api/v1/quality/evaluate", response_model=EvaluateOut)
async def evaluate(
    principal: QualityManager,
    session: SessionDep,
    services: ServicesDep,
    period: PeriodQuery = "30d",
) -> EvaluateOut:
    """Sample the period's auto-approved actions into the spot-check queue, and raise or
    resolve drift alerts over the rolling window (audited); a raised alert is sent to its
    owner once the request's transaction commits."""
    from governance.owners import OwnerRouter

    settings = services.settings
    now = utcnow()
    sampled = await monitor.sample_spot_checks(
        session, settings.quality, principal, parse_period(period, now), now=now
    )
    owner = await monitor.alert_owner(session, settings, principal.tenant_id)
    changes = await monitor.evaluate_alerts(
        session, settings.quality, principal, now=now, owner=owner
    )
    router = OwnerRouter(services.sessions, settings, services.connectors)
    for change in changes:
        if change.change == "raised":
            router.notify_after_commit(session, monitor.alert_notice(change.alert, settings))
    return EvaluateOut(
        sampled=[SpotCheckOut.of(r) for r in sampled],
        raised=[AlertOut.of(c.alert) for c in changes if c.change == "raised"],
        resolved=[AlertOut.of(c.alert) for c in changes if c.change == "resolved"],
    )
