"""audit log: append-only hash-chained events, chain heads, signed checkpoints

Revision ID: 0002_audit
Revises: 0001_sandbox
Create Date: 2026-11-24

Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events and
checkpoints tables; an insert trigger checks that each event follows its tenant's chain head
(seq = last_seq + 1, prev_hash = last_hash) and advances the head. On PostgreSQL the
application role ``assistant_app`` gets INSERT and SELECT only on those tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assistant.core.db import UTCDateTime

revision = "0002_audit"
down_revision = "0001_sandbox"
branch_labels = None
depends_on = None

APP_ROLE = "assistant_app"
APPEND_ONLY = ("audit_events", "audit_checkpoints")

_SQLITE_TRIGGERS = [
    *(
        f"""CREATE TRIGGER {table}_no_{verb} BEFORE {verb.upper()} ON {table}
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only: {verb.upper()} on {table} refused');
        END"""
        for table in APPEND_ONLY
        for verb in ("update", "delete")
    ),
    """CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
    BEGIN
      SELECT RAISE(ABORT, 'audit chain: event does not follow the chain head')
      WHERE NOT EXISTS (SELECT 1 FROM audit_chain_heads h
                        WHERE h.tenant_id = NEW.tenant_id AND h.last_seq = NEW.seq - 1
                          AND h.last_hash = NEW.prev_hash);
      UPDATE audit_chain_heads SET last_seq = NEW.seq, last_hash = NEW.row_hash
      WHERE tenant_id = NEW.tenant_id;
    END""",
]

_PG_FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE OR REPLACE FUNCTION audit_chain_advance() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE audit_chain_heads SET last_seq = NEW.seq, last_hash = NEW.row_hash
       WHERE tenant_id = NEW.tenant_id AND last_seq = NEW.seq - 1
         AND last_hash = NEW.prev_hash;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'audit chain: event % of tenant % does not follow the chain head',
          NEW.seq, NEW.tenant_id USING ERRCODE = 'integrity_constraint_violation';
      END IF;
      RETURN NEW;
    END $$""",
]

_PG_TRIGGERS = [
    *(
        f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"""
        for table in APPEND_ONLY
    ),
    *(
        f"""CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"""
        for table in APPEND_ONLY
    ),
    """CREATE TRIGGER audit_events_chain BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_chain_advance()""",
]

# Roles are cluster-wide: create only when missing (another database may have made it, or a
# concurrent migration may be making it right now).
_PG_CREATE_ROLE = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE@') THEN
    CREATE ROLE @ROLE@ NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;
END $$""".replace("@ROLE@", APP_ROLE)

_PG_GRANTS = [
    f"GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO {APP_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO {APP_ROLE}",
]

# The role may still hold privileges in other databases of the cluster: then it stays.
_PG_DROP_ROLE = """
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE@') THEN
    REVOKE ALL ON audit_events, audit_checkpoints, audit_chain_heads FROM @ROLE@;
    BEGIN
      DROP ROLE @ROLE@;
    EXCEPTION WHEN dependent_objects_still_exist OR undefined_object THEN
      RAISE NOTICE 'role @ROLE@ kept: still used elsewhere in the cluster';
    END;
  END IF;
END $$""".replace("@ROLE@", APP_ROLE)


def upgrade() -> None:
    op.create_table(
        "audit_chain_heads",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_audit_chain_heads"),
    )
    op.create_table(
        "audit_events",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(320), nullable=False),
        sa.Column("on_behalf_of", sa.String(320), nullable=True),
        sa.Column("roles", sa.Text(), nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(320), nullable=True),
        sa.Column("connector", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("idempotency_key", sa.String(320), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_occurred", "audit_events", ["tenant_id", "occurred_at"])
    op.create_index("ix_audit_events_actor", "audit_events", ["tenant_id", "actor_id"])
    op.create_index("ix_audit_events_correlation", "audit_events",
                    ["tenant_id", "correlation_id"])
    op.create_index("ix_audit_events_resource", "audit_events",
                    ["tenant_id", "resource_type", "resource_id"])
    op.create_index("ix_audit_events_action_id", "audit_events", ["tenant_id", "action_id"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
        sa.Column("key_fingerprint", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name="pk_audit_checkpoints"),
    )

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in [*_PG_FUNCTIONS, *_PG_TRIGGERS, _PG_CREATE_ROLE, *_PG_GRANTS]:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_DROP_ROLE)
    # Triggers go with their tables.
    op.drop_table("audit_checkpoints")
    for name in ("ix_audit_events_action_id", "ix_audit_events_resource",
                 "ix_audit_events_correlation", "ix_audit_events_actor",
                 "ix_audit_events_occurred"):
        op.drop_index(name, table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("audit_chain_heads")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_chain_advance()")
        op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
