"""The auditor's rooms, read-only: the audit log (filtered, with each event's chain position),
its export with a verification proof, chain verification, and the go / no-go gate.

Nothing here changes the deployment. The only rows these pages write are the audit log's
own records of an export and of a gate report, as the API and CLI do.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select

from assistant.api.deps import SessionDep
from assistant.auth import users
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import NotFoundError, PermissionDeniedError, ValidationFailedError
from assistant.core.limits import MAX_INT64
from assistant.core.principal import Role
from assistant.quality import monitor
from assistant.quality.cost import measure_cost
from assistant.quality.gate import gate_report
from assistant.quality.metrics import measure
from assistant.quality.period import parse_period
from assistant.triage.inbox import list_inbox
from assistant.triage.store import TriageCorrectionRow
from assistant.web.consoles import require_tenant
from assistant.web.pages import PREFIX, Page, PageDep
from governance.anchor import AnchorError, anchor_from_settings
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.audit_hash import iso_utc
from governance.audit_models import AuditCheckpoint
from governance.audit_query import (
    EXPORT_COLUMNS,
    AuditFilter,
    export_row,
    query_events,
    stream_events,
)
from governance.audit_verify import VerifyReport, verify_tenant
from governance.checkpoints import fingerprint, load_public_key
from governance.models import Action, ActionApproval, ActionEdit

router = APIRouter(prefix=f"{PREFIX}/audit", include_in_schema=False)

#: The activity room shows this many of the newest messages, corrections and proposals.
ACTIVITY_ROWS = 200

PAGE_SIZE = 100
#: An export larger than this is refused: narrow the filter (the CLI exports everything).
MAX_EXPORT = 100_000


class AuditQuery(BaseModel):
    """The audit log's filter as the page's form sends it (empty inputs mean any)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    actor: str | None = Field(default=None, max_length=200)
    executive: str | None = Field(default=None, max_length=200)
    event: AuditAction | None = None
    resource_type: str | None = Field(default=None, max_length=64)
    action_id: str | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=128)
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(cls, params: dict[str, str]) -> AuditQuery:
        given = {k: v for k, v in params.items() if v.strip()}
        try:
            return cls.model_validate(given)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ValidationFailedError("the filter is not valid", problems=problems) from None

    def where(self) -> AuditFilter:
        return AuditFilter(
            since=self.since,
            until=self.until,
            actor_id=self.actor,
            on_behalf_of=self.executive,
            actions=[self.event.value] if self.event else [],
            resource_type=self.resource_type,
            outcome=self.outcome.value if self.outcome else None,
            correlation_id=self.correlation_id,
            action_id=self.action_id,
        )

    def params(self) -> dict[str, str]:
        """The filter as query parameters (for the next page and the export links)."""
        return {
            k: (v.isoformat() if isinstance(v, datetime) else str(v))
            for k, v in self.model_dump(mode="python", exclude_none=True).items()
        }


def _query(page: Page) -> AuditQuery:
    params = {k: v for k, v in page.request.query_params.items() if k in AuditQuery.model_fields}
    return AuditQuery.of(params)


