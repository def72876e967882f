"""Tables of governed actions: the action itself, approvals, edits, exceptions, kill switches.

The ``governed_actions`` row is the source of truth of an action's lifecycle; background
jobs only point at it, so a job that runs twice has one effect.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.db import Base, UTCDateTime


class Action(Base):
    """One governed side effect, from proposal to execution (and compensation)."""

    __tablename__ = "governed_actions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "dedupe_key", name="uq_governed_actions_dedupe"),
        Index("ix_governed_actions_due", "state", "not_before"),
        # Keyset pages (created_at DESC, id DESC): migration 0016_throughput.
        Index("ix_governed_actions_tenant_state", "tenant_id", "state", "created_at", "id"),
        Index(
            "ix_governed_actions_queue", "tenant_id", "state", "on_behalf_of", "created_at", "id"
        ),
        Index("ix_governed_actions_recent", "tenant_id", "created_at", "id"),
        Index("ix_governed_actions_correlation", "tenant_id", "correlation_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(100))
    capability: Mapped[str] = mapped_column(String(32))
    connector: Mapped[str | None] = mapped_column(String(100), nullable=True)
    risk: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_type: Mapped[str] = mapped_column(String(20))
    on_behalf_of: Mapped[str | None] = mapped_column(String(320), nullable=True)
    #: The person who asked for it: the proposer herself, or whoever the chat agent (actor
    #: type ``agent``) proposed it for. None for the system's own proposals.
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    autonomy: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # policy decision
    decision: Mapped[str | None] = mapped_column(String(20), nullable=True)
    policy_rule_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(120), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    explanation: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    approvals_required: Mapped[int] = mapped_column(Integer, default=0)
    approver_roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    review_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # execution
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    hold_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    external_ids: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    compensation_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActionApproval(Base):
    """One reviewer's approval; four-eyes rules count distinct rows."""

    __tablename__ = "action_approvals"
    __table_args__ = (
        UniqueConstraint("action_id", "approver_id", name="uq_action_approvals_approver"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("governed_actions.id", ondelete="CASCADE"), index=True
    )
    approver_id: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActionEdit(Base):
    """A reviewer's change to the arguments, kept as an RFC 6902 JSON patch."""

    __tablename__ = "action_edits"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("governed_actions.id", ondelete="CASCADE"), index=True
    )
    editor_id: Mapped[str] = mapped_column(String(200))
    patch: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    #: The arguments the edit replaced: the patch holds new values only, and the person
    #: reviewing (and her history) sees what changed, original against edited.
    previous_arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActionException(Base):
    """An action that FAILED or whose compensation failed, routed to a named owner."""

    __tablename__ = "action_exceptions"
    __table_args__ = (Index("ix_action_exceptions_open", "tenant_id", "status", "owner"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("governed_actions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(320))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class KillSwitch(Base):
    """Stops execution: '' in ``tenant_id`` or ``connector`` means every one."""

    __tablename__ = "kill_switches"
    __table_args__ = (UniqueConstraint("tenant_id", "connector", name="uq_kill_switches_scope"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default="")
    connector: Mapped[str] = mapped_column(String(100), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    set_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
