"""action edits keep the arguments they replaced (the review card's and history's body diff)

Revision ID: 0017_web
Revises: 0020_audit
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_web"
down_revision = "0020_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("action_edits") as batch:
        batch.add_column(sa.Column("previous_arguments", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("action_edits") as batch:
        batch.drop_column("previous_arguments")
