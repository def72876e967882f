"""The HTTP witness anchor against a real local witness server (tests/fakes/witness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from assistant.core.principal import Principal
from governance.aftercommit import drain_notifications
from governance.anchor import AnchorEntry, AnchorError, HttpWitnessAnchor
from governance.audit import AuditAction, AuditEventIn, record
from governance.audit_models import CHECKPOINTS
from governance.audit_verify import ProblemKind, verify_all
from governance.checkpoints import CheckpointConfig, publish_unanchored, signing_key
from tests.fakes.serving import serve_app
from tests.fakes.witness import Witness

TOKEN = "witness-token-123"  # noqa: S105


@pytest.fixture
def witness() -> Iterator[tuple[Witness, str]]:
    server = Witness(token=TOKEN)
    with serve_app(server.app, name="checkpoint witness") as port:
        yield server, f"http://127.0.0.1:{port}"


def _config(tmp_path: Path, url: str, token: str = TOKEN) -> CheckpointConfig:
    return CheckpointConfig(
        key_file=tmp_path / "keys" / "audit.pem",
        every_events=5,
        anchor=HttpWitnessAnchor(url, token=token, timeout_s=5),
    )


async def _append(
    sessions: async_sessionmaker, config: CheckpointConfig, count: int, tenant: str = "acme"
) -> None:
    for i in range(count):
        async with sessions() as session:
            await record(
                session,
                Principal(user_id="alice", tenant_id=tenant),
                AuditEventIn(action=AuditAction.LLM_CALL, payload={"i": i}),
                checkpoints=config,
            )
            await session.commit()
    await drain_notifications()


async def _verify(sessions: async_sessionmaker, config: CheckpointConfig):  # type: ignore[no-untyped-def]
    async with sessions() as session:
        (report,) = await verify_all(
            session,
            public_keys=[signing_key(config.key_file).public_key()],
            tenants=["acme"],
            anchor=config.anchor,
        )
    return report


async def test_checkpoints_reach_the_witness_and_verify_against_it(
    witness: tuple[Witness, str],
    tmp_path: Path,
    engine: AsyncEngine,
    sessions: async_sessionmaker,
) -> None:
    server, url = witness
    config = _config(tmp_path, url)
    await _append(sessions, config, 12)
    assert [(e["tenant_id"], e["seq"]) for e in server.log] == [("acme", 5), ("acme", 10)]
    report = await _verify(sessions, config)
    assert report.ok, report.to_dict()
    assert (report.anchored_seq, report.unanchored_events) == (10, 2)
    assert report.anchor == "witness http://127.0.0.1"  # scheme and host only

    # The attacker deletes the database's checkpoints: the witness still holds them.
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP TRIGGER audit_checkpoints_no_delete")
        await connection.execute(delete(CHECKPOINTS))
    report = await _verify(sessions, config)
    assert {(p.seq, p.kind) for p in report.problems} == {
        (5, ProblemKind.CHECKPOINT_MISSING),
        (10, ProblemKind.CHECKPOINT_MISSING),
    }


async def test_the_witness_refuses_a_rewrite_and_strangers(
    witness: tuple[Witness, str], tmp_path: Path, sessions: async_sessionmaker
) -> None:
    server, url = witness
    config = _config(tmp_path, url)
    await _append(sessions, config, 5)
    assert config.anchor is not None
    held = (await config.anchor.snapshot()).entries[0]
    altered = AnchorEntry(
        held.tenant_id,
        held.seq,
        "0" * 64,
        held.created_at,
        held.key_fingerprint,
        held.signature,
    )
    with pytest.raises(AnchorError, match="holds a different checkpoint"):
        await config.anchor.append([altered])
    await config.anchor.append([held])  # the same entry again is accepted (retries)
    assert len(server.log) == 1
    stranger = HttpWitnessAnchor(url, token="wrong")  # noqa: S106
    with pytest.raises(AnchorError, match="answered 401"):
        await stranger.append([held])


async def test_an_outage_is_retried_and_caught_up_by_the_sweep(
    witness: tuple[Witness, str], tmp_path: Path, sessions: async_sessionmaker
) -> None:
    server, url = witness
    config = _config(tmp_path, url)
    server.fail_next = 2  # two 503s: the client's retries absorb them
    await _append(sessions, config, 5)
    assert [e["seq"] for e in server.log] == [5]
    server.fail_next = 100  # a long outage: the after-commit append gives up
    await _append(sessions, config, 5)
    assert [e["seq"] for e in server.log] == [5]
    report = await _verify_tolerant(sessions, config, server)
    assert report.ok and report.anchored_seq == 5 and report.unanchored_events == 5
    assert any("not in the anchor yet" in w for w in report.warnings)
    assert await publish_unanchored(sessions, config) == 1  # the runner's sweep
    assert [e["seq"] for e in server.log] == [5, 10]
    assert (await _verify(sessions, config)).unanchored_events == 0


async def _verify_tolerant(sessions: async_sessionmaker, config: CheckpointConfig, server: Witness):  # type: ignore[no-untyped-def]
    server.fail_next = 0
    return await _verify(sessions, config)


async def test_a_witness_started_on_purpose_holds_the_epoch_and_the_heads(
    witness: tuple[Witness, str], tmp_path: Path, sessions: async_sessionmaker
) -> None:
    """`anchor init` against a witness: the epoch entry passes the witness protocol as it
    is, and a second start is refused (the witness holds entries)."""
    from dataclasses import replace

    from governance.anchor import EPOCH_TENANT
    from governance.anchor_epochs import start_anchor

    server, url = witness
    config = _config(tmp_path, url)
    await _append(sessions, replace(config, anchor=None), 7)  # checkpoint 5, never anchored
    started = await start_anchor(sessions, config, reason="witness added", started_by="ops")
    await drain_notifications()
    held = [(e["tenant_id"], e["seq"]) for e in server.log]
    assert held[0] == (EPOCH_TENANT, 1) and ("acme", 7) in held
    assert started.document["anchor"].startswith("witness http://127.0.0.1")
    report = await _verify(sessions, config)
    assert report.ok, report.to_dict()
    assert report.anchor_started_at == started.epoch.created_at
    assert report.checkpoints_before_anchor == 1 and report.anchored_seq == 7
    with pytest.raises(AnchorError, match="started once"):
        await start_anchor(sessions, config, reason="again", started_by="ops")
