"""Action kinds: what the assistant may propose, how it is executed and how it is undone.

Each :class:`ActionKind` names a pydantic argument schema, a risk class, the connector
capability it needs, the executor function (which calls the capability's Protocol method
with the action's idempotency key) and its compensator. Registration is open:
:func:`register_kind` adds kinds (the ERP work adds its own).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.core.errors import ConflictError, ValidationFailedError
from integrations.base import (
    Attendee,
    CalendarEvent,
    Capability,
    DraftMode,
    DraftRequest,
    EmailAddress,
    EventRequest,
    EventUpdate,
    InviteResponse,
    ResponseStatus,
    ShowAs,
)
from integrations.errors import ConnectorError


class RiskClass(StrEnum):
    """How far an executed action can be taken back."""

    READ_ONLY = "read_only"  # no effect to take back
    REVERSIBLE = "reversible"  # undone exactly (delete a draft, move a message back)
    COMPENSABLE = "compensable"  # undone by a new effect others may notice (cancel an event)
    IRREVERSIBLE = "irreversible"  # cannot be undone (a sent email)


class UnknownActionKindError(ValidationFailedError):
    """No action kind is registered under that name."""


class CompensationImpossibleError(ConflictError):
    """The compensator cannot restore the previous state (it is not known any more)."""


# --------------------------------------------------------------------------- contexts


@dataclass
class ExecutionContext:
    """What an executor function gets: the tenant's connector and the action's memory.

    ``progress`` holds external ids saved by earlier attempts; ``save_progress`` stores
    more of them before the next external call, so a retried attempt continues instead
    of repeating a step.
    """

    connector: Any
    idempotency_key: str
    snapshot: dict[str, Any] | None
    progress: dict[str, Any]
    save_progress: Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class ExecutionResult:
    external_ids: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompensationContext:
    connector: Any
    idempotency_key: str
    snapshot: dict[str, Any] | None
    external_ids: dict[str, Any]
    result: dict[str, Any]


@dataclass
class FollowUp:
    """A new action the compensator proposes (it goes through the policy as usual)."""

    kind: str
    arguments: dict[str, Any]
    reason: str


@dataclass
class CompensationResult:
    result: dict[str, Any] = field(default_factory=dict)
    effect_undone: bool = True
    follow_up: FollowUp | None = None


@dataclass(frozen=True)
class ActionFacts:
    """What the policy needs to know about the arguments. ``recipients`` None: unknown."""

    recipients: tuple[str, ...] | None = ()
    amount: Decimal | None = None


@dataclass(frozen=True)
class PreviewContext:
    timezone: ZoneInfo
    on_behalf_of: str | None = None


Executor = Callable[[ExecutionContext, Any], Awaitable[ExecutionResult]]
Compensator = Callable[[CompensationContext, Any], Awaitable[CompensationResult]]
Preparer = Callable[[Any, Any], Awaitable[dict[str, Any]]]
Completer = Callable[[Any, Any], Awaitable[Any]]
Previewer = Callable[[Any, Any, PreviewContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ActionKind:
    """One kind of governed action.

    ``prepare`` captures what compensation needs before the effect (stored on the action
    before the external call); ``complete`` fills arguments from trusted sources at
    proposal time (the recipients of a reply come from the original message).
    """

    name: str
    title: str
    args_model: type[BaseModel]
    risk: RiskClass
    capability: Capability
    execute: Executor
    compensate: Compensator | None
    facts: Callable[[Any], ActionFacts]
    preview: Previewer
    prepare: Preparer | None = None
    complete: Completer | None = None

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        """Arguments checked against the schema; every problem listed at once."""
        try:
            return self.args_model.model_validate(arguments)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()
            ]
            raise ValidationFailedError(
                f"invalid arguments for {self.name}: {len(problems)} problem(s)", problems=problems
            ) from None

    def dump(self, arguments: BaseModel) -> dict[str, Any]:
        return arguments.model_dump(mode="json", exclude_none=True)


class KindRegistry:
    """Name -> ActionKind. Open: other packages register their kinds."""

    def __init__(self) -> None:
        self._kinds: dict[str, ActionKind] = {}

    def register(self, kind: ActionKind, *, replace: bool = False) -> ActionKind:
        if kind.name in self._kinds and not replace:
            raise ValueError(f"action kind {kind.name!r} is already registered")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> ActionKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownActionKindError(f"unknown action kind {name!r}", kind=name) from None

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds


#: The process-wide registry.
registry = KindRegistry()


def register_kind(kind: ActionKind, *, replace: bool = False) -> ActionKind:
    """Add a kind to the process-wide registry."""
    return registry.register(kind, replace=replace)


# --------------------------------------------------------------------------- schemas


class _Args(BaseModel):
    # Built when an action of the kind is first proposed or checked, not at start-up.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class EmailDraftArgs(_Args):
    mode: DraftMode = DraftMode.NEW
    reply_to_id: str | None = Field(default=None, description="Provider id of the message.")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    subject: str | None = Field(default=None, max_length=998)
    body_text: str = Field(max_length=200_000)
    body_html: str | None = Field(default=None, max_length=1_000_000)

    @model_validator(mode="after")
    def _reply_needs_original(self) -> "EmailDraftArgs":
        if self.mode is not DraftMode.NEW and not self.reply_to_id:
            raise ValueError("a reply needs reply_to_id")
        return self

    def recipients(self) -> tuple[str, ...] | None:
        addresses = tuple(a.address for a in [*self.to, *self.cc, *self.bcc])
        if self.mode is not DraftMode.NEW and not self.to:
            return None  # taken from the original at execution: not known yet
        return addresses

    def request(self, idempotency_key: str | None) -> DraftRequest:
        return DraftRequest(
            mode=self.mode,
            reply_to_id=self.reply_to_id,
            to=self.to,
            cc=self.cc,
            bcc=self.bcc,
            subject=self.subject,
            body_text=self.body_text,
            body_html=self.body_html,
            idempotency_key=idempotency_key,
        )


class EmailSendArgs(EmailDraftArgs):
    @model_validator(mode="after")
    def _needs_recipients(self) -> "EmailSendArgs":
        if self.mode is DraftMode.NEW and not (self.to or self.cc or self.bcc):
            raise ValueError("a new email needs at least one recipient")
        return self


class EmailMoveArgs(_Args):
    message_id: str = Field(min_length=1)
    folder: str = Field(min_length=1, description="Target folder id (inbox, archive, ...).")


class EventCreateArgs(_Args):
    calendar_id: str | None = None
    subject: str = Field(min_length=1, max_length=500)
    start: datetime
    end: datetime
    timezone: str = "UTC"
    attendees: list[Attendee] = Field(default_factory=list)
    location: str | None = None
    body: str | None = None
    show_as: ShowAs = ShowAs.BUSY
    is_online_meeting: bool = False

    @model_validator(mode="after")
    def _times(self) -> "EventCreateArgs":
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("an event must end after it starts")
        ZoneInfo(self.timezone)
        return self


class EventUpdateArgs(_Args):
    event_id: str = Field(min_length=1)
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    timezone: str | None = None
    attendees: list[Attendee] | None = None
    location: str | None = None
    body: str | None = None
    show_as: ShowAs | None = None

    @model_validator(mode="after")
    def _something(self) -> "EventUpdateArgs":
        if not self.changes():
            raise ValueError("an update changes at least one field")
        for value in (self.start, self.end):
            if value is not None and value.tzinfo is None:
                raise ValueError("start and end must be timezone-aware")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude={"event_id"}, exclude_none=True)

    def update(self) -> EventUpdate:
        return EventUpdate.model_validate(self.model_dump(exclude={"event_id"}))


class EventCancelArgs(_Args):
    event_id: str = Field(min_length=1)
    comment: str | None = Field(default=None, max_length=5000)


class InviteRespondArgs(_Args):
    event_id: str = Field(min_length=1)
    response: InviteResponse
    comment: str | None = Field(default=None, max_length=5000)


# --------------------------------------------------------------------------- email


async def _complete_reply(connector: Any, args: EmailDraftArgs) -> EmailDraftArgs:
    """Reply recipients from the original message, so the policy sees who will get it."""
    if args.mode is DraftMode.NEW or args.to:
        return args
    original = await connector.get_message(args.reply_to_id)
    mailbox = str(getattr(connector, "mailbox", "")).lower()
    to = list(original.reply_to or ([original.sender] if original.sender else []))
    cc = list(args.cc)
    if args.mode is DraftMode.REPLY_ALL and not cc:
        taken = {a.address for a in to}
        cc = [
            a
            for a in [*original.to, *original.cc]
            if a.address != mailbox and a.address not in taken
        ]
    return args.model_copy(update={"to": to, "cc": cc})


async def _preview_email(
    connector: Any, args: EmailDraftArgs, ctx: PreviewContext
) -> dict[str, Any]:
    preview: dict[str, Any] = {
        "type": "email",
        "mode": args.mode.value,
        "from": getattr(connector, "mailbox", None) if connector is not None else None,
        "to": [a.formatted() for a in args.to],
        "cc": [a.formatted() for a in args.cc],
        "bcc": [a.formatted() for a in args.bcc],
        "subject": args.subject or "",
        "body_text": args.body_text,
        "body_html": args.body_html,
        "threading": None,
    }
    if args.mode is not DraftMode.NEW and connector is not None:
        original = await connector.get_message(args.reply_to_id)
        completed = await _complete_reply(connector, args)
        subject = original.subject
        if not subject.lower().startswith("re:"):
            subject = f"Re: {subject}"
        preview.update(
            to=[a.formatted() for a in completed.to],
            cc=[a.formatted() for a in completed.cc],
            subject=args.subject or subject,
            threading={
                "in_reply_to": original.message_id,
                "references": [
                    *original.references,
                    *([original.message_id] if original.message_id else []),
                ],
                "thread_id": original.thread_id,
                "original_subject": original.subject,
                "original_from": original.sender.formatted() if original.sender else None,
            },
        )
    return preview


async def _execute_draft(ctx: ExecutionContext, args: EmailDraftArgs) -> ExecutionResult:
    draft = await ctx.connector.create_draft(args.request(ctx.idempotency_key))
    return ExecutionResult(
        external_ids={
            "draft_id": draft.id,
            "message_id": draft.message_id,
            "thread_id": draft.thread_id,
        },
        result={
            "subject": draft.subject,
            "to": [a.address for a in draft.to],
            "cc": [a.address for a in draft.cc],
            "folder": draft.folder,
        },
    )


async def _compensate_draft(ctx: CompensationContext, args: EmailDraftArgs) -> CompensationResult:
    await ctx.connector.delete_draft(ctx.external_ids["draft_id"])
    return CompensationResult(result={"deleted_draft_id": ctx.external_ids["draft_id"]})


async def _execute_send(ctx: ExecutionContext, args: EmailSendArgs) -> ExecutionResult:
    # Draft first, then send: the draft is a real object the mailbox shows, and a retry
    # after a crash finds it again by its idempotency key instead of writing a second one.
    draft_id = ctx.progress.get("draft_id")
    if not draft_id:
        draft = await ctx.connector.create_draft(args.request(ctx.idempotency_key))
        draft_id = draft.id
        await ctx.save_progress({"draft_id": draft_id, "message_id": draft.message_id})
    sent = await ctx.connector.send_draft(draft_id)
    return ExecutionResult(
        external_ids={
            "draft_id": draft_id,
            "sent_id": sent.id,
            "message_id": sent.message_id,
            "thread_id": sent.thread_id,
        },
        result={
            "subject": sent.subject,
            "to": [a.address for a in sent.to],
            "cc": [a.address for a in sent.cc],
            "bcc": [a.address for a in sent.bcc],
            "sent_at": sent.date.isoformat() if sent.date else None,
        },
    )


async def _compensate_send(ctx: CompensationContext, args: EmailSendArgs) -> CompensationResult:
    recipients = {
        "to": [{"address": a} for a in ctx.result.get("to", [])],
        "cc": [{"address": a} for a in ctx.result.get("cc", [])],
    }
    subject = ctx.result.get("subject") or args.subject or ""
    follow_up = FollowUp(
        kind="email.draft.create",
        arguments={
            "mode": DraftMode.REPLY.value,
            "reply_to_id": ctx.external_ids.get("sent_id"),
            **recipients,
            "subject": f"Correction: {subject}".strip(),
            "body_text": "Please disregard my previous message; a correction follows.",
        },
        reason="a sent email cannot be unsent: a follow-up draft is proposed",
    )
    return CompensationResult(
        effect_undone=False,
        follow_up=follow_up,
        result={
            "note": "a sent email cannot be unsent",
            "sent_message_id": ctx.external_ids.get("message_id"),
        },
    )


def _email_facts(args: EmailDraftArgs) -> ActionFacts:
    return ActionFacts(recipients=args.recipients())


async def _prepare_move(connector: Any, args: EmailMoveArgs) -> dict[str, Any]:
    message = await connector.get_message(args.message_id)
    return {"folder": message.folder, "message_id": message.id}


async def _execute_move(ctx: ExecutionContext, args: EmailMoveArgs) -> ExecutionResult:
    moved = await ctx.connector.move_message(args.message_id, args.folder)
    return ExecutionResult(
        external_ids={"message_id": moved.id},
        result={"from_folder": (ctx.snapshot or {}).get("folder"), "to_folder": moved.folder},
    )


async def _compensate_move(ctx: CompensationContext, args: EmailMoveArgs) -> CompensationResult:
    previous = (ctx.snapshot or {}).get("folder")
    if not previous:
        raise CompensationImpossibleError("the folder before the move is not known")
    moved = await ctx.connector.move_message(ctx.external_ids["message_id"], previous)
    return CompensationResult(result={"message_id": moved.id, "folder": moved.folder})


async def _preview_move(connector: Any, args: EmailMoveArgs, ctx: PreviewContext) -> dict[str, Any]:
    preview: dict[str, Any] = {
        "type": "move",
        "message_id": args.message_id,
        "to_folder": args.folder,
    }
    if connector is not None:
        message = await connector.get_message(args.message_id)
        preview.update(
            from_folder=message.folder,
            subject=message.subject,
            sender=message.sender.formatted() if message.sender else None,
        )
    return preview


# --------------------------------------------------------------------------- calendar


def _local(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def _event_view(event: CalendarEvent, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": event.id,
        "subject": event.subject,
        "start": _local(event.start, zone),
        "end": _local(event.end, zone),
        "timezone": str(zone),
        "location": event.location,
        "organizer": event.organizer,
        "attendees": [
            {
                "address": a.address,
                "name": a.name,
                "type": a.type.value,
                "response": a.response.value,
            }
            for a in event.attendees
        ],
        "is_cancelled": event.is_cancelled,
    }


async def _zone(connector: Any, ctx: PreviewContext) -> ZoneInfo:
    """The executive's zone: their calendar's, else the policy's."""
    if connector is None:
        return ctx.timezone
    owner = str(getattr(connector, "owner", ""))
    try:
        for calendar in await connector.list_calendars():
            if calendar.owner.lower() == owner:
                return ZoneInfo(calendar.timezone)
    except (ConnectorError, ValueError, KeyError):
        pass
    return ctx.timezone


