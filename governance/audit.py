"""Tamper-evident audit log: append-only, one SHA-256 hash chain per tenant.

Other modules call :func:`record` inside their own transaction, so that a state change and
its audit event commit together or not at all. Appends to a tenant's chain are serialized
by a lock on its chain head (see :func:`governance.audit_chain.lock_head`); the database
refuses UPDATE and DELETE of events by triggers, and an insert trigger refuses an event that
does not follow the head. :mod:`governance.audit_verify` proves a chain intact;
:mod:`governance.checkpoints` signs it every N events or T seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.util import await_only

from assistant.core.clock import utcnow
from assistant.core.errors import ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.logging import redact_text, redact_value
from assistant.core.principal import Principal
from governance.audit_chain import advance_head, jsonable, lock_head
from governance.audit_hash import SCHEMA_VERSION, canonical_json, hash_fields
from governance.audit_models import EVENTS
from governance.checkpoints import CheckpointConfig, current_config, write_checkpoint

#: Largest payload accepted, as canonical JSON bytes (an audit payload is a summary of what
#: happened, not a copy of documents).
MAX_PAYLOAD_BYTES = 64 * 1024


class AuditAction(StrEnum):
    """The fixed vocabulary of audit actions. Add members here; never free text."""

    # governed actions lifecycle
    ACTION_PROPOSED = "action.proposed"
    ACTION_POLICY_DECIDED = "action.policy_decided"
    ACTION_DENIED = "action.denied"
    ACTION_PENDING_REVIEW = "action.pending_review"
    ACTION_APPROVED = "action.approved"
    ACTION_EDITED = "action.edited"
    ACTION_REJECTED = "action.rejected"
    ACTION_EXPIRED = "action.expired"
    ACTION_CANCELLED = "action.cancelled"
    #: A proposed draft replaced by one re-drafted on the executive's instructions.
    ACTION_REVISED = "action.revised"
    ACTION_SCHEDULED = "action.scheduled"
    ACTION_EXECUTING = "action.executing"
    ACTION_RETRY_SCHEDULED = "action.retry_scheduled"
    ACTION_SUCCEEDED = "action.succeeded"
    ACTION_FAILED = "action.failed"
    ACTION_COMPENSATING = "action.compensating"
    ACTION_COMPENSATED = "action.compensated"
    ACTION_COMPENSATION_FAILED = "action.compensation_failed"
    EXCEPTION_ROUTED = "exception.routed"
    EXCEPTION_ASSIGNED = "exception.assigned"
    EXCEPTION_RETRIED = "exception.retried"
    EXCEPTION_CANCELLED = "exception.cancelled"
    KILLSWITCH_ENABLED = "killswitch.enabled"
    KILLSWITCH_DISABLED = "killswitch.disabled"
    POLICY_LOADED = "policy.loaded"
    # authentication and authorization
    AUTH_SIGNIN_SUCCEEDED = "auth.signin.succeeded"
    AUTH_SIGNIN_FAILED = "auth.signin.failed"
    AUTH_SIGNOUT = "auth.signout"
    AUTH_SESSION_ENDED = "auth.session.ended"
    AUTH_TOKEN_REJECTED = "auth.token.rejected"  # noqa: S105
    AUTH_ACCESS_DENIED = "auth.access.denied"
    GOVERNANCE_REFUSED = "governance.refused"
    AUTH_USER_CREATED = "auth.user.created"
    AUTH_ROLE_CHANGED = "auth.role.changed"
    AUTH_APIKEY_CREATED = "auth.apikey.created"
    AUTH_APIKEY_REVOKED = "auth.apikey.revoked"
    AUTH_LOCKOUT = "auth.lockout"
    # connectors, ingestion, models, configuration
    CONNECTOR_CREATED = "connector.created"
    CONNECTOR_UPDATED = "connector.updated"
    CONNECTOR_DELETED = "connector.deleted"
    CONNECTOR_TESTED = "connector.tested"
    MAIL_INGESTED = "mail.ingested"
    MAIL_SKIPPED = "mail.skipped"
    TRIAGE_DECIDED = "triage.decided"
    TRIAGE_CORRECTED = "triage.corrected"
    LLM_CALL = "llm.call"
    REQUEST_REJECTED = "request.rejected"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_EXPORTED = "audit.exported"
    AUDIT_ANCHOR_STARTED = "audit.anchor.started"
    # quality monitoring and the decision gate
    QUALITY_ALERT_RAISED = "quality.alert.raised"
    QUALITY_ALERT_RESOLVED = "quality.alert.resolved"
    QUALITY_SPOT_CHECK_SAMPLED = "quality.spot_check.sampled"
    QUALITY_SPOT_CHECK_RECORDED = "quality.spot_check.recorded"
    GATE_REPORTED = "gate.reported"
    # production readiness: owners, autonomy, change control, rollback drills
    OWNER_SET = "owner.set"
    OWNER_NOTIFIED = "owner.notified"
    AUTONOMY_CHANGED = "autonomy.changed"
    AUTONOMY_PROMOTION_REFUSED = "autonomy.promotion_refused"
    SHADOW_COMPARED = "shadow.compared"
    CONFIG_VERSIONED = "config.versioned"
    CONFIG_ROLLED_BACK = "config.rolled_back"
    DRILL_RUN = "drill.run"
    # the chat agent (ids, hashes, tool names and action ids; never message text)
    CHAT_TURN = "chat.turn"
    CHAT_REFUSED = "chat.refused"
    CHAT_CONVERSATION_DELETED = "chat.conversation.deleted"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class AuditEventIn(BaseModel):
    """What a caller records; the chain fields (seq, hashes, recorded_at) are added."""

    action: AuditAction
    outcome: Outcome = Outcome.SUCCESS
    resource_type: str | None = None
    resource_id: str | None = None
    connector: str | None = None
    reason: str | None = None
    correlation_id: str | None = None
    action_id: str | None = None
    idempotency_key: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict, description="Redacted before storing.")
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An audit event as stored: what :func:`record` returns."""

    tenant_id: str
    seq: int
    event_id: str
    occurred_at: datetime
    recorded_at: datetime
    actor_type: str
    actor_id: str
    on_behalf_of: str | None
    roles_json: str
    source_ip: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    connector: str | None
    outcome: str
    reason: str | None
    correlation_id: str | None
    action_id: str | None
    idempotency_key: str | None
    payload_json: str
    schema_version: int
    prev_hash: str
    row_hash: str

    @property
    def payload(self) -> dict[str, Any]:
        """The redacted payload, decoded."""
        value: dict[str, Any] = orjson.loads(self.payload_json)
        return value

    @property
    def roles(self) -> list[str]:
        value: list[str] = orjson.loads(self.roles_json)
        return value


