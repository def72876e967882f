"""recheck: Entra users' withdrawn roles, and what a web session needs to ask Entra again

Revision ID: 0019_recheck
Revises: 0015_chat
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0019_recheck"
down_revision = "0015_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_users") as batch:
        batch.add_column(
            sa.Column("withheld_roles", sa.JSON(), nullable=False, server_default="[]")
        )
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("account_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("roles_checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("roles_checked_at")
        batch.drop_column("account_id")
    with op.batch_alter_table("auth_users") as batch:
        batch.drop_column("withheld_roles")
