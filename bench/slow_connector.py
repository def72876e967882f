"""Benchmark: unrelated sandbox drafts behind a slow calendar peer.

Queues ``--slow`` calendar event creations whose peer answers after ``--delay`` seconds,
then ``--drafts`` email drafts, and runs the in-process runner until every draft is done.
Prints the time to the last draft side by side: one action at a time (the old default)
against the per-connector limits (``worker_concurrency`` 8, ``connector_concurrency`` 2).

    .venv/bin/python -m bench.slow_connector [--slow 8] [--drafts 20] [--delay 2]

Runs on a throwaway SQLite database seeded with the sandbox week (no external data).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory, upgrade
from governance.models import Action
from governance.runner import InProcessRunner
from governance.state import ActionState
from integrations.sandbox.seed import seed_sandbox
from tests.conftest import SEED_DIR
from tests.fixtures.governance import COLLEAGUE, TENANT, Clock, SandboxResolver, build_harness


class SlowCalendar:
    """The sandbox calendar with a peer that takes ``delay`` seconds to create an event."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def create_event(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.delay)
        return await self.inner.create_event(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def run(
    folder: Path, *, slow: int, drafts: int, delay: float, concurrency: int, per_connector: int
) -> float:
    engine = create_engine(f"sqlite+aiosqlite:///{folder / f'bench-{concurrency}.db'}")
    await upgrade(engine)
    sessions = create_session_factory(engine)
    await seed_sandbox(sessions, tenant_id=TENANT, seed_dir=SEED_DIR, now=utcnow())
    resolver = SandboxResolver(sessions)
    resolver.calendar = SlowCalendar(resolver.calendar, delay)  # type: ignore[assignment]
    harness = build_harness(
        sessions,
        Clock(utcnow()),
        resolver=resolver,
        worker_concurrency=concurrency,
        connector_concurrency=per_connector,
    )
    start = utcnow() + timedelta(days=2)
    for i in range(slow):
        begins = start + timedelta(hours=i)
        await harness.propose(
            "calendar.event.create",
            {
                "subject": f"Sync {i}",
                "start": begins.isoformat(),
                "end": (begins + timedelta(minutes=30)).isoformat(),
                "timezone": "UTC",
                "attendees": [{"address": COLLEAGUE}],
            },
        )
    draft_ids = [
        (
            await harness.propose(
                "email.draft.create",
                {"to": [{"address": COLLEAGUE}], "subject": f"Draft {i}", "body_text": "Hi."},
            )
        ).id
        for i in range(drafts)
    ]
    runner = InProcessRunner(harness.executor, poll_interval=0.05, concurrency=concurrency)
    started = time.perf_counter()
    await runner.start()
    try:
        while True:
            async with sessions() as session:
                done = [(await session.get(Action, action_id)) for action_id in draft_ids]
            if all(a is not None and a.state == ActionState.SUCCEEDED for a in done):
                break
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        await runner.stop()
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=8)
    parser.add_argument("--drafts", type=int, default=20)
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one_at_a_time = await run(
            folder,
            slow=args.slow,
            drafts=args.drafts,
            delay=args.delay,
            concurrency=1,
            per_connector=1,
        )
        limited = await run(
            folder,
            slow=args.slow,
            drafts=args.drafts,
            delay=args.delay,
            concurrency=8,
            per_connector=2,
        )
    print(f"{args.drafts} drafts behind {args.slow} calendar actions of {args.delay:.1f} s each")
    print(f"  one action at a time:        {one_at_a_time:8.2f} s to the last draft")
    print(f"  per-connector limits (8, 2): {limited:8.2f} s to the last draft")
    print(f"  ratio: {one_at_a_time / limited:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
