"""The history room: everything the assistant did or decided for her, from the audit log,
searchable, each with its reason and audit event id, and Undo or roll-back where possible."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import func, or_, select
from sqlalchemy.sql import ColumnElement

from assistant.api.deps import SessionDep
from assistant.auth.models import User
from assistant.auth.permissions import Permission
from assistant.core.limits import MAX_INT64
from assistant.governance_app import GovernanceDep
from assistant.ingestion.models import TriageQueueItem
from assistant.triage.store import TriageCorrectionRow, TriageResultRow
from assistant.web.pages import PREFIX, PageDep
from assistant.web.review import STATE_WORDS, diffs_for, zone_of
from assistant.web.scope import Executive
from governance.audit_models import AuditEvent
from governance.models import Action
from governance.state import ActionState as S

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 200
#: Audit actions worth a line in her history (not sign-ins, checkpoints, or LLM metering).
_SHOWN = (
    "action.%",
    "triage.%",
    "exception.routed",
)
WORDS = {
    "action.proposed": "proposed",
    "action.policy_decided": "policy decided",
    "action.denied": "denied by policy",
    "action.pending_review": "sent to you for review",
    "action.approved": "approved",
    "action.edited": "edited and approved",
    "action.rejected": "rejected",
    "action.expired": "review expired",
    "action.cancelled": "cancelled",
    "action.revised": "re-drafted on instructions",
    "action.scheduled": "scheduled",
    "action.executing": "running",
    "action.retry_scheduled": "will retry",
    "action.succeeded": "done",
    "action.failed": "failed",
    "action.compensating": "rolling back",
    "action.compensated": "rolled back",
    "action.compensation_failed": "roll-back failed",
    "exception.routed": "routed to its owner",
    "triage.decided": "triaged",
    "triage.corrected": "triage corrected",
}


def belongs_to(tenant_id: str, executive: Executive) -> ColumnElement[bool]:
    """Audit events about her actions, her mail's triage and its corrections."""
    mailboxes = sorted(executive.mailboxes)
    actions = select(Action.id).where(
        Action.tenant_id == tenant_id, Action.on_behalf_of == executive.user_id
    )
    results = select(TriageResultRow.id).where(
        TriageResultRow.tenant_id == tenant_id, TriageResultRow.mailbox.in_(mailboxes)
    )
    corrections = select(TriageCorrectionRow.id).where(
        TriageCorrectionRow.tenant_id == tenant_id, TriageCorrectionRow.mailbox.in_(mailboxes)
    )
    return (AuditEvent.tenant_id == tenant_id) & or_(
        AuditEvent.action_id.in_(actions),
        (AuditEvent.resource_type == "action") & AuditEvent.resource_id.in_(actions),
        (AuditEvent.resource_type == "triage_result") & AuditEvent.resource_id.in_(results),
        (AuditEvent.resource_type == "triage_correction") & AuditEvent.resource_id.in_(corrections),
    )


def _what(event: AuditEvent, action: Action | None) -> str:
    payload: dict[str, Any] = event.payload
    if action is not None:
        return action.kind
    if event.action.startswith("triage."):
        to = payload.get("to") or {}
        category = to.get("category") or payload.get("category") or "undecided"
        return f"mail {payload.get('message_id', '')[:60]} as {category}"
    return event.resource_type or ""


def _diff_of(event: AuditEvent, diffs: dict[str, Any]) -> Any:
    """Edits show the original against the edited text; a re-draft, the draft it replaced
    against the new one."""
    if event.action == "action.edited":
        return diffs.get(event.action_id or event.resource_id or "")
    if event.action == "action.revised":
        return diffs.get(str(event.payload.get("revised_action_id")))
    return None