def _correlation_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationFailedError("audit occurred_at must be timezone-aware")
    return value.astimezone(UTC)


def _check_size(encoded: bytes) -> bytes:
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise ValidationFailedError(
            "audit payload too large", size=len(encoded), limit=MAX_PAYLOAD_BYTES
        )
    return encoded


#: Column widths, checked here so that every database refuses the same events.
_LIMITS = {
    "actor_id": 320,
    "on_behalf_of": 320,
    "source_ip": 64,
    "resource_type": 64,
    "resource_id": 320,
    "connector": 200,
    "correlation_id": 128,
    "action_id": 64,
    "idempotency_key": 320,
}
#: Free text beyond this is cut (the reason is a summary; the redaction's cost grows with it).
MAX_REASON_CHARS = 2000


def event_row(actor: Principal, event: AuditEventIn) -> dict[str, Any]:
    """The stored columns of an event, redacted, without the chain fields and recorded_at.

    Shared by :func:`record` and the benchmark's plain-insert baseline.
    """
    if not actor.tenant_id or len(actor.tenant_id) > 64:
        raise ValidationFailedError(
            "an audit event needs the actor's tenant (64 characters at most)"
        )
    normalized = jsonable(event.payload)
    if actor.credential and isinstance(normalized, dict):
        # The row names the person; this says which of their keys acted (never the key).
        normalized = {**normalized, "credential": actor.credential}
    # Measured before redaction too, so that the redaction's regular expressions never see
    # a huge input.
    _check_size(canonical_json(normalized))
    payload = _check_size(canonical_json(redact_value(normalized)))
    reason = event.reason
    if reason and len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "..."
    values: dict[str, Any] = {
        "tenant_id": actor.tenant_id,
        "event_id": new_id(),
        "occurred_at": _utc(event.occurred_at) if event.occurred_at else None,
        "actor_type": actor.actor_type.value,
        "actor_id": actor.user_id,
        "on_behalf_of": actor.on_behalf_of,
        "roles": canonical_json(sorted(role.value for role in actor.roles)).decode(),
        "source_ip": actor.source_ip,
        "action": event.action.value,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "connector": event.connector,
        "outcome": event.outcome.value,
        "reason": redact_text(reason) if reason else reason,
        "correlation_id": event.correlation_id or _correlation_id(),
        "action_id": event.action_id,
        "idempotency_key": event.idempotency_key,
        "payload": payload.decode(),
        "schema_version": SCHEMA_VERSION,
    }
    for name, limit in _LIMITS.items():
        if values[name] is not None and len(values[name]) > limit:
            raise ValidationFailedError(f"audit {name} longer than {limit} characters")
    return values


