"""Connector instances created through the admin API (in addition to those in settings)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class StoredConnector(Base):
    """One connector instance: its plain config, and its secrets encrypted (Fernet)."""

    __tablename__ = "connector_instances"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_connector_instances_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    slug: Mapped[str] = mapped_column(String(128))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConnectorExecutive(Base):
    """One executive (a user id of the tenant) a connector instance serves. A personal
    mailbox names one; a shared mailbox names each of its executives explicitly."""

    __tablename__ = "connector_executives"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    connector: Mapped[str] = mapped_column(String(128), primary_key=True)
    executive_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    bound_by: Mapped[str] = mapped_column(String(200))
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime())
