"""assistant.core.reads: listings read on the driver's own connection give the rows
SQLAlchemy's execution gives (bound and result values processed alike), on SQLite and
PostgreSQL; a request that already holds a transaction reads inside it; driver errors come
out as SQLAlchemy's; SQLite's pool honours pool_size and rolls back what a write left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from assistant.core import reads
from assistant.core.db import (
    FirstComePool,
    UTCDateTime,
    create_engine,
    create_session_factory,
    stored_json,
)

_METADATA = MetaData()
_ROWS = Table(
    "fast_read_rows",
    _METADATA,
    Column("id", String(32), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("payload", JSON, nullable=True),
    Column("ratio", Float, nullable=False),
)
_COLUMNS = (
    _ROWS.c.id,
    _ROWS.c.state,
    _ROWS.c.at,
    _ROWS.c.finished_at,
    stored_json(_ROWS.c.payload),
    _ROWS.c.ratio,
)
#: As the listings build theirs: once, with an expanding IN and a datetime bound.
_LISTING = (
    select(*_COLUMNS)
    .where(_ROWS.c.state.in_(bindparam("states", expanding=True)))
    .where(_ROWS.c.at <= bindparam("before"))
    .order_by(_ROWS.c.at.desc(), _ROWS.c.id.desc())
    .limit(bindparam("limit"))
)
_START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def reads_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(reads_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(reads_url, pool_size=2)
    async with engine.begin() as connection:
        await connection.run_sync(_METADATA.drop_all)
        await connection.run_sync(_METADATA.create_all)
        await connection.execute(
            insert(_ROWS),
            [
                {
                    "id": f"r{i:02d}",
                    "state": ("pending", "done", "failed")[i % 3],
                    "at": _START + timedelta(minutes=i, microseconds=i * 7),
                    "finished_at": _START + timedelta(hours=1) if i % 3 == 1 else None,
                    "payload": {"to": [f"p{i}@example.org"], "n": i, "note": "é \u2028"}
                    if i % 4
                    else None,
                    "ratio": i / 3,
                }
                for i in range(30)
            ],
        )
    try:
        yield engine
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(_METADATA.drop_all)
        await engine.dispose()


def _plain(rows: Any) -> list[tuple[Any, ...]]:
    # orjson.Fragment has no equality: compare the JSON text it carries.
    return [
        tuple(orjson.dumps(v) if isinstance(v, orjson.Fragment) else v for v in row) for row in rows
    ]


async def _sqlalchemy_rows(engine: AsyncEngine, params: dict[str, Any]) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(_LISTING, params))


@pytest.mark.parametrize(
    "params",
    [
        {"states": ["pending"], "before": _START + timedelta(minutes=20), "limit": 50},
        {"states": ["pending", "done"], "before": _START + timedelta(days=1), "limit": 7},
        {"states": ["nothing"], "before": _START, "limit": 5},
    ],
)
async def test_the_rows_are_sqlalchemys_rows(engine: AsyncEngine, params: dict[str, Any]) -> None:
    fast = await reads.fetch_rows(engine, _LISTING, params)
    ordinary = await _sqlalchemy_rows(engine, params)
    assert _plain(fast) == _plain(ordinary)
    for row in fast:
        assert row[2].tzinfo is UTC  # UTCDateTime's processor ran
        assert isinstance(row[5], float)


async def test_a_datetime_bound_finds_the_stored_value(engine: AsyncEngine) -> None:
    """Bound values go through the bind processors: a datetime compares equal to the one
    stored (SQLite holds text in SQLAlchemy's format; the driver's own differs)."""
    exactly = select(_ROWS.c.id).where(_ROWS.c.at == bindparam("at")).limit(bindparam("limit"))
    at = _START + timedelta(minutes=11, microseconds=77)
    assert [row[0] for row in await reads.fetch_rows(engine, exactly, {"at": at, "limit": 5})] == [
        "r11"
    ]


async def test_the_driver_answers_without_sqlalchemys_execution(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.ext.asyncio import AsyncConnection

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the fast path fell back to SQLAlchemy's execution")

    params = {"states": ["done"], "before": _START + timedelta(days=1), "limit": 50}
    expected = _plain(await _sqlalchemy_rows(engine, params))
    monkeypatch.setattr(AsyncConnection, "execute", refuse)
    assert _plain(await reads.fetch_rows(engine, _LISTING, params)) == expected
    assert len(expected) == 10


async def test_a_driver_error_is_sqlalchemys_error(engine: AsyncEngine) -> None:
    missing = Table("fast_read_missing", MetaData(), Column("id", String(32)))
    with pytest.raises(DBAPIError):
        await reads.fetch_rows(engine, select(missing.c.id).limit(bindparam("limit")), {"limit": 1})
    # The connection is still good for the next read.
    params = {"states": ["failed"], "before": _START + timedelta(days=1), "limit": 50}
    assert len(await reads.fetch_rows(engine, _LISTING, params)) == 10


async def test_a_session_in_a_transaction_reads_its_own_writes(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    params = {"states": ["new"], "before": _START + timedelta(days=1), "limit": 50}
    async with sessions() as session:
        assert await reads.read_rows(session, _LISTING, params) == []
        await session.execute(
            insert(_ROWS).values(id="mine", state="new", at=_START, ratio=1.0, payload=None)
        )
        rows = await reads.read_rows(session, _LISTING, params)
        assert [row[0] for row in rows] == ["mine"]
        await session.rollback()
    assert await reads.fetch_rows(engine, _LISTING, params) == []


async def test_sqlite_pool_size_and_the_rollback_of_an_unfinished_write(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=2)
    try:
        pool: Any = engine.sync_engine.pool
        assert pool.size() == 2
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        # A write on the driver, outside SQLAlchemy's transaction: the connection goes back
        # to the pool in a transaction, and is rolled back there (its lock released, else
        # the next writer would wait out busy_timeout and fail).
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("INSERT INTO t VALUES (1)")
            assert raw.driver_connection.in_transaction
        async with engine.begin() as first, engine.begin() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("INSERT INTO t VALUES (2)"))
        async with engine.connect() as reader:
            assert (await reader.execute(text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


# ------------------------------------------------------------ SQLite: inline on the loop


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}", pool_size=2)
    async with engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
        await connection.execute(
            insert(_ROWS),
            [
                {"id": f"r{i:02d}", "state": "pending", "at": _START + timedelta(minutes=i)}
                | {"payload": {"n": i}, "ratio": i / 3}
                for i in range(5)
            ],
        )
    try:
        yield engine
    finally:
        await engine.dispose()


_PENDING = {"states": ["pending"], "before": _START + timedelta(days=1), "limit": 50}


def _no_pool(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> Any:
        raise AssertionError("the read went through aiosqlite's pooled connection")

    monkeypatch.setattr(engine.sync_engine, "raw_connection", refuse)


async def test_sqlite_reads_inline_see_what_a_new_transaction_sees(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the loop's own read-only connection (no pooled connection, no thread): each
    read sees what was committed before it, never what a writer has not committed, and
    does not wait for that writer."""
    expected = _plain(await _sqlalchemy_rows(sqlite_engine, _PENDING))
    _no_pool(sqlite_engine, monkeypatch)
    assert _plain(await reads.fetch_rows(sqlite_engine, _LISTING, _PENDING)) == expected

    writer = create_engine(str(sqlite_engine.url), pool_size=1)
    try:
        async with writer.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(
                insert(_ROWS).values(id="late", state="pending", at=_START, ratio=0.0)
            )
            # Uncommitted: not seen, and the read did not wait for the write lock.
            rows = await reads.fetch_rows(sqlite_engine, _LISTING, _PENDING)
            assert _plain(rows) == expected
            await transaction.commit()
        rows = await reads.fetch_rows(sqlite_engine, _LISTING, _PENDING)
        assert [row[0] for row in rows] == [row[0] for row in expected] + ["late"]
    finally:
        await writer.dispose()


