"""`assistant actions ...` and `assistant killswitch ...` on a copy of the seeded database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory
from governance.models import Action
from tests.conftest import SEED_DIR
from tests.fixtures.governance import (
    EXECUTIVE,
    OUTSIDER,
    TEST_POLICY,
    Clock,
    build_harness,
    copy_template,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture


@pytest.fixture
def data_dir(tmp_path: Path, seeded_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    copy_template(seeded_template, folder)
    policy = tmp_path / "policies.yaml"
    policy.write_text(TEST_POLICY)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(folder))
    monkeypatch.setenv("ASSISTANT_SANDBOX__SEED_DIR", str(SEED_DIR))
    monkeypatch.setenv("ASSISTANT_GOVERNANCE__POLICY_FILE", str(policy))
    monkeypatch.setenv("ASSISTANT_GOVERNANCE__RUNNER", "off")
    return folder


def _propose(folder: Path, kind: str, arguments: dict[str, object]) -> str:
    async def go() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'assistant.db'}")
        try:
            # The CLI decides on the wall clock, so the proposal is made on it too: a fixed
            # date would let the review expire once the real date moves past its TTL.
            harness = build_harness(create_session_factory(engine), Clock(utcnow()))
            return (await harness.propose(kind, arguments)).id
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _state(folder: Path, action_id: str) -> str:
    async def go() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'assistant.db'}")
        try:
            async with create_session_factory(engine)() as session:
                action = await session.get(Action, action_id)
                assert action is not None
                return action.state
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_list_show_approve_undo(data_dir: Path) -> None:
    runner = CliRunner()
    action_id = _propose(
        data_dir,
        "email.send",
        {"to": [{"address": OUTSIDER}], "subject": "Quote", "body_text": "x"},
    )
    listed = runner.invoke(app, ["actions", "list", "--state", "pending_review"])
    assert listed.exit_code == 0, listed.output
    assert action_id[:8] in listed.output

    shown = runner.invoke(app, ["actions", "show", action_id, "--preview"])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.stdout)
    assert body["policy_rule_id"] == "external-mail"
    assert body["preview"]["to"] == [OUTSIDER]

    auditor = runner.invoke(
        app, ["actions", "approve", action_id, "--as", "audrey", "--role", "auditor"]
    )
    assert auditor.exit_code == 1 and "auditors approve nothing" in auditor.output
    approved = runner.invoke(
        app,
        [
            "actions",
            "approve",
            action_id,
            "--as",
            "jordan",
            "--role",
            "delegate",
            "--for",
            EXECUTIVE,
        ],
    )
    assert approved.exit_code == 0, approved.output
    assert "scheduled" in approved.output
    undone = runner.invoke(app, ["actions", "undo", action_id])
    assert undone.exit_code == 0 and "cancelled" in undone.output
    assert _state(data_dir, action_id) == "cancelled"


def test_reject_rollback_and_kill_switch(data_dir: Path) -> None:
    runner = CliRunner()
    action_id = _propose(data_dir, "email.send", {"to": [{"address": OUTSIDER}], "body_text": "x"})
    rejected = runner.invoke(
        app,
        [
            "actions",
            "reject",
            action_id,
            "--reason",
            "no",
            "--as",
            EXECUTIVE,
            "--role",
            "executive",
        ],
    )
    assert rejected.exit_code == 0 and "rejected" in rejected.output
    assert runner.invoke(app, ["actions", "rollback"]).exit_code == 2
    rolled = runner.invoke(app, ["actions", "rollback", action_id])
    assert rolled.exit_code == 0 and "nothing to roll back" in rolled.output

    assert (
        runner.invoke(
            app, ["killswitch", "on", "--tenant", "default", "--reason", "drill"]
        ).exit_code
        == 0
    )
    status = runner.invoke(app, ["killswitch", "status"])
    assert "ON" in status.output and "drill" in status.output
    assert runner.invoke(app, ["killswitch", "off", "--tenant", "default"]).exit_code == 0
    assert "ON" not in runner.invoke(app, ["killswitch", "status"]).output
