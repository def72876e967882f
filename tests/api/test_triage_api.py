"""Triage corrections: POST /api/v1/triage/{message_id}/correction, GET .../corrections."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.auth.permissions import Permission
from assistant.core.principal import Role
from assistant.triage import Category, Priority, Provenance, TriageResult
from assistant.triage.store import TriageResultRow, save_result
from governance.audit_models import AuditEvent

MAILBOX = "dana.whitfield@northwind.example"  # the sandbox mailbox: it serves her


async def _store(
    sessions: async_sessionmaker[AsyncSession],
    message_id: str,
    *,
    tenant: str = "default",
    stage: str = "model",
    category: Category | None = Category.NOTIFY,
) -> None:
    result = TriageResult(
        message_id=message_id,
        category=category,
        priority=Priority.NORMAL,
        summary="Pat: numbers",
        reason="model said so",
        provenance=Provenance(
            stage=stage,
            model="m" if stage == "model" else None,  # type: ignore[arg-type]
            prompt_version="triage@1" if stage == "model" else None,
            rule_id="undecided" if stage == "rule" else None,
        ),
        confidence=0.7 if category else 0.0,
        needs_human=category is None,
    )
    async with sessions() as session, session.begin():
        await save_result(
            session, tenant_id=tenant, mailbox=MAILBOX, result=result, sender="pat@partner.example"
        )


def _url(message_id: str) -> str:
    return f"/api/v1/triage/{message_id}/correction"


async def test_executive_corrects_a_model_triage(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], as_role: Any
) -> None:
    await _store(sessions, "INBOX/7/42")  # IMAP-style ids carry slashes
    as_role(client, Role.EXECUTIVE, user_id=MAILBOX)
    response = await client.post(
        _url("INBOX/7/42"),
        json={"category": "respond", "priority": "high", "note": "she expects an answer"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["original_category"], body["original_stage"]) == ("notify", "model")
    assert (body["original_model"], body["original_prompt_version"]) == ("m", "triage@1")
    assert (body["category"], body["priority"], body["corrected_by"]) == (
        "respond",
        "high",
        MAILBOX,
    )
    assert body["review_status"] == "pending"
    async with sessions() as session:
        row = (await session.execute(select(TriageResultRow))).scalar_one()
        assert (row.category, row.priority, row.stage) == ("respond", "high", "human")
        assert row.to_result().provenance.stage == "human"
        event = (
            await session.execute(select(AuditEvent).where(AuditEvent.action == "triage.corrected"))
        ).scalar_one()
        assert event.actor_id == MAILBOX and event.payload["to"]["category"] == "respond"
        assert "she expects" not in event.payload_json  # the note stays out of the audit

    listed = await client.get("/api/v1/triage/corrections")
    assert listed.status_code == 200
    data = listed.json()
    assert [c["message_id"] for c in data["items"]] == ["INBOX/7/42"]
    metrics = data["metrics"]
    assert metrics["corrections"] == 1 and metrics["corrections_by_stage"] == {"model": 1}
    assert metrics["correction_rate_by_stage"] == {"model": 1.0}
    assert metrics["changes"] == {"notify->respond": 1}
    assert (await client.get("/api/v1/triage/corrections", params={"status": "dismissed"})).json()[
        "items"
    ] == []


async def test_delegate_acting_for_the_executive(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], as_role: Any
) -> None:
    await _store(sessions, "m-1", stage="rule", category=None)
    as_role(
        client,
        Role.DELEGATE,
        user_id="assistant-sam",
        on_behalf_of=MAILBOX,
        delegated_scopes=frozenset({Permission.TRIAGE_READ, Permission.TRIAGE_CORRECT}),
    )
    response = await client.post(_url("m-1"), json={"category": "schedule"})
    assert response.status_code == 201, response.text
    assert response.json()["on_behalf_of"] == MAILBOX
    assert response.json()["original_category"] is None
    metrics = (await client.get("/api/v1/triage/corrections")).json()["metrics"]
    assert metrics["changes"] == {"undecided->schedule": 1}


async def test_authorization_and_tenant_scope(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], as_role: Any
) -> None:
    await _store(sessions, "m-2")
    await _store(sessions, "theirs", tenant="other")
    as_role(client, Role.AUDITOR)
    assert (await client.post(_url("m-2"), json={"category": "ignore"})).status_code == 403
    assert (await client.get("/api/v1/triage/corrections")).status_code == 403
    as_role(client, Role.DELEGATE)  # a delegate not acting for anyone
    assert (await client.post(_url("m-2"), json={"category": "ignore"})).status_code == 403
    as_role(
        client,
        Role.DELEGATE,
        on_behalf_of=MAILBOX,
        delegated_scopes=frozenset({Permission.TRIAGE_READ}),
    )
    assert (await client.post(_url("m-2"), json={"category": "ignore"})).status_code == 403
    as_role(client, Role.EXECUTIVE)
    missing = await client.post(_url("theirs"), json={"category": "ignore"})
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    bad = await client.post(_url("m-2"), json={"category": "later"})
    assert bad.status_code == 422
    extra = await client.post(_url("m-2"), json={"category": "ignore", "to": "x@evil.example"})
    assert extra.status_code == 422
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    anonymous = await client.post(_url("m-2"), json={"category": "ignore"})
    assert anonymous.status_code == 401
