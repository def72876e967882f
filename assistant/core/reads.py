"""Read-only statements on the driver's own connection: the hot listings' path.

A listing read through an ORM session pays for the session's transaction and, on SQLite,
for aiosqlite's thread hand-offs: SQLAlchemy's adapter makes one per cursor step (open,
execute, fetch, close) and one for the commit, each a wake-up of the connection's thread
and a fight for the GIL. :func:`fetch_rows` runs one statement, compiled once, with one
round trip: aiosqlite's ``execute_fetchall`` (a single hand-off) or asyncpg's ``fetch``
(its own cache of prepared statements). Values go through the same bind and result
processors SQLAlchemy would apply, so the rows are the rows ``connection.execute`` gives.

It is for reads that need no transaction of their own: a request that has not touched
the database yet (:func:`read_rows` checks) sees exactly what a new transaction would.

On a SQLite file even that hand-off is most of a listing's cost under load: the thread
wakes, then fights the event loop for the GIL. A short read is therefore run inline, on
the event loop, on a read-only connection of this process (:class:`_InlineSQLiteReader`):
a WAL reader never waits for the writer, and a read that would (a lock, a busy timeout,
more than a few milliseconds of work) is abandoned and goes through aiosqlite instead,
so the loop is never held for long.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from sqlalchemy import Select, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from assistant.core.db import ColumnProcessor

_DRIVERS = frozenset({"aiosqlite", "asyncpg"})


@dataclass
class _Compiled:
    compiled: SQLCompiler
    #: The bind processor of each parameter that has one (e.g. a datetime as SQLite
    #: stores it), by the parameter's name.
    binds: dict[str, Callable[[Any], Any]]
    #: Whether a parameter is an expanding IN, whose SQL is rendered for each execution.
    expanding: bool
    #: The values the statement itself holds (e.g. SQLite's ``OFFSET ?`` of a page without
    #: one), bind processors applied, by the parameter's name.
    constants: dict[str, Any]
    #: One per selected column, over the column's values (None where the driver's value
    #: is the value), known once the driver has described the result's column types (see
    #: _result_processors).
    results: tuple[ColumnProcessor | None, ...] | None = None


@lru_cache(maxsize=256)
def _compile(statement: Select[Any], dialect: Dialect) -> _Compiled:
    """``statement`` compiled for ``dialect``, once (the listings' statements are built
    once per shape and kept, so the cache holds a few dozen entries)."""
    compiled = statement.compile(dialect=dialect)
    binds: dict[str, Callable[[Any], Any]] = {}
    for name, bind in compiled.binds.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
    expanding = any(bind.expanding for bind in compiled.binds.values())
    constants = {
        name: binds[name](bind.value) if name in binds and bind.value is not None else bind.value
        for name, bind in compiled.binds.items()
        if not bind.required and bind.callable is None
    }
    return _Compiled(compiled, binds, expanding, constants)


async def _result_processors(
    statement: Select[Any], dialect: Dialect, driver: Any, sql: str
) -> tuple[ColumnProcessor | None, ...]:
    """SQLAlchemy's result processor of each selected column. They depend on the type the
    database answers (a numeric as float or decimal): asyncpg describes it on a prepared
    statement, once per statement; SQLite's rows carry no declared type (as in
    SQLAlchemy's own cursor description)."""
    if dialect.driver == "asyncpg":
        described = await driver.prepare(sql)
        codes: list[Any] = [attribute.type.oid for attribute in described.get_attributes()]
    else:
        codes = [None] * len(statement.selected_columns)
    return _processors_of(statement, dialect, codes)


def _processors_of(
    statement: Select[Any], dialect: Dialect, codes: Sequence[Any]
) -> tuple[ColumnProcessor | None, ...]:
    return tuple(
        _column_processor(column.type.dialect_impl(dialect), dialect, code)
        for column, code in zip(statement.selected_columns, codes, strict=True)
    )


