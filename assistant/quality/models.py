"""Tables of quality monitoring: the spot-check queue and drift alerts."""

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class SpotCheckRow(Base):
    """An auto-approved action sampled for a person to check after the fact."""

    __tablename__ = "quality_spot_checks"
    __table_args__ = (
        UniqueConstraint("tenant_id", "action_id", name="uq_quality_spot_checks_action"),
        Index("ix_quality_spot_checks_status", "tenant_id", "status", "sampled_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(100))
    sample_bucket: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="open")
    verdict: Mapped[str | None] = mapped_column(String(20), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    checked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class QualityAlertRow(Base):
    """A rate that drifted past its threshold over the rolling window."""

    __tablename__ = "quality_alerts"
    __table_args__ = (Index("ix_quality_alerts_open", "tenant_id", "status", "metric", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(100), default="")
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    samples: Mapped[int] = mapped_column(Integer)
    window_days: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="open")
    routed_to: Mapped[str | None] = mapped_column(String(320), nullable=True)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
