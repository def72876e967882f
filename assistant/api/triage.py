"""Triage corrections: a person (executive or delegate) corrects a stored triage."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from assistant.api.deps import ServicesDep, SessionDep, require
from assistant.auth.permissions import Permission, ensure_acts_for
from assistant.core.principal import Principal
from assistant.triage import store
from assistant.triage.inbox import MAX_ITEMS, InboxItem, list_inbox
from assistant.triage.models import Category, Priority
from assistant.triage.store import CorrectionIn, CorrectionOut, ReviewStatus

router = APIRouter(prefix="/api/v1/triage", tags=["triage"])

Reader = Annotated[Principal, require(Permission.TRIAGE_READ)]
Corrector = Annotated[Principal, require(Permission.TRIAGE_CORRECT)]


class CorrectionsOut(BaseModel):
    items: list[CorrectionOut]
    metrics: dict[str, Any]


@router.post(
    "/{message_id:path}/correction",
    status_code=status.HTTP_201_CREATED,
    response_model=CorrectionOut,
)
async def correct_triage(
    message_id: str,
    body: CorrectionIn,
    principal: Corrector,
    session: SessionDep,
    services: ServicesDep,
    mailbox: Annotated[str | None, Query(description="Mailbox, when the id is ambiguous.")] = None,
) -> CorrectionOut:
    """Record the caller's triage of a message of her own mailboxes (or, for a delegate,
    of the executive she acts for); it replaces the stored one (audited)."""
    ensure_acts_for(principal, principal.acting_for, Permission.TRIAGE_CORRECT)
    own = services.connectors.mailboxes_of(principal.tenant_id, principal.acting_for)
    row = await store.correct(session, principal, message_id, body, mailbox=mailbox, mailboxes=own)
    return CorrectionOut.of(row)


@router.get(
    "/inbox",
    response_model=list[InboxItem],
    summary="The triaged inbox of the executive you serve, newest first",
)
async def inbox(
    principal: Reader,
    session: SessionDep,
    services: ServicesDep,
    category: Category | Literal["undecided"] | None = None,
    priority: Priority | None = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Words in the subject, sender, summary or reason."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 200,
) -> list[InboxItem]:
    """The triaged messages of the caller's executive's own mailboxes (the mailboxes whose
    connectors serve her), newest first, each with the reason, the deciding stage and its
    evidence. A delegate names the executive with ``X-On-Behalf-Of``."""
    ensure_acts_for(principal, principal.acting_for, Permission.TRIAGE_READ)
    own = services.connectors.mailboxes_of(principal.tenant_id, principal.acting_for)
    return await list_inbox(
        session,
        principal.tenant_id,
        own,
        category=category.value if isinstance(category, Category) else category,
        priority=priority.value if priority else None,
        q=q,
        limit=limit,
    )


@router.get("/corrections", response_model=CorrectionsOut)
async def list_corrections(
    principal: Reader,
    session: SessionDep,
    services: ServicesDep,
    review_status: Annotated[ReviewStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CorrectionsOut:
    """Corrections of the caller's executive's mailboxes, newest first, with correction
    metrics by stage."""
    ensure_acts_for(principal, principal.acting_for, Permission.TRIAGE_READ)
    own = services.connectors.mailboxes_of(principal.tenant_id, principal.acting_for)
    rows = await store.list_corrections(
        session, principal.tenant_id, status=review_status, limit=limit, mailboxes=own
    )
    return CorrectionsOut(
        items=[CorrectionOut.of(r) for r in rows],
        metrics=await store.correction_metrics(session, principal.tenant_id, mailboxes=own),
    )
