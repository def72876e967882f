"""Background work behind one small interface: an in-process loop, or procrastinate.

* :class:`InProcessRunner` - an asyncio loop in the application's own process (the
  embedded default on SQLite; started in the app's lifespan).
* :class:`ProcrastinateRunner` - jobs in PostgreSQL with procrastinate: the app defers
  one job per due action (``schedule_at = not_before``), ``assistant worker`` processes
  run them, and a periodic tick sweeps up anything a lost job left behind.

Either way the ``governed_actions`` row stays the source of truth: a job only says "look
at action X"; the executor's compare-and-set claim makes a job that runs twice a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

import structlog

from governance.aftercommit import after_commit, drain_notifications
from governance.executor import Executor

log = structlog.stdlib.get_logger(__name__)

QUEUE = "governance"
EXECUTE_TASK = "governance.execute_action"
TICK_TASK = "governance.tick"

__all__ = [
    "BackgroundRunner",
    "InProcessRunner",
    "NullRunner",
    "ProcrastinateRunner",
    "after_commit",
    "drain_notifications",
    "procrastinate_conninfo",
]


class BackgroundRunner(Protocol):
    """Runs the executor and the review-expiry sweep in the background."""

    async def start(self) -> None:
        """Start working (or, for a deferring-only runner, connect)."""
        ...

    async def stop(self) -> None:
        """Stop, letting an action that is executing finish its step."""
        ...

    async def notify(self, action_id: str, when: datetime) -> None:
        """An action becomes due at ``when`` (called after the commit that scheduled it)."""
        ...


Expire = Callable[[], Awaitable[int]]


# --------------------------------------------------------------------------- in-process


class InProcessRunner:
    """Polls for due actions in this process; ``notify`` wakes it early."""

    def __init__(
        self,
        executor: Executor,
        *,
        expire: Expire | None = None,
        poll_interval: float = 1.0,
        expiry_interval: float = 30.0,
        concurrency: int = 1,
    ) -> None:
        self.executor = executor
        self.expire = expire
        self.poll_interval = poll_interval
        self.expiry_interval = expiry_interval
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work(), name=f"governance-worker-{i}")
            for i in range(self.concurrency)
        ]
        if self.expire is not None:
            self._tasks.append(asyncio.create_task(self._expiry(), name="governance-expiry"))
        log.info(
            "runner.started",
            runner="inprocess",
            worker=self.executor.worker_id,
            concurrency=self.concurrency,
        )

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        log.info("runner.stopped", runner="inprocess")

    async def notify(self, action_id: str, when: datetime) -> None:
        self._wake.set()

    async def _work(self) -> None:
        while not self._stopping:
            try:
                await self.executor.run_due()
            except Exception:  # keep the loop alive; the row state is intact
                log.exception("runner.sweep_failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _expiry(self) -> None:
        assert self.expire is not None
        while not self._stopping:
            try:
                expired = await self.expire()
                if expired:
                    log.info("runner.reviews_expired", count=expired)
            except Exception:
                log.exception("runner.expiry_failed")
            await asyncio.sleep(self.expiry_interval)


# --------------------------------------------------------------------------- procrastinate


def procrastinate_conninfo(url: str) -> str:
    """libpq URL from an SQLAlchemy one (postgresql+asyncpg://... -> postgresql://...)."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("postgresql"):
        raise ValueError("procrastinate needs PostgreSQL")
    return f"postgresql://{rest}"


class ProcrastinateRunner:
    """Jobs in PostgreSQL. ``work=False`` only defers (the API process); workers run them."""

    def __init__(
        self,
        conninfo: str,
        executor: Executor | None,
        *,
        expire: Expire | None = None,
        work: bool = False,
        concurrency: int = 1,
        tick_cron: str = "* * * * * */5",
        poll_interval: float = 1.0,
    ) -> None:
        import procrastinate

        self.executor = executor
        self.expire = expire
        self.work = work
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
        self._worker: asyncio.Task[None] | None = None
        self._opened = False

        @self.app.task(name=EXECUTE_TASK, queue=QUEUE)
        async def execute_action(action_id: str) -> None:
            if self.executor is not None:
                await self.executor.run_action(action_id)

        # A cron with six fields counts seconds (croniter): a tick every 5 s sweeps up
        # actions whose job was lost, leases to recover and reviews to expire.
        @self.app.periodic(cron=tick_cron, periodic_id="sweep")
        @self.app.task(name=TICK_TASK, queue=QUEUE, queueing_lock=TICK_TASK)
        async def tick(timestamp: int) -> None:
            if self.executor is not None:
                await self.executor.run_due()
            if self.expire is not None:
                await self.expire()

    async def ensure_schema(self) -> None:
        """Apply procrastinate's schema once (its tables live beside ours)."""
        exists = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"
        row = await self.app.connector.execute_query_one_async(exists)
        if row["present"]:
            return
        try:
            await self.app.schema_manager.apply_schema_async()
        except Exception:
            row = await self.app.connector.execute_query_one_async(exists)
            if not row["present"]:
                raise  # not a race with another worker applying it: a real failure

    async def start(self) -> None:
        await self.app.open_async()
        self._opened = True
        await self.ensure_schema()
        if self.work:
            self._worker = asyncio.create_task(
                self.app.run_worker_async(
                    queues=[QUEUE],
                    concurrency=self.concurrency,
                    wait=True,
                    install_signal_handlers=False,
                    # Jobs deferred for later (the hold window) are found by polling, not NOTIFY.
                    fetch_job_polling_interval=self.poll_interval,
                    name=self.executor.worker_id if self.executor else "governance",
                )
            )
        log.info(
            "runner.started", runner="procrastinate", work=self.work, concurrency=self.concurrency
        )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._opened:
            await self.app.close_async()
            self._opened = False
        log.info("runner.stopped", runner="procrastinate")

    async def notify(self, action_id: str, when: datetime) -> None:
        await self.app.configure_task(
            EXECUTE_TASK, queue=QUEUE, schedule_at=when, lock=f"action:{action_id}"
        ).defer_async(action_id=action_id)

    async def wait(self) -> None:
        """Block until the worker stops (``assistant worker``)."""
        if self._worker is not None:
            await self._worker


class NullRunner:
    """No background work (tests, or ``governance.runner: off``)."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def notify(self, action_id: str, when: datetime) -> None:
        return None
