"""The rollback drill on the sandbox: it passes when every compensator works, and fails
loudly (failed record, failure audit, non-zero exit) when one is broken."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from assistant.core.errors import ValidationFailedError
from governance.actions import CompensationContext, CompensationResult, KindRegistry, registry
from governance.audit_models import AuditEvent
from governance.drill import last_drill, run_drill
from governance.models import ActionException
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    EXECUTIVE,
    TENANT,
    Clock,
    SandboxResolver,
    governance_settings,
    seeded_db,
    seeded_template,
)

__all__ = ["seeded_db", "seeded_template"]  # fixtures


async def _drill(sessions: async_sessionmaker[AsyncSession], **extra: Any) -> Any:
    return await run_drill(
        sessions,
        SandboxResolver(sessions),
        governance_settings(),
        tenant_id=TENANT,
        executive=EXECUTIVE,
        started_by="ada",
        clock=Clock(FIXED_NOW),
        **extra,
    )


async def _drill_events(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with sessions() as session:
        return list(
            (
                await session.execute(select(AuditEvent).where(AuditEvent.action == "drill.run"))
            ).scalars()
        )


async def test_the_drill_passes_and_leaves_the_sandbox_as_it_was(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    drill = await _drill(seeded_db)
    assert drill.passed, drill.results
    drilled = {r["kind"]: r for r in drill.results if r["ok"] is not None}
    assert set(drilled) == {
        "email.draft.create",
        "email.move",
        "calendar.event.create",
        "calendar.event.update",
    }
    for result in drilled.values():
        assert result["executed"] and result["effect_visible"] and result["compensated"]
        assert result["restored"]
    assert drill.summary == "4 of 4 kinds executed, compensated and restored"
    async with seeded_db() as session:
        latest = await last_drill(session, TENANT)
        assert await last_drill(session, "another-tenant") is None
    assert latest is not None and latest.id == drill.id and latest.passed
    assert latest.finished_at >= latest.started_at
    [event] = await _drill_events(seeded_db)
    assert event.outcome == "success" and json.loads(event.payload_json)["verdict"] == "passed"


async def test_a_broken_compensator_fails_the_drill_loudly(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    async def broken(ctx: CompensationContext, args: Any) -> CompensationResult:
        raise RuntimeError("the compensator lost its connector")

    kinds = KindRegistry()
    for name in registry.names():
        kind = registry.get(name)
        if name == "calendar.event.create":
            kind = dataclasses.replace(kind, compensate=broken)
        kinds.register(kind)
    drill = await _drill(seeded_db, kinds=kinds)
    assert not drill.passed
    assert drill.summary == "FAILED: calendar.event.create"
    failed = next(r for r in drill.results if r["kind"] == "calendar.event.create")
    assert failed["executed"] and not failed["compensated"] and failed["ok"] is False
    assert "RuntimeError" in failed["detail"]
    # The others still ran and passed; the failed compensation is on the exception queue.
    assert all(
        r["ok"]
        for r in drill.results
        if r["kind"] in {"email.draft.create", "email.move", "calendar.event.update"}
    )
    async with seeded_db() as session:
        queued = (await session.execute(select(ActionException))).scalar_one()
        assert (await last_drill(session, TENANT)) is not None
    assert queued.state == "compensation_failed" and queued.action_id == failed["action_id"]
    [event] = await _drill_events(seeded_db)
    assert event.outcome == "failure" and event.reason == "FAILED: calendar.event.create"


async def test_the_drill_refuses_connectors_other_than_the_sandbox(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    class Elsewhere:
        def get(
            self,
            tenant_id: str,
            capability: Any,
            name: str | None = None,
            *,
            executive: str | None = None,
        ) -> Any:
            return object()  # a connector from anywhere but integrations.sandbox

    with pytest.raises(ValidationFailedError, match="runs on the sandbox only"):
        await run_drill(
            seeded_db,
            Elsewhere(),
            governance_settings(),
            tenant_id=TENANT,
            executive=EXECUTIVE,
            started_by="ada",
        )
    assert await _drill_events(seeded_db) == []


def test_the_cli_exits_non_zero_when_the_sandbox_cannot_be_restored(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, engine: Any
) -> None:
    from assistant.cli import app

    # Migrated but never seeded: the sandbox has no inbox to move and no calendar.
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASSISTANT_GOVERNANCE__RUNNER", "off")
    result = CliRunner().invoke(app, ["drill", "rollback"])
    assert result.exit_code == 1, result.output
    assert "rollback drill failed" in result.output
    assert "email.move" in result.output and "calendar.event.create" in result.output
