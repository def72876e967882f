"""Reading the audit log: filtered keyset pages for auditors, streamed ranges for exports.

Every query is scoped to one tenant; callers pass the tenant of the authenticated principal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from governance.audit_hash import iso_utc
from governance.audit_models import AuditEvent

MAX_PAGE = 500


@dataclass(frozen=True)
class AuditFilter:
    """Conditions on events; None means any. ``until`` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    actor_id: str | None = None
    on_behalf_of: str | None = None
    actions: Sequence[str] = ()
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: str | None = None
    correlation_id: str | None = None
    action_id: str | None = None


def _aware(value: datetime) -> datetime:
    # A time without an offset is taken as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filtered(tenant_id: str, where: AuditFilter) -> Select[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
    if where.since is not None:
        query = query.where(AuditEvent.occurred_at >= _aware(where.since))
    if where.until is not None:
        query = query.where(AuditEvent.occurred_at < _aware(where.until))
    if where.actor_id is not None:
        query = query.where(AuditEvent.actor_id == where.actor_id)
    if where.on_behalf_of is not None:
        query = query.where(AuditEvent.on_behalf_of == where.on_behalf_of)
    if where.actions:
        query = query.where(AuditEvent.action.in_(list(where.actions)))
    if where.resource_type is not None:
        query = query.where(AuditEvent.resource_type == where.resource_type)
    if where.resource_id is not None:
        query = query.where(AuditEvent.resource_id == where.resource_id)
    if where.outcome is not None:
        query = query.where(AuditEvent.outcome == where.outcome)
    if where.correlation_id is not None:
        query = query.where(AuditEvent.correlation_id == where.correlation_id)
    if where.action_id is not None:
        query = query.where(AuditEvent.action_id == where.action_id)
    return query


async def query_events(
    session: AsyncSession,
    tenant_id: str,
    where: AuditFilter,
    *,
    after_seq: int = 0,
    limit: int = 100,
) -> tuple[list[AuditEvent], int | None]:
    """One page of ``tenant_id``'s events in seq order, after ``after_seq``.

    Returns the events and the cursor of the next page (None on the last page).
    """
    limit = max(1, min(limit, MAX_PAGE))
    query = (
        _filtered(tenant_id, where)
        .where(AuditEvent.seq > after_seq)
        .order_by(AuditEvent.seq)
        .limit(limit + 1)
    )
    events = list(await session.scalars(query))
    for event in events:
        session.expunge(event)  # read-only copies: never flushed back
    if len(events) > limit:
        return events[:limit], events[limit - 1].seq
    return events, None


async def stream_events(
    session: AsyncSession, tenant_id: str, where: AuditFilter, *, batch_size: int = 1000
) -> AsyncIterator[AuditEvent]:
    """Every matching event of ``tenant_id`` in seq order, fetched in keyset batches."""
    after = 0
    while True:
        query = (
            _filtered(tenant_id, where)
            .where(AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(batch_size)
        )
        batch = list(await session.scalars(query))
        if not batch:
            return
        for event in batch:
            session.expunge(event)
            yield event
        after = batch[-1].seq


#: The columns of an exported audit event, in order (CSV exports of the CLI and the web app).
EXPORT_COLUMNS = (
    "seq",
    "event_id",
    "occurred_at",
    "recorded_at",
    "actor_type",
    "actor_id",
    "on_behalf_of",
    "roles",
    "source_ip",
    "action",
    "resource_type",
    "resource_id",
    "connector",
    "outcome",
    "reason",
    "correlation_id",
    "action_id",
    "idempotency_key",
    "payload",
    "schema_version",
    "prev_hash",
    "row_hash",
)


def export_row(event: AuditEvent) -> dict[str, object]:
    """An event as exported (the :data:`EXPORT_COLUMNS`): payload and roles as the canonical
    JSON text that was hashed, so that the rows can be re-hashed offline."""
    return {
        "seq": event.seq,
        "event_id": event.event_id,
        "occurred_at": iso_utc(event.occurred_at),
        "recorded_at": iso_utc(event.recorded_at),
        "actor_type": event.actor_type,
        "actor_id": event.actor_id,
        "on_behalf_of": event.on_behalf_of,
        "roles": event.roles_json,
        "source_ip": event.source_ip,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "connector": event.connector,
        "outcome": event.outcome,
        "reason": event.reason,
        "correlation_id": event.correlation_id,
        "action_id": event.action_id,
        "idempotency_key": event.idempotency_key,
        "payload": event.payload_json,
        "schema_version": event.schema_version,
        "prev_hash": event.prev_hash,
        "row_hash": event.row_hash,
    }
