"""LLM cost ledger, triage results and triage corrections

Revision ID: 0007_llm
Revises: 0006_calendar
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0007_llm"
down_revision = "0006_calendar"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("prompt_name", sa.String(64), nullable=False),
        sa.Column("prompt_version", sa.String(80), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error_type", sa.String(100), nullable=True),
        sa.Column("over_limit", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_llm_calls"),
    )
    op.create_index("ix_llm_calls_tenant_time", "llm_calls", ["tenant_id", "occurred_at"])
    op.create_index("ix_llm_calls_correlation", "llm_calls", ["correlation_id"])
    op.create_table(
        "triage_results",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=False),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column("message_date", UTCDateTime(), nullable=True),
        sa.Column("category", sa.String(16), nullable=True),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("needs_human", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("prompt_version", sa.String(80), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_triage_results"),
        sa.UniqueConstraint("tenant_id", "mailbox", "message_id",
                            name="uq_triage_results_message"),
    )
    op.create_index("ix_triage_results_tenant_created", "triage_results",
                    ["tenant_id", "created_at"])
    op.create_table(
        "triage_corrections",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("result_id", sa.String(32), nullable=False),
        sa.Column("mailbox", sa.String(320), nullable=False),
        sa.Column("message_id", sa.String(512), nullable=False),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column("corrected_by", sa.String(128), nullable=False),
        sa.Column("on_behalf_of", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("original_category", sa.String(16), nullable=True),
        sa.Column("original_priority", sa.String(16), nullable=False),
        sa.Column("original_stage", sa.String(16), nullable=False),
        sa.Column("original_rule_id", sa.String(128), nullable=True),
        sa.Column("original_model", sa.String(200), nullable=True),
        sa.Column("original_prompt_version", sa.String(80), nullable=True),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("phishing", sa.Boolean(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("review_status", sa.String(32), nullable=False),
        sa.Column("reviewed_by", sa.String(128), nullable=True),
        sa.Column("reviewed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["result_id"], ["triage_results.id"], ondelete="CASCADE",
                                name="fk_triage_corrections_result_id_triage_results"),
        sa.PrimaryKeyConstraint("id", name="pk_triage_corrections"),
    )
    op.create_index("ix_triage_corrections_tenant_created", "triage_corrections",
                    ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_triage_corrections_tenant_created", table_name="triage_corrections")
    op.drop_table("triage_corrections")
    op.drop_index("ix_triage_results_tenant_created", table_name="triage_results")
    op.drop_table("triage_results")
    op.drop_index("ix_llm_calls_correlation", table_name="llm_calls")
    op.drop_index("ix_llm_calls_tenant_time", table_name="llm_calls")
    op.drop_table("llm_calls")
