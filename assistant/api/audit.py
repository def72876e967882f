"""The auditor's view of the audit log: filtered, keyset-paginated events and verification.

Scoped to the caller's tenant; open to holders of ``audit.read`` (auditors and admins).
"""

from datetime import datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from assistant.api.deps import ServicesDep, SessionDep, SettingsDep, require
from assistant.auth.permissions import Permission
from assistant.core.errors import AnchorUnavailableError
from assistant.core.limits import MAX_INT64
from assistant.core.principal import Principal
from governance.anchor import AnchorError, anchor_from_settings
from governance.audit import AuditAction, Outcome
from governance.audit_models import AuditEvent
from governance.audit_query import MAX_PAGE, AuditFilter, query_events
from governance.audit_verify import verify_tenant
from governance.checkpoints import load_public_key

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
log = structlog.get_logger(__name__)

Auditor = Annotated[Principal, require(Permission.AUDIT_READ)]


class AuditEventOut(BaseModel):
    tenant_id: str
    seq: int
    event_id: str
    occurred_at: datetime
    recorded_at: datetime
    actor_type: str
    actor_id: str
    on_behalf_of: str | None
    roles: list[str]
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
    payload: dict[str, Any]
    schema_version: int
    prev_hash: str
    row_hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> "AuditEventOut":
        return cls(
            tenant_id=event.tenant_id,
            seq=event.seq,
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            actor_type=event.actor_type,
            actor_id=event.actor_id,
            on_behalf_of=event.on_behalf_of,
            roles=event.roles,
            source_ip=event.source_ip,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            connector=event.connector,
            outcome=event.outcome,
            reason=event.reason,
            correlation_id=event.correlation_id,
            action_id=event.action_id,
            idempotency_key=event.idempotency_key,
            payload=event.payload,
            schema_version=event.schema_version,
            prev_hash=event.prev_hash,
            row_hash=event.row_hash,
        )


class AuditEventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: int | None = Field(
        description="Pass as after_seq for the next page; null on the last page."
    )


class ProblemOut(BaseModel):
    seq: int
    kind: str
    detail: str


class VerifyOut(BaseModel):
    tenant_id: str
    ok: bool
    events: int
    last_seq: int
    head_seq: int | None
    checkpoints: int
    first_bad_seq: int | None
    first_problem: str | None
    problems: list[ProblemOut]
    problems_omitted: int
    anchor: str | None = Field(description="The anchor compared with; null when none.")
    anchored_checkpoints: int
    anchored_seq: int = Field(description="The last seq anchored outside the database.")
    unanchored_events: int = Field(description="Events after the last anchored checkpoint.")
    unanchored_since: datetime | None
    warnings: list[str]
    workers: int = Field(description="Worker processes that hashed the chain (0: a thread).")
    anchor_started_at: datetime | None = Field(
        default=None,
        description="When the anchor's epoch began (anchor init or rotate); null: it must "
        "hold every checkpoint.",
    )
    checkpoints_before_anchor: int = Field(
        default=0, description="Checkpoints signed before the anchor's epoch (not required in it)."
    )


@router.get("/events", response_model=AuditEventPage)
async def list_events(
    principal: Auditor,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        Query(description="Events that occurred at or after this time (UTC if no offset)."),
    ] = None,
    until: Annotated[
        datetime | None,
        Query(description="Events that occurred before this time (UTC if no offset)."),
    ] = None,
    actor: Annotated[str | None, Query(description="Actor id.")] = None,
    action: Annotated[
        list[AuditAction] | None, Query(description="Action(s); repeat for several.")
    ] = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    outcome: Outcome | None = None,
    correlation_id: str | None = None,
    action_id: Annotated[str | None, Query(description="Governed action id.")] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=MAX_INT64, description="Cursor: events after this seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> AuditEventPage:
    """The caller's tenant's audit events, oldest first, filtered, one keyset page."""
    where = AuditFilter(
        since=since,
        until=until,
        actor_id=actor,
        actions=[a.value for a in action or ()],
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome.value if outcome else None,
        correlation_id=correlation_id,
        action_id=action_id,
    )
    events, cursor = await query_events(
        session, principal.tenant_id, where, after_seq=after_seq, limit=limit
    )
    return AuditEventPage(items=[AuditEventOut.of(e) for e in events], next_cursor=cursor)


@router.get("/verify", response_model=VerifyOut)
async def verify(principal: Auditor, services: ServicesDep, settings: SettingsDep) -> VerifyOut:
    """Verify the caller's tenant's chain: hashes, seqs, checkpoints, the anchor, the tail.

    The hashing runs in worker processes (long chains) or a thread: other requests are
    served meanwhile.
    """
    public_key = load_public_key(settings.audit_key_file)
    # A session of its own, begun after the anchor is read: the request's may hold an older
    # snapshot (SQLite), which would read as a chain behind its anchor.
    try:
        async with services.sessions() as session:
            report = await verify_tenant(
                session,
                principal.tenant_id,
                public_keys=[public_key] if public_key else [],
                anchor=anchor_from_settings(settings),
                checkpoint_every_events=settings.audit.checkpoint_every_events,
            )
    except AnchorError as exc:
        # A chain that cannot be compared with its anchor is not verified: a typed 503 (the
        # witness may be back shortly), never a 500; the reason goes to the log only, since
        # a witness's address is configuration an auditor need not see.
        log.warning("audit.verify.anchor_unreadable", tenant=principal.tenant_id, error=str(exc))
        raise AnchorUnavailableError() from exc
    return VerifyOut.model_validate(report.to_dict())
