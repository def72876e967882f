"""The agent's tools: read the executive's own data, or propose a governed action.

A tool has a pydantic argument model (``extra="forbid"``), the permission it needs and a
coroutine over an :class:`ToolContext`. Read tools return plain JSON data; proposal tools
call the governance propose path and return a *card* (the action's id, kind, state and the
policy's reason): nothing here executes anything. There is no tool for autonomy, policy,
owners, connectors or users, and the set is fixed in code: a tool result cannot add one.

Recipients and ERP documents named in a proposal must come from a trusted source: an
address outside the executive's own domain, or a purchase-order number, must appear in the
executive's own words in this conversation (not in mail, events or ERP text, which an
outsider may have written). See :func:`require_named_by_user`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.agent.scope import AgentScope, Bound
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.errors import PermissionDeniedError, ValidationFailedError
from assistant.core.principal import agent_principal
from assistant.erp import tools as erp_tools
from assistant.erp.service import ERPReader
from assistant.scheduling.service import (
    ParticipantSpec,
    ScheduleConstraints,
    find_meeting_slots,
)
from assistant.triage.store import TriageResultRow
from governance.autonomy import stored_level
from governance.erp_actions import APPROVE, REJECT
from governance.models import Action
from governance.policy import Autonomy
from governance.service import ActionService, Proposal
from integrations.base import Attendee, Capability, DraftMode, InviteResponse

#: Levels a chat proposal is capped at: a card always waits for a person.
_CAPPED = {Autonomy.AUTO, Autonomy.AUTO_WITH_UNDO}
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TEXT = 4000


class UntrustedSourceError(ValidationFailedError):
    """A proposal names a recipient or document that only untrusted content mentioned."""


class ToolUnavailableError(PermissionDeniedError):
    """The executive has no connector for this tool, or the caller lacks its permission."""


@dataclass
class ToolContext:
    """What one turn's tools work with."""

    scope: AgentScope
    session: AsyncSession
    actions: ActionService
    trusted_text: str
    correlation_id: str
    now: Callable[[], datetime] = utcnow
    proposed: list[dict[str, Any]] = field(default_factory=list)

    def mailbox(self) -> Bound:
        if self.scope.mailbox is None:
            raise ToolUnavailableError("no mailbox of this executive is connected")
        return self.scope.mailbox

    def calendar(self) -> Bound:
        if self.scope.calendar is None:
            raise ToolUnavailableError("no calendar of this executive is connected")
        return self.scope.calendar

    def erp_reader(self) -> ERPReader:
        erp = self.scope.erp
        if erp is None:
            raise ToolUnavailableError("no ERP is connected")
        connector = erp.connector

        class _Only:
            def get(
                self,
                tenant_id: str,
                capability: Capability,
                name: str | None = None,
                *,
                executive: str | None = None,
            ) -> Any:
                return connector

        return ERPReader(_Only())


@dataclass(frozen=True)
class AgentTool:
    name: str
    description: str
    args_model: type[BaseModel]
    permissions: tuple[Permission, ...]
    run: Callable[[ToolContext, Any], Awaitable[Any]]
    proposes: bool = False

    def openai_schema(self) -> dict[str, Any]:
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": schema,
            },
        }


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- provenance


def require_named_by_user(ctx: ToolContext, value: str, what: str) -> None:
    """``value`` must appear in the executive's own words (case-insensitive, whole)."""
    pattern = re.compile(rf"(?<![\w@.-]){re.escape(value.strip().lower())}(?![\w@-])")
    if not pattern.search(ctx.trusted_text.lower()):
        raise UntrustedSourceError(
            f"{what} {value!r} was not named by you in this conversation; only addresses "
            "and documents you name yourself can be used (mail, events and ERP text "
            "are not trusted for this)"
        )