async def _preview_create(
    connector: Any, args: EventCreateArgs, ctx: PreviewContext
) -> dict[str, Any]:
    zone = await _zone(connector, ctx)
    return {
        "type": "event",
        "subject": args.subject,
        "start": _local(args.start, zone),
        "end": _local(args.end, zone),
        "timezone": str(zone),
        "organizer": getattr(connector, "owner", None) if connector is not None else None,
        "attendees": [
            {"address": a.address, "name": a.name, "type": a.type.value} for a in args.attendees
        ],
        "location": args.location,
        "body": args.body,
        "show_as": args.show_as.value,
        "is_online_meeting": args.is_online_meeting,
    }


async def _execute_create(ctx: ExecutionContext, args: EventCreateArgs) -> ExecutionResult:
    event = await ctx.connector.create_event(
        EventRequest(**args.model_dump(), idempotency_key=ctx.idempotency_key)
    )
    return ExecutionResult(
        external_ids={"event_id": event.id, "uid": event.uid},
        result={
            "subject": event.subject,
            "start": event.start.isoformat(),
            "end": event.end.isoformat(),
        },
    )


async def _compensate_create(ctx: CompensationContext, args: EventCreateArgs) -> CompensationResult:
    await ctx.connector.cancel_event(
        ctx.external_ids["event_id"], comment="Cancelled: this invitation was sent in error."
    )
    return CompensationResult(result={"cancelled_event_id": ctx.external_ids["event_id"]})


