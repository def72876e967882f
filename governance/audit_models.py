"""Tables of the audit log: events (append-only), chain heads, signed checkpoints.

``payload`` and ``roles`` hold canonical JSON text (sorted keys, no whitespace) exactly as it
was hashed, so that verification hashes the stored bytes without re-encoding them. The
migration ``0002_audit`` adds the triggers that refuse UPDATE and DELETE on events and
checkpoints and that advance the chain head on every insert.
"""

from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import BigInteger, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime
from governance.audit_hash import GENESIS_HASH


class AuditChainHead(Base):
    """The last link of a tenant's chain; the row appends lock to serialize themselves."""

    __tablename__ = "audit_chain_heads"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False, default=GENESIS_HASH)


class AuditEvent(Base):
    """One audit event, a link of its tenant's SHA-256 chain. Never updated or deleted."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_occurred", "tenant_id", "occurred_at"),
        Index("ix_audit_events_actor", "tenant_id", "actor_id"),
        Index("ix_audit_events_correlation", "tenant_id", "correlation_id"),
        Index("ix_audit_events_resource", "tenant_id", "resource_type", "resource_id"),
        Index("ix_audit_events_action_id", "tenant_id", "action_id"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    actor_type: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_id: Mapped[str] = mapped_column(String(320), nullable=False)
    on_behalf_of: Mapped[str | None] = mapped_column(String(320))
    roles_json: Mapped[str] = mapped_column("roles", Text, nullable=False)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(320))
    connector: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    action_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(320))
    payload_json: Mapped[str] = mapped_column("payload", Text, nullable=False)
    schema_version: Mapped[int] = mapped_column(Integer, nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    @property
    def payload(self) -> dict[str, Any]:
        """The redacted payload, decoded."""
        value: dict[str, Any] = orjson.loads(self.payload_json)
        return value

    @property
    def roles(self) -> list[str]:
        value: list[str] = orjson.loads(self.roles_json)
        return value


class AuditCheckpoint(Base):
    """An Ed25519 signature over (tenant, seq, row_hash at seq): anchors the chain so far."""

    __tablename__ = "audit_checkpoints"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    row_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    signature: Mapped[str] = mapped_column(String(128), nullable=False)
    key_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)


#: The Core tables, for fast inserts that skip the ORM's unit of work.
EVENTS = cast(Table, AuditEvent.__table__)
CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)
HEADS = cast(Table, AuditChainHead.__table__)
