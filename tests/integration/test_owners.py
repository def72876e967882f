"""Owners: production refuses to start without them; failures are routed to them, audited.

Routing runs against a real local HTTP server (webhook) and the sandbox mailbox (email).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from assistant.core.errors import ConfigurationError
from assistant.core.principal import Role
from assistant.core.settings import OwnerSettings, Settings
from governance.aftercommit import drain_notifications
from governance.audit_models import AuditEvent
from governance.models import ActionException
from governance.owners import (
    OwnerRouter,
    contact_for_audit,
    missing_owners,
    retry_after_seconds,
    set_owner,
)
from governance.state import ActionState
from tests.conftest import FIXED_NOW, REPO_ROOT, SEED_DIR
from tests.fixtures.governance import (
    EXECUTIVE,
    TENANT,
    Clock,
    Harness,
    SandboxResolver,
    build_harness,
    person,
    seeded_db,
    seeded_template,
)
from tests.fixtures.webhook import SECRET_PATH, Hook

__all__ = ["seeded_db", "seeded_template"]  # fixtures

PRODUCTION = {"environment": "production", "secret_key": "p" * 40}


def owner(name: str, contact: str) -> OwnerSettings:
    return OwnerSettings(person=name, role="operations", contact=contact)


def named_settings(data_dir: Path, **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "sandbox": {"seed_dir": SEED_DIR},
        "owners": {
            "deployment": owner("Dana Whitfield", "dana@northwind.example"),
            "exceptions": owner("Ops desk", "ops@northwind.example"),
        },
        "connectors": [
            {
                "name": "sandbox-mail",
                "slug": "sandbox.email",
                "owner": owner("Mail team", "mail@northwind.example"),
            },
            {
                "name": "sandbox-calendar",
                "slug": "sandbox.calendar",
                "owner": owner("Calendar team", "https://hooks.northwind.example/cal"),
            },
        ],
    }
    values.update(extra)
    return values


# --------------------------------------------------------------------------- start


async def test_a_missing_owner_blocks_production_start(data_dir: Path, engine: Any) -> None:
    from assistant.services import Services

    # Development starts without owners.
    services = await Services.build(Settings(data_dir=data_dir, sandbox={"seed_dir": SEED_DIR}))
    await services.aclose()

    with pytest.raises(ConfigurationError) as refused:
        await Services.build(Settings(data_dir=data_dir, **PRODUCTION))
    assert refused.value.problems == [
        "owners: tenant default: deployment has no owner",
        "owners: tenant default: exception queue has no owner",
        "owners: tenant default: connector sandbox-calendar has no owner",
        "owners: tenant default: connector sandbox-mail has no owner",
    ]
    assert "production refuses to start without owners (4 missing)" in refused.value.detail

    # One missing is still refused, and named.
    values = named_settings(data_dir, **PRODUCTION)
    values["connectors"][1].pop("owner")
    with pytest.raises(ConfigurationError) as one:
        await Services.build(Settings(**values))
    assert one.value.problems == ["owners: tenant default: connector sandbox-calendar has no owner"]

    services = await Services.build(Settings(**named_settings(data_dir, **PRODUCTION)))
    async with services.sessions() as session:
        assert await missing_owners(session, services.settings, TENANT) == []
    await services.aclose()


def test_serve_refuses_in_production_and_lists_every_missing_owner(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSISTANT_SECRET_KEY", "s" * 40)
    # Production keeps the audit key and anchor away from the database's directory.
    monkeypatch.setenv("ASSISTANT_AUDIT__CHECKPOINT_KEY_FILE", str(data_dir.parent / "keys/a.pem"))
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__FILE", str(data_dir.parent / "anchor/a.jsonl"))
    monkeypatch.setenv(
        "ASSISTANT_OWNERS__DEPLOYMENT",
        json.dumps({"person": "Dana", "role": "COO", "contact": "dana@northwind.example"}),
    )
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "production refuses to start without owners (3 missing)" in " ".join(
        result.output.split()
    )
    for missing in ("exception queue", "connector sandbox-mail", "connector sandbox-calendar"):
        assert f"{missing} has no owner" in result.output
    assert "deployment has no owner" not in result.output


def test_the_example_policy_names_its_owner() -> None:
    from governance.policy import load_policy

    document = load_policy(REPO_ROOT / "config" / "policies.example.yaml").document
    assert document.owner is not None and document.owner.person


async def test_stored_owners_and_stored_connectors_count(
    seeded_db: async_sessionmaker[AsyncSession], data_dir: Path
) -> None:
    from sqlalchemy import text

    settings = Settings(**named_settings(data_dir))
    async with seeded_db() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO connector_instances (id, tenant_id, name, slug, config, enabled, "
                "created_by, created_at, updated_at) VALUES ('c1', 'default', 'crm-mail', "
                "'imap.email', '{}', 1, 'ada', '2026-11-24', '2026-11-24')"
            )
        )
        assert await missing_owners(session, settings, TENANT) == ["connector crm-mail"]
        await set_owner(
            session,
            person("ada", Role.ADMIN),
            "connector",
            "crm-mail",
            owner("CRM team", "crm@northwind.example"),
        )
        assert await missing_owners(session, settings, TENANT) == []
        with pytest.raises(Exception, match="unknown owner scope"):
            await set_owner(
                session,
                person("ada", Role.ADMIN),
                "everything",
                "",
                owner("x", "x@northwind.example"),
            )


# --------------------------------------------------------------------------- routing


@pytest.fixture
def clock() -> Clock:
    return Clock(FIXED_NOW)


def routed_harness(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    data_dir: Path,
    contact: str,
    waits: list[float] | None = None,
) -> Harness:
    settings = Settings(
        data_dir=data_dir, owners={"exceptions": owner("Ops desk", contact), "notify_attempts": 3}
    )
    resolver = SandboxResolver(sessions)

    async def sleep(seconds: float) -> None:
        (waits if waits is not None else []).append(seconds)

    router = OwnerRouter(sessions, settings, resolver, sleep=sleep)
    return build_harness(sessions, clock, resolver=resolver, owners=router)


async def _fail_a_move(harness: Harness) -> str:
    action = await harness.propose(
        "email.move", {"message_id": "no-such-message", "folder": "archive"}
    )
    await harness.executor.run_due()
    await drain_notifications()
    assert (await harness.load(action.id)).state == ActionState.FAILED
    return action.id


async def _notified(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with sessions() as session:
        return list(
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action == "owner.notified")
                    .order_by(AuditEvent.seq)
                )
            ).scalars()
        )


async def _all_audit_text(sessions: async_sessionmaker[AsyncSession]) -> str:
    async with sessions() as session:
        rows = (await session.execute(select(AuditEvent))).scalars()
        return "\n".join(f"{r.payload_json} {r.reason} {r.resource_id}" for r in rows)


async def test_a_failed_action_is_posted_to_the_owners_webhook_honouring_retry_after(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock, data_dir: Path
) -> None:
    waits: list[float] = []
    with Hook([(429, {"Retry-After": "7"}), (200, {})]) as hook:
        harness = routed_harness(seeded_db, clock, data_dir, hook.url, waits)
        action_id = await _fail_a_move(harness)
    assert len(hook.received) == 2 and waits == [7.0]  # waited what Retry-After said
    delivered = hook.received[-1]
    assert delivered["path"].startswith(f"/{SECRET_PATH}")
    assert delivered["json"]["action_id"] == action_id
    assert delivered["json"]["state"] == "failed" and delivered["json"]["kind"] == "email.move"
    assert delivered["key"] == hook.received[0]["key"]  # one idempotency key for retries
    async with seeded_db() as session:
        queued = (await session.execute(select(ActionException))).scalar_one()
    assert queued.owner == "Ops desk"
    [event] = await _notified(seeded_db)
    payload = json.loads(event.payload_json)
    assert event.outcome == "success" and event.resource_id == queued.id
    assert payload["channel"] == "webhook" and payload["attempts"] == 2
    assert payload["contact"] == f"http://127.0.0.1:{hook.server.server_port}"
    audit_text = await _all_audit_text(seeded_db)
    assert "T0KEN" not in audit_text and "abc123" not in audit_text


async def test_a_webhook_that_keeps_failing_is_audited_as_a_failed_routing(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock, data_dir: Path
) -> None:
    waits: list[float] = []
    with Hook([(503, {})]) as hook:
        harness = routed_harness(seeded_db, clock, data_dir, hook.url, waits)
        await _fail_a_move(harness)
    assert len(hook.received) == 3 and waits == [0.5, 1.0]  # notify_attempts, backoff
    [event] = await _notified(seeded_db)
    assert event.outcome == "failure" and event.reason == "NotifyError"
    assert "T0KEN" not in await _all_audit_text(seeded_db)


async def test_failures_and_failed_compensations_are_emailed_through_the_tenants_mailbox(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock, data_dir: Path
) -> None:
    harness = routed_harness(seeded_db, clock, data_dir, "ops@northwind.example")
    failed_id = await _fail_a_move(harness)

    draft = await harness.propose(
        "email.draft.create",
        {"to": [{"address": EXECUTIVE}], "subject": "Notes", "body_text": "Hello"},
    )
    await harness.executor.run_due()
    draft_id = (await harness.load(draft.id)).external_ids["draft_id"]
    await harness.resolver.email.send_draft(draft_id)  # sent by hand: it cannot be deleted
    outcome = await harness.compensation.rollback(person("dana", Role.ADMIN), draft.id)
    await drain_notifications()
    assert not outcome.ok

    sent = (await harness.resolver.email.sync("sent")).messages
    to_owner = [m for m in sent if [a.address for a in m.to] == ["ops@northwind.example"]]
    subjects = sorted(m.subject or "" for m in to_owner)
    assert subjects == [
        f"[assistant] action failed: email.move ({failed_id})",
        f"[assistant] compensation failed: email.draft.create ({draft.id})",
    ]
    events = await _notified(seeded_db)
    assert [(e.outcome, json.loads(e.payload_json)["state"]) for e in events] == [
        ("success", "failed"),
        ("success", "compensation_failed"),
    ]
    assert all(json.loads(e.payload_json)["channel"] == "email" for e in events)


async def test_without_any_owner_the_routing_failure_is_audited(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock, data_dir: Path
) -> None:
    resolver = SandboxResolver(seeded_db)
    router = OwnerRouter(seeded_db, Settings(data_dir=data_dir), resolver)
    harness = build_harness(seeded_db, clock, resolver=resolver, owners=router)
    await _fail_a_move(harness)
    async with seeded_db() as session:
        assert (await session.execute(select(ActionException.owner))).scalar_one() == "unassigned"
    [event] = await _notified(seeded_db)
    assert event.outcome == "failure" and event.reason == "no owner named"


def test_contacts_in_the_audit_log_and_retry_after() -> None:
    assert contact_for_audit("ops@northwind.example") == "ops@northwind.example"
    assert (
        contact_for_audit("https://hooks.slack.example/services/T0/B0/XyZ?x=1")
        == "https://hooks.slack.example"
    )
    assert retry_after_seconds("12", FIXED_NOW) == 12.0
    assert retry_after_seconds("Tue, 24 Nov 2026 14:00:30 GMT", FIXED_NOW) == 30.0
    assert retry_after_seconds("soon", FIXED_NOW) is None
    with pytest.raises(ValueError, match="email address or an http"):
        OwnerSettings(person="x", role="y", contact="call me")


def test_config_check_in_production_lists_missing_owners(
    data_dir: Path, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSISTANT_SECRET_KEY", "s" * 40)
    # Production keeps the audit key and anchor away from the database's directory.
    monkeypatch.setenv("ASSISTANT_AUDIT__CHECKPOINT_KEY_FILE", str(data_dir.parent / "keys/a.pem"))
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__FILE", str(data_dir.parent / "anchor/a.jsonl"))
    monkeypatch.setenv(
        "ASSISTANT_OWNERS__EXCEPTIONS",
        json.dumps({"person": "Ops", "role": "IT", "contact": "ops@northwind.example"}),
    )
    checked = CliRunner().invoke(app, ["config", "check"])
    assert checked.exit_code == 2, checked.output
    output = " ".join(checked.output.split())
    assert "3 configuration error(s)" in output
    for missing in ("deployment", "connector sandbox-mail", "connector sandbox-calendar"):
        assert f"tenant default: {missing} has no owner" in output
    assert "exception queue has no owner" not in output

    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "development")  # owners are not required there
    assert CliRunner().invoke(app, ["config", "check"]).exit_code == 0
