"""Migrations upgrade and downgrade on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from assistant.core.db import create_engine, current_revision, downgrade, head_revision, upgrade


async def _round_trip(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        assert await current_revision(engine) == head_revision(url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"sandbox_messages", "sandbox_events", "alembic_version"} <= tables
        await downgrade(engine, "base")
        assert await current_revision(engine) is None
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        # `assistant db upgrade` also applies procrastinate's job tables as the schema owner
        # (the service role cannot create tables); they are procrastinate's, not Alembic's.
        ours = {name for name in tables if not name.startswith("procrastinate_")}
        assert ours <= {"alembic_version"}
        await upgrade(engine)
        assert await current_revision(engine) == head_revision(url)
    finally:
        await engine.dispose()


async def test_sqlite_upgrade_downgrade(tmp_path: Path) -> None:
    await _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_postgres_upgrade_downgrade(postgres_url: str) -> None:
    await _round_trip(postgres_url)
