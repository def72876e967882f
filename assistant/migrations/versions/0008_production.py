"""owners, autonomy grants, shadow comparisons, configuration versions and rollback drills

Revision ID: 0008_production
Revises: 0007_llm
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0008_production"
down_revision = "0007_llm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("person", sa.String(200), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("contact", sa.String(500), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_owners"),
        sa.UniqueConstraint("tenant_id", "scope", "subject", name="uq_owners_scope"),
    )
    op.create_table(
        "autonomy_grants",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("executive", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("level", sa.String(20), nullable=False),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_autonomy_grants"),
        sa.UniqueConstraint("tenant_id", "executive", "kind",
                            name="uq_autonomy_grants_scope"),
    )
    op.create_table(
        "shadow_comparisons",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("executive", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("assistant_output", sa.Text(), nullable=False),
        sa.Column("human_output", sa.Text(), nullable=False),
        sa.Column("agreed", sa.Boolean(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_comparisons"),
    )
    op.create_index("ix_shadow_comparisons_scope", "shadow_comparisons",
                    ["tenant_id", "executive", "kind", "created_at"])
    op.create_table(
        "config_versions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(80), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("restored_from", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
        sa.UniqueConstraint("tenant_id", "kind", "subject", "number",
                            name="uq_config_versions_number"),
    )
    op.create_index("ix_config_versions_kind", "config_versions",
                    ["tenant_id", "kind", "subject", "created_at"])
    op.create_table(
        "rollback_drills",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollback_drills"),
    )
    op.create_index("ix_rollback_drills_tenant", "rollback_drills",
                    ["tenant_id", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_rollback_drills_tenant", table_name="rollback_drills")
    op.drop_table("rollback_drills")
    op.drop_index("ix_config_versions_kind", table_name="config_versions")
    op.drop_table("config_versions")
    op.drop_index("ix_shadow_comparisons_scope", table_name="shadow_comparisons")
    op.drop_table("shadow_comparisons")
    op.drop_table("autonomy_grants")
    op.drop_table("owners")