@router.get("", response_class=HTMLResponse)
async def audit_log(
    page: PageDep,
    session: SessionDep,
    # a seq beyond the database's 64-bit integers is a bad request, not a 500 (OverflowError)
    after: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> HTMLResponse:
    """The tenant's events in chain order, filtered; each with its position and hashes."""
    await require_tenant(page, Permission.AUDIT_READ)
    query = _query(page)
    events, cursor = await query_events(
        session, page.person.tenant_id, query.where(), after_seq=after, limit=PAGE_SIZE
    )
    return page.render(
        "audit_log.html",
        query=query,
        params=query.params(),
        events=events,
        cursor=cursor,
        actions=[a.value for a in AuditAction],
        outcomes=[o.value for o in Outcome],
        can_export=page.can(Permission.AUDIT_EXPORT),
    )


@dataclass(frozen=True)
class Verified:
    """The chain verified now against the deployment's anchor (as the gate and `assistant
    audit verify` do), and what the anchor was."""

    report: VerifyReport
    #: The anchor compared with (its description), None when anchoring is off.
    anchor: str | None
    #: Why the anchor could not be read; the chain then does not count as verified.
    anchor_unreadable: str | None
    key_fingerprint: str | None

    @property
    def ok(self) -> bool:
        return self.report.ok and self.anchor_unreadable is None


async def _verify(page: Page) -> Verified:
    """What `assistant audit verify` checks for this tenant, the anchor included."""
    settings = page.services.settings
    public_key = load_public_key(settings.audit_key_file)
    anchor = anchor_from_settings(settings)
    # The anchor first: a checkpoint anchored after the session's snapshot began would read
    # as a chain behind its anchor.
    snapshot, unreadable = None, None
    if anchor is not None:
        try:
            snapshot = await anchor.snapshot()
        except AnchorError as exc:
            unreadable = str(exc)
    # A session of its own, begun after the anchor was read (the request's may hold an
    # older snapshot, which would read as a chain behind its anchor).
    async with page.services.sessions() as fresh:
        report = await verify_tenant(
            fresh,
            page.person.tenant_id,
            public_keys=[public_key] if public_key else [],
            anchor=snapshot,
            checkpoint_every_events=settings.audit.checkpoint_every_events,
        )
    return Verified(
        report=report,
        anchor=anchor.description if anchor is not None else None,
        anchor_unreadable=unreadable,
        key_fingerprint=fingerprint(public_key) if public_key else None,
    )


def _checkpoint(row: AuditCheckpoint | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "seq": row.seq,
        "row_hash": row.row_hash,
        "created_at": iso_utc(row.created_at),
        "key_fingerprint": row.key_fingerprint,
        "signature": row.signature,
    }


async def _covering_checkpoints(
    session: SessionDep, tenant_id: str, first_seq: int | None, last_seq: int | None
) -> dict[str, Any]:
    """The signed checkpoints around the exported range: the last one before it, the first
    at or after its end (which signs a chain head the whole range hashes into), and how many
    lie between."""
    if first_seq is None or last_seq is None:
        return {"before": None, "covering": None, "within": 0}
    tenant = AuditCheckpoint.tenant_id == tenant_id
    before = await session.scalar(
        select(AuditCheckpoint)
        .where(tenant, AuditCheckpoint.seq < first_seq)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    )
    covering = await session.scalar(
        select(AuditCheckpoint)
        .where(tenant, AuditCheckpoint.seq >= last_seq)
        .order_by(AuditCheckpoint.seq)
        .limit(1)
    )
    within = await session.scalar(
        select(func.count())
        .select_from(AuditCheckpoint)
        .where(tenant, AuditCheckpoint.seq >= first_seq, AuditCheckpoint.seq < last_seq)
    )
    return {
        "before": _checkpoint(before),
        "covering": _checkpoint(covering),
        "within": int(within or 0),
    }


async def _proof(
    session: SessionDep, verified: Verified, rows: list[dict[str, Any]], query: AuditQuery
) -> dict[str, Any]:
    """What the export proves: the whole chain verified against the anchor when it was
    taken, where each exported row sits in it (its seq, prev_hash and row_hash are in the
    rows, which re-hash offline), and the signed checkpoints around the range (each an
    Ed25519 signature over tenant, seq and the row hash at that seq)."""
    report = verified.report
    first_seq = int(rows[0]["seq"]) if rows else None
    last_seq = int(rows[-1]["seq"]) if rows else None
    return {
        "tenant_id": report.tenant_id,
        "verified_at": iso_utc(utcnow()),
        "chain_ok": verified.ok,
        "chain_events": report.events,
        "chain_last_seq": report.last_seq,
        "checkpoints": report.checkpoints,
        "first_bad_seq": report.first_bad_seq,
        "anchor": verified.anchor,
        "anchor_unreadable": verified.anchor_unreadable,
        "anchored_seq": report.anchored_seq,
        "anchored_checkpoints": report.anchored_checkpoints,
        "unanchored_events": report.unanchored_events,
        "key_fingerprint": verified.key_fingerprint,
        "range_checkpoints": await _covering_checkpoints(
            session, report.tenant_id, first_seq, last_seq
        ),
        "filter": query.params(),
        "exported": len(rows),
        "first_seq": first_seq,
        "last_seq": last_seq,
    }


@router.get("/export")
async def export(
    page: PageDep,
    session: SessionDep,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
) -> Response:
    """The filtered range as JSON Lines (the proof on its last line) or CSV (the proof in
    the X-Audit-Proof header); the export is audited."""
    await require_tenant(page, Permission.AUDIT_EXPORT)
    query = _query(page)
    rows: list[dict[str, Any]] = []
    async for event in stream_events(session, page.person.tenant_id, query.where()):
        if len(rows) >= MAX_EXPORT:
            raise ValidationFailedError(
                f"more than {MAX_EXPORT} events: narrow the filter or use `assistant audit export`"
            )
        rows.append(export_row(event))
    proof = await _proof(session, await _verify(page), rows, query)
    await record(
        session,
        page.person,
        AuditEventIn(
            action=AuditAction.AUDIT_EXPORTED,
            resource_type="audit_log",
            payload={"format": format, "events": len(rows), "filter": query.params()},
        ),
    )
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    name = f"audit-{page.person.tenant_id}-{stamp}.{format}"
    disposition = {"content-disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={**disposition, "x-audit-proof": orjson.dumps(proof).decode()},
        )
    lines = [orjson.dumps(row) for row in rows]
    lines.append(orjson.dumps({"proof": proof}))
    return Response(
        b"\n".join(lines) + b"\n", media_type="application/x-ndjson", headers=disposition
    )


@router.get("/verify", response_class=HTMLResponse)
async def verify(page: PageDep) -> HTMLResponse:
    """Verify the tenant's whole chain now, against the anchor, and show the result."""
    await require_tenant(page, Permission.AUDIT_READ)
    verified = await _verify(page)
    return page.render(
        "audit_verify.html",
        verified=verified,
        report=verified.report,
        signed=verified.key_fingerprint is not None,
        checked_at=utcnow(),
    )


@router.get("/gate", response_class=HTMLResponse)
async def gate(
    page: PageDep,
    session: SessionDep,
    period: Annotated[str, Query(max_length=8)] = "30d",
) -> HTMLResponse:
    """The go / no-go answer with every criterion; the full report (charts) is linked."""
    await require_tenant(page, Permission.GATE_READ)
    now = utcnow()
    report = await gate_report(
        session, page.services.settings, page.person, parse_period(period, now), now=now
    )
    return page.render("audit_gate.html", report=report, period=period)


@router.get("/quality", response_class=HTMLResponse)
async def quality(
    page: PageDep,
    session: SessionDep,
    period: Annotated[str, Query(max_length=8)] = "30d",
) -> HTMLResponse:
    """Acceptance, edit and rejection rates per kind, triage corrections, drift alerts, spot
    checks, LLM and total cost with ROI, over one period."""
    await require_tenant(page, Permission.QUALITY_READ)
    tenant = page.person.tenant_id
    window = parse_period(period, utcnow())
    measured = await measure(session, tenant, window)
    cost = await measure_cost(
        session, page.services.settings.costs, tenant, window, measured.handled_items
    )
    return page.render(
        "audit_quality.html",
        period=period,
        quality=measured.to_dict(),
        cost=cost.to_dict(),
        alerts=await monitor.list_alerts(session, tenant, limit=50),
        spot_checks=await monitor.list_spot_checks(session, tenant, limit=50),
    )


@dataclass(frozen=True)
class ProposalRow:
    """A proposal for the executive, with who decided it and how."""

    action: Action
    approvers: list[str]
    edits: int


@router.get("/activity", response_class=HTMLResponse)
async def activity(
    page: PageDep,
    session: SessionDep,
    executive: Annotated[str | None, Query(max_length=64)] = None,
) -> HTMLResponse:
    """What the assistant saw and did for one executive of the tenant: the messages it
    triaged (with its reason and evidence) and the corrections people made, the proposals
    and how each was decided. Read-only; the same rows the executive's own rooms show."""
    await require_tenant(page, Permission.AUDIT_READ)
    if not page.person.has(Role.AUDITOR):
        # Oversight of what the assistant saw is the auditor's: an admin configures the
        # deployment but reads nobody's mail.
        if page.services.auth is not None:
            await page.services.auth.audit_access_denied(page.request, page.person, ["auditor"])
        raise PermissionDeniedError("only auditors read what the assistant saw")
    tenant = page.person.tenant_id
    roles = await users.roles_by_user(session, tenant)
    everyone = await users.list_users(session, tenant)
    executives = [u for u in everyone if Role.EXECUTIVE in roles.get(u.id, frozenset())]
    chosen = next((u for u in executives if u.id == executive), None)
    if executive and chosen is None:
        raise NotFoundError("no such executive in this tenant")
    context: dict[str, Any] = {"executives": executives, "chosen": chosen}
    if chosen is not None:
        # Her mail is what the mailboxes bound to her hold (the rule of her own rooms); her
        # actions are filed under her id (older ones under her address).
        mailboxes = page.services.connectors.mailboxes_of(tenant, chosen.id)
        ids = {chosen.id.lower(), *mailboxes}
        ids |= {chosen.email.strip().lower()} if chosen.email else set()
        messages = await list_inbox(session, tenant, mailboxes, limit=ACTIVITY_ROWS)
        corrections = (
            await session.scalars(
                select(TriageCorrectionRow)
                .where(
                    TriageCorrectionRow.tenant_id == tenant,
                    TriageCorrectionRow.mailbox.in_(sorted(mailboxes)),
                )
                .order_by(TriageCorrectionRow.created_at.desc())
                .limit(ACTIVITY_ROWS)
            )
        ).all()
        actions = (
            await session.scalars(
                select(Action)
                .where(Action.tenant_id == tenant, func.lower(Action.on_behalf_of).in_(ids))
                .order_by(Action.created_at.desc())
                .limit(ACTIVITY_ROWS)
            )
        ).all()
        action_ids = [a.id for a in actions]
        approvers: dict[str, list[str]] = {}
        for action_id, approver in await session.execute(
            select(ActionApproval.action_id, ActionApproval.approver_id).where(
                ActionApproval.action_id.in_(action_ids)
            )
        ):
            approvers.setdefault(action_id, []).append(approver)
        edits = dict(
            (
                await session.execute(
                    select(ActionEdit.action_id, func.count())
                    .where(ActionEdit.action_id.in_(action_ids))
                    .group_by(ActionEdit.action_id)
                )
            ).all()
        )
        context |= {
            "messages": messages,
            "corrections": list(corrections),
            "proposals": [
                ProposalRow(a, approvers.get(a.id, []), int(edits.get(a.id, 0))) for a in actions
            ],
            "names": {
                u.id: u.display_name or u.username for u in await users.list_users(session, tenant)
            },
        }
    return page.render("audit_activity.html", **context)
