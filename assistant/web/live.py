"""Live updates by polling: a fingerprint of what the rooms show, cheap to ask every few
seconds; the page reloads its content when it changes."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter
from sqlalchemy import func, select

from assistant.api.deps import SessionDep
from assistant.triage.store import TriageResultRow
from assistant.web.pages import PREFIX, PageDep
from governance.models import Action

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/live")
async def live(page: PageDep, session: SessionDep) -> dict[str, str | int]:
    """Changes when mail is triaged or corrected, or when an action changes state."""
    executive = page.executive
    if executive is None:
        return {"version": "", "pending": 0}
    mailboxes = sorted(executive.mailboxes)
    tenant = page.person.tenant_id
    actions = (
        await session.execute(
            select(func.count(), func.max(Action.updated_at), func.sum(Action.version)).where(
                Action.tenant_id == tenant, Action.on_behalf_of == executive.user_id
            )
        )
    ).one()
    pending = await session.scalar(
        select(func.count()).where(
            Action.tenant_id == tenant,
            Action.on_behalf_of == executive.user_id,
            Action.state == "pending_review",
        )
    )
    mail = (
        await session.execute(
            select(func.count(), func.max(TriageResultRow.updated_at)).where(
                TriageResultRow.tenant_id == tenant, TriageResultRow.mailbox.in_(mailboxes)
            )
        )
    ).one()
    fingerprint = repr((executive.user_id, tuple(actions), tuple(mail))).encode()
    return {"version": hashlib.sha256(fingerprint).hexdigest()[:16], "pending": int(pending or 0)}
