"""governed actions: actions, approvals, edits, exception queue, kill switches

Revision ID: 0003_governance
Revises: 0002_audit
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0003_governance"
down_revision = "0002_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "governed_actions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("capability", sa.String(32), nullable=False),
        sa.Column("connector", sa.String(100), nullable=True),
        sa.Column("risk", sa.String(20), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_type", sa.String(20), nullable=False),
        sa.Column("on_behalf_of", sa.String(320), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("autonomy", sa.String(20), nullable=False),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(20), nullable=True),
        sa.Column("policy_rule_id", sa.String(100), nullable=True),
        sa.Column("policy_version", sa.String(120), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("explanation", sa.JSON(), nullable=True),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("approver_roles", sa.JSON(), nullable=False),
        sa.Column("review_expires_at", UTCDateTime(), nullable=True),
        sa.Column("approved_at", UTCDateTime(), nullable=True),
        sa.Column("hold_seconds", sa.Float(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(100), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        sa.Column("external_ids", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("compensation_result", sa.JSON(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_governed_actions"),
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_governed_actions_dedupe"),
    )
    op.create_index("ix_governed_actions_due", "governed_actions", ["state", "not_before"])
    op.create_index("ix_governed_actions_tenant_state", "governed_actions",
                    ["tenant_id", "state", "created_at"])
    op.create_index("ix_governed_actions_correlation", "governed_actions",
                    ["tenant_id", "correlation_id"])

    op.create_table(
        "action_approvals",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(32), nullable=False),
        sa.Column("approver_id", sa.String(200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_action_approvals"),
        sa.ForeignKeyConstraint(["action_id"], ["governed_actions.id"], ondelete="CASCADE",
                                name="fk_action_approvals_action_id_governed_actions"),
        sa.UniqueConstraint("action_id", "approver_id", name="uq_action_approvals_approver"),
    )
    op.create_index("ix_action_approvals_action_id", "action_approvals", ["action_id"])

    op.create_table(
        "action_edits",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(32), nullable=False),
        sa.Column("editor_id", sa.String(200), nullable=False),
        sa.Column("patch", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_action_edits"),
        sa.ForeignKeyConstraint(["action_id"], ["governed_actions.id"], ondelete="CASCADE",
                                name="fk_action_edits_action_id_governed_actions"),
    )
    op.create_index("ix_action_edits_action_id", "action_edits", ["action_id"])

    op.create_table(
        "action_exceptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_action_exceptions"),
        sa.ForeignKeyConstraint(["action_id"], ["governed_actions.id"], ondelete="CASCADE",
                                name="fk_action_exceptions_action_id_governed_actions"),
    )
    op.create_index("ix_action_exceptions_action_id", "action_exceptions", ["action_id"])
    op.create_index("ix_action_exceptions_open", "action_exceptions",
                    ["tenant_id", "status", "owner"])

    op.create_table(
        "kill_switches",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("set_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kill_switches"),
        sa.UniqueConstraint("tenant_id", "connector", name="uq_kill_switches_scope"),
    )


def downgrade() -> None:
    op.drop_table("kill_switches")
    op.drop_index("ix_action_exceptions_open", table_name="action_exceptions")
    op.drop_index("ix_action_exceptions_action_id", table_name="action_exceptions")
    op.drop_table("action_exceptions")
    op.drop_index("ix_action_edits_action_id", table_name="action_edits")
    op.drop_table("action_edits")
    op.drop_index("ix_action_approvals_action_id", table_name="action_approvals")
    op.drop_table("action_approvals")
    op.drop_index("ix_governed_actions_correlation", table_name="governed_actions")
    op.drop_index("ix_governed_actions_tenant_state", table_name="governed_actions")
    op.drop_index("ix_governed_actions_due", table_name="governed_actions")
    op.drop_table("governed_actions")