async def _subjects(
    session: Any, tenant: str, events: list[AuditEvent], actions: dict[str, Action]
) -> dict[str, str]:
    """The subject of each line: the action's own, else (a reply) the subject of the mail it
    answers, else (a triage line) the mail's."""
    wanted: dict[str, str] = {}  # event id -> message id whose subject names it
    found: dict[str, str] = {}
    for event in events:
        action = actions.get(event.action_id or event.resource_id or "")
        if action is not None:
            subject = action.arguments.get("subject") or (action.result or {}).get("subject")
            if isinstance(subject, str) and subject:
                found[event.event_id] = subject
            elif isinstance(action.arguments.get("reply_to_id"), str):
                wanted[event.event_id] = action.arguments["reply_to_id"]
        elif isinstance(event.payload.get("message_id"), str):
            wanted[event.event_id] = event.payload["message_id"]
    if wanted:
        rows = await session.execute(
            select(TriageQueueItem.provider_id, TriageQueueItem.message).where(
                TriageQueueItem.tenant_id == tenant,
                TriageQueueItem.provider_id.in_(sorted(set(wanted.values()))),
            )
        )
        by_message = {pid: (message or {}).get("subject") or "" for pid, message in rows.all()}
        for event_id, message_id in wanted.items():
            if subject := by_message.get(message_id):
                found[event_id] = subject
    return found


@router.get("/history", response_class=HTMLResponse)
async def history(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    # a seq beyond the database's 64-bit integers is a bad request, not a 500 (OverflowError)
    before: Annotated[int | None, Query(ge=1, le=MAX_INT64)] = None,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    executive = await page.require(Permission.ACTIONS_READ)
    tenant = page.person.tenant_id
    query = select(AuditEvent).where(
        belongs_to(tenant, executive), or_(*(AuditEvent.action.like(a) for a in _SHOWN))
    )
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    if q:
        like = f"%{q.strip()}%"
        query = query.where(
            or_(
                AuditEvent.action.ilike(like),
                AuditEvent.reason.ilike(like),
                AuditEvent.event_id.ilike(like),
                AuditEvent.action_id.ilike(like),
                AuditEvent.actor_id.ilike(like),
                AuditEvent.payload_json.ilike(like),
            )
        )
    events = list(
        (await session.execute(query.order_by(AuditEvent.seq.desc()).limit(PAGE_SIZE))).scalars()
    )
    action_ids = {
        i
        for e in events
        for i in (e.action_id, e.resource_id if e.resource_type == "action" else None)
        if i
    }
    revised_ids = {
        str(e.payload.get("revised_action_id"))
        for e in events
        if e.action == "action.revised" and e.payload.get("revised_action_id")
    }
    actions = {
        a.id: a
        for a in (
            await session.execute(
                select(Action).where(
                    Action.tenant_id == tenant, Action.id.in_(sorted(action_ids | revised_ids))
                )
            )
        ).scalars()
    }
    diffs = await diffs_for(session, list(actions.values()))
    subjects = await _subjects(session, tenant, events, actions)
    rows = []
    offered: set[str] = set()  # Undo and roll-back once per action, on its newest line
    for event in events:
        action = actions.get(event.action_id or event.resource_id or "")
        first = action is not None and action.id not in offered
        if action is not None:
            offered.add(action.id)
        rows.append(
            {
                "event": event,
                "action": action,
                "said": WORDS.get(event.action, event.action),
                "what": _what(event, action),
                "subject": subjects.get(event.event_id),
                "diff": _diff_of(event, diffs),
                "undo": first and action is not None and action.state == S.SCHEDULED.value,
                "rollback": first and action is not None and action.state == S.SUCCEEDED.value,
            }
        )
    # People by name in the "Who" column (it showed user ids), for this page's events only.
    people = {e.actor_id for e in events} | {e.on_behalf_of for e in events if e.on_behalf_of}
    names = dict(
        (
            await session.execute(
                select(User.id, func.coalesce(User.display_name, User.username)).where(
                    User.tenant_id == tenant, User.id.in_(sorted(people))
                )
            )
        ).all()
    )
    return page.render(
        "history.html",
        rows=rows,
        names=names,
        q=q or "",
        states=STATE_WORDS,
        zone=await zone_of(session, governance, page, executive),
        older=events[-1].seq if len(events) == PAGE_SIZE else None,
        done=done,
    )