def _attendee_facts(attendees: list[Attendee] | None) -> ActionFacts:
    if attendees is None:
        return ActionFacts(recipients=None)
    return ActionFacts(recipients=tuple(a.address.lower() for a in attendees))


async def _prepare_event(connector: Any, args: Any) -> dict[str, Any]:
    event = await connector.get_event(args.event_id)
    return {"event": event.model_dump(mode="json")}


def _snapshot_event(snapshot: dict[str, Any] | None) -> CalendarEvent:
    if not snapshot or "event" not in snapshot:
        raise CompensationImpossibleError("the event before the change was not captured")
    return CalendarEvent.model_validate(snapshot["event"])


async def _execute_update(ctx: ExecutionContext, args: EventUpdateArgs) -> ExecutionResult:
    event = await ctx.connector.update_event(args.event_id, args.update())
    return ExecutionResult(
        external_ids={"event_id": event.id}, result={"changed": sorted(args.changes())}
    )


async def _compensate_update(ctx: CompensationContext, args: EventUpdateArgs) -> CompensationResult:
    before = _snapshot_event(ctx.snapshot)
    restore = EventUpdate(
        subject=before.subject,
        start=before.start,
        end=before.end,
        timezone=before.timezone,
        attendees=before.attendees,
        location=before.location,
        body=before.body,
        show_as=before.show_as,
    )
    event = await ctx.connector.update_event(args.event_id, restore)
    return CompensationResult(
        result={"restored_event_id": event.id, "restored": sorted(args.changes())}
    )