def _check_recipients(ctx: ToolContext, addresses: Sequence[str]) -> None:
    own = ctx.scope.own_domain
    for address in addresses:
        if not _ADDRESS.match(address):
            raise ValidationFailedError(f"not an email address: {address!r}")
        domain = address.rsplit("@", 1)[1].lower()
        if own is None or domain != own:
            require_named_by_user(ctx, address, "the outside address")


# --------------------------------------------------------------------------- mail


class SearchMailArgs(_Args):
    query: str | None = Field(
        default=None, max_length=200, description="Words to find in sender, subject or text."
    )
    folder: str = Field(default="inbox", max_length=100, description="Folder id, e.g. inbox.")
    unread_only: bool = False
    limit: int = Field(default=10, ge=1, le=25)


class ReadMailArgs(_Args):
    message_id: str = Field(min_length=1, max_length=512)


def _mail_row(message: Any) -> dict[str, Any]:
    return {
        "id": message.id,
        "from": message.sender.formatted() if message.sender else None,
        "subject": message.subject,
        "date": message.date.isoformat() if message.date else None,
        "unread": "seen" not in message.flags,
        "preview": " ".join(message.text.split())[:160],
    }


async def _search_mail(ctx: ToolContext, args: SearchMailArgs) -> Any:
    connector = ctx.mailbox().connector
    # The capability has no server-side search: read the folder (bounded) and filter here.
    found: list[Any] = []
    cursor: str | None = None
    for _ in range(5):
        batch = await connector.sync(args.folder, cursor, page_size=100)
        found.extend(batch.messages)
        cursor = batch.cursor
        if not batch.more:
            break
    words = [w.lower() for w in (args.query or "").split() if w]

    def matches(message: Any) -> bool:
        if args.unread_only and "seen" in message.flags:
            return False
        haystack = " ".join(
            [
                message.subject,
                message.sender.formatted() if message.sender else "",
                message.text,
            ]
        ).lower()
        return all(w in haystack for w in words)

    hits = [m for m in found if matches(m)]
    hits.sort(key=lambda m: m.date or datetime.min.replace(tzinfo=ctx.now().tzinfo), reverse=True)
    return {
        "folder": args.folder,
        "count": len(hits),
        "messages": [_mail_row(m) for m in hits[: args.limit]],
    }


async def _read_mail(ctx: ToolContext, args: ReadMailArgs) -> Any:
    message = await ctx.mailbox().connector.get_message(args.message_id)
    return {
        "id": message.id,
        "from": message.sender.formatted() if message.sender else None,
        "to": [a.formatted() for a in message.to],
        "cc": [a.formatted() for a in message.cc],
        "subject": message.subject,
        "date": message.date.isoformat() if message.date else None,
        "folder": message.folder,
        "text": message.text[:_MAX_TEXT],
        "attachments": [a.name for a in message.attachments],
    }


class TriageArgs(_Args):
    category: Literal["respond", "schedule", "notify", "ignore"] | None = None
    needs_human: bool | None = None
    limit: int = Field(default=20, ge=1, le=50)


async def _triage(ctx: ToolContext, args: TriageArgs) -> Any:
    mailbox = str(ctx.mailbox().connector.mailbox)
    query = select(TriageResultRow).where(
        TriageResultRow.tenant_id == ctx.scope.tenant_id, TriageResultRow.mailbox == mailbox
    )
    if args.category:
        query = query.where(TriageResultRow.category == args.category)
    if args.needs_human is not None:
        query = query.where(TriageResultRow.needs_human == args.needs_human)
    rows = (
        await ctx.session.execute(
            query.order_by(TriageResultRow.message_date.desc()).limit(args.limit)
        )
    ).scalars()
    return [
        {
            "message_id": r.message_id,
            "sender": r.sender,
            "date": r.message_date.isoformat() if r.message_date else None,
            "category": r.category,
            "priority": r.priority,
            "needs_human": r.needs_human,
            "summary": r.result.get("summary", ""),
            "requested_actions": r.result.get("requested_actions", []),
        }
        for r in rows
    ]


