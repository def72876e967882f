"""`assistant audit verify|export|checkpoint|public-key` on a SQLite deployment."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.db import create_engine, create_session_factory
from assistant.core.principal import Principal
from assistant.core.settings import load_settings
from governance.audit import AuditAction, AuditEventIn, record
from governance.audit_hash import HASHED_FIELDS, hash_row
from governance.checkpoints import configure, signing_key

runner = CliRunner()
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite deployment with 12 events of acme and 3 of globex; its data dir."""
    data = tmp_path / "data"
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data))
    monkeypatch.setenv("ASSISTANT_AUDIT__CHECKPOINT_EVERY_EVENTS", "5")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    settings = load_settings()
    configure(settings)

    async def seed() -> None:
        engine = create_engine(settings.database_url)
        async with create_session_factory(engine)() as session:
            for tenant, count in (("acme", 12), ("globex", 3)):
                for i in range(count):
                    await record(
                        session,
                        Principal(user_id="alice", tenant_id=tenant),
                        AuditEventIn(
                            action=AuditAction.LLM_CALL,
                            occurred_at=T0 + timedelta(hours=i),
                            payload={"i": i, "note": 'ünïcode "q"\n'},
                        ),
                    )
            await session.commit()
        await engine.dispose()

    asyncio.run(seed())
    configure(None)
    return data


def _sql(data: Path, *statements: str) -> None:
    connection = sqlite3.connect(data / "assistant.db")
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


def test_verify_ok(deployment: Path) -> None:
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "tenant acme: OK, 12 events, 2 signed checkpoints" in result.stdout
    assert "tenant globex: OK, 3 events" in result.stdout
    result = runner.invoke(app, ["audit", "verify", "--tenant", "globex", "--json"])
    assert result.exit_code == 0, result.output
    assert [(r["tenant_id"], r["ok"], r["events"]) for r in json.loads(result.stdout)] == [
        ("globex", True, 3)
    ]


def test_verify_tampered_exits_1_with_the_first_bad_seq(deployment: Path) -> None:
    _sql(
        deployment,
        "DROP TRIGGER audit_events_no_update",
        "UPDATE audit_events SET outcome = 'denied' WHERE tenant_id = 'acme' AND seq = 3",
    )
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert "tenant acme: TAMPERED first bad seq 3: hash_mismatch" in result.stdout
    assert "tenant globex: OK" in result.stdout
    assert runner.invoke(app, ["audit", "verify", "--tenant", "globex"]).exit_code == 0


def test_verify_with_an_untrusted_key_fails(deployment: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    signing_key(other)
    result = runner.invoke(app, ["audit", "verify", "--tenant", "acme", "--public-key", str(other)])
    assert result.exit_code == 1
    assert "checkpoint_unknown_key" in result.stdout


def test_public_key_verifies_alone(deployment: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["audit", "public-key"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    public = tmp_path / "audit.pub"
    public.write_text(result.stdout)
    result = runner.invoke(app, ["audit", "verify", "--public-key", str(public)])
    assert result.exit_code == 0, result.output


def test_export_jsonl_can_be_verified_offline(deployment: Path, tmp_path: Path) -> None:
    out = tmp_path / "acme.jsonl"
    result = runner.invoke(app, ["audit", "export", "--tenant", "acme", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["seq"] for r in rows] == list(range(1, 13))
    previous = "0" * 64
    for row in rows:
        assert row["prev_hash"] == previous
        assert hash_row([row[name] for name in HASHED_FIELDS]) == row["row_hash"]
        previous = row["row_hash"]
    # The export itself is audited, on the same chain.
    result = runner.invoke(app, ["audit", "verify", "--tenant", "acme", "--json"])
    assert json.loads(result.stdout)[0]["events"] == 13


def test_export_csv_time_range_to_stdout(deployment: Path) -> None:
    result = runner.invoke(
        app,
        [
            "audit",
            "export",
            "--format",
            "csv",
            "--tenant",
            "acme",
            "--since",
            "2026-11-02T11:00:00+00:00",
            "--until",
            "2026-11-02T14:00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(r["seq"]) for r in rows] == [3, 4, 5]
    assert json.loads(rows[0]["payload"]) == {"i": 2, "note": 'ünïcode "q"\n'}
    bad = runner.invoke(app, ["audit", "export", "--since", "last tuesday"])
    assert bad.exit_code == 2


def test_checkpoint_command(deployment: Path) -> None:
    result = runner.invoke(app, ["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert "tenant acme: checkpoint at seq 12" in result.stdout
    assert "tenant globex: checkpoint at seq 3" in result.stdout
    again = runner.invoke(app, ["audit", "checkpoint"])
    assert "no chain needed a checkpoint" in again.stdout
    verify = runner.invoke(app, ["audit", "verify", "--json"])
    assert [r["checkpoints"] for r in json.loads(verify.stdout)] == [3, 1]


def test_anchor_init_and_rotate_start_anchors_on_purpose(deployment: Path) -> None:
    """A deployment without an anchor starts one with `anchor init` (once); a move to a
    new anchor is `anchor rotate`, only after the database verified against the old one."""
    anchor = deployment / "audit_anchor.jsonl"
    anchor.unlink(missing_ok=True)  # a deployment whose checkpoints were never anchored
    result = runner.invoke(app, ["audit", "anchor", "init", "--reason", "first anchor"])
    assert result.exit_code == 0, result.output
    assert "anchor epoch 1 started" in result.output
    assert "3 chain(s) checkpointed" in result.output  # acme, globex and the system chain
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0, verified.output
    reports = json.loads(verified.stdout)
    assert all(r["anchor_started_at"] for r in reports)
    # The command also appends the older checkpoints: the new anchor covers them too.
    acme = next(r for r in reports if r["tenant_id"] == "acme")
    assert (acme["anchored_seq"], acme["checkpoints_before_anchor"]) == (12, 0)
    again = runner.invoke(app, ["audit", "anchor", "init", "--reason", "again"])
    assert again.exit_code == 2 and "started once" in again.output

    old = deployment / "anchor-2026.jsonl"
    anchor.rename(old)
    rotated = runner.invoke(
        app, ["audit", "anchor", "rotate", "--previous-file", str(old), "--reason", "new disk"]
    )
    assert rotated.exit_code == 0, rotated.output
    assert "anchor epoch 2 started" in rotated.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0

    empty = deployment / "empty.jsonl"
    empty.write_bytes(b"")
    anchor.rename(deployment / "anchor-2027.jsonl")
    refused = runner.invoke(
        app, ["audit", "anchor", "rotate", "--previous-file", str(empty), "--reason", "x"]
    )
    assert refused.exit_code == 1 and "the previous anchor is empty" in refused.output