async def _preview_update(
    connector: Any, args: EventUpdateArgs, ctx: PreviewContext
) -> dict[str, Any]:
    zone = await _zone(connector, ctx)
    changes = args.changes()
    for key in ("start", "end"):
        if key in changes:
            changes[key] = _local(changes[key], zone)
    if "attendees" in changes:
        changes["attendees"] = [a.address for a in args.attendees or []]
    preview: dict[str, Any] = {
        "type": "event_update",
        "event_id": args.event_id,
        "changes": changes,
        "timezone": str(zone),
    }
    if connector is not None:
        preview["current"] = _event_view(await connector.get_event(args.event_id), zone)
    return preview


async def _execute_cancel(ctx: ExecutionContext, args: EventCancelArgs) -> ExecutionResult:
    await ctx.connector.cancel_event(args.event_id, comment=args.comment)
    return ExecutionResult(external_ids={"event_id": args.event_id}, result={"cancelled": True})


async def _compensate_cancel(ctx: CompensationContext, args: EventCancelArgs) -> CompensationResult:
    # A cancelled event cannot be un-cancelled: it is created again from the copy taken
    # before the cancellation (attendees get a new invitation).
    before = _snapshot_event(ctx.snapshot)
    event = await ctx.connector.create_event(
        EventRequest(
            subject=before.subject,
            start=before.start,
            end=before.end,
            timezone=before.timezone,
            attendees=[
                a.model_copy(update={"response": ResponseStatus.NEEDS_ACTION})
                for a in before.attendees
            ],
            location=before.location,
            body=before.body,
            show_as=before.show_as,
            idempotency_key=ctx.idempotency_key,
        )
    )
    return CompensationResult(
        result={"recreated_event_id": event.id, "cancelled_event_id": args.event_id}
    )


