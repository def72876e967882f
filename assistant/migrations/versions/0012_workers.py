"""worker heartbeats: which processes execute governed actions, and when each last beat

Revision ID: 0012_workers
Revises: 0011_audit_anchor
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0012_workers"
down_revision = "0011_audit_anchor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governance_workers",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("runner", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_governance_workers"),
    )
    op.create_index("ix_governance_workers_last_seen_at", "governance_workers", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_governance_workers_last_seen_at", table_name="governance_workers")
    op.drop_table("governance_workers")
