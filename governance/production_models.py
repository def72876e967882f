"""Tables of production readiness: owners, autonomy grants, config versions, rollback drills."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class OwnerRecord(Base):
    """An owner set through the admin API; it takes precedence over configured owners.

    ``scope`` is ``deployment``, ``exceptions``, ``policy`` or ``connector`` (then
    ``subject`` is the instance name; otherwise ``subject`` is empty).
    """

    __tablename__ = "owners"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "subject", name="uq_owners_scope"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(128), default="")
    person: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(500))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AutonomyGrant(Base):
    """The autonomy level of one executive for one action kind (or glob), with its why."""

    __tablename__ = "autonomy_grants"
    __table_args__ = (
        UniqueConstraint("tenant_id", "executive", "kind", name="uq_autonomy_grants_scope"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    executive: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(20))
    set_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShadowComparison(Base):
    """In shadow mode: what the assistant would have done next to what the person did."""

    __tablename__ = "shadow_comparisons"
    __table_args__ = (
        Index("ix_shadow_comparisons_scope", "tenant_id", "executive", "kind", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    executive: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(100))
    subject_id: Mapped[str] = mapped_column(String(200))
    assistant_output: Mapped[str] = mapped_column(Text)
    human_output: Mapped[str] = mapped_column(Text)
    agreed: Mapped[bool] = mapped_column(Boolean)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConfigVersion(Base):
    """One version of a piece of configuration: a content snapshot, its hash, who and why.

    Connector secrets stay in ``content`` only as the connector store's Fernet token.
    """

    __tablename__ = "config_versions"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "kind", "subject", "number", name="uq_config_versions_number"
        ),
        Index("ix_config_versions_kind", "tenant_id", "kind", "subject", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(128), default="")
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(80))
    created_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    restored_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DrillRecord(Base):
    """One rollback drill: each compensable kind executed, compensated and verified."""

    __tablename__ = "rollback_drills"
    __table_args__ = (Index("ix_rollback_drills_tenant", "tenant_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    passed: Mapped[bool] = mapped_column(Boolean)
    summary: Mapped[str] = mapped_column(Text)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_by: Mapped[str] = mapped_column(String(200))