async def _preview_cancel(
    connector: Any, args: EventCancelArgs, ctx: PreviewContext
) -> dict[str, Any]:
    zone = await _zone(connector, ctx)
    preview: dict[str, Any] = {
        "type": "event_cancel",
        "event_id": args.event_id,
        "comment": args.comment,
        "timezone": str(zone),
    }
    if connector is not None:
        preview["event"] = _event_view(await connector.get_event(args.event_id), zone)
    return preview


_RESPONSE_BACK = {
    ResponseStatus.ACCEPTED: InviteResponse.ACCEPT,
    ResponseStatus.TENTATIVE: InviteResponse.TENTATIVE,
    ResponseStatus.DECLINED: InviteResponse.DECLINE,
}


async def _prepare_respond(connector: Any, args: InviteRespondArgs) -> dict[str, Any]:
    event = await connector.get_event(args.event_id)
    owner = str(getattr(connector, "owner", "")).lower()
    mine = [a for a in event.attendees if a.address.lower() == owner]
    return {"previous_response": mine[0].response.value if mine else None}


async def _execute_respond(ctx: ExecutionContext, args: InviteRespondArgs) -> ExecutionResult:
    event = await ctx.connector.respond_to_invite(
        args.event_id, args.response, comment=args.comment
    )
    return ExecutionResult(
        external_ids={"event_id": event.id}, result={"response": args.response.value}
    )


