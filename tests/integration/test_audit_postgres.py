"""The audit log on PostgreSQL: triggers, the application role, concurrent appends, tampering."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import Principal, Role
from governance.audit import AuditAction, AuditEventIn, record, record_at_commit
from governance.audit_verify import ProblemKind, verify_chain
from governance.checkpoints import CheckpointConfig, signing_key

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=10)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def config(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(key_file=tmp_path / "audit.pem", every_events=10)


def _actor(tenant: str) -> Principal:
    return Principal(user_id="alice", tenant_id=tenant, roles=frozenset({Role.ADMIN}))


async def _append(engine: AsyncEngine, tenant: str, config: CheckpointConfig, count: int) -> None:
    async with create_session_factory(engine)() as session:
        for i in range(count):
            await record(
                session,
                _actor(tenant),
                AuditEventIn(action=AuditAction.ACTION_SUCCEEDED, payload={"i": i, "token": "abc"}),
                checkpoints=config,
            )
        await session.commit()


async def _verify(engine: AsyncEngine, tenant: str, config: CheckpointConfig):  # type: ignore[no-untyped-def]
    async with create_session_factory(engine)() as session:
        return await verify_chain(
            session, tenant, public_keys=[signing_key(config.key_file).public_key()]
        )


async def test_concurrent_appends_make_one_gapless_chain(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    sessions = create_session_factory(pg)

    async def append(i: int) -> int:
        async with sessions() as session:
            event = await record(
                session,
                _actor(tenant),
                AuditEventIn(action=AuditAction.LLM_CALL, payload={"i": i}),
                checkpoints=config,
            )
            await session.commit()
            return event.seq

    seqs = await asyncio.gather(*(append(i) for i in range(50)))
    assert sorted(seqs) == list(range(1, 51))
    report = await _verify(pg, tenant, config)
    assert report.ok, report.to_dict()
    assert (report.events, report.checkpoints) == (50, 5)


async def test_events_chained_at_commit_hold_the_chain_lock_for_the_commit_only(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    """A request's transaction queues its events; other writers of the tenant's chain are
    not held up by it until it commits (with record(), they wait for its end)."""
    sessions = create_session_factory(pg)
    slow_event = AuditEventIn(action=AuditAction.ACTION_PROPOSED, payload={"who": "slow"})
    async with sessions() as slow:
        await record_at_commit(slow, _actor(tenant), slow_event, checkpoints=config)
        await slow.execute(text("SELECT 1"))  # its transaction is open on the server
        await asyncio.wait_for(_append(pg, tenant, config, 3), timeout=20)
        await slow.commit()
    async with sessions() as holding:
        await record(holding, _actor(tenant), slow_event, checkpoints=config)
        with pytest.raises(TimeoutError):  # the lock is held from the append to the end
            await asyncio.wait_for(_append(pg, tenant, config, 1), timeout=2)
        await holding.commit()
    report = await _verify(pg, tenant, config)
    assert report.ok, report.to_dict()
    assert report.events == 5


async def test_update_delete_truncate_are_refused(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    await _append(pg, tenant, config, 10)
    for statement in (
        f"UPDATE audit_events SET reason = 'x' WHERE tenant_id = '{tenant}'",
        f"DELETE FROM audit_events WHERE tenant_id = '{tenant}'",
        f"UPDATE audit_checkpoints SET row_hash = 'x' WHERE tenant_id = '{tenant}'",
        f"DELETE FROM audit_checkpoints WHERE tenant_id = '{tenant}'",
        "TRUNCATE audit_events",
        "TRUNCATE audit_checkpoints",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with pg.begin() as connection:
                await connection.exec_driver_sql(statement)
    assert (await _verify(pg, tenant, config)).ok


async def test_insert_off_the_chain_head_is_refused(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    await _append(pg, tenant, config, 2)
    with pytest.raises(DBAPIError, match="does not follow the chain head"):
        async with pg.begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO audit_events SELECT tenant_id, seq + 5, md5(event_id), "
                "occurred_at, recorded_at, actor_type, actor_id, on_behalf_of, roles, source_ip, "
                "action, resource_type, resource_id, connector, outcome, reason, correlation_id, "
                "action_id, idempotency_key, payload, schema_version, prev_hash, row_hash "
                f"FROM audit_events WHERE tenant_id = '{tenant}' AND seq = 2"
            )


async def test_application_role_may_append_but_not_update(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    async with pg.connect() as connection:
        transaction = await connection.begin()
        await connection.exec_driver_sql("SET LOCAL ROLE assistant_app")
        session = AsyncSession(bind=connection)
        event = await record(
            session, _actor(tenant), AuditEventIn(action=AuditAction.LLM_CALL), checkpoints=config
        )
        assert event.seq == 1
        await transaction.commit()
    for statement in (
        f"UPDATE audit_events SET reason = 'x' WHERE tenant_id = '{tenant}'",
        f"DELETE FROM audit_events WHERE tenant_id = '{tenant}'",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
    ):
        async with pg.connect() as connection:
            transaction = await connection.begin()
            await connection.exec_driver_sql("SET LOCAL ROLE assistant_app")
            with pytest.raises(DBAPIError, match="permission denied|must be owner"):
                await connection.exec_driver_sql(statement)
            await transaction.rollback()
    assert (await _verify(pg, tenant, config)).ok


async def test_tampering_is_found_on_postgres(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    await _append(pg, tenant, config, 25)
    async with pg.begin() as connection:
        # What an attacker with the owner's rights could do: switch the guard off, edit, and
        # switch it on again.
        await connection.exec_driver_sql(
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
        )
        await connection.exec_driver_sql(
            "UPDATE audit_events SET payload = '{\"i\":1000}' "
            f"WHERE tenant_id = '{tenant}' AND seq = 7"
        )
        await connection.exec_driver_sql(
            f"DELETE FROM audit_events WHERE tenant_id = '{tenant}' AND (seq = 12 OR seq > 22)"
        )
        await connection.exec_driver_sql(
            "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"
        )
    report = await _verify(pg, tenant, config)
    assert report.first_bad_seq == 7
    found = {(p.seq, p.kind) for p in report.problems}
    assert found == {
        (7, ProblemKind.HASH_MISMATCH),
        (12, ProblemKind.SEQ_GAP),
        (23, ProblemKind.TRUNCATED_TAIL),
    }
    async with pg.connect() as connection:
        kept = await connection.execute(
            text("SELECT count(*) FROM audit_events WHERE tenant_id = :t"), {"t": tenant}
        )
        assert kept.scalar_one() == 21


async def test_migration_shares_the_cluster_role(postgres_url: str) -> None:
    """Upgrading when the role exists works; downgrading one database while another still
    grants to the role keeps the role and does not fail."""
    import asyncpg

    from assistant.core.db import downgrade
    from tests.fixtures.postgres import ADMIN_URL

    names = [f"assistant_test_role_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        engines = [create_engine(postgres_url.rsplit("/", 1)[0] + "/" + name) for name in names]
        try:
            for engine in engines:
                await upgrade(engine)
            await downgrade(engines[0], "base")
            assert (
                await admin.fetchval(
                    "SELECT count(*) FROM pg_roles WHERE rolname = 'assistant_app'"
                )
                == 1
            )
            await upgrade(engines[0])
            for engine in engines:
                async with engine.connect() as connection:
                    granted = await connection.execute(
                        text(
                            "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) "
                            "FROM information_schema.role_table_grants "
                            "WHERE grantee = 'assistant_app' AND table_name = 'audit_events'"
                        )
                    )
                    assert granted.scalar_one() == "INSERT,SELECT"
                await downgrade(engine, "base")
        finally:
            for engine in engines:
                await engine.dispose()
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def service_role(pg: AsyncEngine, postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine connected as a login role that is only a member of assistant_app, as a
    deployment's service would be (migrations ran as the owner, by the ``pg`` fixture)."""
    import asyncpg

    from tests.fixtures.postgres import ADMIN_URL

    name = f"assistant_svc_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    await admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE assistant_app")
    engine = create_engine(postgres_url.replace("://postgres@", f"://{name}@", 1), pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()


async def test_the_service_role_appends_audit_rows_and_never_rewrites_them(
    service_role: AsyncEngine, tenant: str, config: CheckpointConfig
) -> None:
    """Issue finding 3: the service ran with rights to UPDATE and DELETE audit rows."""
    await _append(service_role, tenant, config, 12)  # events, a checkpoint, the head moved
    from integrations.sandbox.seed import seed_sandbox
    from tests.conftest import FIXED_NOW, SEED_DIR

    # The rest of the application's tables stay writable.
    await seed_sandbox(
        create_session_factory(service_role), tenant_id=tenant, seed_dir=SEED_DIR, now=FIXED_NOW
    )
    refused = {
        f"UPDATE audit_events SET reason = 'x' WHERE tenant_id = '{tenant}'": "permission denied",
        f"DELETE FROM audit_events WHERE tenant_id = '{tenant}'": "permission denied",
        "TRUNCATE audit_events": "permission denied",
        f"UPDATE audit_checkpoints SET row_hash = 'x' WHERE tenant_id = '{tenant}'": (
            "permission denied"
        ),
        f"DELETE FROM audit_checkpoints WHERE tenant_id = '{tenant}'": "permission denied",
        f"DELETE FROM audit_chain_heads WHERE tenant_id = '{tenant}'": "permission denied",
        f"UPDATE audit_chain_heads SET last_seq = 5 WHERE tenant_id = '{tenant}'": (
            "moves only by appending events"
        ),
        "INSERT INTO audit_chain_heads VALUES ('forged', 9, 'x')": "starts at seq 0",
        "ALTER TABLE audit_events DISABLE TRIGGER USER": "must be owner",
        "UPDATE alembic_version SET version_num = 'x'": "permission denied",
    }
    for statement, reason in refused.items():
        with pytest.raises(DBAPIError, match=reason):
            async with service_role.begin() as connection:
                await connection.exec_driver_sql(statement)
    assert (await _verify(service_role, tenant, config)).ok


async def test_the_service_refuses_in_production_to_connect_as_the_owner(
    pg: AsyncEngine, service_role: AsyncEngine
) -> None:
    from governance.audit_chain import rewrite_rights

    async with create_session_factory(pg)() as session:
        assert await rewrite_rights(session) == "postgres"
    async with create_session_factory(service_role)() as session:
        assert await rewrite_rights(session) is None


async def test_services_refuse_an_owner_connection_in_production(
    pg: AsyncEngine, postgres_url: str, tmp_path: Path
) -> None:
    from assistant.core.errors import ConfigurationError
    from assistant.core.settings import Settings
    from assistant.services import Services

    settings = Settings(
        environment="production",
        secret_key="p" * 40,
        data_dir=tmp_path / "data",
        database={"url": postgres_url},
        audit={"checkpoint_key_file": tmp_path / "k.pem", "anchor": {"file": tmp_path / "a"}},
    )
    with pytest.raises(ConfigurationError) as caught:
        await Services.build(settings)
    assert "can UPDATE or DELETE audit rows" in caught.value.problems[0]


async def test_worker_processes_scan_postgres_like_the_event_loop_does(
    pg: AsyncEngine,
    tenant: str,
    config: CheckpointConfig,
) -> None:
    """Long chains on PostgreSQL are hashed by worker processes (off the event loop)."""
    await _append(pg, tenant, config, 30)
    key = signing_key(config.key_file).public_key()
    async with create_session_factory(pg)() as session:
        parallel = await verify_chain(
            session, tenant, public_keys=[key], workers=2, parallel_min_events=0
        )
    assert parallel.ok and parallel.workers == 2 and parallel.events == 30, parallel.to_dict()
    async with pg.begin() as connection:
        await connection.exec_driver_sql(
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
        )
        await connection.exec_driver_sql(
            "UPDATE audit_events SET payload = '{\"i\":1000}' "
            f"WHERE tenant_id = '{tenant}' AND seq = 17"
        )
        await connection.exec_driver_sql(
            "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"
        )
    async with create_session_factory(pg)() as session:
        parallel = await verify_chain(
            session, tenant, public_keys=[key], workers=2, parallel_min_events=0
        )
        in_loop = await verify_chain(session, tenant, public_keys=[key])
    assert {**parallel.to_dict(), "workers": 0} == in_loop.to_dict()
    assert [(p.seq, p.kind) for p in parallel.problems] == [(17, ProblemKind.HASH_MISMATCH)]
