"""Worker heartbeats: each process that executes actions says so, every few seconds.

/readyz reads them, so a deployment where nothing executes approved actions (a PostgreSQL
service without a worker) is visible instead of silently leaving actions ``scheduled``.
A beat that fails (the database is away) is retried at the next period; the row's age
then tells the truth.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class WorkerBeat(Base):
    """One worker process: its runner, when it started, and its last heartbeat."""

    __tablename__ = "governance_workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    runner: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: Actions this worker was executing at its last beat.
    running: Mapped[int] = mapped_column(Integer)


async def beat(
    sessions: async_sessionmaker[AsyncSession],
    worker_id: str,
    runner: str,
    *,
    now: datetime,
    started_at: datetime,
    running: int,
) -> None:
    """Record that ``worker_id`` is alive (insert on its first beat)."""
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(WorkerBeat)
            .where(WorkerBeat.id == worker_id)
            .values(last_seen_at=now, running=running, runner=runner)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            session.add(
                WorkerBeat(
                    id=worker_id,
                    runner=runner,
                    started_at=started_at,
                    last_seen_at=now,
                    running=running,
                )
            )


async def forget(sessions: async_sessionmaker[AsyncSession], worker_id: str) -> None:
    """A worker that stops cleanly removes its row."""
    async with sessions() as session, session.begin():
        await session.execute(delete(WorkerBeat).where(WorkerBeat.id == worker_id))


async def live_workers(session: AsyncSession, *, now: datetime, within: float) -> dict[str, Any]:
    """Workers whose last beat is younger than ``within`` seconds: count and runners."""
    since = now - timedelta(seconds=within)
    rows = (
        await session.execute(
            select(WorkerBeat.runner, func.count(), func.max(WorkerBeat.last_seen_at))
            .where(WorkerBeat.last_seen_at >= since)
            .group_by(WorkerBeat.runner)
        )
    ).all()
    last = max((row[2] for row in rows), default=None)
    return {
        "alive": sum(int(row[1]) for row in rows),
        "runners": sorted(str(row[0]) for row in rows),
        "last_seen_at": last.isoformat() if last else None,
    }


async def list_workers(session: AsyncSession) -> list[WorkerBeat]:
    """Every worker that said it was alive, most recently heard first (a stopped one
    removed its row; a crashed one stays, its last beat ageing)."""
    rows = await session.scalars(select(WorkerBeat).order_by(WorkerBeat.last_seen_at.desc()))
    return list(rows)