def _column_processor(impl: Any, dialect: Dialect, code: Any) -> ColumnProcessor | None:
    """The type's processor of a whole column (``column_result_processor``, see
    assistant.core.db) when it has one, else its result processor mapped over the column
    (SQLAlchemy's result processors take None as well)."""
    by_column = getattr(impl, "column_result_processor", None)
    if by_column is not None:
        processor: ColumnProcessor | None = by_column(dialect, code)
        if processor is not None:
            return processor
    process = impl.result_processor(dialect, code)
    if process is None:
        return None
    return lambda values: list(map(process, values))


def _driver_arguments(prepared: _Compiled, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The SQL with expanding parameters (``IN``) rendered for ``params``, and the driver's
    positional values after the bind processors (e.g. datetimes as SQLite stores them)."""
    compiled = prepared.compiled
    values = dict(params)
    for name, process in prepared.binds.items():
        value = values.get(name)
        if value is None:
            continue
        if compiled.binds[name].expanding:
            values[name] = [None if v is None else process(v) for v in value]
        else:
            values[name] = process(value)
    order = compiled.positiontup
    assert order is not None  # both drivers take positional parameters
    if not prepared.expanding:
        # Nothing to render: the compiled SQL as is, each value in its place.
        given = {**prepared.constants, **values}
        if all(name in given for name in order):
            return compiled.string, tuple(given[name] for name in order)
    expanded = compiled.construct_expanded_state(values)
    assert expanded.positiontup is not None  # both drivers take positional parameters
    return expanded.statement, tuple(expanded.parameters[name] for name in expanded.positiontup)


async def fetch_rows(
    engine: AsyncEngine, statement: Select[Any], params: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """Run the read-only ``statement`` with ``params`` on a pooled connection of ``engine``
    in one round trip; its rows (sequences of values), typed as SQLAlchemy types them.

    Drivers other than aiosqlite and asyncpg, and a driver error (so that it is reported,
    and a dead connection invalidated, exactly as elsewhere), go through SQLAlchemy's
    ordinary execution."""
    dialect = engine.dialect
    if dialect.driver in _DRIVERS:
        prepared = _compile(statement, dialect)
        sql, values = _driver_arguments(prepared, params)
        if dialect.driver == "aiosqlite":
            inline = _inline_reader(engine.sync_engine)
            rows = inline.fetch(sql, values) if inline is not None else None
            if rows is not None:
                if prepared.results is None:
                    prepared.results = _processors_of(
                        statement, dialect, [None] * len(statement.selected_columns)
                    )
                return _processed(rows, prepared.results)
        # The pool's connection itself (checkout events, the ping of an idle one, the reset
        # on return all apply), without an engine Connection around it: one greenlet round
        # each way instead of three.
        pooled = await greenlet_spawn(engine.sync_engine.raw_connection)
        try:
            fetched = await _fetch(
                prepared, statement, dialect, pooled.driver_connection, sql, values
            )
        finally:
            await greenlet_spawn(pooled.close)
        if fetched is not None:
            assert prepared.results is not None
            return _processed(fetched, prepared.results)
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(statement, params)]


async def _fetch(
    prepared: _Compiled,
    statement: Select[Any],
    dialect: Dialect,
    driver: Any,
    sql: str,
    values: tuple[Any, ...],
) -> Sequence[Sequence[Any]] | None:
    """The driver's rows; None when it raised: the caller answers with SQLAlchemy's
    execution, which reports the error as every other statement does."""
    try:
        if prepared.results is None:
            prepared.results = await _result_processors(statement, dialect, driver, sql)
        if dialect.driver == "aiosqlite":
            rows: Sequence[Sequence[Any]] = await driver.execute_fetchall(sql, values)
        else:
            rows = await driver.fetch(sql, *values)
    except Exception:
        return None
    return rows


def _processed(
    rows: Sequence[Sequence[Any]], results: tuple[ColumnProcessor | None, ...]
) -> list[tuple[Any, ...]]:
    """``rows`` with each column's result processor applied, column by column: ``map``
    calls a processor on a column's values from C, and a column of SQLite's times or of
    stored JSON is converted with no Python call per value, where a loop over every row's
    values was a third of a page's CPU."""
    if not rows:
        return []
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, process in enumerate(results):
        column = columns[i]
        # A column of nulls only stays as it is: every result processor maps None to None.
        if process is not None and column.count(None) != len(column):
            columns[i] = process(column)
    return list(zip(*columns, strict=True))


#: The most CPU time a read may spend on the event loop before it is abandoned for
#: aiosqlite's thread: an indexed page of a few hundred rows takes a fraction of this.
#: CPU time of the thread, not wall time: on a busy machine a read the scheduler paused
#: would otherwise be abandoned and done again, the work of both paid for.
INLINE_READ_BUDGET_S = 0.003
#: SQLite's busy timeout for the inline reader, as short: a WAL reader is refused only in
#: rare moments (another connection recovering the WAL index), and then falls back.
_INLINE_BUSY_TIMEOUT_S = 0.002
#: How many of SQLite's virtual machine steps between two looks at the clock.
_PROGRESS_STEPS = 1000


class _InlineSQLiteReader:
    """A read-only connection to one SQLite file, for reads run on the calling thread.

    Autocommit: each SELECT is its own read transaction, ended when its rows are fetched,
    so it sees what was committed before it began, as a new transaction would. One per
    engine and process (reopened after a fork); a thread that finds it in use by another
    falls back rather than waits."""

    def __init__(self, path: str, connect_params: dict[str, Any]) -> None:
        self._uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
        self._params = connect_params
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._deadline = 0.0

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._uri,
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=_INLINE_BUSY_TIMEOUT_S,
            **self._params,
        )
        connection.set_progress_handler(self._over_budget, _PROGRESS_STEPS)
        return connection

    def _over_budget(self) -> bool:
        return time.thread_time() > self._deadline

    def fetch(self, sql: str, values: tuple[Any, ...]) -> list[Any] | None:
        """The rows of ``sql``; None when the read could not be done at once and briefly."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._pid != os.getpid():
                # A forked child: the parent's connection is not its to use.
                self._connection, self._pid = None, os.getpid()
            if self._connection is None:
                self._connection = self._connect()
            self._deadline = time.thread_time() + INLINE_READ_BUDGET_S
            cursor = self._connection.execute(sql, values)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.OperationalError:
            # Busy, locked, interrupted (over budget), or an error the fallback reports.
            return None
        except sqlite3.Error:
            self._drop()
            return None
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            connection.close()


_INLINE_READERS: weakref.WeakKeyDictionary[Engine, _InlineSQLiteReader | None] = (
    weakref.WeakKeyDictionary()
)


def _inline_reader(engine: Engine) -> _InlineSQLiteReader | None:
    """``engine``'s inline reader; None unless it is a plain SQLite file (an in-memory
    database or a URI of its own options is read through aiosqlite)."""
    try:
        return _INLINE_READERS[engine]
    except KeyError:
        pass
    reader = None
    args, params = engine.dialect.create_connect_args(engine.url)
    path = args[0] if args else ""
    if path and path != ":memory:" and not params.get("uri"):
        # The option that decides the values' types as aiosqlite's connections have it, so
        # values come back typed alike; the others (timeout, isolation) are the reader's own.
        reader = _InlineSQLiteReader(path, {k: v for k, v in params.items() if k == "detect_types"})
        event.listen(engine, "engine_disposed", lambda _: reader.close())
    _INLINE_READERS[engine] = reader
    return reader


async def read_rows(
    session: AsyncSession, statement: Select[Any], params: dict[str, Any]
) -> Sequence[Sequence[Any]]:
    """``statement``'s rows for a read-only listing on ``session``: :func:`fetch_rows` when
    the session holds no transaction yet (nothing it wrote or read could differ), else on
    the session's own connection, inside its transaction."""
    bind = session.bind
    if not session.in_transaction() and isinstance(bind, AsyncEngine):
        return await fetch_rows(bind, statement, params)
    connection = await session.connection()
    return (await connection.execute(statement, params)).all()
