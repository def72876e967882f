"""Mail ingestion: sync each mailbox from its stored cursor, queue new mail for triage.

Each page is committed in one transaction: the queue rows of its messages and the cursor
that follows them. A crash before the commit replays the page (the provider delivers at
least once); the unique keys on provider id and Message-ID make the replay a no-op. So an
outage or a crash never loses or skips a message, and none is queued twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import ConflictError
from assistant.core.principal import system_principal
from assistant.ingestion.models import MailCursor, QueueStatus, TriageQueueItem
from integrations.base import EmailConnector, EmailMessage, FolderRole, SyncBatch
from integrations.errors import CursorExpiredError

log = structlog.stdlib.get_logger(__name__)

_MAX_HTML = 256 * 1024
_MAX_TEXT = 128 * 1024


@dataclass
class SyncReport:
    """What one folder's sync did."""

    connector: str
    folder: str
    pages: int = 0
    fetched: int = 0
    queued: int = 0
    duplicates: int = 0
    removed: int = 0
    skipped: int = 0
    full_resync: bool = False
    seconds: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestionTarget:
    """One mailbox to ingest: a connector instance and the folders to follow."""

    tenant_id: str
    name: str
    connector: EmailConnector
    folders: list[str] = field(default_factory=list)


def _queue_payload(message: EmailMessage) -> dict[str, Any]:
    data = message.model_dump(mode="json")
    if data.get("html") and len(data["html"]) > _MAX_HTML:
        data["html"] = data["html"][:_MAX_HTML]
    if len(data.get("text") or "") > _MAX_TEXT:
        data["text"] = data["text"][:_MAX_TEXT]
    return data


def _insert(session: AsyncSession) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    # Imported for the backend in use: PostgreSQL's dialect loads every PostgreSQL driver's
    # module, needless on SQLite.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(TriageQueueItem)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(TriageQueueItem)


async def enqueue(
    session: AsyncSession,
    *,
    tenant_id: str,
    connector: str,
    folder: str,
    messages: list[EmailMessage],
    status: QueueStatus = QueueStatus.PENDING,
) -> int:
    """Queue ``messages``; those already queued (same provider id or Message-ID) are skipped.

    Returns how many were new. Flushes, never commits.
    """
    if not messages:
        return 0
    now = utcnow()
    rows = [
        {
            "tenant_id": tenant_id,
            "connector": connector,
            "folder": folder,
            "provider_id": m.id,
            "message_id": m.message_id,
            "status": status.value,
            "attempts": 0,
            "message": _queue_payload(m),
            "enqueued_at": now,
        }
        for m in messages
    ]
    statement = _insert(session).values(rows).on_conflict_do_nothing().returning(TriageQueueItem.id)
    inserted = (await session.execute(statement)).scalars().all()
    return len(inserted)


async def inbox_of(connector: EmailConnector) -> str:
    """The id of the connector's inbox folder."""
    folders = await connector.list_folders()
    return next(f.id for f in folders if f.role is FolderRole.INBOX)


