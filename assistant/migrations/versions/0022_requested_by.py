"""the person who asked for a governed action (the chat agent proposes at her request)

Revision ID: 0022_requested_by
Revises: 0017_web
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_requested_by"
down_revision = "0017_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("governed_actions") as batch:
        batch.add_column(sa.Column("requested_by", sa.String(200), nullable=True))
    # Until now a person's proposal named her as its actor; the system's name nobody.
    op.execute(
        "UPDATE governed_actions SET requested_by = actor_id "
        "WHERE actor_type IN ('user', 'service')"
    )


def downgrade() -> None:
    with op.batch_alter_table("governed_actions") as batch:
        batch.drop_column("requested_by")