async def test_sqlite_reads_over_budget_go_through_aiosqlite(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that would hold the loop longer than its budget is abandoned for the
    pooled connection's thread, with the same rows."""
    expected = _plain(await _sqlalchemy_rows(sqlite_engine, _PENDING))
    monkeypatch.setattr(reads, "INLINE_READ_BUDGET_S", -1.0)
    monkeypatch.setattr(reads, "_PROGRESS_STEPS", 1)
    checkouts = []
    pooled = sqlite_engine.sync_engine.raw_connection

    def counted() -> Any:
        checkouts.append(1)
        return pooled()

    monkeypatch.setattr(sqlite_engine.sync_engine, "raw_connection", counted)
    # A new reader, built with the budget and steps above.
    reads._INLINE_READERS.pop(sqlite_engine.sync_engine, None)
    assert _plain(await reads.fetch_rows(sqlite_engine, _LISTING, _PENDING)) == expected
    assert checkouts == [1]


async def test_sqlite_inline_reader_is_closed_with_the_engine(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'closed.db'}", pool_size=1)
    async with engine.begin() as connection:
        await connection.run_sync(_METADATA.create_all)
    assert await reads.fetch_rows(engine, _LISTING, _PENDING) == []
    reader = reads._INLINE_READERS[engine.sync_engine]
    assert reader is not None and reader._connection is not None
    await engine.dispose()
    assert reader._connection is None


# ------------------------------------------------------------ the pool's waiting line


async def test_waiting_requests_get_connections_in_the_order_they_came(tmp_path: Path) -> None:
    """A returned connection goes to the longest waiter, not to a request that asks at
    that moment (SQLAlchemy's queue let it pass: the waiter went back to the end of the
    line, and a few requests waited seconds under load)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'line.db'}", pool_size=1)
    pool: Any = engine.sync_engine.pool
    assert isinstance(pool, FirstComePool)
    pool._max_overflow = 0  # one connection: everyone else waits
    served: list[str] = []

    async def use(name: str) -> None:
        async with engine.connect() as connection:
            served.append(name)
            await connection.execute(text("SELECT 1"))

    try:
        holder = await engine.connect()
        await holder.execute(text("SELECT 1"))
        first = asyncio.create_task(use("first"))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(use("second"))
        await asyncio.sleep(0.01)
        await holder.close()
        await use("newcomer")  # asks as the connection comes back
        await asyncio.gather(first, second)
        assert served == ["first", "second", "newcomer"]
    finally:
        await engine.dispose()


async def test_a_pool_wait_times_out_and_leaves_the_line(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'wait.db'}", pool_size=1)
    pool: Any = engine.sync_engine.pool
    pool._max_overflow, pool._timeout = 0, 0.05
    try:
        async with engine.connect() as holder:
            await holder.execute(text("SELECT 1"))
            with pytest.raises(SATimeoutError):
                await engine.connect()
            assert not pool._pool._waiters
        async with engine.connect() as connection:  # the connection came back
            assert (await connection.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_overflow_connections_linger_before_they_are_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection beyond pool_size returned while nobody waits stays open for
    OVERFLOW_LINGER_S (a burst of short reads reused it instead of reopening one each
    time), is handed out again meanwhile, and is closed once it sat idle that long."""
    from assistant.core import db

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'linger.db'}", pool_size=1)
    pool: Any = engine.sync_engine.pool
    opened: list[object] = []
    sa_event.listen(engine.sync_engine, "connect", lambda dbapi, record: opened.append(dbapi))
    try:
        first, second = await engine.connect(), await engine.connect()
        for connection in (first, second):
            await connection.execute(text("SELECT 1"))
        await first.close()
        await second.close()
        assert pool.checkedin() == 2  # the overflow one was kept
        first, second = await engine.connect(), await engine.connect()
        await first.close()
        await second.close()
        assert len(opened) == 2  # both reused, none reopened

        monkeypatch.setattr(db, "OVERFLOW_LINGER_S", 0.0)
        async with engine.connect() as connection:  # its return closes the stale surplus
            await connection.execute(text("SELECT 1"))
        assert pool.checkedin() == 1
        assert pool.overflow() == 0  # one connection open, pool_size: none beyond it
    finally:
        await engine.dispose()