async def _compensate_respond(
    ctx: CompensationContext, args: InviteRespondArgs
) -> CompensationResult:
    previous = (ctx.snapshot or {}).get("previous_response")
    back = _RESPONSE_BACK.get(ResponseStatus(previous)) if previous else None
    if back is None:
        raise CompensationImpossibleError(
            f"the previous response ({previous or 'unknown'}) cannot be sent again"
        )
    await ctx.connector.respond_to_invite(args.event_id, back)
    return CompensationResult(result={"restored_response": back.value})


async def _preview_respond(
    connector: Any, args: InviteRespondArgs, ctx: PreviewContext
) -> dict[str, Any]:
    zone = await _zone(connector, ctx)
    preview: dict[str, Any] = {
        "type": "invite_response",
        "event_id": args.event_id,
        "response": args.response.value,
        "comment": args.comment,
        "timezone": str(zone),
    }
    if connector is not None:
        preview["event"] = _event_view(await connector.get_event(args.event_id), zone)
    return preview


# --------------------------------------------------------------------------- registration


def _register_builtin() -> None:
    register_kind(
        ActionKind(
            name="email.draft.create",
            title="Create an email draft",
            args_model=EmailDraftArgs,
            risk=RiskClass.REVERSIBLE,
            capability=Capability.EMAIL,
            execute=_execute_draft,
            compensate=_compensate_draft,
            facts=_email_facts,
            preview=_preview_email,
            complete=_complete_reply,
        )
    )
    register_kind(
        ActionKind(
            name="email.send",
            title="Send an email",
            args_model=EmailSendArgs,
            risk=RiskClass.IRREVERSIBLE,
            capability=Capability.EMAIL,
            execute=_execute_send,
            compensate=_compensate_send,
            facts=_email_facts,
            preview=_preview_email,
            complete=_complete_reply,
        )
    )
    register_kind(
        ActionKind(
            name="email.move",
            title="Move an email",
            args_model=EmailMoveArgs,
            risk=RiskClass.REVERSIBLE,
            capability=Capability.EMAIL,
            execute=_execute_move,
            compensate=_compensate_move,
            facts=lambda args: ActionFacts(recipients=()),
            preview=_preview_move,
            prepare=_prepare_move,
        )
    )
    register_kind(
        ActionKind(
            name="calendar.event.create",
            title="Create a calendar event",
            args_model=EventCreateArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.CALENDAR,
            execute=_execute_create,
            compensate=_compensate_create,
            facts=lambda args: _attendee_facts(args.attendees),
            preview=_preview_create,
        )
    )
    register_kind(
        ActionKind(
            name="calendar.event.update",
            title="Change a calendar event",
            args_model=EventUpdateArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.CALENDAR,
            execute=_execute_update,
            compensate=_compensate_update,
            facts=lambda args: _attendee_facts(args.attendees),
            preview=_preview_update,
            prepare=_prepare_event,
        )
    )
    register_kind(
        ActionKind(
            name="calendar.event.cancel",
            title="Cancel a calendar event",
            args_model=EventCancelArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.CALENDAR,
            execute=_execute_cancel,
            compensate=_compensate_cancel,
            facts=lambda args: ActionFacts(recipients=None),
            preview=_preview_cancel,
            prepare=_prepare_event,
        )
    )
    register_kind(
        ActionKind(
            name="calendar.invite.respond",
            title="Answer an invitation",
            args_model=InviteRespondArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.CALENDAR,
            execute=_execute_respond,
            compensate=_compensate_respond,
            facts=lambda args: ActionFacts(recipients=None),
            preview=_preview_respond,
            prepare=_prepare_respond,
        )
    )


_register_builtin()

# The ERP kinds live in their own module; importing it registers them.
from governance import erp_actions as _erp_actions  # noqa: E402, F401  (registers on import)
