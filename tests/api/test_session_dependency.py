"""The request's session (deps.get_session): committed and closed when the request used it,
left alone when it never did; an error rolls a used one back."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.api import deps
from assistant.core.db import create_engine, create_session_factory


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []


@pytest.fixture
async def request_with_sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'deps.db'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (x INTEGER)"))
    recorder = _Recorder()

    async def commit(session: AsyncSession) -> None:
        recorder.calls.append("commit")
        await session.commit()

    async def rollback(session: AsyncSession) -> None:
        recorder.calls.append("rollback")
        await session.rollback()

    monkeypatch.setattr(deps, "commit", commit)
    monkeypatch.setattr(deps, "rollback", rollback)
    services = SimpleNamespace(sessions=create_session_factory(engine))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(services=services)))
    yield request, recorder, engine
    await engine.dispose()


async def _count(engine: Any) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM t"))).scalar_one())


async def test_an_untouched_session_is_neither_committed_nor_rolled_back(
    request_with_sessions: Any,
) -> None:
    request, recorder, _ = request_with_sessions
    dependency = deps.get_session(request)
    await anext(dependency)
    with pytest.raises(StopAsyncIteration):
        await anext(dependency)
    assert recorder.calls == []


async def test_a_write_is_committed(request_with_sessions: Any) -> None:
    request, recorder, engine = request_with_sessions
    dependency = deps.get_session(request)
    session = await anext(dependency)
    await session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(StopAsyncIteration):
        await anext(dependency)
    assert recorder.calls == ["commit"]
    assert await _count(engine) == 1


async def test_a_read_is_committed_and_the_session_closed(request_with_sessions: Any) -> None:
    request, recorder, _ = request_with_sessions
    dependency = deps.get_session(request)
    session = await anext(dependency)
    await session.execute(text("SELECT count(*) FROM t"))
    with pytest.raises(StopAsyncIteration):
        await anext(dependency)
    assert recorder.calls == ["commit"]
    assert not session.in_transaction()


async def test_an_error_rolls_a_used_session_back(request_with_sessions: Any) -> None:
    request, recorder, engine = request_with_sessions
    dependency = deps.get_session(request)
    session = await anext(dependency)
    await session.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(RuntimeError):
        await dependency.athrow(RuntimeError("the endpoint failed"))
    assert recorder.calls == ["rollback"]
    assert await _count(engine) == 0


async def test_an_error_leaves_an_untouched_session_alone(request_with_sessions: Any) -> None:
    request, recorder, _ = request_with_sessions
    dependency = deps.get_session(request)
    await anext(dependency)
    with pytest.raises(RuntimeError):
        await dependency.athrow(RuntimeError("refused before any query"))
    assert recorder.calls == []
