"""Tables of the sandbox: a mailbox and calendars kept in the application's own database."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class SandboxMailboxState(Base):
    """Per-mailbox change counter: the sync cursor is a position in it."""

    __tablename__ = "sandbox_mailbox_state"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(320), primary_key=True)
    change_seq: Mapped[int] = mapped_column(Integer, default=0)


class SandboxMessage(Base):
    __tablename__ = "sandbox_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mailbox", "idempotency_key", name="uq_sandbox_msg_idem"),
        Index("ix_sandbox_messages_sync", "tenant_id", "mailbox", "folder", "change_seq"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    mailbox: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(64))
    change_seq: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(998), nullable=True)
    seed_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SandboxTombstone(Base):
    """A message that left a folder (moved, sent, deleted): reported as removed by sync."""

    __tablename__ = "sandbox_tombstones"
    __table_args__ = (
        Index("ix_sandbox_tombstones_sync", "tenant_id", "mailbox", "folder", "change_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    mailbox: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(64))
    message_ref: Mapped[str] = mapped_column(String(64))
    change_seq: Mapped[int] = mapped_column(Integer)


class SandboxPerson(Base):
    __tablename__ = "sandbox_people"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    working_hours: Mapped[dict[str, Any]] = mapped_column(JSON)


class SandboxEvent(Base):
    """One event or recurring series, stored as iCalendar text (one VEVENT per row)."""

    __tablename__ = "sandbox_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "owner", "uid", name="uq_sandbox_event_uid"),
        Index("ix_sandbox_events_owner", "tenant_id", "owner"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(320))
    uid: Mapped[str] = mapped_column(String(255))
    ical: Mapped[str] = mapped_column(Text)
    attendees: Mapped[list[str]] = mapped_column(JSON, default=list)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    seed_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
