"""least privilege: the service role appends audit rows and never rewrites them

Revision ID: 0011_audit_anchor
Revises: 0010_ownership
Create Date: 2026-12-02

PostgreSQL only (SQLite has no roles). Migrations run as the owner of the schema; the
service connects as a login role that is a member of ``assistant_app``, which gets:

* SELECT, INSERT, UPDATE, DELETE on the application's tables, now and (default privileges of
  the owner) on tables later migrations create;
* SELECT and INSERT only on ``audit_events`` and ``audit_checkpoints``;
* SELECT, INSERT and UPDATE on ``audit_chain_heads``, where a guard trigger lets a head move
  only by the insert trigger of an event (a direct UPDATE that changes it is refused), and a
  new head start at seq 0: the service cannot move a chain's head back;
* SELECT only on ``alembic_version``.

Not being the owner, the role can neither switch the triggers off nor alter the tables.
"""

from __future__ import annotations

from alembic import op

revision = "0011_audit_anchor"
down_revision = "0010_ownership"
branch_labels = None
depends_on = None

APP_ROLE = "assistant_app"

_HEAD_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_head_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.last_seq <> 0 THEN
      RAISE EXCEPTION 'audit chain: a new chain head starts at seq 0'
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  ELSIF (NEW.last_seq, NEW.last_hash, NEW.tenant_id)
        IS DISTINCT FROM (OLD.last_seq, OLD.last_hash, OLD.tenant_id)
        AND pg_trigger_depth() < 2 THEN
    -- Depth 1 is a statement of a client; the event insert trigger's update runs at depth 2.
    RAISE EXCEPTION 'audit chain: the head of % moves only by appending events', OLD.tenant_id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$"""

_HEAD_GUARD_TRIGGER = """
CREATE TRIGGER audit_chain_heads_guard BEFORE INSERT OR UPDATE ON audit_chain_heads
FOR EACH ROW EXECUTE FUNCTION audit_head_guard()"""

_GRANTS = [
    f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}",
    f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}",
    f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM {APP_ROLE}",
    f"REVOKE DELETE, TRUNCATE ON audit_chain_heads FROM {APP_ROLE}",
    f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE}",
    # Tables and sequences the owner creates later (other migrations, procrastinate's schema).
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {APP_ROLE}",
]

_REVOKES = [
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public "
    f"REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}",
    f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}",
    # What 0002_audit granted, restored.
    f"GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO {APP_ROLE}",
    f"GRANT SELECT, INSERT, UPDATE ON audit_chain_heads TO {APP_ROLE}",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in [_HEAD_GUARD_FUNCTION, _HEAD_GUARD_TRIGGER, *_GRANTS]:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _REVOKES:
        op.execute(statement)
    op.execute("DROP TRIGGER IF EXISTS audit_chain_heads_guard ON audit_chain_heads")
    op.execute("DROP FUNCTION IF EXISTS audit_head_guard()")
