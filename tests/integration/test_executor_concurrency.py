"""Executions that outlast their lease, and one slow peer among fast ones (SQLite).

The slow peer is the real sandbox connector behind a gate the test opens: the peer
"answers" only when the test says so, so nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from governance.audit_models import AuditEvent
from governance.runner import InProcessRunner
from governance.state import ActionState
from tests.fixtures.governance import (
    COLLEAGUE,
    Clock,
    SandboxResolver,
    build_harness,
    seeded_db,
    seeded_template,
)

__all__ = ["seeded_db", "seeded_template"]  # fixtures

S = ActionState


class GatedCalendar:
    """The sandbox calendar, whose ``create_event`` answers once ``gate`` is open."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.calls = 0

    async def create_event(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        await self.gate.wait()
        return await self.inner.create_event(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class LiveClock(Clock):
    """Real time: leases expire as they would in production."""

    def __call__(self) -> datetime:
        return utcnow()


def meeting(i: int) -> dict[str, Any]:
    start = utcnow() + timedelta(days=2, hours=i)
    return {
        "subject": f"Sync {i}",
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "timezone": "America/New_York",
        "attendees": [{"address": COLLEAGUE}],
    }


def draft(i: int) -> dict[str, Any]:
    return {"to": [{"address": COLLEAGUE}], "subject": f"Draft {i}", "body_text": "Hi."}


async def executions(sessions: async_sessionmaker[AsyncSession], action_id: str) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(
                        AuditEvent.action_id == action_id, AuditEvent.action == "action.executing"
                    )
                )
            ).scalar_one()
        )


async def test_a_running_execution_keeps_its_lease(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    resolver = SandboxResolver(seeded_db)
    calendar = GatedCalendar(resolver.calendar)
    resolver.calendar = calendar  # type: ignore[assignment]
    clock = LiveClock(utcnow())
    first = build_harness(seeded_db, clock, resolver=resolver, worker_id="slow", lease_seconds=0.6)
    second = build_harness(
        seeded_db, clock, resolver=resolver, worker_id="other", lease_seconds=0.6
    )
    action = await first.propose("calendar.event.create", meeting(1))
    running = asyncio.create_task(first.executor.run_due())
    for _ in range(100):
        if calendar.calls:
            break
        await asyncio.sleep(0.05)
    # The execution outlasts its lease several times over while another worker sweeps.
    for _ in range(8):
        # Bounded: a second execution would hang on the closed gate.
        second_runs = await asyncio.wait_for(second.executor.run_due(), 5)
        assert second_runs == 0, "the running action was started a second time"
        await asyncio.sleep(0.25)
    calendar.gate.set()
    await running
    done = await first.load(action.id)
    assert done.state == S.SUCCEEDED, done.last_error
    assert calendar.calls == 1
    assert await executions(seeded_db, action.id) == 1


@pytest.mark.parametrize("mode", ["runner", "run_due"])
async def test_a_slow_connector_does_not_hold_up_the_others(
    seeded_db: async_sessionmaker[AsyncSession], mode: str
) -> None:
    resolver = SandboxResolver(seeded_db)
    calendar = GatedCalendar(resolver.calendar)
    resolver.calendar = calendar  # type: ignore[assignment]
    harness = build_harness(seeded_db, Clock(utcnow()), resolver=resolver)
    meetings = [await harness.propose("calendar.event.create", meeting(i)) for i in range(4)]
    drafts = [await harness.propose("email.draft.create", draft(i)) for i in range(5)]

    if mode == "runner":
        runner = InProcessRunner(
            harness.executor, poll_interval=0.1, concurrency=harness.settings.worker_concurrency
        )
        await runner.start()
        work: asyncio.Task[Any] | None = None
    else:
        work = asyncio.create_task(harness.executor.run_due())
    try:
        for _ in range(300):  # every draft goes through while the calendar hangs
            states = [(await harness.load(d.id)).state for d in drafts]
            if all(state == S.SUCCEEDED for state in states):
                break
            await asyncio.sleep(0.05)
        assert states == [S.SUCCEEDED] * 5
        # The slow peer holds at most its own share of the worker.
        assert calendar.calls == harness.settings.connector_concurrency
        calendar.gate.set()
        if work is not None:
            await work
        for _ in range(300):
            states = [(await harness.load(m.id)).state for m in meetings]
            if all(state == S.SUCCEEDED for state in states):
                break
            await asyncio.sleep(0.05)
        assert states == [S.SUCCEEDED] * 4
    finally:
        calendar.gate.set()
        if mode == "runner":
            await runner.stop()
