"""The auditor's API: filters, keyset pagination, tenant isolation, roles, verification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from assistant.core.principal import Principal, Role
from governance.audit import AuditAction, AuditEventIn, Outcome, record

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def seeded_audit(services: Any) -> None:
    """acme: 12 events of three actors; globex: 4 events with the same correlation id."""
    alice = Principal(user_id="alice", tenant_id="acme", roles=frozenset({Role.DELEGATE}))
    bob = Principal(user_id="bob", tenant_id="acme", roles=frozenset({Role.EXECUTIVE}))
    system = Principal(user_id="executor", tenant_id="acme")
    mallory = Principal(user_id="mallory", tenant_id="globex")
    async with services.sessions() as session:
        for i in range(12):
            actor = (alice, bob, system)[i % 3]
            await record(
                session,
                actor,
                AuditEventIn(
                    action=(
                        AuditAction.ACTION_PROPOSED,
                        AuditAction.ACTION_APPROVED,
                        AuditAction.ACTION_FAILED,
                    )[i % 3],
                    outcome=Outcome.FAILURE if i % 3 == 2 else Outcome.SUCCESS,
                    resource_type="action",
                    resource_id=f"act-{i // 3}",
                    correlation_id=f"corr-{i // 6}",
                    occurred_at=T0 + timedelta(hours=i),
                    payload={"i": i, "password": "hunter2"},
                ),
            )
        for _ in range(4):
            await record(
                session,
                mallory,
                AuditEventIn(
                    action=AuditAction.ACTION_PROPOSED,
                    correlation_id="corr-0",
                    resource_type="action",
                    resource_id="act-0",
                    occurred_at=T0,
                ),
            )
        await session.commit()


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await client.get(path, params=params)


async def test_auditor_lists_own_tenant_events_in_order(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
) -> None:
    as_role(client, Role.AUDITOR, tenant="acme")
    response = await _get(client, "/api/v1/audit/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["seq"] for e in body["items"]] == list(range(1, 13))
    assert body["next_cursor"] is None
    assert {e["tenant_id"] for e in body["items"]} == {"acme"}
    first = body["items"][0]
    assert first["payload"] == {"i": 0, "password": "[REDACTED]"}
    assert first["roles"] == ["delegate"] and len(first["row_hash"]) == 64


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"actor": "bob"}, [2, 5, 8, 11]),
        ({"action": ["action.failed", "action.proposed"]}, [1, 3, 4, 6, 7, 9, 10, 12]),
        ({"resource_type": "action", "resource_id": "act-1"}, [4, 5, 6]),
        ({"outcome": "failure"}, [3, 6, 9, 12]),
        ({"correlation_id": "corr-1"}, [7, 8, 9, 10, 11, 12]),
        (
            {
                "since": (T0 + timedelta(hours=3)).isoformat(),
                "until": (T0 + timedelta(hours=6)).isoformat(),
            },
            [4, 5, 6],
        ),
        ({"since": "2026-11-02T18:00:00"}, [10, 11, 12]),  # no offset: UTC
        ({"actor": "bob", "outcome": "failure"}, []),
    ],
)
async def test_filters(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
    params: dict[str, Any],
    expected: list[int],
) -> None:
    as_role(client, Role.AUDITOR, tenant="acme")
    response = await _get(client, "/api/v1/audit/events", **params)
    assert response.status_code == 200, response.text
    assert [e["seq"] for e in response.json()["items"]] == expected


async def test_keyset_pagination(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
) -> None:
    as_role(client, Role.ADMIN, tenant="acme")
    seen: list[int] = []
    cursor = 0
    pages = 0
    while cursor is not None:
        response = await _get(client, "/api/v1/audit/events", after_seq=cursor, limit=5)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [e["seq"] for e in body["items"]]
        cursor = body["next_cursor"]
        pages += 1
    assert seen == list(range(1, 13)) and pages == 3
    filtered = await _get(client, "/api/v1/audit/events", actor="alice", limit=2)
    assert [e["seq"] for e in filtered.json()["items"]] == [1, 4]
    assert filtered.json()["next_cursor"] == 4
    rest = await _get(client, "/api/v1/audit/events", actor="alice", limit=2, after_seq=4)
    assert [e["seq"] for e in rest.json()["items"]] == [7, 10]
    assert rest.json()["next_cursor"] is None


async def test_bad_parameters_are_422(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
) -> None:
    as_role(client, Role.AUDITOR, tenant="acme")
    for params in (
        {"limit": 501},
        {"limit": 0},
        {"after_seq": -1},
        {"action": "made.up"},
        {"outcome": "maybe"},
        {"since": "yesterday"},
    ):
        response = await _get(client, "/api/v1/audit/events", **params)
        assert response.status_code == 422, params


async def test_tenants_never_see_each_other(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
) -> None:
    as_role(client, Role.AUDITOR, tenant="globex")
    body = (await _get(client, "/api/v1/audit/events", correlation_id="corr-0")).json()
    assert [(e["tenant_id"], e["seq"]) for e in body["items"]] == [
        ("globex", s) for s in range(1, 5)
    ]
    body = (await _get(client, "/api/v1/audit/events", actor="alice")).json()
    assert body["items"] == []
    verify = (await _get(client, "/api/v1/audit/verify")).json()
    assert (verify["tenant_id"], verify["events"]) == ("globex", 4)


async def test_only_auditors_and_admins(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
) -> None:
    for roles in ((Role.EXECUTIVE,), (Role.DELEGATE,), ()):
        as_role(client, *roles, tenant="initech")
        for path in ("/api/v1/audit/events", "/api/v1/audit/verify"):
            response = await _get(client, path)
            assert response.status_code == 403, (roles, path)
            assert response.json()["error"] == "PermissionDeniedError"
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    response = await _get(client, "/api/v1/audit/events")
    assert response.status_code == 401


async def test_verify_reports_tampering(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    seeded_audit: None,
    engine: AsyncEngine,
) -> None:
    as_role(client, Role.AUDITOR, tenant="acme")
    body = (await _get(client, "/api/v1/audit/verify")).json()
    assert body["ok"] is True and body["events"] == 12 and body["first_bad_seq"] is None
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        await connection.exec_driver_sql(
            "UPDATE audit_events SET actor_id = 'nobody' WHERE tenant_id = 'acme' AND seq = 6"
        )
    body = (await _get(client, "/api/v1/audit/verify")).json()
    assert body["ok"] is False and body["first_bad_seq"] == 6
    assert body["first_problem"] == "hash_mismatch"


async def test_verify_compares_with_the_anchor_and_reports_the_tail(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    services: Any,
    engine: AsyncEngine,
) -> None:
    """The API verifies against the configured anchor (a file, by default): a chain
    rewritten behind deleted checkpoints fails with the reason; the tail is reported."""
    from sqlalchemy.ext.asyncio import AsyncConnection

    from governance.aftercommit import drain_notifications
    from tests.integration.test_audit_tamper import _as_owner, _drop_checkpoints, _rewrite_chain

    every = services.settings.audit.checkpoint_every_events
    async with services.sessions() as session:
        for i in range(2 * every + 5):
            await record(
                session,
                Principal(user_id="alice", tenant_id="acme"),
                AuditEventIn(action=AuditAction.LLM_CALL, payload={"i": i}),
            )
        await session.commit()
    await drain_notifications()
    as_role(client, Role.AUDITOR, tenant="acme")
    body = (await _get(client, "/api/v1/audit/verify")).json()
    assert body["ok"] is True, body
    assert body["anchor"].startswith("file ") and body["anchored_seq"] == 2 * every
    assert body["unanchored_events"] == 5 and body["unanchored_since"] is not None

    def forge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[9]["reason"] = "rewritten"
        return rows

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, "acme")
        await _rewrite_chain(connection, "acme", forge)

    await _as_owner(engine, attack)
    body = (await _get(client, "/api/v1/audit/verify")).json()
    assert body["ok"] is False and body["first_bad_seq"] == every
    assert {p["kind"] for p in body["problems"]} == {
        "checkpoint_missing",
        "anchored_event_mismatch",
    }


async def test_verify_with_an_unreadable_anchor_is_a_typed_503_not_a_pass(
    client: httpx.AsyncClient,
    as_role: Callable[..., Any],
    services: Any,
) -> None:
    """An anchor that cannot be read leaves the chain unverified: a typed 503 with
    Retry-After, never a 500 and never ok."""
    async with services.sessions() as session:
        await record(
            session,
            Principal(user_id="alice", tenant_id="acme"),
            AuditEventIn(action=AuditAction.LLM_CALL, payload={"i": 1}),
        )
        await session.commit()
    anchor_file = services.settings.audit_anchor_file
    anchor_file.unlink(missing_ok=True)
    anchor_file.mkdir(parents=True)  # a directory where the file should be: unreadable
    as_role(client, Role.AUDITOR, tenant="acme")
    response = await _get(client, "/api/v1/audit/verify")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "AnchorUnavailableError" and "not verified" in body["detail"]
    assert str(anchor_file) not in response.text
    assert response.headers.get("retry-after") == "30"
