"""Async SQLAlchemy: engine, sessions, the declarative Base, and migrations.

SQLite (WAL) by default, PostgreSQL by URL. The schema is owned by Alembic; services
``flush()`` and the request dependency commits (one transaction per request).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import repeat
from operator import add, attrgetter, is_
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import ColumnElement, DateTime, MetaData, Text, cast, event, text, type_coerce
from sqlalchemy.engine import Connection, Engine, processors
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import (
    AsyncAdaptedQueuePool,
    ConnectionPoolEntry,
    PoolProxiedConnection,
    PoolResetState,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util.concurrency import await_
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full

if TYPE_CHECKING:
    # alembic (with mako and pygments) is a quarter of a second of imports that serving
    # needs only for the readiness check: it loads there, or when migrations run.
    from alembic.config import Config

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored in UTC on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], datetime | None]:
        # The driver's own conversion (SQLite answers text) and the zone in one call per
        # value: TypeDecorator's default composes three, and a listing reads hundreds.
        parse = self.impl_instance.result_processor(dialect, coltype)

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if parse is not None:
                value = parse(value)
            if value.tzinfo is None:
                return value.replace(tzinfo=UTC)
            return value.astimezone(UTC)

        if parse is not processors.str_to_datetime:
            return process

        def process_text(value: Any) -> datetime | None:
            # SQLite's text, stored without an offset: parsed with UTC's offset appended,
            # one call in C (datetime.replace alone costs eight times the parse). Any other
            # text (an offset of its own, a bare date that would read the offset as a time)
            # either fails or comes back naive, and goes the general way.
            if isinstance(value, str):
                try:
                    aware = datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    pass
                else:
                    if aware.tzinfo is not None:
                        return aware
            return process(value)

        return process_text

    def column_result_processor(self, dialect: Any, coltype: Any) -> ColumnProcessor:
        """:meth:`result_processor` over a whole column at once (see assistant.core.reads),
        with no Python call per value: SQLite's text parsed by ``map`` from C; times the
        driver answers in UTC already (asyncpg's) passed on, as ``astimezone(UTC)`` would
        return them. A column with a null, or a value neither fits, goes value by value (a
        column of nulls only is not processed at all: :func:`assistant.core.reads._processed`)."""
        process = self.result_processor(dialect, coltype)
        if self.impl_instance.result_processor(dialect, coltype) is not processors.str_to_datetime:

            def pass_utc_column(values: Sequence[Any]) -> list[Any]:
                if None not in values:
                    try:
                        if all(map(is_, map(_TZINFO, values), repeat(UTC))):
                            return list(values)
                    except AttributeError:
                        pass
                return list(map(process, values))

            return pass_utc_column

        def process_column(values: Sequence[Any]) -> list[Any]:
            if None not in values:
                try:
                    parsed = list(map(datetime.fromisoformat, map(add, values, repeat("+00:00"))))
                except (TypeError, ValueError):
                    pass
                else:
                    if None not in map(_TZINFO, parsed):
                        return parsed
            return list(map(process, values))

        return process_column


#: A result processor over a column's values (a page's worth), in order.
ColumnProcessor = Callable[[Sequence[Any]], list[Any]]
_TZINFO = attrgetter("tzinfo")


def _holds_non_json_numbers(text: str) -> bool:
    """Whether ``text`` may hold NaN or Infinity. A lone letter is found with memchr, and
    sre's search for a literal is twice as fast as ``in``: a page's JSON, tens of
    kilobytes, is looked through in microseconds."""
    return bool(("N" in text and _NAN.search(text)) or ("I" in text and _INFINITY.search(text)))


_NAN = re.compile("NaN")
_INFINITY = re.compile("Infinity")


def _stored_json_value(value: str | None) -> orjson.Fragment | None:
    if value is None:
        return None
    if _holds_non_json_numbers(value):
        # The standard library writes these (they are not JSON): parse and write again,
        # as null, which is what the parsed value serialized to.
        return orjson.Fragment(orjson.dumps(json.loads(value)))
    return orjson.Fragment(value)


def _stored_json_column(values: Sequence[Any]) -> list[Any]:
    """:func:`_stored_json_value` over a column: one look for the standard library's
    non-JSON numbers in all of its text, then ``map`` from C."""
    if None not in values:
        try:
            # The separator cannot join two texts into either word.
            joined = "\x00".join(values)
        except TypeError:
            pass
        else:
            if not _holds_non_json_numbers(joined):
                return list(map(orjson.Fragment, values))
    return list(map(_stored_json_value, values))


class StoredJSON(Text):
    """A JSON column read as the text the database holds, for orjson to write out as is:
    a listing answers it without parsing it into objects and serializing them again."""

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], Any]:
        return _stored_json_value

    def column_result_processor(self, dialect: Any, coltype: Any) -> ColumnProcessor:
        return _stored_json_column


def stored_json(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` (JSON) as its stored text, labelled with its own name. PostgreSQL's
    driver would parse a json value itself: the text cast comes back as text."""
    return type_coerce(cast(column, Text), StoredJSON()).label(column.key)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _driver_in_transaction(dbapi_connection: Any) -> bool:
    # SQLAlchemy's aiosqlite adapter wraps aiosqlite, which wraps sqlite3.
    raw = getattr(dbapi_connection, "_connection", dbapi_connection)
    return bool(raw.in_transaction)


def _sqlite_begin_before_savepoint(connection: Connection, name: str | None) -> None:
    """Open the real transaction before a SAVEPOINT (pysqlite does not).

    pysqlite begins a transaction only before INSERT/UPDATE/DELETE. A nested block that
    comes first then starts the transaction with its SAVEPOINT, and its RELEASE commits
    everything: an outer rollback no longer undoes it. BEGIN IMMEDIATE first makes the
    SAVEPOINT nested, as on PostgreSQL. SQLAlchemy's documented recipe (driver autocommit
    and a BEGIN at every transaction start) does this too, but turns every read into a
    snapshot whose later write fails at once with "database is locked" when another
    connection wrote meanwhile (busy_timeout does not apply to that case); beginning at
    the first write or savepoint keeps pysqlite's lock behaviour everywhere else.
    """
    if not _driver_in_transaction(connection.connection.dbapi_connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


#: A pooled connection idle at least this long is pinged before it is handed out (the server
#: may have restarted or closed it meanwhile). One in steady use is not: SQLAlchemy's
#: ``pool_pre_ping`` pings on every checkout, on asyncpg three round trips (BEGIN, a query,
#: ROLLBACK), more than a small request's own statements.
PING_AFTER_IDLE_S = 1.0
_LAST_USED = "assistant.last_used"


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a connection on checkout when it sat idle (``PING_AFTER_IDLE_S``): a dead one is
    replaced by a new one (the pool retries on DisconnectionError), as pre-ping would."""
    dialect = engine.sync_engine.dialect

    def stamp(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def checkout(
        dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        last_used = record.info.get(_LAST_USED)
        if last_used is not None and time.monotonic() - last_used < PING_AFTER_IDLE_S:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc
        if not alive:
            raise DisconnectionError("the pooled connection did not answer a ping")

    event.listen(engine.sync_engine, "connect", stamp)
    event.listen(engine.sync_engine, "checkin", stamp)
    event.listen(engine.sync_engine, "checkout", checkout)


#: An overflow connection (beyond pool_size) returned while nobody waits stays idle this
#: long before it is closed. Closed at once, as SQLAlchemy's pool does, a burst of requests
#: that each hold a connection briefly (proposals reading before they join a group commit)
#: opened and closed connections all the time: each opening costs PostgreSQL a backend
#: and asyncpg its type introspection, more server CPU than the requests' own statements.
OVERFLOW_LINGER_S = 10.0


class _FirstComeQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """The pool's idle connections, handed to waiting requests first come, first served.

    SQLAlchemy's asyncio queue lets a newcomer take a returned connection before the
    request woken for it runs, and the woken one then waits again at the back: with more
    requests than connections a few waited seconds while the median waited milliseconds
    (PostgreSQL, 64 clients, 15 connections: p50 98 ms, p99 2.9 s). Here a returned
    connection goes straight to the longest waiter, and is queued only when nobody waits.
    The pool uses it from the event loop only, as SQLAlchemy's own.

    Besides ``maxsize`` idle connections it holds surplus ones (:meth:`keep_surplus`, the
    pool's overflow) until :meth:`stale_surplus` hands them back for closing."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        #: Idle connections with the time each came back, oldest first.
        self._idle: deque[tuple[ConnectionPoolEntry, float]] = deque()
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        if self._hand_over(item):
            return
        if self.full():
            raise Full()
        self._idle.append((item, time.monotonic()))

    def _hand_over(self, item: ConnectionPoolEntry) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def keep_surplus(self, item: ConnectionPoolEntry) -> None:
        """Keep ``item`` idle although ``maxsize`` are (see OVERFLOW_LINGER_S)."""
        if not self._hand_over(item):
            self._idle.append((item, time.monotonic()))

    def stale_surplus(self, idle_s: float) -> list[ConnectionPoolEntry]:
        """Take out the idle connections beyond ``maxsize`` that came back more than
        ``idle_s`` ago, oldest first, for the pool to close."""
        stale = []
        deadline = time.monotonic() - idle_s
        while len(self._idle) > self.maxsize > 0 and self._idle[0][1] < deadline:
            stale.append(self._idle.popleft()[0])
        return stale

    def put(
        self, item: ConnectionPoolEntry, block: bool = True, timeout: float | None = None
    ) -> None:
        # Never blocks: a connection nobody waits for and no room for is the pool's to close.
        self.put_nowait(item)

    def get_nowait(self) -> ConnectionPoolEntry:
        # Idle connections exist only while nobody waits (put_nowait hands them over), so
        # taking one here never passes anyone. The most recently returned first: the
        # surplus ones, least used, are the ones that grow stale and get closed.
        if not self._idle:
            raise Empty()
        return self._idle.pop()[0]

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        if self._idle or not block:
            return self.get_nowait()
        return await_(self._wait(timeout_s=timeout))

    async def _wait(self, timeout_s: float | None) -> ConnectionPoolEntry:
        waiter: asyncio.Future[ConnectionPoolEntry] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as this request gave up: pass it on, not lose it.
                self.keep_surplus(waiter.result())
            else:
                waiter.cancel()
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise


class FirstComePool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, serving requests waiting for a connection in the
    order they came (:class:`_FirstComeQueue`), and closing an overflow connection only
    once it has been idle for OVERFLOW_LINGER_S (checked whenever a connection returns)."""

    _queue_class = _FirstComeQueue
    _pool: _FirstComeQueue

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        try:
            self._pool.put_nowait(record)
        except Full:
            self._pool.keep_surplus(record)
        for stale in self._pool.stale_surplus(OVERFLOW_LINGER_S):
            try:
                stale.close()
            finally:
                self._dec_overflow()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> AsyncEngine:
    """An async engine; SQLite files get WAL, foreign keys, a busy timeout and SAVEPOINTs
    that nest inside the outer transaction (see :func:`_sqlite_begin_before_savepoint`).
    Connections idle for a while are pinged before use (:func:`_ping_when_idle`); requests
    waiting for a pooled connection get one in the order they came (:class:`FirstComePool`)."""
    # JSON columns are read with orjson (several times faster than the standard library
    # on every listed row); they are still written by json.dumps, so stored text is unchanged.
    kwargs: dict[str, Any] = {
        "echo": echo,
        "json_deserializer": orjson.loads,
    }
    sqlite_file = False
    if is_sqlite(url):
        if ":memory:" not in url and "mode=memory" not in url:
            sqlite_file = True
            path = url.split("///", 1)[-1].split("?", 1)[0]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.update(pool_size=pool_size, poolclass=FirstComePool)
    if sqlite_file:
        # pool_size as on PostgreSQL, and the same overflow: a request may hold a connection
        # while a short transaction of its own takes another (API key bookkeeping, detached
        # audit rows), and without overflow a burst of those waits out the pool timeout.
        # Returned connections are rolled back only inside a transaction (_reset_sqlite).
        kwargs.update(pool_size=pool_size, pool_reset_on_return=None, poolclass=FirstComePool)
    engine = create_async_engine(url, **kwargs)
    _ping_when_idle(engine)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "savepoint", _sqlite_begin_before_savepoint)
    if sqlite_file:
        event.listen(engine.sync_engine, "reset", _reset_sqlite)
    return engine


def _reset_sqlite(
    dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState
) -> None:
    """A connection going back to the pool: rolled back when the driver is in a transaction.

    pysqlite opens one only before a write (or our BEGIN IMMEDIATE), so after reads there is
    nothing to undo, and the rollback SQLAlchemy would issue anyway costs a hand-off to
    aiosqlite's thread per request. SQLAlchemy's documented custom reset
    (pool_reset_on_return=None with a "reset" listener)."""
    if state.terminate_only or not state.asyncio_safe or state.transaction_was_reset:
        return
    if _driver_in_transaction(dbapi_connection):
        dbapi_connection.rollback()


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_ON_COMMIT = "assistant.on_commit"

#: Work that must follow a commit, and only a commit (e.g. swapping a live connector).
OnCommit = Callable[[], Awaitable[None]]


def on_commit(session: AsyncSession, callback: OnCommit) -> None:
    """Run ``callback`` once :func:`commit` has committed ``session``; dropped otherwise.

    Unlike governance's fire-and-forget ``after_commit``, the committer awaits these, so
    a request answers only once they are done."""
    session.info.setdefault(_ON_COMMIT, []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then await the ``on_commit`` callbacks (the commit raises: none run)."""
    try:
        await session.commit()
    except BaseException:
        session.info.pop(_ON_COMMIT, None)
        raise
    for callback in session.info.pop(_ON_COMMIT, []):
        await callback()


async def rollback(session: AsyncSession) -> None:
    session.info.pop(_ON_COMMIT, None)
    await session.rollback()


async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error."""
    async with factory() as session:
        try:
            yield session
            await commit(session)
        except BaseException:
            await rollback(session)
            raise


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@lru_cache(maxsize=8)
def head_revision(url: str) -> str | None:
    """The newest migration shipped with this code (it cannot change while it runs)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


def _run_alembic(connection: Connection, config: Config, action: str, target: str) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    getattr(command, action)(config, target)


async def upgrade(engine: AsyncEngine, target: str = "head") -> None:
    """Apply migrations up to ``target`` through the given engine."""
    async with engine.begin() as connection:
        await connection.run_sync(
            _run_alembic,
            alembic_config(str(engine.url.render_as_string(False))),
            "upgrade",
            target,
        )


async def downgrade(engine: AsyncEngine, target: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(
            _run_alembic,
            alembic_config(str(engine.url.render_as_string(False))),
            "downgrade",
            target,
        )


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


__all__ = [
    "Base",
    "Engine",
    "UTCDateTime",
    "commit",
    "create_engine",
    "create_session_factory",
    "current_revision",
    "downgrade",
    "head_revision",
    "on_commit",
    "ping",
    "rollback",
    "session_scope",
    "upgrade",
]
