"""Tables of mail ingestion: sync cursors, the triage queue, Graph subscriptions."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class QueueStatus(StrEnum):
    PENDING = "pending"  # waiting for triage
    CLAIMED = "claimed"  # a triage worker holds it
    DONE = "done"
    FAILED = "failed"
    BASELINE = "baseline"  # present at the first sync, recorded but not triaged


class MailCursor(Base):
    """Where the sync of one folder of one connector instance stands."""

    __tablename__ = "mail_cursors"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector: Mapped[str] = mapped_column(String(128), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class TriageQueueItem(Base):
    """One message ingested for triage; the unique keys make ingestion idempotent."""

    __tablename__ = "mail_triage_queue"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "connector", "provider_id", name="uq_mail_triage_queue_provider_id"
        ),
        # In the database (migration 0005) this index is partial, WHERE message_id IS NOT
        # NULL, on both backends. It is declared without the predicate: NULLs never collide
        # in a unique index on SQLite or PostgreSQL, and naming a dialect's option
        # (postgresql_where) makes SQLAlchemy import that dialect's package, every
        # PostgreSQL driver's module, when this module loads, even on SQLite.
        Index(
            "uq_mail_triage_queue_message_id",
            "tenant_id",
            "connector",
            "message_id",
            unique=True,
        ),
        Index("ix_mail_triage_queue_status", "tenant_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str] = mapped_column(String(255))
    provider_id: Mapped[str] = mapped_column(String(512))
    message_id: Mapped[str | None] = mapped_column(String(998), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=QueueStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class MailSubscription(Base):
    """A Graph change-notification subscription; only a hash of its clientState is kept."""

    __tablename__ = "mail_subscriptions"
    __table_args__ = (Index("ix_mail_subscriptions_connector", "tenant_id", "connector", "folder"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(128))
    folder: Mapped[str] = mapped_column(String(255))
    client_state_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
