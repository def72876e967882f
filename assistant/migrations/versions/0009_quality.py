"""quality monitoring, spot checks and gate reports (filled by the quality and gate work)

Revision ID: 0009_quality
Revises: 0008_production
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0009_quality"
down_revision = "0008_production"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_spot_checks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("sample_bucket", sa.Float(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("checked_by", sa.String(200), nullable=True),
        sa.Column("sampled_at", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quality_spot_checks"),
        sa.UniqueConstraint("tenant_id", "action_id", name="uq_quality_spot_checks_action"),
    )
    op.create_index("ix_quality_spot_checks_status", "quality_spot_checks",
                    ["tenant_id", "status", "sampled_at"])
    op.create_table(
        "quality_alerts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("routed_to", sa.String(320), nullable=True),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quality_alerts"),
    )
    op.create_index("ix_quality_alerts_open", "quality_alerts",
                    ["tenant_id", "status", "metric", "kind"])


def downgrade() -> None:
    op.drop_index("ix_quality_alerts_open", table_name="quality_alerts")
    op.drop_table("quality_alerts")
    op.drop_index("ix_quality_spot_checks_status", table_name="quality_spot_checks")
    op.drop_table("quality_spot_checks")
