"""The listings' column processors (assistant.core.db, used by assistant.core.reads) give
exactly the values, and so the bytes, of the per-value conversion they replace: SQLite's
stored times parsed and put in UTC, stored JSON passed through (or rewritten where the
standard library wrote NaN or Infinity), on hostile values and mixed columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite

from assistant.core.db import StoredJSON, UTCDateTime
from assistant.core.reads import _column_processor

_SQLITE = aiosqlite.dialect()


def _reference_time(value: Any) -> datetime | None:
    """The conversion before the column processors: parse, then UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _reference_json(value: str | None) -> orjson.Fragment | None:
    if value is None:
        return None
    if "NaN" in value or "Infinity" in value:
        return orjson.Fragment(orjson.dumps(json.loads(value)))
    return orjson.Fragment(value)


def _bytes(values: list[Any]) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_UTC_Z)


_TIMES = [
    "2026-12-03 14:31:14.648887",  # as SQLAlchemy stores them
    "2026-12-03 14:31:14.000000",  # zero microseconds: written without a fraction
    "2026-12-03 14:31:14",
    "2026-12-03 14:31:14.5",
    "2026-12-03T14:31:14.123",
    "2024-02-29 23:59:59.999999",
    "0001-01-01 00:00:00.000000",
    "9999-12-31 23:59:59.999999",
    "2026-12-03 14:31:14.648887+05:30",  # an offset of its own: converted to UTC
    "2026-12-03T14:31:14-08:00",
    "2026-12-03T14:31:14Z",
    "2026-12-03",  # a bare date, which "+00:00" appended would read as a time
    "2026-12-03T14",
    "20261203T143114",
]


@pytest.mark.parametrize("value", _TIMES)
def test_one_time_column_is_the_reference(value: str) -> None:
    impl = UTCDateTime().dialect_impl(_SQLITE)
    by_value = impl.result_processor(_SQLITE, None)
    by_column = _column_processor(impl, _SQLITE, None)
    assert by_column is not None
    expected = [_reference_time(value)] * 3
    for got in (by_column((value,) * 3), [by_value(value)] * 3):
        assert got == expected
        assert [v.tzinfo for v in got] == [UTC] * 3
        assert _bytes(got) == _bytes(expected)


def test_mixed_and_empty_time_columns_are_the_reference() -> None:
    impl = UTCDateTime().dialect_impl(_SQLITE)
    by_column = _column_processor(impl, _SQLITE, None)
    assert by_column is not None
    for column in (tuple(_TIMES), (None, *_TIMES, None), (None,) * 4, ()):
        expected = [_reference_time(v) for v in column]
        got = by_column(column)
        assert got == expected
        assert _bytes(got) == _bytes(expected)


def test_a_time_that_does_not_parse_fails_as_before() -> None:
    by_column = _column_processor(UTCDateTime().dialect_impl(_SQLITE), _SQLITE, None)
    assert by_column is not None
    for column in (("2026-12-03 14:31:14", "not a time"), ("2026-12-03 25:00:00",)):
        with pytest.raises(ValueError):
            by_column(column)


def test_driver_times_in_utc_pass_and_others_are_converted() -> None:
    """asyncpg answers aware times in UTC: passed on as the objects ``astimezone(UTC)``
    returns; any other zone, a naive time or a null goes value by value."""
    dialect = asyncpg.dialect()
    impl = UTCDateTime().dialect_impl(dialect)
    by_value = impl.result_processor(dialect, None)
    by_column = _column_processor(impl, dialect, None)
    assert by_column is not None
    utc = [datetime(2026, 12, 3, 14, 31, 14, 648887, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    other = datetime(2026, 12, 3, 14, 31, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    naive = datetime(2026, 12, 3, 14, 31)
    for column in (utc, [*utc, None], [None, None], [*utc, other], [naive, *utc], []):
        expected = [by_value(v) for v in column]
        got = by_column(tuple(column))
        assert got == expected
        assert [v and v.tzinfo for v in got] == [v and UTC for v in expected]
        assert all(g is e for g, e in zip(got, expected, strict=True) if e in utc)
        assert _bytes(got) == _bytes(expected)


_JSON = [
    '{"to": [{"address": "a@example.org"}], "n": 1}',
    '{"note": "\\u00e9 \u2028 \U0001f600 \\" \\\\ \\n", "nested": {"a": [1, [2, {"b": null}]]}}',
    '"NaN as a string"',  # a false alarm: rewritten, to the same value
    '{"x": NaN}',
    "[Infinity, -Infinity, 1.5e300]",
    "[]",
    "null",
    '{"org": "Northwind Inc", "note": "N and I alone are not the words"}',
    '{"a": "Infinit", "b": "aN"}',
]


def test_stored_json_columns_are_the_reference() -> None:
    impl = StoredJSON().dialect_impl(_SQLITE)
    by_column = _column_processor(impl, _SQLITE, None)
    assert by_column is not None
    clean = tuple(v for v in _JSON if "NaN" not in v and "Infinity" not in v)
    for column in (tuple(_JSON), clean, (None, *clean), (None, None), (), ("Na", "N")):
        expected = [_reference_json(v) for v in column]
        assert _bytes(by_column(column)) == _bytes(expected)
