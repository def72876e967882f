"""users, roles, delegations, API keys, sign-in attempts, web sessions, msal cache

Revision ID: 0004_auth
Revises: 0003_governance
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0004_auth"
down_revision = "0003_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_login_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_users"),
        sa.UniqueConstraint("tenant_id", "username", name="uq_auth_users_username"),
    )
    op.create_table(
        "auth_role_grants",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["auth_users.id"], ondelete="CASCADE",
                                name="fk_auth_role_grants_user_id_auth_users"),
        sa.PrimaryKeyConstraint("user_id", "role", name="pk_auth_role_grants"),
    )
    op.create_index("ix_auth_role_grants_tenant", "auth_role_grants", ["tenant_id"])
    op.create_table(
        "auth_delegations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("executive_id", sa.String(64), nullable=False),
        sa.Column("delegate_id", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_delegations"),
    )
    op.create_index("ix_auth_delegations_lookup", "auth_delegations",
                    ["tenant_id", "delegate_id", "executive_id"])
    op.create_table(
        "auth_api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_auth_api_keys_prefix"),
    )
    op.create_index("ix_auth_api_keys_tenant", "auth_api_keys", ["tenant_id"])
    op.create_table(
        "auth_login_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("attempted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_auth_login_attempts"),
    )
    op.create_index("ix_auth_login_attempts_source", "auth_login_attempts",
                    ["source", "attempted_at"])
    op.create_index("ix_auth_login_attempts_user", "auth_login_attempts",
                    ["tenant_id", "username", "attempted_at"])
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_auth_sessions"),
    )
    op.create_index("ix_auth_sessions_user", "auth_sessions", ["tenant_id", "user_id"])
    op.create_table(
        "auth_msal_cache",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_auth_msal_cache"),
    )


def downgrade() -> None:
    op.drop_table("auth_msal_cache")
    op.drop_index("ix_auth_sessions_user", table_name="auth_sessions")
    op.drop_table("auth_sessions")
    op.drop_index("ix_auth_login_attempts_user", table_name="auth_login_attempts")
    op.drop_index("ix_auth_login_attempts_source", table_name="auth_login_attempts")
    op.drop_table("auth_login_attempts")
    op.drop_index("ix_auth_api_keys_tenant", table_name="auth_api_keys")
    op.drop_table("auth_api_keys")
    op.drop_index("ix_auth_delegations_lookup", table_name="auth_delegations")
    op.drop_table("auth_delegations")
    op.drop_index("ix_auth_role_grants_tenant", table_name="auth_role_grants")
    op.drop_table("auth_role_grants")
    op.drop_table("auth_users")
