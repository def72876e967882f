"""indexes for keyset pages of governed actions (review queue, action lists)

The review queue and GET /api/v1/actions page by (created_at DESC, id DESC) after a
cursor. These indexes hold the rows of one tenant (and state, and executive) in that order,
so that a page reads ``limit`` index entries instead of sorting every matching row.

Revision ID: 0016_throughput
Revises: 0022_requested_by
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0016_throughput"
down_revision = "0022_requested_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The review queue: one executive's pending actions, newest first.
    op.create_index(
        "ix_governed_actions_queue",
        "governed_actions",
        ["tenant_id", "state", "on_behalf_of", "created_at", "id"],
    )
    # Everything of a tenant, newest first (admins and auditors, no state filter).
    op.create_index(
        "ix_governed_actions_recent", "governed_actions", ["tenant_id", "created_at", "id"]
    )
    # By state, newest first: the id completes the order, so a page after a cursor is a range.
    op.drop_index("ix_governed_actions_tenant_state", table_name="governed_actions")
    op.create_index(
        "ix_governed_actions_tenant_state",
        "governed_actions",
        ["tenant_id", "state", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_governed_actions_tenant_state", table_name="governed_actions")
    op.create_index(
        "ix_governed_actions_tenant_state",
        "governed_actions",
        ["tenant_id", "state", "created_at"],
    )
    op.drop_index("ix_governed_actions_recent", table_name="governed_actions")
    op.drop_index("ix_governed_actions_queue", table_name="governed_actions")