class MailIngestor:
    """Runs the sync of mailboxes into the triage queue."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        page_size: int = 100,
        initial: Literal["queue", "baseline"] = "queue",
        audit: bool = True,
    ) -> None:
        self._sessions = sessions
        self.page_size = page_size
        self.initial = initial
        self.audit = audit
        # One sync per folder at a time in this process (push and polling may coincide).
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def _cursor_row(self, tenant_id: str, connector: str, folder: str) -> MailCursor:
        async with self._sessions() as session, session.begin():
            row = await session.get(MailCursor, (tenant_id, connector, folder))
            if row is None:
                row = MailCursor(
                    tenant_id=tenant_id, connector=connector, folder=folder, cursor=None, version=0
                )
                session.add(row)
                await session.flush()
            return row

    async def sync_folder(
        self,
        tenant_id: str,
        name: str,
        connector: EmailConnector,
        folder: str,
        *,
        max_pages: int | None = None,
    ) -> SyncReport:
        """Sync one folder until the provider says there is no more (or ``max_pages``)."""
        lock = self._locks.setdefault((tenant_id, name, folder), asyncio.Lock())
        async with lock:
            return await self._sync_folder(tenant_id, name, connector, folder, max_pages=max_pages)

    async def _sync_folder(
        self,
        tenant_id: str,
        name: str,
        connector: EmailConnector,
        folder: str,
        *,
        max_pages: int | None,
    ) -> SyncReport:
        report = SyncReport(connector=name, folder=folder)
        started = time.perf_counter()
        row = await self._cursor_row(tenant_id, name, folder)
        cursor, version = row.cursor, row.version
        baseline = self.initial == "baseline" and row.cursor is None and row.full_sync_at is None
        while max_pages is None or report.pages < max_pages:
            try:
                batch = await connector.sync(folder, cursor, page_size=self.page_size)
            except CursorExpiredError:
                if cursor is None:
                    raise
                log.warning(
                    "ingestion.cursor_expired", connector=name, folder=folder, tenant=tenant_id
                )
                cursor = None
                report.full_resync = True
                continue
            status = QueueStatus.BASELINE if baseline else QueueStatus.PENDING
            async with self._sessions() as session, session.begin():
                queued = await enqueue(
                    session,
                    tenant_id=tenant_id,
                    connector=name,
                    folder=folder,
                    messages=batch.messages,
                    status=status,
                )
                now = utcnow()
                values: dict[str, Any] = {
                    "cursor": batch.cursor,
                    "version": version + 1,
                    "synced_at": now,
                    "last_error": None,
                }
                if batch.full_resync and not batch.more:
                    values["full_sync_at"] = now
                if not batch.more:
                    values["sync_requested_at"] = None
                changed = await session.execute(
                    update(MailCursor)
                    .where(
                        MailCursor.tenant_id == tenant_id,
                        MailCursor.connector == name,
                        MailCursor.folder == folder,
                        MailCursor.version == version,
                    )
                    .values(**values)
                )
                if changed.rowcount != 1:  # type: ignore[attr-defined]
                    # Another worker advanced this mailbox: drop our page (its rows too).
                    raise ConflictError(
                        "another sync of this mailbox is running", connector=name, folder=folder
                    )
                if queued and self.audit:
                    await self._audit(
                        session, tenant_id, name, folder, queued, len(batch.messages) - queued
                    )
                if batch.skipped:
                    await self._skipped(session, tenant_id, name, folder, batch)
            version += 1
            cursor = batch.cursor
            report.pages += 1
            report.fetched += len(batch.messages)
            report.queued += queued
            report.duplicates += len(batch.messages) - queued
            report.removed += len(batch.removed_ids)
            report.skipped += len(batch.skipped)
            report.full_resync = report.full_resync or batch.full_resync
            if not batch.more:
                break
        report.seconds = round(time.perf_counter() - started, 3)
        log.info(
            "ingestion.synced",
            tenant=tenant_id,
            connector=name,
            folder=folder,
            pages=report.pages,
            queued=report.queued,
            duplicates=report.duplicates,
            skipped=report.skipped,
            full_resync=report.full_resync,
        )
        return report

    async def _skipped(
        self, session: AsyncSession, tenant_id: str, name: str, folder: str, batch: SyncBatch
    ) -> None:
        """A message the connector could not read safely is reported, never silently lost."""
        from governance.audit import AuditAction, AuditEventIn, Outcome, record

        for item in batch.skipped:
            log.warning(
                "ingestion.message_skipped",
                tenant=tenant_id,
                connector=name,
                folder=folder,
                message=item.id,
                reason=item.reason,
            )
        if not self.audit:
            return
        await record(
            session,
            system_principal(tenant_id, "ingestion"),
            AuditEventIn(
                action=AuditAction.MAIL_SKIPPED,
                connector=name,
                resource_type="mailbox_folder",
                resource_id=folder,
                outcome=Outcome.FAILURE,
                payload={"messages": [item.model_dump() for item in batch.skipped[:100]]},
            ),
        )

    async def _audit(
        self,
        session: AsyncSession,
        tenant_id: str,
        name: str,
        folder: str,
        queued: int,
        duplicates: int,
    ) -> None:
        from governance.audit import AuditAction, AuditEventIn, record

        await record(
            session,
            system_principal(tenant_id, "ingestion"),
            AuditEventIn(
                action=AuditAction.MAIL_INGESTED,
                connector=name,
                resource_type="mailbox_folder",
                resource_id=folder,
                payload={"queued": queued, "duplicates": duplicates},
            ),
        )

    async def sync_target(self, target: IngestionTarget) -> list[SyncReport]:
        """Sync every folder of a target (default: its inbox); one failure is reported."""
        reports: list[SyncReport] = []
        try:
            folders = target.folders or [await inbox_of(target.connector)]
        except Exception as exc:  # a broken mailbox must not stop the others
            return [
                SyncReport(connector=target.name, folder="?", error=f"{type(exc).__name__}: {exc}")
            ]
        for folder in folders:
            try:
                reports.append(
                    await self.sync_folder(target.tenant_id, target.name, target.connector, folder)
                )
            except Exception as exc:  # recorded on the cursor row and reported
                detail = f"{type(exc).__name__}: {getattr(exc, 'detail', exc)}"[:500]
                await self._record_error(target.tenant_id, target.name, folder, detail)
                log.error(
                    "ingestion.failed",
                    tenant=target.tenant_id,
                    connector=target.name,
                    folder=folder,
                    error=type(exc).__name__,
                )
                reports.append(SyncReport(connector=target.name, folder=folder, error=detail))
        return reports

    async def _record_error(self, tenant_id: str, name: str, folder: str, detail: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(MailCursor)
                .where(
                    MailCursor.tenant_id == tenant_id,
                    MailCursor.connector == name,
                    MailCursor.folder == folder,
                )
                .values(last_error=detail)
            )

    async def requested(self) -> list[tuple[str, str, str]]:
        """(tenant, connector, folder) whose sync a push notification asked for."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(MailCursor.tenant_id, MailCursor.connector, MailCursor.folder).where(
                    MailCursor.sync_requested_at.is_not(None)
                )
            )
            return [(r[0], r[1], r[2]) for r in rows]