def stamp(values: dict[str, Any], now: datetime) -> None:
    """Set recorded_at (and occurred_at when the caller gave none)."""
    values["recorded_at"] = _utc(now)
    if values["occurred_at"] is None:
        values["occurred_at"] = values["recorded_at"]


async def _append(
    session: AsyncSession,
    tenant_id: str,
    rows: list[dict[str, Any]],
    config: CheckpointConfig,
) -> None:
    """Chain ``rows`` (made by :func:`event_row`) onto ``tenant_id``'s chain, in order."""
    prev_seq, prev_hash = await lock_head(session, tenant_id)
    # Stamped under the lock, so that recorded_at never goes backwards along the chain.
    now = utcnow()
    checkpoints = []
    for values in rows:
        stamp(values, now)
        seq = values["seq"] = prev_seq + 1
        values["prev_hash"] = prev_hash
        row_hash = values["row_hash"] = hash_fields(values)
        if config.every_events > 0 and seq % config.every_events == 0:
            checkpoints.append((seq, row_hash))
        prev_seq, prev_hash = seq, row_hash
    # One statement for the lot (one round trip while the chain is locked).
    await session.execute(insert(EVENTS), rows)
    advance_head(session, tenant_id, prev_seq, prev_hash)
    for seq, row_hash in checkpoints:
        await write_checkpoint(session, tenant_id, seq, row_hash, config)


# ------------------------------------------------------------ appends at commit time

_PENDING = "governance.audit.pending"


@dataclass
class _Pending:
    """Events of one transaction waiting for its commit, per tenant, in call order."""

    session: AsyncSession
    config: CheckpointConfig
    rows: dict[str, list[dict[str, Any]]]


def _pending(session: AsyncSession) -> _Pending | None:
    found: _Pending | None = session.sync_session.info.get(_PENDING)
    return found


async def _flush_pending(session: AsyncSession) -> None:
    pending = session.sync_session.info.pop(_PENDING, None)
    if pending is None:
        return
    # Tenants in one order everywhere: two transactions never wait for each other's chains.
    for tenant_id in sorted(pending.rows):
        await _append(session, tenant_id, pending.rows[tenant_id], pending.config)


def _append_before_commit(sync_session: Session) -> None:
    pending: _Pending | None = sync_session.info.get(_PENDING)
    if pending is None or sync_session.in_nested_transaction():  # a savepoint's release
        return
    # The transaction's other writes first, the chain last: one lock order everywhere.
    sync_session.flush()
    # Called by SQLAlchemy inside the greenlet of AsyncSession.commit: await_only runs the
    # async appends on the same connection, in the transaction about to commit.
    await_only(_flush_pending(pending.session))


