"""sandbox mailbox and calendars

Revision ID: 0001_sandbox
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0001_sandbox"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sandbox_mailbox_state",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "mailbox", name="pk_sandbox_mailbox_state"),
    )
    op.create_table(
        "sandbox_messages",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("folder", sa.String(64), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(998), nullable=True),
        sa.Column("seed_key", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sandbox_messages"),
        sa.UniqueConstraint("tenant_id", "mailbox", "idempotency_key",
                            name="uq_sandbox_msg_idem"),
    )
    op.create_index("ix_sandbox_messages_sync", "sandbox_messages",
                    ["tenant_id", "mailbox", "folder", "change_seq"])
    op.create_table(
        "sandbox_tombstones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("folder", sa.String(64), nullable=False),
        sa.Column("message_ref", sa.String(64), nullable=False),
        sa.Column("change_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sandbox_tombstones"),
    )
    op.create_index("ix_sandbox_tombstones_sync", "sandbox_tombstones",
                    ["tenant_id", "mailbox", "folder", "change_seq"])
    op.create_table(
        "sandbox_people",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("working_hours", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "address", name="pk_sandbox_people"),
    )
    op.create_table(
        "sandbox_events",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("ical", sa.Text(), nullable=False),
        sa.Column("attendees", sa.JSON(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("seed_key", sa.String(64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sandbox_events"),
        sa.UniqueConstraint("tenant_id", "owner", "uid", name="uq_sandbox_event_uid"),
    )
    op.create_index("ix_sandbox_events_owner", "sandbox_events", ["tenant_id", "owner"])


def downgrade() -> None:
    op.drop_index("ix_sandbox_events_owner", table_name="sandbox_events")
    op.drop_table("sandbox_events")
    op.drop_table("sandbox_people")
    op.drop_index("ix_sandbox_tombstones_sync", table_name="sandbox_tombstones")
    op.drop_table("sandbox_tombstones")
    op.drop_index("ix_sandbox_messages_sync", table_name="sandbox_messages")
    op.drop_table("sandbox_messages")
    op.drop_table("sandbox_mailbox_state")
