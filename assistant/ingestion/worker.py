"""The ingestion worker: push where the provider offers it, polling as the fallback."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.ingestion.push import ensure_subscription
from assistant.ingestion.service import IngestionTarget, MailIngestor, inbox_of

log = structlog.stdlib.get_logger(__name__)

_SUBSCRIPTION_CHECK_S = 1800.0


async def _idle_loop(
    ingestor: MailIngestor, target: IngestionTarget, folder: str, stop: asyncio.Event
) -> None:
    connector: Any = target.connector  # an IMAP connector: it has watch()
    async with contextlib.aclosing(connector.watch(folder)) as pushes:
        async for _ in pushes:
            if stop.is_set():
                return
            await ingestor.sync_target(target)


async def _poll_loop(
    ingestor: MailIngestor, targets: list[IngestionTarget], stop: asyncio.Event, interval_s: float
) -> None:
    while not stop.is_set():
        for target in targets:
            await ingestor.sync_target(target)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _requested_loop(
    ingestor: MailIngestor,
    targets: list[IngestionTarget],
    stop: asyncio.Event,
    interval_s: float = 1.0,
) -> None:
    by_key = {(t.tenant_id, t.name): t for t in targets}
    while not stop.is_set():
        for tenant_id, name, folder in await ingestor.requested():
            target = by_key.get((tenant_id, name))
            if target is not None:
                await ingestor.sync_folder(tenant_id, name, target.connector, folder)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)


async def _subscription_loop(
    sessions: async_sessionmaker[AsyncSession],
    target: IngestionTarget,
    folder: str,
    url: str,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            await ensure_subscription(
                sessions,
                target.connector,
                tenant_id=target.tenant_id,
                name=target.name,
                folder=folder,
                notification_url=url,
            )
        except Exception as exc:  # polling covers the gap; try again later
            log.warning(
                "ingestion.subscription_failed", connector=target.name, error=type(exc).__name__
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _SUBSCRIPTION_CHECK_S)


async def run_worker(
    ingestor: MailIngestor,
    sessions: async_sessionmaker[AsyncSession],
    targets: list[IngestionTarget],
    stop: asyncio.Event,
    *,
    poll_interval_s: float = 300.0,
) -> None:
    """Until ``stop``: IDLE for IMAP, subscriptions and notifications for Graph, polling."""
    tasks: list[asyncio.Task[Any]] = [
        asyncio.create_task(_poll_loop(ingestor, targets, stop, poll_interval_s)),
        asyncio.create_task(_requested_loop(ingestor, targets, stop)),
    ]
    for target in targets:
        try:
            folder = await inbox_of(target.connector)
        except Exception as exc:  # the poll loop reports it
            log.warning("ingestion.no_inbox", connector=target.name, error=type(exc).__name__)
            continue
        if hasattr(target.connector, "watch"):
            tasks.append(asyncio.create_task(_idle_loop(ingestor, target, folder, stop)))
        url = getattr(target.connector, "notification_url", None)
        if url and hasattr(target.connector, "subscribe"):
            tasks.append(
                asyncio.create_task(_subscription_loop(sessions, target, folder, url, stop))
            )
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
