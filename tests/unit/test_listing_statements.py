"""The listings' statements run as compiled, without rendering on each execution: their
states are one parameter each (no expanding IN), and assistant.core.reads then hands the
driver the compiled SQL and the values in SQLAlchemy's own order; the SQL and values are
those of SQLAlchemy's rendering, on both drivers, for every listing shape."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, column, select, table
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.dialects.sqlite import aiosqlite

from assistant.api.actions import ACTION_COLUMNS
from assistant.core.principal import Principal, Role
from assistant.core.reads import _compile, _driver_arguments
from governance.service import _listing
from governance.state import ActionState

DIALECTS = [aiosqlite.dialect(), asyncpg.dialect()]
DANA = Principal(user_id="dana", tenant_id="t", roles=frozenset({Role.EXECUTIVE}))
SAM = Principal(user_id="sam", tenant_id="t", roles=frozenset({Role.DELEGATE}), on_behalf_of="dana")
WHEN = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


def _rendered(prepared: Any, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """SQLAlchemy's own rendering of the execution (what the fast path must equal)."""
    values = dict(params)
    for name, process in prepared.binds.items():
        if values.get(name) is not None:
            values[name] = process(values[name])
    expanded = prepared.compiled.construct_expanded_state(values)
    return expanded.statement, tuple(expanded.parameters[n] for n in expanded.positiontup)


SHAPES = list(
    itertools.product(
        [DANA, SAM],
        [None, [ActionState.PENDING_REVIEW], [ActionState.FAILED, ActionState.SUCCEEDED]],
        [None, "email.*"],
        [None, "dana"],
        [None, (WHEN, "a" * 32)],
        [0, 40],
    )
)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.driver)
@pytest.mark.parametrize(("principal", "states", "kind", "owner", "after", "offset"), SHAPES)
def test_listings_run_as_compiled_with_sqlalchemys_values(
    dialect: Any,
    principal: Principal,
    states: list[ActionState] | None,
    kind: str | None,
    owner: str | None,
    after: tuple[datetime, str] | None,
    offset: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement, params = _listing(
        ACTION_COLUMNS,
        principal,
        states=states,
        kind=kind,
        correlation_id=None,
        owner=owner,
        created_before=WHEN if offset else None,
        limit=50,
        offset=offset,
        after=after,
    )
    prepared = _compile(statement, dialect)
    assert not prepared.expanding
    reference = _rendered(prepared, params)

    def rendering(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a listing's SQL was rendered again for its execution")

    monkeypatch.setattr(prepared.compiled, "construct_expanded_state", rendering)
    assert _driver_arguments(prepared, params) == reference


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.driver)
def test_an_expanding_in_is_still_rendered_for_each_execution(dialect: Any) -> None:
    things = table("things", column("id"), column("state"))
    statement = select(things.c.id).where(things.c.state.in_(bindparam("states", expanding=True)))
    prepared = _compile(statement, dialect)
    assert prepared.expanding
    for states in (["a"], ["a", "b", "c"]):
        sql, values = _driver_arguments(prepared, {"states": states})
        assert values == tuple(states) and (sql, values) == _rendered(prepared, {"states": states})
