"""The inbox room: her triaged mail, grouped, with the reason and the stage that decided;
open a message (sanitized, nothing remote); correct a triage in one click."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import nh3
import structlog
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.api.deps import SessionDep
from assistant.auth.permissions import Permission
from assistant.core.errors import AssistantError, NotFoundError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.governance_app import GovernanceDep, GovernanceRuntime
from assistant.ingestion.models import TriageQueueItem
from assistant.services import Services
from assistant.triage import store
from assistant.triage.inbox import InboxItem, inbox_item, list_inbox
from assistant.triage.models import Category, Priority
from assistant.triage.store import CorrectionIn, TriageResultRow
from assistant.web.pages import PREFIX, PageDep, back
from assistant.web.review import zone_of
from assistant.web.scope import Executive
from integrations.base import Capability, EmailMessage
from integrations.errors import UnknownConnectorError

log = structlog.stdlib.get_logger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

CATEGORY_ORDER = [Category.RESPOND, Category.SCHEDULE, Category.NOTIFY, Category.IGNORE]
PRIORITY_ORDER = [Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW]
#: Mail HTML may keep its structure and links, never scripts, styles, images or frames.
_MAIL_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i",
    "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr",
    "u", "ul",
}  # fmt: skip


def grouped(items: list[InboxItem]) -> list[tuple[str, list[tuple[str, list[InboxItem]]]]]:
    """What waits for her decision first, then by category (respond, schedule, notify,
    ignore), then priority."""
    groups = []
    for category in [None, *(c.value for c in CATEGORY_ORDER)]:
        in_category = [i for i in items if i.category == category]
        if not in_category:
            continue
        by_priority = [
            (p.value, [i for i in in_category if i.priority == p.value]) for p in PRIORITY_ORDER
        ]
        groups.append((category or "undecided", [(p, g) for p, g in by_priority if g]))
    return groups


async def _owned_result(
    session: AsyncSession, tenant_id: str, executive: Executive, message_id: str, mailbox: str
) -> TriageResultRow:
    row = await store.get_result(session, tenant_id, message_id, mailbox)
    if not executive.owns_mail(row.mailbox):
        raise NotFoundError("no triage stored for this message")  # not hers: as if absent
    return row


def mailbox_instance(services: Services, tenant_id: str, executive: str, mailbox: str) -> Any:
    """The connector instance of ``mailbox`` among those that serve ``executive``."""
    for instance in services.connectors.instances_for(tenant_id, executive, Capability.EMAIL):
        if instance.connector is not None and instance.address == mailbox.lower():
            return instance
    raise NotFoundError("the mailbox of this message is not connected")


async def propose_after_correction(
    services: Services,
    governance: GovernanceRuntime,
    executive: Executive,
    row: TriageResultRow,
    correlation: str,
) -> None:
    """Mail a person moved to respond or schedule gets what the pipeline would have proposed:
    a reply draft, or the meeting and its reply. The assistant proposes (never the person,
    who then reviews it); a failure leaves the correction in place."""
    if not services.settings.drafting.enabled:
        return
    from assistant.drafting.flow import DraftingStep
    from assistant.llm.client import LLMClient
    from assistant.llm.metering import DatabaseMeter

    instance = mailbox_instance(services, row.tenant_id, executive.user_id, row.mailbox)
    message = await instance.connector.get_message(row.message_id)
    calendar = None
    with contextlib.suppress(UnknownConnectorError):
        calendar = services.connectors.get(
            row.tenant_id, Capability.CALENDAR, executive=executive.user_id
        )
    llm = LLMClient(services.settings.llm, DatabaseMeter(services.sessions))
    step = DraftingStep(
        governance.actions,
        services.settings.drafting,
        llm,
        tenant_id=row.tenant_id,
        correlation_id=correlation,
    )
    try:
        outcome = await step.handle(
            services.sessions,
            message,
            row.to_result(),
            mailbox=row.mailbox,
            connector=instance.name,
            calendar=calendar,
            executive=executive.user_id,
        )
    except AssistantError as exc:
        log.warning("web.inbox.proposal_failed", error=type(exc).__name__, detail=exc.detail)
        return
    finally:
        await llm.aclose()
    log.info("web.inbox.proposed", kind=outcome.kind, actions=len(outcome.actions))


def sanitize_mail_html(value: str) -> str:
    """Mail HTML safe to show inside our page: no script, style, image or remote load."""
    return nh3.clean(
        value,
        tags=_MAIL_TAGS,
        attributes={"a": {"href", "title"}, "td": {"colspan", "rowspan"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


# ---------------------------------------------------------------------------- pages


@router.get("", response_class=HTMLResponse)
async def home(page: PageDep) -> RedirectResponse:
    if page.executive is None:
        from assistant.web.consoles import console_home

        return RedirectResponse(console_home(page) or f"{PREFIX}/nobody", status_code=303)
    return RedirectResponse(f"{PREFIX}/inbox", status_code=303)


@router.get("/nobody", response_class=HTMLResponse)
async def nobody(page: PageDep) -> HTMLResponse:
    return page.render("nobody.html")


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    category: Annotated[str | None, Query(max_length=16)] = None,
    priority: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    done: Annotated[str | None, Query(max_length=40)] = None,
) -> HTMLResponse:
    executive = await page.require(Permission.TRIAGE_READ)
    category = _choice(category, [*(c.value for c in Category), "undecided"])
    priority = _choice(priority, [p.value for p in Priority])
    items = await list_inbox(
        session,
        page.person.tenant_id,
        executive.mailboxes,
        category=category,
        priority=priority,
        q=q,
    )
    return page.render(
        "inbox.html",
        groups=grouped(items),
        count=len(items),
        category=category,
        priority=priority,
        q=q or "",
        categories=[c.value for c in CATEGORY_ORDER],
        priorities=[p.value for p in PRIORITY_ORDER],
        zone=await zone_of(session, governance, page, executive),
        done=done,
    )


@router.get("/inbox/message", response_class=HTMLResponse)
async def message_page(
    page: PageDep,
    session: SessionDep,
    governance: GovernanceDep,
    id: Annotated[str, Query(min_length=1, max_length=1000)],
    mailbox: Annotated[str, Query(min_length=1, max_length=320)],
) -> HTMLResponse:
    executive = await page.require(Permission.MAIL_READ)
    row = await _owned_result(session, page.person.tenant_id, executive, id, mailbox)
    instance = mailbox_instance(
        page.services, page.person.tenant_id, executive.user_id, row.mailbox
    )
    message: EmailMessage = await instance.connector.get_message(row.message_id)
    queued = await session.execute(
        select(TriageQueueItem.message)
        .where(
            TriageQueueItem.tenant_id == page.person.tenant_id,
            TriageQueueItem.provider_id == row.message_id,
        )
        .limit(1)
    )
    return page.render(
        "message.html",
        item=inbox_item(row, queued.scalar_one_or_none()),
        message=message,
        body_html=sanitize_mail_html(message.html) if message.html else None,
        categories=[c.value for c in CATEGORY_ORDER],
        zone=await zone_of(session, governance, page, executive),
    )


@router.post("/inbox/correct")
async def correct(
    page: PageDep, session: SessionDep, governance: GovernanceDep
) -> RedirectResponse:
    """One click: the button pressed names the stored triage and the category
    (``pick=<triage id>:<category>``); the note beside it (``note-<triage id>``) is optional.
    One form serves the whole inbox, so that a page of 200 messages stays small."""
    executive = await page.require(Permission.TRIAGE_CORRECT)
    form = await page.request.form()
    pick = form.get("pick")
    ref, _, wanted = pick.partition(":") if isinstance(pick, str) else ("", "", "")
    try:
        category = Category(wanted)
    except ValueError:
        raise ValidationFailedError(
            "pick one of the categories: " + ", ".join(c.value for c in Category)
        ) from None
    note = form.get(f"note-{ref}")
    note = note.strip()[:1000] if isinstance(note, str) else ""
    row = await session.get(TriageResultRow, ref[:32]) if ref else None
    if (
        row is None
        or row.tenant_id != page.person.tenant_id
        or not executive.owns_mail(row.mailbox)
    ):
        raise NotFoundError("no triage stored for this message")  # not hers: as if absent
    await store.correct(
        session,
        page.acting(executive.user_id, Permission.TRIAGE_CORRECT),
        row.message_id,
        CorrectionIn(category=category, note=note or None),
        mailbox=row.mailbox,
        mailboxes=set(executive.mailboxes),
    )
    if category in {Category.RESPOND, Category.SCHEDULE}:
        await session.commit()  # the proposal reads the corrected triage from its own session
        correlation = getattr(page.request.state, "correlation_id", None) or new_id()
        await propose_after_correction(
            page.services, governance, executive, row, f"web-{correlation}"
        )
    return back(page, f"{PREFIX}/inbox", done="corrected")


def _choice(value: str | None, allowed: list[str]) -> str | None:
    return value if value in allowed else None
