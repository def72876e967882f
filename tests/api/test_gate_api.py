"""The gate report and quality monitoring over HTTP: who may read, who may act, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.ids import new_id
from assistant.core.principal import Role
from governance.audit_models import AuditEvent
from governance.models import Action

REPORT = "/api/v1/gate/report"


async def _auto_approved(sessions: async_sessionmaker[AsyncSession], count: int) -> None:
    now = utcnow() - timedelta(hours=1)
    async with sessions() as session, session.begin():
        for _ in range(count):
            session.add(
                Action(
                    id=new_id(),
                    tenant_id="default",
                    kind="email.move",
                    capability="email",
                    risk="reversible",
                    state="succeeded",
                    version=5,
                    arguments={},
                    actor_id="pipeline",
                    actor_type="system",
                    autonomy="auto",
                    decision="allow",
                    approvals_required=0,
                    approver_roles=[],
                    approved_at=now,
                    hold_seconds=0,
                    attempts=1,
                    external_ids={},
                    created_at=now,
                    updated_at=now,
                )
            )


async def test_auditor_and_admin_read_the_report_in_every_format(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    as_role(client, Role.AUDITOR, user_id="ava")
    response = await client.get(REPORT, params={"period": "7d", "format": "json"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] in {"GO", "NO-GO", "REVISE"}
    assert len(body["criteria"]) == 11
    for criterion in body["criteria"]:
        assert {"name", "value", "threshold", "verdict", "hard"} <= set(criterion)
    audit_chain = next(c for c in body["criteria"] if c["name"] == "audit_chain")
    assert audit_chain["verdict"] == "pass"
    markdown = await client.get(REPORT, params={"format": "md"})
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Decision gate: ")
    as_role(client, Role.ADMIN)
    page = await client.get(REPORT, params={"format": "html", "period": "12h"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<svg" in page.text and "<script" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    async with sessions() as session:
        reported = list(
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action == "gate.reported")
                    .order_by(AuditEvent.seq)
                )
            ).scalars()
        )
    assert [e.actor_id for e in reported] == ["ava", "ava", "admin-user"]


async def test_executive_and_delegate_may_not_read_the_gate(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for role in (Role.EXECUTIVE, Role.DELEGATE):
        as_role(client, role)
        for path in (
            REPORT,
            "/api/v1/quality/summary",
            "/api/v1/quality/costs",
            "/api/v1/quality/spot-checks",
        ):
            response = await client.get(path)
            assert response.status_code == 403, (role, path)
            assert response.json()["error"] == "PermissionDeniedError"
    async with sessions() as session:
        denied = list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
                )
            ).scalars()
        )
        reported = list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "gate.reported")
                )
            ).scalars()
        )
    assert len(denied) == 8 and reported == []  # refused, audited, and no report made


async def test_bad_period_and_format_are_refused(client: httpx.AsyncClient, as_role: Any) -> None:
    as_role(client, Role.AUDITOR)
    bad = await client.get(REPORT, params={"period": "forever"})
    assert bad.status_code == 422
    assert bad.json()["error"] == "ValidationFailedError" and "period" in bad.json()["detail"]
    unknown = await client.get(REPORT, params={"format": "pdf"})
    assert unknown.status_code == 422 and "error" in unknown.json()
    summary = await client.get("/api/v1/quality/summary", params={"period": "0d"})
    assert summary.status_code == 422


async def test_admin_samples_spot_checks_and_records_a_verdict(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _auto_approved(sessions, 60)
    as_role(client, Role.AUDITOR)
    refused = await client.post("/api/v1/quality/evaluate")
    assert refused.status_code == 403  # auditors read, they do not act
    as_role(client, Role.ADMIN, user_id="root")
    evaluated = await client.post("/api/v1/quality/evaluate", params={"period": "1d"})
    assert evaluated.status_code == 200, evaluated.text
    sampled = evaluated.json()["sampled"]
    assert 1 <= len(sampled) <= 15  # ~10% of 60
    queue = (await client.get("/api/v1/quality/spot-checks", params={"status": "open"})).json()
    assert {c["id"] for c in queue} == {c["id"] for c in sampled}
    check_id = sampled[0]["id"]
    url = f"/api/v1/quality/spot-checks/{check_id}/verdict"
    malformed = await client.post(url, json={"verdict": "meh"})
    assert malformed.status_code == 422
    done = await client.post(url, json={"verdict": "ok", "note": "fine"})
    assert done.status_code == 200 and done.json()["checked_by"] == "root"
    twice = await client.post(url, json={"verdict": "wrong"})
    assert twice.status_code == 409 and twice.json()["error"] == "ConflictError"
    missing = await client.post("/api/v1/quality/spot-checks/nope/verdict", json={"verdict": "ok"})
    assert missing.status_code == 404
    as_role(client, Role.AUDITOR)
    summary = (await client.get("/api/v1/quality/summary", params={"period": "1d"})).json()
    moves = next(k for k in summary["by_kind"] if k["kind"] == "email.move")
    assert moves["counts"]["auto_approved"] == 60
    costs = await client.get("/api/v1/quality/costs", params={"period": "1d"})
    assert costs.status_code == 200 and costs.json()["items"] == 60
    assert (await client.get("/api/v1/quality/alerts")).json() == []
    gate = (await client.get(REPORT, params={"period": "1d"})).json()
    assert gate["spot_checks"] == {"open": len(sampled) - 1, "checked": 1, "wrong": 0}
    async with sessions() as session:
        actions = set(
            (
                await session.execute(
                    select(AuditEvent.action).where(AuditEvent.action.like("quality.%"))
                )
            ).scalars()
        )
    assert actions == {"quality.spot_check.sampled", "quality.spot_check.recorded"}
