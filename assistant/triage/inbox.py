"""The triaged inbox of one executive: her mailboxes' triage, newest first, each with the
reason in plain words, the stage that decided and its evidence. One query for the web
app's inbox page and for ``GET /api/v1/triage/inbox``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.ingestion.models import TriageQueueItem
from assistant.triage.store import TriageResultRow

MAX_ITEMS = 500
STAGE_WORDS = {"rule": "a rule", "model": "the model", "human": "a person"}


class InboxItem(BaseModel):
    """One triaged message as the inbox shows it."""

    ref: str = Field(description="Id of its stored triage (what a correction names).")
    message_id: str
    mailbox: str
    subject: str
    sender: str | None
    message_date: datetime | None
    category: str | None
    priority: str
    needs_human: bool
    reason: str
    summary: str
    stage: str
    decided_by: str
    evidence: list[str]
    confidence: float
    flags: list[str]
    triaged_at: datetime


def _evidence(row: TriageResultRow) -> list[str]:
    found = []
    if row.rule_id:
        found.append(f"rule {row.rule_id}")
    if row.model:
        prompt = f", prompt {row.prompt_version}" if row.prompt_version else ""
        found.append(f"model {row.model}{prompt}")
    found.append(f"confidence {row.confidence:.2f}")
    return found


def inbox_item(row: TriageResultRow, message: dict[str, Any] | None) -> InboxItem:
    result = row.to_result()
    sender = row.sender
    if message and message.get("sender"):
        who = message["sender"]
        sender = f"{who.get('name')} <{who['address']}>" if who.get("name") else who["address"]
    flags = [name for name, on in result.flags.model_dump().items() if on]
    reason = result.reason or (
        "nobody could decide: it waits for you" if result.needs_human else "no reason recorded"
    )
    return InboxItem(
        ref=row.id,
        message_id=row.message_id,
        mailbox=row.mailbox,
        subject=(message or {}).get("subject") or "(no subject)",
        sender=sender,
        message_date=row.message_date,
        category=row.category,
        priority=row.priority,
        needs_human=row.needs_human,
        reason=reason,
        summary=result.summary,
        stage=row.stage,
        decided_by=STAGE_WORDS.get(row.stage, row.stage),
        evidence=_evidence(row),
        confidence=row.confidence,
        flags=flags,
        triaged_at=row.updated_at,
    )


async def list_inbox(
    session: AsyncSession,
    tenant_id: str,
    mailboxes: Iterable[str],
    *,
    category: str | None = None,
    priority: str | None = None,
    q: str | None = None,
    limit: int = 200,
) -> list[InboxItem]:
    """The triaged mail of ``mailboxes`` (an executive's: ConnectorManager.mailboxes_of),
    newest first; ``q`` searches subject, sender, summary and reason."""
    query = select(TriageResultRow).where(
        TriageResultRow.tenant_id == tenant_id,
        TriageResultRow.mailbox.in_(sorted(mailboxes)),
    )
    if category == "undecided":
        query = query.where(TriageResultRow.category.is_(None))
    elif category:
        query = query.where(TriageResultRow.category == category)
    if priority:
        query = query.where(TriageResultRow.priority == priority)
    query = query.order_by(
        TriageResultRow.message_date.desc(), TriageResultRow.created_at.desc()
    ).limit(MAX_ITEMS if q else limit)
    rows = list((await session.execute(query)).scalars())
    messages: dict[str, dict[str, Any]] = {}
    ids = [r.message_id for r in rows]
    for start in range(0, len(ids), 500):
        found = await session.execute(
            select(TriageQueueItem.provider_id, TriageQueueItem.message)
            .where(
                TriageQueueItem.tenant_id == tenant_id,
                TriageQueueItem.provider_id.in_(ids[start : start + 500]),
            )
            .order_by(TriageQueueItem.id)
        )
        messages.update({pid: message for pid, message in found})
    items = [inbox_item(r, messages.get(r.message_id)) for r in rows]
    if q:
        needle = q.casefold()
        items = [
            i
            for i in items
            if needle in f"{i.subject}\n{i.sender or ''}\n{i.summary}\n{i.reason}".casefold()
        ][:limit]
    return items
