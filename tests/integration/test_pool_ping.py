"""A pooled PostgreSQL connection that died while idle is replaced before a request uses it;
one in steady use is handed out without a ping (assistant.core.db._ping_when_idle)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from assistant.core import db
from tests.fixtures.postgres import _admin


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_killed_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_engine(postgres_url, pool_size=1)
    try:
        killed = await _backend_pid(engine)
        await _admin(f"SELECT pg_terminate_backend({killed})")
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it sat idle long enough
        assert await _backend_pid(engine) != killed
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.create_engine(postgres_url, pool_size=1)
    try:
        killed = await _backend_pid(engine)
        await _admin(f"SELECT pg_terminate_backend({killed})")
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
        # No ping: the dead connection is handed out, and the statement fails (the pool
        # then discards it, as it does after any disconnect).
        with pytest.raises(DBAPIError):
            await _backend_pid(engine)
        assert await _backend_pid(engine) != killed
    finally:
        await engine.dispose()
