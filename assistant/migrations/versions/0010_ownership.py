"""ownership: connectors bound to the executives they serve; API keys bound to a person

Revision ID: 0010_ownership
Revises: 0009_quality
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0010_ownership"
down_revision = "0009_quality"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_executives",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(128), nullable=False),
        sa.Column("executive_id", sa.String(64), nullable=False),
        sa.Column("bound_by", sa.String(200), nullable=False),
        sa.Column("bound_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "connector", "executive_id", name="pk_connector_executives"
        ),
    )
    # The person a key belongs to: the key acts as that person, never with more roles
    # than they hold now. NULL: a service account's key (acts for nobody).
    with op.batch_alter_table("auth_api_keys") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_api_keys") as batch:
        batch.drop_column("owner_id")
    op.drop_table("connector_executives")
