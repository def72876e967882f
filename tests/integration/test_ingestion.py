"""Mail ingestion against a real Dovecot: cursors, de-duplication, resync, outages.

Runs on SQLite and on PostgreSQL (the latter skips without a server, fails under CI).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.ingestion.models import MailCursor, QueueStatus, TriageQueueItem
from assistant.ingestion.service import MailIngestor, claim, complete, queue_counts
from integrations.base import ConnectorContext
from integrations.errors import RetriableConnectorError
from integrations.imap import ImapEmailConfig, ImapEmailConnector, build_connector
from tests.fixtures.dovecot import MailServer, mail_server  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "sqlite":
        return str(settings.database_url)
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


def _connector(server: MailServer, address: str, **extra: Any) -> ImapEmailConnector:
    config = ImapEmailConfig.model_validate(server.imap_config(address, **extra))
    return build_connector(config, ConnectorContext(tenant_id="t", instance_name="imap"))


async def _deliver(server: MailServer, address: str, count: int, prefix: str = "m") -> None:
    for i in range(count):
        await asyncio.to_thread(
            server.deliver, address, f"{prefix} {i}", f"body {i}", "alice@partner.example"
        )


async def _queued(sessions: async_sessionmaker[AsyncSession], tenant: str) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(TriageQueueItem.message["subject"].as_string()).where(
                TriageQueueItem.tenant_id == tenant
            )
        )
        return sorted(str(r[0]) for r in rows)


async def test_sync_queues_each_message_once(
    db: async_sessionmaker[AsyncSession],
    mail_server: MailServer,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    address = mail_server.add_user()
    await _deliver(mail_server, address, 7)
    connector = _connector(mail_server, address)
    ingestor = MailIngestor(db, page_size=3)
    try:
        first = await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        assert (first.pages, first.queued, first.duplicates) == (3, 7, 0)
        again = await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        assert again.queued == 0 and again.fetched == 0
        await _deliver(mail_server, address, 2, prefix="late")
        late = await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        assert late.queued == 2
        assert len(await _queued(db, tenant)) == 9
    finally:
        await connector.aclose()


async def test_moved_message_is_not_queued_twice_and_resync_adds_nothing(
    db: async_sessionmaker[AsyncSession],
    mail_server: MailServer,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    address = mail_server.add_user()
    await _deliver(mail_server, address, 3)
    connector = _connector(mail_server, address)
    ingestor = MailIngestor(db)
    try:
        await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        batch = await connector.sync("INBOX")
        await connector.move_message(batch.messages[0].id, "Archive")
        archive = await ingestor.sync_folder(tenant, "imap", connector, "Archive")
        assert archive.fetched == 1 and archive.duplicates == 1 and archive.queued == 0
        # A new UIDVALIDITY invalidates the cursor: the full resync queues only new mail.
        await connector.aclose()
        await asyncio.to_thread(
            mail_server.doveadm,
            "mailbox",
            "update",
            "-u",
            address,
            "--uid-validity",
            "777",
            "INBOX",
        )
        await _deliver(mail_server, address, 1, prefix="after")
        resync = await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        assert resync.full_resync and resync.queued == 1 and resync.duplicates == 2
        assert await _queued(db, tenant) == ["after 0", "m 0", "m 1", "m 2"]
    finally:
        await connector.aclose()


async def test_outage_mid_sync_loses_nothing(
    db: async_sessionmaker[AsyncSession],
    mail_server: MailServer,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    address = mail_server.add_user()
    await _deliver(mail_server, address, 6)
    good = _connector(mail_server, address)
    ingestor = MailIngestor(db, page_size=2)
    try:
        partial = await ingestor.sync_folder(tenant, "imap", good, "INBOX", max_pages=1)
        assert partial.queued == 2
        down = _connector(mail_server, address, imap_port=1)  # the server is unreachable
        with pytest.raises(RetriableConnectorError):
            await ingestor.sync_folder(tenant, "imap", down, "INBOX")
        await down.aclose()
        rest = await ingestor.sync_folder(tenant, "imap", good, "INBOX")
        assert rest.queued == 4
        assert await _queued(db, tenant) == [f"m {i}" for i in range(6)]
    finally:
        await good.aclose()


async def test_baseline_then_claim_and_complete(
    db: async_sessionmaker[AsyncSession],
    mail_server: MailServer,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    address = mail_server.add_user()
    await _deliver(mail_server, address, 2, prefix="old")
    connector = _connector(mail_server, address)
    ingestor = MailIngestor(db, initial="baseline")
    try:
        await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
        await _deliver(mail_server, address, 1, prefix="new")
        await ingestor.sync_folder(tenant, "imap", connector, "INBOX")
    finally:
        await connector.aclose()
    async with db() as session, session.begin():
        counts = await queue_counts(session, tenant)
        assert counts == {QueueStatus.BASELINE.value: 2, QueueStatus.PENDING.value: 1}
        items = await claim(session, tenant, limit=5, worker="test")
        assert [i.message["subject"] for i in items] == ["new 0"]
        assert items[0].message["sender"]["address"] == "alice@partner.example"
        await complete(session, items[0].id)
    async with db() as session:
        assert (await queue_counts(session, tenant)).get("done") == 1
        cursor = await session.get(MailCursor, (tenant, "imap", "INBOX"))
        assert cursor is not None and cursor.cursor and cursor.full_sync_at is not None
        total = await session.scalar(
            select(func.count())
            .select_from(TriageQueueItem)
            .where(TriageQueueItem.tenant_id == tenant)
        )
        assert total == 3


async def test_sync_command_runs_by_hand(
    mail_server: MailServer,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml
    from typer.testing import CliRunner

    from assistant.cli import app

    address = mail_server.add_user()
    await _deliver(mail_server, address, 2)
    config = tmp_path / "assistant.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "connectors": [
                    {
                        "name": "work-mail",
                        "slug": "imap.email",
                        "config": mail_server.imap_config(address),
                    }
                ],
            }
        )
    )
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(config))
    from assistant.core.settings import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    upgraded = await asyncio.to_thread(runner.invoke, app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    result = await asyncio.to_thread(
        runner.invoke, app, ["mail", "sync", "--connector", "work-mail"]
    )
    assert result.exit_code == 0, result.output
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'assistant.db'}")
    try:
        assert sorted(await _queued(create_session_factory(engine), "default")) == ["m 0", "m 1"]
    finally:
        await engine.dispose()
    missing = await asyncio.to_thread(runner.invoke, app, ["mail", "sync", "--connector", "x"])
    assert missing.exit_code == 2


async def test_worker_ingests_on_idle_push(
    db: async_sessionmaker[AsyncSession],
    mail_server: MailServer,
) -> None:
    from assistant.ingestion.service import IngestionTarget
    from assistant.ingestion.worker import run_worker

    tenant = f"t-{uuid.uuid4().hex[:8]}"
    address = mail_server.add_user()
    await _deliver(mail_server, address, 1, prefix="before")
    connector = _connector(mail_server, address)
    stop = asyncio.Event()
    target = IngestionTarget(tenant_id=tenant, name="imap", connector=connector)
    worker = asyncio.create_task(
        run_worker(MailIngestor(db), db, [target], stop, poll_interval_s=3600)
    )
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while await _queued(db, tenant) != ["before 0"]:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # IDLE is listening; polling would wait an hour
        await _deliver(mail_server, address, 1, prefix="pushed")
        deadline = asyncio.get_running_loop().time() + 30
        while await _queued(db, tenant) != ["before 0", "pushed 0"]:
            assert asyncio.get_running_loop().time() < deadline, "IDLE did not deliver"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 20)
        await connector.aclose()
