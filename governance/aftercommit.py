"""Callbacks that run once a transaction has committed (wake a runner, defer a job).

Side effects must not happen for a transaction that may still roll back; and a lost
callback costs nothing but latency, because the periodic sweep finds due rows anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = structlog.stdlib.get_logger(__name__)

_PENDING = "governance.after_commit"
_tasks: set[asyncio.Task[Any]] = set()


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[None]]) -> None:
    """Run ``callback`` once the session's transaction commits; dropped on rollback.

    Side effects (waking a runner, deferring a job) must not happen for a transaction
    that may still roll back. A spurious wake-up is harmless: the row decides.
    """
    sync = session.sync_session
    pending: list[Callable[[], Awaitable[None]]] | None = sync.info.get(_PENDING)
    if pending is None:
        pending = sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _run_pending)
        event.listen(sync, "after_soft_rollback", _drop_pending)
    pending.append(callback)


def _run_pending(sync: Session) -> None:
    callbacks = list(sync.info.get(_PENDING) or [])
    sync.info[_PENDING] = []
    if not callbacks:
        return
    loop = asyncio.get_running_loop()
    for callback in callbacks:
        task = loop.create_task(_guarded(callback))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)


def _drop_pending(sync: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        sync.info[_PENDING] = []


async def drain_notifications() -> None:
    """Wait for post-commit callbacks still running (a CLI command exits after this)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


async def _guarded(callback: Callable[[], Awaitable[None]]) -> None:
    try:
        await callback()
    except Exception:  # a lost wake-up is recovered by the periodic sweep
        log.exception("aftercommit.callback_failed")