# --------------------------------------------------------------------------- calendar


class EventsArgs(_Args):
    start_date: date | None = Field(default=None, description="First day (default: today).")
    days: int = Field(default=1, ge=1, le=14)


class FreeBusyArgs(_Args):
    people: list[str] = Field(min_length=1, max_length=10, description="Email addresses.")
    start: AwareDatetime
    end: AwareDatetime


class FindTimesArgs(_Args):
    participants: list[str] = Field(min_length=1, max_length=20, description="Email addresses.")
    duration_minutes: int = Field(gt=0, le=8 * 60)
    window_start: AwareDatetime | None = None
    days: int = Field(default=5, ge=1, le=30)
    earliest: time | None = None
    latest: time | None = None
    max_results: int = Field(default=3, ge=1, le=10)


def _event_row(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "subject": event.subject,
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "timezone": event.timezone,
        "location": event.location,
        "organizer": event.organizer,
        "attendees": [
            {"address": a.address, "response": a.response.value} for a in event.attendees
        ],
        "description": (event.body or "")[:1000],
        "cancelled": event.is_cancelled,
    }


async def _events(ctx: ToolContext, args: EventsArgs) -> Any:
    start_day = args.start_date or ctx.now().date()
    start = datetime.combine(start_day, time(0), tzinfo=ctx.now().tzinfo)
    events = await ctx.calendar().connector.list_events(start, start + timedelta(days=args.days))
    return [_event_row(e) for e in events]


async def _free_busy(ctx: ToolContext, args: FreeBusyArgs) -> Any:
    if args.end <= args.start or args.end - args.start > timedelta(days=31):
        raise ValidationFailedError("end must follow start, within 31 days")
    rows = await ctx.calendar().connector.get_free_busy(args.people, args.start, args.end)
    return [r.model_dump(mode="json") for r in rows]


async def _find_times(ctx: ToolContext, args: FindTimesArgs) -> Any:
    constraints = ScheduleConstraints(
        participants=[ParticipantSpec(address=p) for p in args.participants],
        duration_minutes=args.duration_minutes,
        window_start=args.window_start,
        days=args.days,
        earliest=args.earliest,
        latest=args.latest,
        max_results=args.max_results,
        on_unknown="error",
    )
    result = await find_meeting_slots(ctx.calendar().connector, constraints, now=ctx.now())
    return result.model_dump(mode="json")


# --------------------------------------------------------------------------- proposals


async def _autonomy(ctx: ToolContext, kind: str, executive: str) -> Autonomy:
    level = (
        await stored_level(ctx.session, ctx.scope.tenant_id, executive, kind)
        or ctx.actions.policy.current().default_autonomy
    )
    # Never above suggest: what the chat proposes is a card a person approves.
    return Autonomy.SUGGEST if level in _CAPPED else level


def card(action: Action, title: str) -> dict[str, Any]:
    """What the conversation (and the web panel) shows for a proposal."""
    return {
        "action_id": action.id,
        "kind": action.kind,
        "title": title,
        "state": action.state,
        "decision": action.decision,
        "reason": action.decision_reason,
        "arguments": action.arguments,
        "requested_by": action.requested_by,
        "review_url": f"/api/v1/review/{action.id}",
    }


async def _propose(
    ctx: ToolContext, kind: str, arguments: dict[str, Any], connector: Bound, title: str
) -> dict[str, Any]:
    # The executive's identity on this connector: her user id when it is bound to her, else
    # its own address (her user record's e-mail); governance checks that it serves her.
    executive = connector.serves or ctx.scope.executive
    # The agent is the proposer, on the asking person's rights and recorded as her request:
    # so the executive may approve what she asked her assistant for (governance.review).
    action = await ctx.actions.propose(
        ctx.session,
        agent_principal(ctx.scope.principal, executive=executive),
        Proposal(
            kind=kind,
            arguments=arguments,
            on_behalf_of=executive,
            correlation_id=ctx.correlation_id,
            connector=connector.name,
            autonomy=await _autonomy(ctx, kind, executive),
        ),
    )
    shown = card(action, title)
    ctx.proposed.append(shown)
    return {"card": shown}


