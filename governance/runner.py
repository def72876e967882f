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
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    wait_exponential,
    wait_random,
)

from assistant.core.clock import utcnow
from governance.aftercommit import after_commit, drain_notifications
from governance.executor import Executor
from governance.workers import beat, forget

log = structlog.stdlib.get_logger(__name__)

QUEUE = "governance"
#: A ``doing`` job whose worker has not beaten for this long is retried (procrastinate's
#: workers beat every 10 s and prune others after 30 s).
STALLED_AFTER_SECONDS = 30.0
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


class Heartbeat:
    """Records every ``period`` seconds that this worker is alive (see governance.workers);
    a failed beat (database away) is logged and tried again at the next period."""

    def __init__(self, executor: Executor, runner: str, period: float) -> None:
        self.executor = executor
        self.runner = runner
        self.period = period
        self.started_at = utcnow()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat_forever(), name="governance-heartbeat")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):  # the row ages out by itself otherwise
            await forget(self.executor.sessions, self.executor.worker_id)

    async def _beat_forever(self) -> None:
        while True:
            try:
                await beat(
                    self.executor.sessions,
                    self.executor.worker_id,
                    self.runner,
                    now=utcnow(),
                    started_at=self.started_at,
                    running=self.executor.running,
                )
            except Exception as exc:
                log.warning("runner.heartbeat_failed", error=type(exc).__name__)
            await asyncio.sleep(self.period)


async def supervised(
    name: str, loop: Callable[[], Awaitable[None]], keep_going: Callable[[], bool]
) -> None:
    """Run ``loop`` while ``keep_going()``: whenever it ends or raises (a database outage,
    a dropped connection), log it and start it again after an exponential, jittered backoff."""

    def announce(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "runner.loop_restarting",
            loop=name,
            error=type(error).__name__ if error else "ended",
            attempt=state.attempt_number,
            delay=round(state.upcoming_sleep, 2),
        )

    retrying = AsyncRetrying(
        # Exponential from 0.5 s to 30 s, jittered so that restarted workers do not stampede.
        wait=wait_exponential(multiplier=RESTART_INITIAL_SECONDS, max=RESTART_MAX_SECONDS)
        + wait_random(0, RESTART_INITIAL_SECONDS),
        retry=retry_if_exception_type(Exception) | retry_if_result(lambda _: keep_going()),
        before_sleep=announce,
        reraise=True,
    )
    await retrying(loop)


RESTART_INITIAL_SECONDS = 0.5
RESTART_MAX_SECONDS = 30.0


class InProcessRunner:
    """Polls for due actions in this process; ``notify`` wakes it early.

    One dispatcher claims due actions while fewer than ``concurrency`` run, at most
    ``connector_concurrency`` per connector (the executor's limit), so one slow peer never
    holds up the others."""

    def __init__(
        self,
        executor: Executor,
        *,
        expire: Expire | None = None,
        poll_interval: float = 1.0,
        expiry_interval: float = 30.0,
        concurrency: int = 1,
        heartbeat_seconds: float = 5.0,
    ) -> None:
        self.executor = executor
        self.expire = expire
        self.poll_interval = poll_interval
        self.expiry_interval = expiry_interval
        self.concurrency = concurrency
        self.heartbeat = Heartbeat(executor, "inprocess", heartbeat_seconds)
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._stopping = False
        self.executor.on_finished = self._wake.set
        self._tasks = [
            asyncio.create_task(
                supervised("dispatch", self._dispatch, self._running), name="governance-dispatcher"
            )
        ]
        if self.expire is not None:
            self._tasks.append(
                asyncio.create_task(
                    supervised("expiry", self._expiry, self._running), name="governance-expiry"
                )
            )
        self.heartbeat.start()
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
        await self.executor.cancel_running()
        await self.heartbeat.stop()
        log.info("runner.stopped", runner="inprocess")

    async def notify(self, action_id: str, when: datetime) -> None:
        self._wake.set()

    def _running(self) -> bool:
        return not self._stopping

    async def _dispatch(self) -> None:
        # An exception (the database is away) ends this loop; ``supervised`` restarts it.
        while not self._stopping:
            self._wake.clear()
            await self.executor.dispatch_due(capacity=self.concurrency)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _expiry(self) -> None:
        assert self.expire is not None
        while not self._stopping:
            expired = await self.expire()
            if expired:
                log.info("runner.reviews_expired", count=expired)
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
        heartbeat_seconds: float = 5.0,
        stalled_after_seconds: float = STALLED_AFTER_SECONDS,
    ) -> None:
        import procrastinate

        self.heartbeat = (
            Heartbeat(executor, "procrastinate", heartbeat_seconds)
            if work and executor is not None
            else None
        )
        self.stalled_after_seconds = stalled_after_seconds
        self._stopping = False
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
            await self.retry_stalled_jobs()
            if self.executor is not None:
                await self.executor.run_due()
            if self.expire is not None:
                await self.expire()

    async def retry_stalled_jobs(self) -> int:
        """Put jobs back in the queue whose worker died (kill -9) while they were ``doing``:
        procrastinate knows them by their worker's stale heartbeat. The action row decides
        what rerunning means (its lease recovery), so a retried job is harmless."""
        stalled = await self.app.job_manager.get_stalled_jobs(
            queue=QUEUE, seconds_since_heartbeat=self.stalled_after_seconds
        )
        for job in stalled:
            await self.app.job_manager.retry_job(job)
            log.warning("runner.stalled_job_retried", job_id=job.id, task=job.task_name)
        return len(list(stalled))

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
        self._stopping = False
        if self.work:
            self._worker = asyncio.create_task(
                supervised("procrastinate-worker", self._run_worker, lambda: not self._stopping),
                name="governance-procrastinate-worker",
            )
        if self.heartbeat is not None:
            self.heartbeat.start()
        log.info(
            "runner.started", runner="procrastinate", work=self.work, concurrency=self.concurrency
        )

    async def _run_worker(self) -> None:
        # procrastinate stops its worker when a side task (heartbeat, listener) loses the
        # database; ``supervised`` starts a new one once the backoff has passed.
        await self.app.run_worker_async(
            queues=[QUEUE],
            concurrency=self.concurrency,
            wait=True,
            install_signal_handlers=False,
            # Jobs deferred for later (the hold window) are found by polling, not NOTIFY.
            fetch_job_polling_interval=self.poll_interval,
            name=self.executor.worker_id if self.executor else "governance",
        )

    async def stop(self) -> None:
        self._stopping = True
        if self.heartbeat is not None:
            await self.heartbeat.stop()
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