def _drop_pending(sync_session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself ended (commit or rollback)
        sync_session.info.pop(_PENDING, None)


async def record_at_commit(
    session: AsyncSession,
    actor: Principal,
    event: AuditEventIn,
    *,
    checkpoints: CheckpointConfig | None = None,
) -> None:
    """Append ``event`` to the chain when the caller's transaction commits (or never, if it
    rolls back), together with the transaction's other deferred events.

    The event is built, checked and redacted now (errors surface at the call site);
    ``occurred_at`` is now. The chain's lock is taken just before COMMIT, so it is held
    for a few statements instead of from the first event of a request to its end (the
    lock serializes every writer of the tenant). Inside a SAVEPOINT this appends at once
    (:func:`record`): an event must leave with a rolled-back savepoint.
    """
    if session.in_nested_transaction():
        await record(session, actor, event, checkpoints=checkpoints)
        return
    await record_prepared_at_commit(
        session, actor.tenant_id, [prepare_event(actor, event)], checkpoints=checkpoints
    )


def prepare_event(actor: Principal, event: AuditEventIn) -> dict[str, Any]:
    """``event`` built, checked and redacted (:func:`event_row`) with ``occurred_at`` now
    unless given: what :func:`record_prepared_at_commit` chains later. A bad event fails
    here, before the caller stores anything (the proposals' group commit builds its
    members' events this way, so that one member's bad event never fails a batch)."""
    values = event_row(actor, event)
    if values["occurred_at"] is None:
        values["occurred_at"] = _utc(utcnow())
    return values


async def record_prepared_at_commit(
    session: AsyncSession,
    tenant_id: str,
    rows: list[dict[str, Any]],
    *,
    checkpoints: CheckpointConfig | None = None,
) -> None:
    """:func:`record_at_commit` of events made by :func:`prepare_event` for ``tenant_id``
    (the rows are chained as given: pass copies to chain them again after a rollback).
    Inside a SAVEPOINT they are appended at once."""
    if session.in_nested_transaction():  # as record() does
        await _append(session, tenant_id, rows, checkpoints or current_config())
        return
    sync_session = session.sync_session
    if not sync_session.in_transaction():
        # As any statement would (autobegin): the events belong to this transaction, and
        # its end, even a rollback before any statement ran, drops them.
        sync_session.begin()
    pending = _pending(session)
    if pending is None:
        pending = _Pending(session=session, config=checkpoints or current_config(), rows={})
        sync_session.info[_PENDING] = pending
        if not sa_event.contains(sync_session, "before_commit", _append_before_commit):
            sa_event.listen(sync_session, "before_commit", _append_before_commit)
            sa_event.listen(sync_session, "after_transaction_end", _drop_pending)
    pending.rows.setdefault(tenant_id, []).extend(rows)


async def record(
    session: AsyncSession,
    actor: Principal,
    event: AuditEventIn,
    *,
    checkpoints: CheckpointConfig | None = None,
) -> StoredEvent:
    """Append ``event`` to ``actor.tenant_id``'s chain in the caller's transaction.

    Flushes, never commits. Returns the stored row (with ``seq`` and ``row_hash``). The
    payload and reason are redacted before they are hashed or stored. The tenant's chain
    stays locked until the transaction ends: record after the transaction's other writes
    (one lock order everywhere, no deadlocks) and commit promptly. Every
    ``checkpoints.every_events`` events of a tenant a signed checkpoint is written too
    (default: the configuration given to :func:`governance.checkpoints.configure`, else the
    settings).
    """
    values = event_row(actor, event)  # redaction and encoding happen outside the lock
    if not session.in_nested_transaction():
        # Events deferred to the commit came first: they keep their place in the chain.
        await _flush_pending(session)
    await _append(session, actor.tenant_id, [values], checkpoints or current_config())
    values["roles_json"] = values.pop("roles")
    values["payload_json"] = values.pop("payload")
    return StoredEvent(**values)