class ReplyArgs(_Args):
    message_id: str = Field(min_length=1, max_length=512)
    body: str = Field(min_length=1, max_length=20_000)
    reply_all: bool = False


class NewMailArgs(_Args):
    to: list[str] = Field(min_length=1, max_length=20)
    cc: list[str] = Field(default_factory=list, max_length=20)
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)


class MoveArgs(_Args):
    message_id: str = Field(min_length=1, max_length=512)
    folder: str = Field(min_length=1, max_length=100, description="archive, trash, ...")


class MeetingArgs(_Args):
    subject: str = Field(min_length=1, max_length=300)
    start: AwareDatetime
    end: AwareDatetime
    timezone: str = Field(default="UTC", max_length=64)
    attendees: list[str] = Field(default_factory=list, max_length=30)
    location: str | None = Field(default=None, max_length=300)


class ChangeEventArgs(_Args):
    event_id: str = Field(min_length=1, max_length=512)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    subject: str | None = Field(default=None, max_length=300)
    location: str | None = Field(default=None, max_length=300)


class CancelEventArgs(_Args):
    event_id: str = Field(min_length=1, max_length=512)
    comment: str | None = Field(default=None, max_length=1000)


class InviteArgs(_Args):
    event_id: str = Field(min_length=1, max_length=512)
    response: InviteResponse
    comment: str | None = Field(default=None, max_length=1000)


class PurchaseOrderDecisionArgs(_Args):
    number: str = Field(min_length=1, max_length=40, description="e.g. 1043 or PO 1043")
    reason: str | None = Field(default=None, max_length=500)


async def _reply(ctx: ToolContext, args: ReplyArgs, kind: str) -> Any:
    mailbox = ctx.mailbox()
    # The original must be in the executive's own mailbox; recipients come from it.
    original = await mailbox.connector.get_message(args.message_id)
    mode = DraftMode.REPLY_ALL if args.reply_all else DraftMode.REPLY
    what = "Reply draft" if kind == "email.draft.create" else "Reply (send)"
    return await _propose(
        ctx,
        kind,
        {"mode": mode.value, "reply_to_id": original.id, "body_text": args.body},
        mailbox,
        f"{what}: {original.subject}"[:200],
    )


async def _draft_reply(ctx: ToolContext, args: ReplyArgs) -> Any:
    return await _reply(ctx, args, "email.draft.create")


async def _send_reply(ctx: ToolContext, args: ReplyArgs) -> Any:
    return await _reply(ctx, args, "email.send")


async def _draft_email(ctx: ToolContext, args: NewMailArgs) -> Any:
    _check_recipients(ctx, [*args.to, *args.cc])
    return await _propose(
        ctx,
        "email.draft.create",
        {
            "mode": DraftMode.NEW.value,
            "to": [{"address": a} for a in args.to],
            "cc": [{"address": a} for a in args.cc],
            "subject": args.subject,
            "body_text": args.body,
        },
        ctx.mailbox(),
        f"New draft: {args.subject}"[:200],
    )


async def _move(ctx: ToolContext, args: MoveArgs) -> Any:
    mailbox = ctx.mailbox()
    message = await mailbox.connector.get_message(args.message_id)
    return await _propose(
        ctx,
        "email.move",
        {"message_id": message.id, "folder": args.folder},
        mailbox,
        f"Move to {args.folder}: {message.subject}"[:200],
    )


