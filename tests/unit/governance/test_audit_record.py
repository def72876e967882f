"""Appending to the audit chain on SQLite, verifying it, and catching every kind of tampering."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistant.core.errors import ValidationFailedError
from assistant.core.principal import Principal, Role
from governance.audit import AuditAction, AuditEventIn, Outcome, StoredEvent, record
from governance.audit_hash import GENESIS_HASH
from governance.audit_verify import ProblemKind, VerifyReport, verify_chain
from governance.checkpoints import (
    CheckpointConfig,
    checkpoint_due,
    create_checkpoint,
    load_public_key,
    run_due_checkpoints,
    signing_key,
)

ALICE = Principal(
    user_id="alice",
    tenant_id="acme",
    roles=frozenset({Role.DELEGATE}),
    on_behalf_of="ceo",
    source_ip="192.0.2.7",
)
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.fixture
def config(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(key_file=tmp_path / "keys" / "audit.pem", every_events=5)


async def _append(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
    count: int,
    actor: Principal = ALICE,
) -> list[StoredEvent]:
    stored = []
    async with sessions() as session:
        for i in range(count):
            stored.append(
                await record(
                    session,
                    actor,
                    AuditEventIn(
                        action=AuditAction.ACTION_PROPOSED,
                        resource_type="action",
                        resource_id=f"act-{i}",
                        payload={"n": i},
                    ),
                    checkpoints=config,
                )
            )
        await session.commit()
    return stored


async def _verify(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
    tenant: str = "acme",
    **kwargs: object,
) -> VerifyReport:
    key = load_public_key(config.key_file)
    async with sessions() as session:
        return await verify_chain(session, tenant, public_keys=[key] if key else [], **kwargs)  # type: ignore[arg-type]


async def _raw(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as connection:
        for statement in statements:
            await connection.exec_driver_sql(statement)


async def test_append_and_verify(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    stored = await _append(sessions, config, 12)
    assert [e.seq for e in stored] == list(range(1, 13))
    assert stored[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.row_hash for a, b in zip(stored, stored[1:], strict=False))
    first = stored[0]
    assert (first.actor_id, first.on_behalf_of, first.roles, first.source_ip) == (
        "alice",
        "ceo",
        ["delegate"],
        "192.0.2.7",
    )
    assert first.outcome == Outcome.SUCCESS and first.schema_version == 1
    report = await _verify(sessions, config)
    assert report.ok, report.to_dict()
    assert (report.events, report.last_seq, report.head_seq, report.checkpoints) == (12, 12, 12, 2)


async def test_chains_are_per_tenant(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    other = Principal(user_id="bob", tenant_id="globex")
    async with sessions() as session:
        for actor in (ALICE, other, ALICE, other, ALICE):
            await record(
                session, actor, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config
            )
        await session.commit()
        seqs = (
            await session.execute(
                text("SELECT tenant_id, seq FROM audit_events ORDER BY tenant_id, seq")
            )
        ).all()
    assert seqs == [("acme", 1), ("acme", 2), ("acme", 3), ("globex", 1), ("globex", 2)]
    assert (await _verify(sessions, config, "acme")).ok
    assert (await _verify(sessions, config, "globex")).ok


async def test_rolled_back_events_leave_no_gap(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    await _append(sessions, config, 2)
    async with sessions() as session:
        await record(session, ALICE, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config)
        await session.rollback()
        # After the rollback the session reads the head again instead of trusting its cache.
        event = await record(
            session, ALICE, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config
        )
        assert event.seq == 3
        nested = await session.begin_nested()
        await record(session, ALICE, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config)
        await nested.rollback()
        event = await record(
            session, ALICE, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config
        )
        assert event.seq == 4
        await session.commit()
    assert (await _verify(sessions, config)).ok


async def test_correlation_id_defaults_to_the_logging_context(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    structlog.contextvars.bind_contextvars(correlation_id="req-42")
    try:
        async with sessions() as session:
            implicit = await record(
                session, ALICE, AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config
            )
            explicit = await record(
                session,
                ALICE,
                AuditEventIn(action=AuditAction.LLM_CALL, correlation_id="mine"),
                checkpoints=config,
            )
            await session.commit()
    finally:
        structlog.contextvars.clear_contextvars()
    assert (implicit.correlation_id, explicit.correlation_id) == ("req-42", "mine")


async def test_occurred_at_is_kept_and_must_be_aware(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    when = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    async with sessions() as session:
        event = await record(
            session,
            ALICE,
            AuditEventIn(action=AuditAction.MAIL_INGESTED, occurred_at=when),
            checkpoints=config,
        )
        assert event.occurred_at == when and event.recorded_at > when
        with pytest.raises(ValidationFailedError):
            await record(
                session,
                ALICE,
                AuditEventIn(action=AuditAction.MAIL_INGESTED, occurred_at=datetime(2026, 1, 1)),
                checkpoints=config,
            )
        await session.commit()
    assert (await _verify(sessions, config)).ok


async def test_secrets_never_reach_the_stored_row(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    secrets = [
        "hunter2",
        "sk-live-0123456789abcdefghij",
        "tok-secret-value",
        JWT,
        "client-secret-xyz",
        "Zm9vOmJhcg",
    ]
    async with sessions() as session:
        event = await record(
            session,
            ALICE,
            AuditEventIn(
                action=AuditAction.ACTION_PROPOSED,
                reason=f"retry with password={secrets[0]}",
                payload={
                    "kind": "email.send",
                    "arguments": {
                        "to": ["bob@example.com"],
                        "password": secrets[0],
                        "api_key": secrets[1],
                        "access_token": secrets[2],
                        "body": f"here is the token {JWT} for you",
                        "nested": [{"client_secret": secrets[4]}],
                        "headers": {"Authorization": f"Basic {secrets[5]}"},
                    },
                },
            ),
            checkpoints=config,
        )
        await session.commit()
        rows = (await session.execute(text("SELECT * FROM audit_events"))).all()
    stored = repr(rows)
    for secret in secrets:
        assert secret not in stored
        assert secret not in repr(event)
    assert event.payload["arguments"]["to"] == ["bob@example.com"]
    assert event.payload["arguments"]["password"] == "[REDACTED]"
    assert (await _verify(sessions, config)).ok


async def test_oversized_fields_are_refused_alike_on_every_database(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    async with sessions() as session:
        with pytest.raises(ValidationFailedError, match="too large"):
            await record(
                session,
                ALICE,
                AuditEventIn(action=AuditAction.LLM_CALL, payload={"items": list(range(100_000))}),
                checkpoints=config,
            )
        with pytest.raises(ValidationFailedError, match="resource_id"):
            await record(
                session,
                ALICE,
                AuditEventIn(action=AuditAction.LLM_CALL, resource_id="r" * 321),
                checkpoints=config,
            )
        event = await record(
            session,
            ALICE,
            AuditEventIn(action=AuditAction.LLM_CALL, reason="why " * 1000),
            checkpoints=config,
        )
        assert event.seq == 1 and event.reason is not None and len(event.reason) == 2003
        await session.commit()


async def test_update_and_delete_are_refused_by_triggers(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 5)  # one checkpoint at seq 5
    for statement in (
        "UPDATE audit_events SET reason = 'x' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "UPDATE audit_checkpoints SET row_hash = 'x'",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(IntegrityError, match="append-only"):
            await _raw(engine, statement)
    # The chain head stays writable (appends move it) ...
    await _raw(engine, "UPDATE audit_chain_heads SET last_seq = last_seq")
    # ... and an insert that does not follow it is refused.
    with pytest.raises(IntegrityError, match="does not follow the chain head"):
        await _raw(
            engine,
            "INSERT INTO audit_events SELECT tenant_id, seq + 10, "
            "substr(event_id, 2) || 'x', occurred_at, recorded_at, actor_type, actor_id, "
            "on_behalf_of, roles, "
            "source_ip, action, resource_type, resource_id, connector, outcome, reason, "
            "correlation_id, action_id, idempotency_key, payload, schema_version, "
            "prev_hash, row_hash FROM audit_events WHERE seq = 5",
        )
    assert (await _verify(sessions, config)).ok


async def test_edited_payload_is_reported_at_its_seq(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 8)
    await _raw(
        engine,
        "DROP TRIGGER audit_events_no_update",
        """UPDATE audit_events SET payload = '{"n":99}' WHERE seq = 3""",
    )
    report = await _verify(sessions, config)
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.HASH_MISMATCH


async def test_recomputed_hash_still_breaks_the_next_link_and_the_checkpoint(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    """An editor who also rewrites the row's hash is caught by the next event's prev_hash and
    by the signed checkpoint over that event."""
    await _append(sessions, config, 8)
    async with sessions() as session:
        row = (
            await session.execute(
                text(
                    "SELECT action, action_id, actor_id, actor_type, connector, correlation_id, "
                    "event_id, idempotency_key, occurred_at, on_behalf_of, outcome, payload, "
                    "prev_hash, reason, recorded_at, resource_id, resource_type, roles, "
                    "schema_version, seq, source_ip, tenant_id FROM audit_events WHERE seq = 5"
                )
            )
        ).one()
    from governance.audit_hash import hash_row

    forged = list(row)
    forged[11] = '{"n":99}'
    await _raw(
        engine,
        "DROP TRIGGER audit_events_no_update",
        f"""UPDATE audit_events SET payload = '{{"n":99}}',
               row_hash = '{hash_row(forged)}' WHERE seq = 5""",
    )
    report = await _verify(sessions, config)
    kinds = {(p.seq, p.kind) for p in report.problems}
    assert (6, ProblemKind.CHAIN_BROKEN) in kinds
    assert (5, ProblemKind.CHECKPOINT_MISMATCH) in kinds
    assert report.first_bad_seq == 5


async def test_deleted_middle_row_is_a_gap(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 9)
    await _raw(
        engine, "DROP TRIGGER audit_events_no_delete", "DELETE FROM audit_events WHERE seq = 4"
    )
    report = await _verify(sessions, config)
    assert report.first_bad_seq == 4
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.SEQ_GAP


async def test_truncated_tail_after_the_last_checkpoint(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 13)  # checkpoints at 5 and 10
    await _raw(
        engine, "DROP TRIGGER audit_events_no_delete", "DELETE FROM audit_events WHERE seq > 11"
    )
    report = await _verify(sessions, config)
    assert report.first_bad_seq == 12
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.TRUNCATED_TAIL


async def test_truncated_tail_with_a_rewound_head_is_caught_by_the_checkpoint(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    stored = await _append(sessions, config, 12)  # checkpoints at 5 and 10
    await _raw(
        engine,
        "DROP TRIGGER audit_events_no_delete",
        "DELETE FROM audit_events WHERE seq > 8",
        f"UPDATE audit_chain_heads SET last_seq = 8, last_hash = '{stored[7].row_hash}'",
    )
    report = await _verify(sessions, config)
    assert [(p.seq, p.kind) for p in report.problems] == [(10, ProblemKind.CHECKPOINT_BEYOND_TAIL)]


async def test_forged_checkpoint_signature_is_reported(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 10)
    report = await _verify(sessions, config)
    assert report.ok and report.checkpoints == 2
    await _raw(
        engine,
        "DROP TRIGGER audit_checkpoints_no_update",
        "UPDATE audit_checkpoints SET signature = '00' || substr(signature, 3) WHERE seq = 10",
    )
    report = await _verify(sessions, config)
    assert [(p.seq, p.kind) for p in report.problems] == [
        (10, ProblemKind.CHECKPOINT_BAD_SIGNATURE)
    ]


async def test_checkpoint_of_an_untrusted_key_is_reported(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
    tmp_path: Path,
) -> None:
    await _append(sessions, config, 5)
    stranger = tmp_path / "other.pem"
    signing_key(stranger)
    async with sessions() as session:
        report = await verify_chain(
            session, "acme", public_keys=[signing_key(stranger).public_key()]
        )
        unkeyed = await verify_chain(session, "acme")
    assert [p.kind for p in report.problems] == [ProblemKind.CHECKPOINT_UNKNOWN_KEY]
    assert [p.kind for p in unkeyed.problems] == [ProblemKind.CHECKPOINT_UNKNOWN_KEY]


def test_signing_key_is_created_private(config: CheckpointConfig) -> None:
    key = signing_key(config.key_file)
    assert stat.S_IMODE(config.key_file.stat().st_mode) == 0o600
    assert signing_key(config.key_file).public_key() == key.public_key()
    assert list(config.key_file.parent.iterdir()) == [config.key_file]


async def test_time_based_checkpoints(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    config = CheckpointConfig(key_file=tmp_path / "k.pem", every_events=0, every_seconds=60)
    async with sessions() as session:
        assert not await checkpoint_due(session, "acme", config)
    await _append(sessions, config, 3)
    later = datetime.now(UTC) + timedelta(seconds=61)
    async with sessions() as session:
        assert not await checkpoint_due(session, "acme", config)
        assert await checkpoint_due(session, "acme", config, now=later)
    async with sessions() as session:
        made = await create_checkpoint(session, "acme", config)
        assert made is not None and made.seq == 3
        assert await create_checkpoint(session, "acme", config) is None  # nothing new
        await session.commit()
    async with sessions() as session:
        assert not await checkpoint_due(session, "acme", config, now=later)
    assert await run_due_checkpoints(sessions, config) == 0
    report = await _verify(sessions, config)
    assert report.ok and report.checkpoints == 1


async def test_parallel_scan_matches_the_sequential_one(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
) -> None:
    await _append(sessions, config, 30)
    parallel = await _verify(sessions, config, workers=2, parallel_min_events=0)
    assert parallel.ok and parallel.events == 30, parallel.to_dict()
    await _raw(
        engine,
        "DROP TRIGGER audit_events_no_delete",
        "DROP TRIGGER audit_events_no_update",
        "DELETE FROM audit_events WHERE seq = 15",
        """UPDATE audit_events SET payload = '{"n":0}' WHERE seq = 22""",
    )
    parallel = await _verify(sessions, config, workers=2, parallel_min_events=0)
    sequential = await _verify(sessions, config, workers=1)
    assert (parallel.workers, sequential.workers) == (2, 0)
    assert {**parallel.to_dict(), "workers": 0} == sequential.to_dict()
    assert [(p.seq, p.kind) for p in sorted(sequential.problems, key=lambda p: p.seq)] == [
        (15, ProblemKind.SEQ_GAP),
        (15, ProblemKind.CHECKPOINT_MISMATCH),
        (22, ProblemKind.HASH_MISMATCH),
    ]


async def test_documents_built_in_sqlite_fall_back_to_the_exact_hash(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
    settings: Any,
) -> None:
    """The worker's fast path (documents built by SQLite's json_object) is never trusted
    alone: a row it encodes differently is hashed the exact way, and a value SQLite's JSON
    functions refuse sends its batch down the exact path."""
    from governance.audit_scan import scan_sqlite_range

    await _append(sessions, config, 12)
    path = str(settings.data_dir / "assistant.db")
    await _raw(
        engine,
        "DROP TRIGGER audit_events_no_update",
        # The same instant written another way: the fast document differs, the exact hash
        # (which parses the timestamp) does not.
        "UPDATE audit_events SET recorded_at = substr(recorded_at, 1, 10) || 'T' || "
        "substr(recorded_at, 12) || '+00:00' WHERE seq = 3",
    )
    fast = scan_sqlite_range(path, "acme", 0, 12)
    exact = scan_sqlite_range(path, "acme", 0, 12, documents_in_sql=False)
    assert (fast.count, fast.problems) == (exact.count, exact.problems) == (12, [])
    await _raw(engine, "UPDATE audit_events SET payload = '{not json' WHERE seq = 7")
    fast = scan_sqlite_range(path, "acme", 0, 12)
    exact = scan_sqlite_range(path, "acme", 0, 12, documents_in_sql=False)
    assert fast.problems == exact.problems
    assert [(p.seq, p.kind) for p in fast.problems] == [(7, ProblemKind.HASH_MISMATCH)]
