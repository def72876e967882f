"""`assistant config check` also validates the connector instances kept in the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.settings import Settings

runner = CliRunner()


async def _store_rows(settings: Settings) -> None:
    from assistant.connector_models import StoredConnector
    from assistant.core.clock import utcnow
    from assistant.core.db import create_engine, create_session_factory, upgrade

    engine = create_engine(settings.database_url)
    await upgrade(engine)
    now = utcnow()
    async with create_session_factory(engine)() as session, session.begin():
        for name, slug, config in (
            ("good-mail", "sandbox.email", {"mailbox": "dana@northwind.example"}),
            ("half-imap", "imap.email", {"address": "dana@northwind.example"}),
            ("gone", "nosuch.connector", {}),
        ):
            session.add(
                StoredConnector(
                    id=name,
                    tenant_id="default",
                    name=name,
                    slug=slug,
                    config=config,
                    enabled=True,
                    created_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
    await engine.dispose()


def test_config_check_lists_problems_of_stored_connectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    asyncio.run(_store_rows(Settings(data_dir=tmp_path)))
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 2, result.output
    output = result.output
    assert "stored connector half-imap (tenant default): imap_host" in output
    assert "stored connector gone (tenant default)" in output and "nosuch.connector" in output
    assert "good-mail" not in output


def test_config_check_creates_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "assistant.db").exists()