async def _schedule(ctx: ToolContext, args: MeetingArgs) -> Any:
    if args.end <= args.start:
        raise ValidationFailedError("the meeting must end after it starts")
    _check_recipients(ctx, args.attendees)
    return await _propose(
        ctx,
        "calendar.event.create",
        {
            "subject": args.subject,
            "start": args.start.isoformat(),
            "end": args.end.isoformat(),
            "timezone": args.timezone,
            "attendees": [Attendee(address=a).model_dump(mode="json") for a in args.attendees],
            "location": args.location,
        },
        ctx.calendar(),
        f"Meeting: {args.subject}"[:200],
    )


async def _change_event(ctx: ToolContext, args: ChangeEventArgs) -> Any:
    calendar = ctx.calendar()
    event = await calendar.connector.get_event(args.event_id)
    changes = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in args.model_dump(exclude={"event_id"}, exclude_none=True).items()
    }
    if not changes:
        raise ValidationFailedError("name at least one change")
    return await _propose(
        ctx,
        "calendar.event.update",
        {"event_id": event.id, **changes},
        calendar,
        f"Change: {event.subject}"[:200],
    )


async def _cancel_event(ctx: ToolContext, args: CancelEventArgs) -> Any:
    calendar = ctx.calendar()
    event = await calendar.connector.get_event(args.event_id)
    return await _propose(
        ctx,
        "calendar.event.cancel",
        {"event_id": event.id, "comment": args.comment},
        calendar,
        f"Cancel: {event.subject}"[:200],
    )


async def _respond(ctx: ToolContext, args: InviteArgs) -> Any:
    calendar = ctx.calendar()
    event = await calendar.connector.get_event(args.event_id)
    return await _propose(
        ctx,
        "calendar.invite.respond",
        {"event_id": event.id, "response": args.response.value, "comment": args.comment},
        calendar,
        f"{args.response.value.capitalize()}: {event.subject}"[:200],
    )


async def _po_decision(ctx: ToolContext, args: PurchaseOrderDecisionArgs, kind: str) -> Any:
    number = args.number.strip().upper().removeprefix("PO").strip(" -#")
    require_named_by_user(ctx, number, "the purchase order")
    erp = ctx.scope.erp
    if erp is None:
        raise ToolUnavailableError("no ERP is connected")
    order = await ctx.erp_reader().purchase_order(ctx.scope.principal, number)
    arguments: dict[str, Any] = {"order_id": order.id}
    if kind == REJECT and args.reason:
        arguments["reason"] = args.reason
    verb = "Approve" if kind == APPROVE else "Reject"
    return await _propose(ctx, kind, arguments, erp, f"{verb} purchase order {order.number}")


async def _approve_po(ctx: ToolContext, args: PurchaseOrderDecisionArgs) -> Any:
    return await _po_decision(ctx, args, APPROVE)


async def _reject_po(ctx: ToolContext, args: PurchaseOrderDecisionArgs) -> Any:
    return await _po_decision(ctx, args, REJECT)


# --------------------------------------------------------------------------- ERP reads


def _erp_tool(tool: erp_tools.ERPTool) -> AgentTool:
    async def run(ctx: ToolContext, args: Any) -> Any:
        return await tool.run(ctx.erp_reader(), ctx.scope.principal, args)

    return AgentTool(tool.name, tool.description, tool.args_model, (Permission.ERP_READ,), run)


P = Permission

