"""triage learning: the labelled examples the learned triage stage trains on

Revision ID: 0013_triage_learning
Revises: 0012_workers
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0013_triage_learning"
down_revision = "0012_workers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triage_training_examples",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("correction_id", sa.String(32), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["correction_id"], ["triage_corrections.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("correction_id", name="uq_triage_training_examples_correction"),
    )
    op.create_index(
        "ix_triage_training_examples_tenant", "triage_training_examples", ["tenant_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_triage_training_examples_tenant", table_name="triage_training_examples")
    op.drop_table("triage_training_examples")
