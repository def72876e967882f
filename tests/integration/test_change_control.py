"""Change control: versions with who, when, why; a rollback restores the exact earlier
version in one step (policy file, prompt files, model settings, connector row), audited;
connector secrets never in plain text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from assistant.change_control import (
    appliers,
    apply_llm_override,
    set_llm_override,
    snapshot_policy,
    snapshot_prompts,
)
from assistant.connector_models import StoredConnector
from assistant.connector_store import SecretBox
from assistant.core.errors import ConfigurationError, NotFoundError, ValidationFailedError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from governance.config_versions import list_versions, rollback
from governance.production_models import ConfigVersion
from tests.conftest import REPO_ROOT, SEED_DIR

ADMIN = Principal(user_id="ada", tenant_id="default", roles=frozenset({Role.ADMIN}))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    shutil.copyfile(REPO_ROOT / "config" / "policies.example.yaml", path)
    return path


@pytest.fixture
def settings(data_dir: Path, policy_file: Path) -> Settings:
    return Settings(
        data_dir=data_dir, sandbox={"seed_dir": SEED_DIR}, governance={"policy_file": policy_file}
    )


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _edit(path: Path, old: str, new: str, appended: str) -> None:
    path.write_text(path.read_text().replace(old, new) + appended)


async def _events(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEvent]:
    async with sessions() as session:
        return list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                )
            ).scalars()
        )


async def test_a_policy_rollback_restores_the_exact_earlier_file(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, policy_file: Path
) -> None:
    original = _bytes(policy_file)
    async with sessions() as session, session.begin():
        first = await snapshot_policy(session, ADMIN, settings, "initial policy")
        again = await snapshot_policy(session, ADMIN, settings, "nothing changed")
    assert again.id == first.id  # equal content records nothing new
    _edit(
        policy_file,
        '"2026-11-24.1"',
        '"2026-12-01"',
        "\n# a comment that only the exact text keeps\n",
    )
    async with sessions() as session, session.begin():
        second = await snapshot_policy(session, ADMIN, settings, "december rules")
    assert (first.number, second.number) == (1, 2) and first.content_hash != second.content_hash
    async with sessions() as session, session.begin():
        restored = await rollback(
            session, ADMIN, "policy@1", appliers=appliers(settings), reason="december rules misfire"
        )
    assert _bytes(policy_file) == original
    assert (restored.number, restored.restored_from) == (3, first.id)
    assert restored.content_hash == first.content_hash and restored.created_by == "ada"
    [rolled] = await _events(sessions, "config.rolled_back")
    assert rolled.reason == "december rules misfire"
    assert json.loads(rolled.payload_json)["restored"] == "policy@1"
    assert len(await _events(sessions, "config.versioned")) == 3
    async with sessions() as session:
        assert [v.number for v in await list_versions(session, "default", kind="policy")] == [
            3,
            2,
            1,
        ]


async def test_a_broken_policy_version_is_never_written_back(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, policy_file: Path
) -> None:
    from governance.config_versions import record_version

    async with sessions() as session, session.begin():
        await record_version(
            session, ADMIN, kind="policy", content={"text": "rules: [1"}, reason="typo"
        )
    before = _bytes(policy_file)
    with pytest.raises(ConfigurationError):
        async with sessions() as session, session.begin():
            await rollback(session, ADMIN, "policy@1", appliers=appliers(settings), reason="x")
    assert _bytes(policy_file) == before
    with pytest.raises(NotFoundError):
        async with sessions() as session:
            await rollback(session, ADMIN, "policy@9", appliers=appliers(settings), reason="x")
    with pytest.raises(ValidationFailedError, match="reason is required"):
        async with sessions() as session:
            await record_version(session, ADMIN, kind="policy", content={}, reason=" ")


async def test_prompt_files_are_restored_exactly(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, tmp_path: Path
) -> None:
    from assistant.llm.prompts import PROMPTS_DIR

    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, prompts)
    before = {p.name: p.read_bytes() for p in prompts.iterdir()}
    async with sessions() as session, session.begin():
        await snapshot_prompts(session, ADMIN, "as shipped", directory=prompts)
    (prompts / "triage@99.yaml").write_text("name: triage\nversion: 99\n")
    async with sessions() as session, session.begin():
        await snapshot_prompts(session, ADMIN, "experiment", directory=prompts)
        await rollback(
            session,
            ADMIN,
            "prompts@1",
            reason="experiment failed",
            appliers=appliers(settings, prompts_dir=prompts),
        )
    assert {p.name: p.read_bytes() for p in prompts.iterdir()} == before


async def test_model_settings_are_a_versioned_override(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with sessions() as session, session.begin():
        await set_llm_override(session, ADMIN, settings, {"model": "gpt-4o"}, "quality")
        await set_llm_override(session, ADMIN, settings, {"temperature": 0.7}, "creative")
    assert (await apply_llm_override(sessions, settings)).llm.model == "gpt-4o"
    assert (await apply_llm_override(sessions, settings)).llm.temperature == 0.7
    async with sessions() as session, session.begin():
        await rollback(session, ADMIN, "llm@1", appliers=appliers(settings), reason="too hot")
    effective = (await apply_llm_override(sessions, settings)).llm
    assert (effective.model, effective.temperature) == ("gpt-4o", 0.0)
    with pytest.raises(ValidationFailedError, match="not overridable"):
        async with sessions() as session:
            await set_llm_override(session, ADMIN, settings, {"api_key": "sk-x"}, "no")
    with pytest.raises(ValidationFailedError, match="invalid model settings"):
        async with sessions() as session:
            await set_llm_override(session, ADMIN, settings, {"temperature": 9}, "no")


def _imap(password: str, host: str) -> dict[str, Any]:
    return {"address": "crm@northwind.example", "imap_host": host, "password": password}


async def test_a_connector_rollback_restores_the_row_and_keeps_secrets_encrypted(
    client: Any, as_role: Any, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    as_role(client, Role.ADMIN, user_id="ada")
    created = await client.post(
        "/api/v1/admin/connectors",
        json={
            "name": "crm-mail",
            "slug": "imap.email",
            "config": _imap("first-Secret", "a.example"),
            "owner": {
                "person": "CRM team",
                "role": "sales ops",
                "contact": "crm@northwind.example",
            },
            "reason": "CRM mailbox",
        },
    )
    assert created.status_code == 201, created.text
    changed = await client.patch(
        "/api/v1/admin/connectors/crm-mail",
        json={"config": _imap("second-Secret", "b.example"), "reason": "new host"},
    )
    assert changed.status_code == 200, changed.text
    versions = (
        await client.get("/api/v1/admin/config/versions", params={"kind": "connector"})
    ).json()
    assert [(v["ref"], v["reason"], v["created_by"]) for v in versions] == [
        ("connector:crm-mail@2", "new host", "ada"),
        ("connector:crm-mail@1", "CRM mailbox", "ada"),
    ]
    async with sessions() as session, session.begin():
        await rollback(
            session,
            ADMIN,
            "connector:crm-mail@1",
            appliers=appliers(settings),
            reason="host b is down",
        )
    box = SecretBox(settings.secret_key)
    async with sessions() as session:
        row = (await session.execute(select(StoredConnector))).scalar_one()
        stored = list((await session.execute(select(ConfigVersion))).scalars())
        audit = list((await session.execute(select(AuditEvent))).scalars())
    assert row.config["imap_host"] == "a.example"
    assert box.decrypt(row.secrets or "") == {"password": "first-Secret"}
    everything = json.dumps([v.content for v in stored]) + "".join(
        f"{e.payload_json}{e.reason}" for e in audit
    )
    assert "first-Secret" not in everything and "second-Secret" not in everything
    owners = (await client.get("/api/v1/admin/owners")).json()
    assert {"scope": "connector", "subject": "crm-mail"}.items() <= next(
        o for o in owners["owners"] if o["subject"] == "crm-mail"
    ).items()
    # Deleting is versioned too, and a rollback brings the row back.
    assert (await client.delete("/api/v1/admin/connectors/crm-mail")).status_code == 204
    async with sessions() as session, session.begin():
        await rollback(
            session,
            ADMIN,
            "connector:crm-mail@2",
            appliers=appliers(settings),
            reason="deleted by mistake",
        )
    async with sessions() as session:
        back = (await session.execute(select(StoredConnector))).scalar_one()
    assert back.config["imap_host"] == "b.example"


def test_the_cli_lists_versions_and_rolls_back_in_one_step(
    data_dir: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch, engine: Any
) -> None:
    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASSISTANT_GOVERNANCE__POLICY_FILE", str(policy_file))
    monkeypatch.setenv("ASSISTANT_GOVERNANCE__RUNNER", "off")
    runner = CliRunner()
    original = _bytes(policy_file)
    assert runner.invoke(app, ["config", "record", "policy", "--reason", "v1"]).exit_code == 0
    policy_file.write_text(policy_file.read_text() + "\n# v2\n")
    assert runner.invoke(app, ["config", "record", "policy", "--reason", "v2"]).exit_code == 0
    listed = runner.invoke(app, ["config", "versions", "--kind", "policy", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [v["ref"] for v in json.loads(listed.stdout)] == ["policy@2", "policy@1"]
    result = runner.invoke(app, ["rollback", "config", "--to", "policy@1", "--reason", "undo"])
    assert result.exit_code == 0, result.output
    assert _bytes(policy_file) == original
    missing = runner.invoke(app, ["rollback", "config", "--to", "policy@7"])
    assert missing.exit_code == 1 and "NotFoundError" in missing.output