#: Every tool the agent has. Fixed in code; a turn offers the subset its caller may use.
TOOLS: tuple[AgentTool, ...] = (
    AgentTool(
        "search_mail",
        "Find messages in the executive's mailbox by words in sender, subject or text.",
        SearchMailArgs,
        (P.MAIL_READ,),
        _search_mail,
    ),
    AgentTool("read_mail", "Read one message by its id.", ReadMailArgs, (P.MAIL_READ,), _read_mail),
    AgentTool(
        "triage_results",
        "The stored triage of the executive's mail (category, priority, summary).",
        TriageArgs,
        (P.TRIAGE_READ,),
        _triage,
    ),
    AgentTool(
        "list_events",
        "The executive's calendar events over some days.",
        EventsArgs,
        (P.CALENDAR_READ,),
        _events,
    ),
    AgentTool(
        "free_busy",
        "Busy times and working hours of people between two times.",
        FreeBusyArgs,
        (P.CALENDAR_READ,),
        _free_busy,
    ),
    AgentTool(
        "find_meeting_times",
        "Ranked meeting slots that fit the executive and the participants.",
        FindTimesArgs,
        (P.CALENDAR_READ,),
        _find_times,
    ),
    *(_erp_tool(t) for t in erp_tools.ERP_TOOLS),
    AgentTool(
        "draft_reply",
        "Propose a reply draft to a message (a card the executive approves).",
        ReplyArgs,
        (P.MAIL_READ, P.DRAFTS_WRITE, P.ACTIONS_PROPOSE),
        _draft_reply,
        proposes=True,
    ),
    AgentTool(
        "send_reply",
        "Propose sending a reply to a message (a card the executive approves).",
        ReplyArgs,
        (P.MAIL_READ, P.ACTIONS_PROPOSE),
        _send_reply,
        proposes=True,
    ),
    AgentTool(
        "draft_email",
        "Propose a new email draft to people the executive named (a card).",
        NewMailArgs,
        (P.DRAFTS_WRITE, P.ACTIONS_PROPOSE),
        _draft_email,
        proposes=True,
    ),
    AgentTool(
        "move_mail",
        "Propose moving a message to another folder (a card).",
        MoveArgs,
        (P.MAIL_READ, P.ACTIONS_PROPOSE),
        _move,
        proposes=True,
    ),
    AgentTool(
        "schedule_meeting",
        "Propose a new meeting in the executive's calendar (a card).",
        MeetingArgs,
        (P.CALENDAR_READ, P.ACTIONS_PROPOSE),
        _schedule,
        proposes=True,
    ),
    AgentTool(
        "change_event",
        "Propose moving or renaming an event (a card).",
        ChangeEventArgs,
        (P.CALENDAR_READ, P.ACTIONS_PROPOSE),
        _change_event,
        proposes=True,
    ),
    AgentTool(
        "cancel_event",
        "Propose cancelling an event (a card).",
        CancelEventArgs,
        (P.CALENDAR_READ, P.ACTIONS_PROPOSE),
        _cancel_event,
        proposes=True,
    ),
    AgentTool(
        "respond_to_invite",
        "Propose accepting, tentatively accepting or declining an invitation (a card).",
        InviteArgs,
        (P.CALENDAR_READ, P.ACTIONS_PROPOSE),
        _respond,
        proposes=True,
    ),
    AgentTool(
        "approve_purchase_order",
        "Propose approving a purchase order the executive named by number (a card).",
        PurchaseOrderDecisionArgs,
        (P.ERP_READ, P.ACTIONS_PROPOSE),
        _approve_po,
        proposes=True,
    ),
    AgentTool(
        "reject_purchase_order",
        "Propose rejecting a purchase order the executive named by number (a card).",
        PurchaseOrderDecisionArgs,
        (P.ERP_READ, P.ACTIONS_PROPOSE),
        _reject_po,
        proposes=True,
    ),
)


def tools_for(scope: AgentScope) -> list[AgentTool]:
    """The tools this caller may use on this executive's data, and that have a connector."""
    offered: list[AgentTool] = []
    for tool in TOOLS:
        if not all(scope.allows(p) for p in tool.permissions):
            continue
        mail = P.MAIL_READ in tool.permissions or tool.name in {"draft_email", "triage_results"}
        if mail and scope.mailbox is None:
            continue
        if P.CALENDAR_READ in tool.permissions and scope.calendar is None:
            continue
        if P.ERP_READ in tool.permissions and scope.erp is None:
            continue
        offered.append(tool)
    return offered
