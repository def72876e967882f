"""the failed-authentication budget shared by every process; reserved tenant names refused

Revision ID: 0020_audit
Revises: 0019_recheck
Create Date: 2026-12-03

``auth_failure_budget`` holds the token bucket that limits how many failed authentications
are recorded one by one in the system chain: one row, locked and updated in the transaction
that appends the event, so the limit holds across worker processes and hosts.

Users and API keys can never belong to a tenant named like the chains of no tenant
(``_system``, ``_anchor``: names starting with ``_``): the service refuses them, and these
triggers refuse them on any path that writes the tables directly.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_audit"
down_revision = "0019_recheck"
branch_labels = None
depends_on = None

_GUARDED = ("auth_users", "auth_api_keys")
_MESSAGE = "tenant names starting with _ are reserved"


def _sqlite_trigger(table: str, when: str) -> str:
    return (
        f"CREATE TRIGGER {table}_reserved_tenant_{when.lower()} BEFORE {when} ON {table} "
        "FOR EACH ROW WHEN substr(NEW.tenant_id, 1, 1) = '_' "
        f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
    )


_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION refuse_reserved_tenant() RETURNS trigger AS $$
BEGIN
    IF left(NEW.tenant_id, 1) = '_' THEN
        RAISE EXCEPTION '{_MESSAGE}' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "auth_failure_budget",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.Column("suppressed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_auth_failure_budget"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in _GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_reserved_tenant BEFORE INSERT OR UPDATE OF tenant_id "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_reserved_tenant()"
            )
    else:
        for table in _GUARDED:
            op.execute(_sqlite_trigger(table, "INSERT"))
            op.execute(_sqlite_trigger(table, "UPDATE"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_reserved_tenant ON {table}")
        op.execute("DROP FUNCTION IF EXISTS refuse_reserved_tenant()")
    else:
        for table in _GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_reserved_tenant_insert")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_reserved_tenant_update")
    op.drop_table("auth_failure_budget")
