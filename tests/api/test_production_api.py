"""Owners and autonomy over HTTP: who may read and change what, refusals answered and audited."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Role
from governance.audit_models import AuditEvent

OWNERS = "/api/v1/admin/owners"
AUTONOMY = "/api/v1/admin/autonomy"
DANA = "dana.whitfield@northwind.example"
MARCUS = "marcus.chen@northwind.example"


async def _audit(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEvent]:
    async with sessions() as session:
        return list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                )
            ).scalars()
        )


async def test_admins_name_owners_and_auditors_read_them(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    as_role(client, Role.AUDITOR)
    listed = (await client.get(OWNERS)).json()
    assert listed["missing"] == [
        "deployment",
        "exception queue",
        "connector sandbox-calendar",
        "connector sandbox-mail",
    ]
    policy = next(o for o in listed["owners"] if o["scope"] == "policy")
    assert policy["source"] == "policy file" and policy["owner"]["person"]
    refused = await client.put(
        OWNERS,
        json={"scope": "deployment", "person": "A", "role": "B", "contact": "a@northwind.example"},
    )
    assert refused.status_code == 403

    as_role(client, Role.ADMIN, user_id="ada")
    hook = "https://hooks.northwind.example/services/T0/very-secret-token"
    for body in (
        {
            "scope": "deployment",
            "person": "Dana Whitfield",
            "role": "COO",
            "contact": "dana@northwind.example",
        },
        {"scope": "exceptions", "person": "Ops desk", "role": "IT operations", "contact": hook},
        {
            "scope": "connector",
            "subject": "sandbox-mail",
            "person": "Mail team",
            "role": "messaging",
            "contact": "mail@northwind.example",
        },
    ):
        answer = await client.put(OWNERS, json=body)
        assert answer.status_code == 200, answer.text
    assert answer.json()["missing"] == ["connector sandbox-calendar"]
    shown = next(o for o in answer.json()["owners"] if o["scope"] == "exceptions")["owner"]
    assert shown["contact"] == "https://hooks.northwind.example/********"
    assert shown["channel"] == "webhook"
    events = await _audit(sessions, "owner.set")
    assert [e.actor_id for e in events] == ["ada"] * 3
    assert json.loads(events[1].payload_json)["contact"] == "https://hooks.northwind.example"
    assert all("very-secret-token" not in e.payload_json for e in events)


async def test_bad_owners_are_refused_with_the_reason_and_audited(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    as_role(client, Role.ADMIN)
    bad_scope = await client.put(
        OWNERS,
        json={"scope": "universe", "person": "A", "role": "B", "contact": "a@northwind.example"},
    )
    assert bad_scope.status_code == 422
    assert bad_scope.json()["error"] == "ValidationFailedError"
    assert "unknown owner scope" in bad_scope.json()["detail"]
    no_subject = await client.put(
        OWNERS,
        json={"scope": "connector", "person": "A", "role": "B", "contact": "a@northwind.example"},
    )
    assert no_subject.status_code == 422 and "names its instance" in no_subject.json()["detail"]
    bad_contact = await client.put(
        OWNERS, json={"scope": "deployment", "person": "A", "role": "B", "contact": "ring twice"}
    )
    assert bad_contact.status_code == 422 and bad_contact.json()["error"]
    refusals = await _audit(sessions, "owner.set")
    assert [e.outcome for e in refusals] == ["failure", "failure"]


async def test_promotion_needs_the_record_demotion_does_not(
    client: httpx.AsyncClient, as_role: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    as_role(client, Role.ADMIN, user_id="ada")
    promote = {
        "executive": DANA,
        "kind": "email.draft.create",
        "level": "auto",
        "reason": "she approves everything",
    }
    refused = await client.put(AUTONOMY, json=promote)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "PromotionRefusedError"
    assert "0 decision(s) in 90 days (need 50)" in body["detail"]
    assert body["record"]["decisions"] == 0
    [audited] = await _audit(sessions, "autonomy.promotion_refused")
    assert audited.outcome == "denied" and audited.reason == "she approves everything"

    demote = await client.put(
        AUTONOMY, json={**promote, "level": "shadow", "reason": "new in the role"}
    )
    assert demote.status_code == 200, demote.text
    assert (demote.json()["previous"], demote.json()["direction"]) == ("suggest", "demotion")
    everyone = await client.put(
        AUTONOMY,
        json={"executive": "*", "kind": "calendar.*", "level": "shadow", "reason": "pilot week"},
    )
    assert everyone.status_code == 200
    bad = await client.put(AUTONOMY, json={**promote, "level": "reckless"})
    assert bad.status_code == 422 and bad.json()["error"]
    no_reason = await client.put(AUTONOMY, json={**promote, "level": "shadow", "reason": ""})
    assert no_reason.status_code == 422

    # An executive reads their own levels (and those for everyone), not a colleague's.
    as_role(client, Role.EXECUTIVE, user_id=DANA)
    mine = (await client.get("/api/v1/autonomy")).json()
    assert sorted((g["executive"], g["kind"], g["level"]) for g in mine["grants"]) == [
        ("*", "calendar.*", "shadow"),
        (DANA, "email.draft.create", "shadow"),
    ]
    assert mine["bar"]["min_decisions"] == 50
    as_role(client, Role.EXECUTIVE, user_id=MARCUS)
    theirs = (await client.get("/api/v1/autonomy", params={"executive": DANA})).json()
    assert [g["executive"] for g in theirs["grants"]] == ["*"]
    assert (await client.put(AUTONOMY, json=promote)).status_code == 403
    as_role(client, Role.AUDITOR)
    audited_view = (await client.get("/api/v1/autonomy", params={"executive": DANA})).json()
    assert len(audited_view["grants"]) == 2


async def test_a_level_for_a_user_name_is_stored_under_her_id_and_nobody_is_refused(
    client: httpx.AsyncClient, services: Any, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Grants are looked up by the proposal's executive (her user id). A level PUT for
    "erin" was stored under the word "erin" and answered 200 while no proposal of hers
    ever matched it; now it lands under her id, and a name that is nobody's is a 422
    that stores nothing."""
    from governance import autonomy
    from governance.policy import Autonomy
    from tests.fixtures.auth import create_user_with_token

    erin_id, _ = await create_user_with_token(services, "erin", Role.EXECUTIVE)
    _, ada = await create_user_with_token(services, "ada", Role.ADMIN)
    lower = {"kind": "email.send", "level": "shadow", "reason": "watch first"}
    by_name = await client.put(AUTONOMY, headers=ada, json=lower | {"executive": "erin"})
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["executive"] == erin_id
    nobody = await client.put(AUTONOMY, headers=ada, json=lower | {"executive": "nobody-x"})
    assert nobody.status_code == 422, nobody.text
    assert nobody.json()["error"] == "ValidationFailedError" and nobody.json()["detail"]
    async with sessions() as session:
        assert await autonomy.stored_level(session, "default", erin_id, "email.send") == (
            Autonomy.SHADOW
        )
        assert {g.executive for g in await autonomy.grants(session, "default")} == {erin_id}
