"""Attacks on the audit log by someone with write access to the database (owner rights:
triggers switched off), but neither the signing key nor the anchor. Each runs on SQLite and
on PostgreSQL and must be detected by verification with a clear reason."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import Principal, Role
from governance.aftercommit import drain_notifications
from governance.anchor import FileAnchor
from governance.audit import AuditAction, AuditEventIn, record
from governance.audit_hash import GENESIS_HASH, hash_fields
from governance.audit_models import CHECKPOINTS, EVENTS, HEADS
from governance.audit_verify import ProblemKind, VerifyReport, verify_all
from governance.checkpoints import CheckpointConfig, run_due_checkpoints, signing_key

pytestmark = pytest.mark.postgres

_SQLITE_TRIGGERS = (
    "audit_events_no_update",
    "audit_events_no_delete",
    "audit_checkpoints_no_update",
    "audit_checkpoints_no_delete",
    "audit_events_chain",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'tamper.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def config(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(
        key_file=tmp_path / "keys" / "audit.pem",
        every_events=10,
        every_seconds=60,
        anchor=FileAnchor(tmp_path / "anchor" / "audit_anchor.jsonl"),
    )


async def _append(engine: AsyncEngine, tenant: str, config: CheckpointConfig, count: int) -> None:
    sessions = create_session_factory(engine)
    actor = Principal(user_id="alice", tenant_id=tenant, roles=frozenset({Role.ADMIN}))
    for i in range(count):
        async with sessions() as session:
            await record(
                session,
                actor,
                AuditEventIn(action=AuditAction.ACTION_SUCCEEDED, payload={"i": i}),
                checkpoints=config,
            )
            await session.commit()
    await drain_notifications()  # the anchor appends run after each commit


async def _verify(
    engine: AsyncEngine, tenant: str, config: CheckpointConfig, *, later: bool = False
) -> VerifyReport:
    """Verify ``tenant`` as the CLI does (with the deployment's N); ``later``: once the
    grace that anchoring takes has passed."""
    import governance.audit_verify as audit_verify

    real_utcnow = audit_verify.utcnow
    if later:
        moved = utcnow() + audit_verify.ANCHOR_GRACE + timedelta(seconds=1)
        audit_verify.utcnow = lambda: moved  # type: ignore[assignment]
    try:
        async with create_session_factory(engine)() as session:
            (report,) = await verify_all(
                session,
                public_keys=[signing_key(config.key_file).public_key()],
                tenants=[tenant],
                anchor=config.anchor,
                checkpoint_every_events=config.every_events,
            )
    finally:
        audit_verify.utcnow = real_utcnow  # type: ignore[assignment]
    return report


async def _as_owner(engine: AsyncEngine, attack: Callable[[AsyncConnection], Any]) -> None:
    """Run ``attack`` with the append-only guards off, as a database owner could."""
    async with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            for trigger in _SQLITE_TRIGGERS:
                await connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        else:
            for table in ("audit_events", "audit_checkpoints", "audit_chain_heads"):
                await connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        await attack(connection)
        if engine.dialect.name == "postgresql":
            for table in ("audit_events", "audit_checkpoints", "audit_chain_heads"):
                await connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def _rewrite_chain(
    connection: AsyncConnection,
    tenant: str,
    change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    """Replace the tenant's events by ``change(events)``, every hash recomputed, the head
    moved to the new end: a chain that is internally consistent."""
    rows = [
        dict(row._mapping)
        for row in await connection.execute(
            select(EVENTS).where(EVENTS.c.tenant_id == tenant).order_by(EVENTS.c.seq)
        )
    ]
    rows = change(rows)
    previous = GENESIS_HASH
    for seq, row in enumerate(rows, start=1):
        row["seq"], row["prev_hash"] = seq, previous
        row["row_hash"] = previous = hash_fields(row)
    await connection.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant))
    if rows:
        await connection.execute(insert(EVENTS), rows)
    await connection.execute(
        update(HEADS)
        .where(HEADS.c.tenant_id == tenant)
        .values(last_seq=len(rows), last_hash=previous)
    )


async def _drop_checkpoints(connection: AsyncConnection, tenant: str, above: int = 0) -> None:
    await connection.execute(
        delete(CHECKPOINTS).where(CHECKPOINTS.c.tenant_id == tenant, CHECKPOINTS.c.seq > above)
    )


def _kinds(report: VerifyReport) -> set[tuple[int, ProblemKind]]:
    return {(p.seq, p.kind) for p in report.problems}


def _edit(seq: int) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    def change(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[seq - 1]["payload"] = '{"i":"forged"}'
        return rows

    return change


async def test_an_untouched_chain_verifies_against_the_anchor(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 25)
    report = await _verify(db, tenant, config)
    assert report.ok, report.to_dict()
    assert (report.anchored_checkpoints, report.anchored_seq) == (2, 20)
    assert report.unanchored_events == 5 and report.unanchored_since is not None
    assert report.anchor is not None and report.anchor.startswith("file ")


async def test_checkpoints_deleted_and_the_chain_rewritten(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """Issue finding 1: without the anchor this verified clean."""
    await _append(db, tenant, config, 25)

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant)
        await _rewrite_chain(connection, tenant, _edit(7))

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert not report.ok
    assert _kinds(report) == {
        (10, ProblemKind.CHECKPOINT_MISSING),
        (20, ProblemKind.CHECKPOINT_MISSING),
        (10, ProblemKind.ANCHORED_EVENT_MISMATCH),
        (20, ProblemKind.ANCHORED_EVENT_MISMATCH),
    }
    assert report.first_problem is not None
    assert "not the one anchored" in next(
        p.detail for p in report.problems if p.kind is ProblemKind.ANCHORED_EVENT_MISMATCH
    )


async def test_a_forged_insert_with_recomputed_hashes(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 25)

    def forge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fake = {**rows[3], "event_id": uuid.uuid4().hex, "reason": "forged"}
        return [*rows[:4], fake, *rows[4:]]

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant)
        await _rewrite_chain(connection, tenant, forge)

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert (10, ProblemKind.ANCHORED_EVENT_MISMATCH) in _kinds(report)
    assert (20, ProblemKind.ANCHORED_EVENT_MISMATCH) in _kinds(report)


async def test_events_reordered_with_recomputed_hashes(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 25)

    def swap(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[2], rows[5] = rows[5], rows[2]
        return rows

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant)
        await _rewrite_chain(connection, tenant, swap)

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert (10, ProblemKind.ANCHORED_EVENT_MISMATCH) in _kinds(report)


async def test_truncation_past_checkpoints(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 25)

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant, above=10)
        await _rewrite_chain(connection, tenant, lambda rows: rows[:12])

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert _kinds(report) == {
        (13, ProblemKind.HEAD_BEHIND_ANCHOR),
        (20, ProblemKind.CHECKPOINT_MISSING),
    }
    behind = next(p for p in report.problems if p.kind is ProblemKind.HEAD_BEHIND_ANCHOR)
    assert "ends at seq 12" in behind.detail and "13..20 were cut off" in behind.detail


async def test_a_whole_chain_deleted(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 12)

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant)
        await connection.execute(delete(EVENTS).where(EVENTS.c.tenant_id == tenant))
        await connection.execute(delete(HEADS).where(HEADS.c.tenant_id == tenant))

    await _as_owner(db, attack)
    async with create_session_factory(db)() as session:
        reports = await verify_all(
            session,
            public_keys=[signing_key(config.key_file).public_key()],
            anchor=config.anchor,
        )
    gone = next(r for r in reports if r.tenant_id == tenant)
    assert (1, ProblemKind.HEAD_BEHIND_ANCHOR) in _kinds(gone)


async def test_the_tail_is_anchored_by_time_then_cuts_and_rewrites_are_seen(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """Issue finding 2: changes after the last count-based checkpoint. The tail is reported,
    and once the time-based checkpoint anchored it, cutting or rewriting it is detected."""
    await _append(db, tenant, config, 25)
    before = await _verify(db, tenant, config)
    assert before.ok and before.unanchored_events == 5
    # The background runner's pass, T seconds later: the quiet chain is checkpointed.
    sessions = create_session_factory(db)
    later = utcnow() + timedelta(seconds=config.every_seconds + 1)
    import governance.checkpoints as checkpoints

    real_utcnow = checkpoints.utcnow
    checkpoints.utcnow = lambda: later  # type: ignore[assignment]
    try:
        assert await run_due_checkpoints(sessions, config) >= 1
    finally:
        checkpoints.utcnow = real_utcnow  # type: ignore[assignment]
    await drain_notifications()
    anchored = await _verify(db, tenant, config)
    assert anchored.ok and anchored.unanchored_events == 0 and anchored.anchored_seq == 25

    async def cut(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant, above=20)
        await _rewrite_chain(connection, tenant, lambda rows: rows[:22])

    await _as_owner(db, cut)
    report = await _verify(db, tenant, config)
    assert (23, ProblemKind.HEAD_BEHIND_ANCHOR) in _kinds(report)


async def test_a_rewritten_tail_after_its_time_checkpoint(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 23)
    async with create_session_factory(db)() as session, session.begin():
        from governance.checkpoints import create_checkpoint

        assert await create_checkpoint(session, tenant, config) is not None
    await drain_notifications()

    async def rewrite(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant, above=20)
        await _rewrite_chain(connection, tenant, _edit(22))

    await _as_owner(db, rewrite)
    report = await _verify(db, tenant, config)
    assert _kinds(report) == {
        (23, ProblemKind.CHECKPOINT_MISSING),
        (23, ProblemKind.ANCHORED_EVENT_MISMATCH),
    }


async def test_an_altered_checkpoint(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 20)

    async def attack(connection: AsyncConnection) -> None:
        await connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.tenant_id == tenant, CHECKPOINTS.c.seq == 10)
            .values(row_hash="f" * 64)
        )

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert (10, ProblemKind.CHECKPOINT_ALTERED) in _kinds(report)
    assert (10, ProblemKind.CHECKPOINT_BAD_SIGNATURE) in _kinds(report)


async def test_reordered_checkpoints(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 20)

    async def attack(connection: AsyncConnection) -> None:
        rows = {
            row.seq: dict(row._mapping)
            for row in await connection.execute(
                select(CHECKPOINTS).where(CHECKPOINTS.c.tenant_id == tenant)
            )
        }
        await _drop_checkpoints(connection, tenant)
        await connection.execute(
            insert(CHECKPOINTS),
            [{**rows[20], "seq": 10}, {**rows[10], "seq": 20}],
        )

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    assert (10, ProblemKind.CHECKPOINT_REORDERED) in _kinds(report)
    assert (20, ProblemKind.CHECKPOINT_REORDERED) in _kinds(report)
    detail = next(p.detail for p in report.problems if p.seq == 10 and "anchored at" in p.detail)
    assert "is the one anchored at seq 20" in detail


async def test_attacks_caught_without_the_anchor_still_are(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """Editing, deleting and re-signing in place (what checkpoints alone already caught)."""
    await _append(db, tenant, config, 25)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from governance.checkpoints import checkpoint_message, fingerprint

    other = Ed25519PrivateKey.generate()

    async def attack(connection: AsyncConnection) -> None:
        await connection.execute(
            update(EVENTS)
            .where(EVENTS.c.tenant_id == tenant, EVENTS.c.seq == 4)
            .values(reason="edited")
        )
        await connection.execute(
            delete(EVENTS).where(EVENTS.c.tenant_id == tenant, EVENTS.c.seq == 15)
        )
        row = (
            await connection.execute(
                select(CHECKPOINTS).where(
                    CHECKPOINTS.c.tenant_id == tenant, CHECKPOINTS.c.seq == 20
                )
            )
        ).one()
        print_ = fingerprint(other.public_key())
        signature = other.sign(
            checkpoint_message(tenant, 20, row.row_hash, row.created_at, print_)
        ).hex()
        await connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.tenant_id == tenant, CHECKPOINTS.c.seq == 20)
            .values(signature=signature, key_fingerprint=print_)
        )

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config)
    kinds = _kinds(report)
    assert (4, ProblemKind.HASH_MISMATCH) in kinds
    assert (15, ProblemKind.SEQ_GAP) in kinds
    assert (20, ProblemKind.CHECKPOINT_UNKNOWN_KEY) in kinds
    assert (20, ProblemKind.CHECKPOINT_ALTERED) in kinds
    assert report.first_bad_seq == 4


async def test_a_forged_anchor_line_and_a_fork_are_reported(
    db: AsyncEngine, tenant: str, config: CheckpointConfig, tmp_path: Path
) -> None:
    """Someone who can append to the anchor but lacks the key gains nothing: the entry is
    reported; two different checkpoints for one seq read as a fork."""
    await _append(db, tenant, config, 10)
    assert isinstance(config.anchor, FileAnchor)
    snapshot = await config.anchor.snapshot()
    (entry,) = [e for e in snapshot.entries if e.tenant_id == tenant]
    forged = entry.to_json() | {"row_hash": "e" * 64}
    import orjson

    with config.anchor.path.open("ab") as handle:
        handle.write(orjson.dumps(forged) + b"\n" + b"not json\n")
    report = await _verify(db, tenant, config)
    kinds = _kinds(report)
    assert (10, ProblemKind.ANCHOR_CONFLICT) in kinds
    assert (10, ProblemKind.ANCHOR_ENTRY_INVALID) in kinds
    assert any("unreadable anchor" in warning for warning in report.warnings)


# ------------------------------------------------------------- the anchor itself attacked


def _anchor_path(config: CheckpointConfig) -> Path:
    assert isinstance(config.anchor, FileAnchor)
    return config.anchor.path


async def test_a_deleted_anchor_fails_once_anchoring_had_time(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """The anchor file deleted (an attacker with the file system): the database's signed
    checkpoints have no copy outside it any more."""
    await _append(db, tenant, config, 25)
    _anchor_path(config).unlink()
    just_now = await _verify(db, tenant, config)
    # Within the grace a checkpoint's append may still be in flight: said, not failed.
    assert just_now.ok and any("not in the anchor yet" in w for w in just_now.warnings)
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {(10, ProblemKind.ANCHOR_MISSING)}
    detail = report.problems[0].detail
    assert "holds nothing" in detail and "2 signed checkpoint(s)" in detail
    assert "assistant audit anchor init" in detail


async def test_an_emptied_anchor_fails(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    await _append(db, tenant, config, 20)
    _anchor_path(config).write_bytes(b"")
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {(10, ProblemKind.ANCHOR_MISSING)}


async def test_a_truncated_anchor_fails_with_each_lost_checkpoint(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """The anchor cut back to its first line: the database's later checkpoints are not in it."""
    await _append(db, tenant, config, 35)
    path = _anchor_path(config)
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {
        (20, ProblemKind.CHECKPOINT_UNANCHORED),
        (30, ProblemKind.CHECKPOINT_UNANCHORED),
    }
    assert "is not in the anchor" in report.problems[0].detail
    assert report.anchored_seq == 10 and report.unanchored_events == 25


async def test_a_deleted_anchor_and_deleted_checkpoints_behind_a_rewritten_chain(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """The whole attack of gap 1: anchor deleted, every checkpoint deleted, an event edited
    and every hash recomputed. Nothing signed is left to compare; the chain's length is."""
    await _append(db, tenant, config, 25)
    _anchor_path(config).unlink()

    async def attack(connection: AsyncConnection) -> None:
        await _drop_checkpoints(connection, tenant)
        await _rewrite_chain(connection, tenant, _edit(7))

    await _as_owner(db, attack)
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {(10, ProblemKind.CHECKPOINT_OVERDUE)}
    assert "25 events follow the last checkpoint (seq 0)" in report.problems[0].detail


async def test_a_forged_epoch_cannot_excuse_lost_checkpoints(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """An epoch entry written without the signing key (to pretend the anchor began after
    the lost checkpoints) is ignored and said so."""
    import orjson

    from governance.anchor import EPOCH_TENANT

    await _append(db, tenant, config, 30)
    path = _anchor_path(config)
    first = path.read_bytes().splitlines(keepends=True)[0]
    entry = orjson.loads(first)
    forged = entry | {
        "tenant_id": EPOCH_TENANT,
        "seq": 1,
        "created_at": (utcnow() + timedelta(hours=1)).isoformat(),
    }
    path.write_bytes(first + orjson.dumps(forged) + b"\n")
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {
        (20, ProblemKind.CHECKPOINT_UNANCHORED),
        (30, ProblemKind.CHECKPOINT_UNANCHORED),
    }
    assert report.anchor_started_at is None
    assert any("not signed by a trusted key" in w for w in report.warnings)


async def test_anchor_init_covers_a_deployment_that_had_no_anchor(
    db: AsyncEngine, tenant: str, config: CheckpointConfig, tmp_path: Path
) -> None:
    """Checkpoints signed while no anchor was configured fail against an empty anchor;
    `anchor init` (audited) starts it: older checkpoints are history it does not cover,
    every later one (the heads, at once) must be in it, so deleting it fails again."""
    from dataclasses import replace

    from governance.anchor import AnchorError
    from governance.anchor_epochs import start_anchor
    from governance.audit_models import EVENTS as EVENT_TABLE

    await _append(db, tenant, replace(config, anchor=None), 25)
    assert not (await _verify(db, tenant, config, later=True)).ok
    sessions = create_session_factory(db)
    started = await start_anchor(
        sessions, config, reason="first anchor of this deployment", started_by="cli:ops"
    )
    await drain_notifications()
    assert started.epoch.seq == 1 and (tenant, 25) in started.checkpoints
    report = await _verify(db, tenant, config, later=True)
    assert report.ok, report.to_dict()
    assert report.checkpoints_before_anchor == 2 and report.anchored_seq == 25
    assert report.anchor_started_at == started.epoch.created_at
    async with sessions() as session:
        audited = (
            await session.execute(
                select(EVENT_TABLE.c.actor_id, EVENT_TABLE.c.payload).where(
                    EVENT_TABLE.c.tenant_id == "_system",
                    EVENT_TABLE.c.action == "audit.anchor.started",
                )
            )
        ).all()
    assert any(actor == "cli:ops" and "first anchor" in payload for actor, payload in audited)
    with pytest.raises(AnchorError, match="started once"):
        await start_anchor(sessions, config, reason="again", started_by="cli:ops")
    _anchor_path(config).unlink()
    gone = await _verify(db, tenant, config, later=True)
    # The epoch went with the file: every checkpoint is required again.
    assert _kinds(gone) == {(10, ProblemKind.ANCHOR_MISSING)}
    assert "3 signed checkpoint(s)" in gone.problems[0].detail


async def test_the_runner_does_not_refill_a_deleted_anchor_with_old_checkpoints(
    db: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """The runner's sweep heals an outage (recent checkpoints) but does not copy old ones
    into a deleted anchor, which would hide the deletion from verify."""
    import governance.checkpoints as checkpoints

    await _append(db, tenant, config, 25)
    _anchor_path(config).unlink()
    later = utcnow() + checkpoints.SWEEP_HORIZON + timedelta(minutes=1)
    real_utcnow = checkpoints.utcnow
    checkpoints.utcnow = lambda: later  # type: ignore[assignment]
    try:
        # The quiet chain's head is due: checkpointed (and anchored) now; 10 and 20 are old.
        assert await run_due_checkpoints(create_session_factory(db), config) == 1
    finally:
        checkpoints.utcnow = real_utcnow  # type: ignore[assignment]
    await drain_notifications()
    anchored = {e.seq for e in (await FileAnchor(_anchor_path(config)).snapshot()).entries}
    assert anchored == {25}
    report = await _verify(db, tenant, config, later=True)
    assert _kinds(report) == {
        (10, ProblemKind.CHECKPOINT_UNANCHORED),
        (20, ProblemKind.CHECKPOINT_UNANCHORED),
    }