async def request_sync(
    session: AsyncSession, tenant_id: str, connector: str, folder: str, when: datetime | None = None
) -> None:
    """Mark a folder for a prompt sync (a push notification arrived). Flushes only."""
    row = await session.get(MailCursor, (tenant_id, connector, folder))
    if row is None:
        session.add(
            MailCursor(
                tenant_id=tenant_id,
                connector=connector,
                folder=folder,
                cursor=None,
                version=0,
                sync_requested_at=when or utcnow(),
            )
        )
    else:
        row.sync_requested_at = when or utcnow()
    await session.flush()


# --------------------------------------------------------------------------- the queue


async def claim(
    session: AsyncSession,
    tenant_id: str,
    *,
    limit: int = 20,
    worker: str = "triage",
) -> list[TriageQueueItem]:
    """Claim up to ``limit`` pending items for triage (SKIP LOCKED on PostgreSQL)."""
    query = (
        select(TriageQueueItem)
        .where(
            TriageQueueItem.tenant_id == tenant_id,
            TriageQueueItem.status == QueueStatus.PENDING.value,
        )
        .order_by(TriageQueueItem.id)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    items = list((await session.execute(query)).scalars())
    now = utcnow()
    for item in items:
        item.status = QueueStatus.CLAIMED.value
        item.claimed_at = now
        item.claimed_by = worker
        item.attempts += 1
    await session.flush()
    return items


async def complete(session: AsyncSession, item_id: int, *, error: str | None = None) -> None:
    """Mark a claimed item done (or failed with ``error``). Flushes only."""
    await session.execute(
        update(TriageQueueItem)
        .where(TriageQueueItem.id == item_id)
        .values(
            status=(QueueStatus.FAILED if error else QueueStatus.DONE).value,
            done_at=utcnow(),
            last_error=error[:500] if error else None,
        )
    )


async def queue_counts(session: AsyncSession, tenant_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(TriageQueueItem.status, func.count())
        .where(TriageQueueItem.tenant_id == tenant_id)
        .group_by(TriageQueueItem.status)
    )
    return {str(status): int(count) for status, count in rows}
