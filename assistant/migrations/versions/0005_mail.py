"""mail ingestion (cursors, triage queue, Graph subscriptions) and connector instances

Revision ID: 0005_mail
Revises: 0004_auth
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0005_mail"
down_revision = "0004_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_cursors",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(128), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=True),
        sa.Column("full_sync_at", UTCDateTime(), nullable=True),
        sa.Column("sync_requested_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "connector", "folder", name="pk_mail_cursors"),
    )
    op.create_table(
        "mail_triage_queue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(128), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("provider_id", sa.String(512), nullable=False),
        sa.Column("message_id", sa.String(998), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("enqueued_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_triage_queue"),
        sa.UniqueConstraint("tenant_id", "connector", "provider_id",
                            name="uq_mail_triage_queue_provider_id"),
    )
    op.create_index(
        "uq_mail_triage_queue_message_id", "mail_triage_queue",
        ["tenant_id", "connector", "message_id"], unique=True,
        sqlite_where=sa.text("message_id IS NOT NULL"),
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )
    op.create_index("ix_mail_triage_queue_status", "mail_triage_queue",
                    ["tenant_id", "status", "id"])
    op.create_table(
        "mail_subscriptions",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connector", sa.String(128), nullable=False),
        sa.Column("folder", sa.String(255), nullable=False),
        sa.Column("client_state_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_subscriptions"),
    )
    op.create_index("ix_mail_subscriptions_connector", "mail_subscriptions",
                    ["tenant_id", "connector", "folder"])
    op.create_table(
        "connector_instances",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("slug", sa.String(128), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_connector_instances"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_connector_instances_name"),
    )


def downgrade() -> None:
    op.drop_table("connector_instances")
    op.drop_index("ix_mail_subscriptions_connector", table_name="mail_subscriptions")
    op.drop_table("mail_subscriptions")
    op.drop_index("ix_mail_triage_queue_status", table_name="mail_triage_queue")
    op.drop_index("uq_mail_triage_queue_message_id", table_name="mail_triage_queue")
    op.drop_table("mail_triage_queue")
    op.drop_table("mail_cursors")
