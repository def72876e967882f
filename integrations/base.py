"""Capability contracts of connectors: one Protocol per capability, all async.

A connector package exposes one :class:`ConnectorSpec` per capability it implements through
the entry-point group ``assistant.connectors``. Instances are built per tenant by
``ConnectorSpec.factory`` from a validated config model and a :class:`ConnectorContext`;
none is stored on a shared singleton.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Capability(StrEnum):
    """What a connector can do."""

    EMAIL = "email"
    CALENDAR = "calendar"
    ERP = "erp"


def _require_aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value


class _Model(BaseModel):
    # Built on first use: a service loads the contract for every capability and
    # uses the models of its own connectors only (see assistant.core.startup).
    model_config = ConfigDict(frozen=False, extra="forbid", defer_build=True)


# --------------------------------------------------------------------------- health


class ConnectorStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    BROKEN = "broken"  # failed to load or configure


class ConnectorHealth(_Model):
    """Result of a connector's ``check()``: reachable and authorised, or why not."""

    status: ConnectorStatus
    detail: str = ""
    latency_ms: float | None = None


# --------------------------------------------------------------------------- email


class EmailAddress(_Model):
    address: str
    name: str | None = None

    @field_validator("address")
    @classmethod
    def _lower(cls, value: str) -> str:
        value = value.strip()
        if "@" not in value:
            raise ValueError("not an email address")
        return value.lower()

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]

    def formatted(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


class FolderRole(StrEnum):
    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    ARCHIVE = "archive"
    TRASH = "trash"
    JUNK = "junk"
    OTHER = "other"


class Folder(_Model):
    id: str
    name: str
    role: FolderRole = FolderRole.OTHER
    total: int | None = None
    unread: int | None = None


class Attachment(_Model):
    filename: str | None
    content_type: str
    size: int
    content_id: str | None = None
    is_inline: bool = False


class EmailMessage(_Model):
    """One message, as every email connector returns it: headers, clean text, metadata."""

    id: str = Field(description="Provider id (Graph id, IMAP folder/UIDVALIDITY/UID, sandbox id).")
    message_id: str | None = Field(default=None, description="RFC 5322 Message-ID, with <>.")
    thread_id: str | None = Field(default=None, description="Conversation or thread id.")
    folder: str = Field(description="Folder id the message is in.")
    subject: str = ""
    sender: EmailAddress | None = None
    reply_to: list[EmailAddress] = Field(default_factory=list)
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    date: datetime | None = None
    text: str = Field(default="", description="Plain-text body; HTML-only mail is converted.")
    html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    list_unsubscribe: str | None = None
    list_id: str | None = None
    auto_submitted: str | None = None
    precedence: str | None = None
    headers: dict[str, str] = Field(
        default_factory=dict, description="Other headers worth keeping (lower-case names)."
    )
    flags: list[str] = Field(default_factory=list, description="seen, flagged, answered, ...")
    is_draft: bool = False

    _aware_date = field_validator("date")(classmethod(lambda cls, v: _require_aware(v)))

    @property
    def participants(self) -> list[EmailAddress]:
        """Everyone on the message: sender, reply-to, to and cc, without duplicates."""
        seen: dict[str, EmailAddress] = {}
        for addr in [*(x for x in [self.sender] if x), *self.reply_to, *self.to, *self.cc]:
            seen.setdefault(addr.address, addr)
        return list(seen.values())


class SkippedMessage(_Model):
    """A message of a sync page that could not be read safely, left out of the page."""

    id: str = Field(description="Provider id of the message.")
    reason: str = Field(description="Why it was skipped (never its content).")


class SyncBatch(_Model):
    """One page of an incremental sync: what changed since ``cursor`` and the next cursor."""

    messages: list[EmailMessage] = Field(default_factory=list)
    removed_ids: list[str] = Field(default_factory=list)
    cursor: str = Field(description="Opaque cursor to pass to the next sync call.")
    more: bool = Field(default=False, description="True while pages remain; call sync again.")
    full_resync: bool = Field(default=False, description="The old cursor was invalid.")
    skipped: list[SkippedMessage] = Field(
        default_factory=list,
        description="Messages left out because they cannot be read safely; the cursor is "
        "past them.",
    )


class DraftMode(StrEnum):
    NEW = "new"
    REPLY = "reply"
    REPLY_ALL = "reply_all"


class DraftRequest(_Model):
    """A draft to create. For replies, threading headers come from ``reply_to_id``."""

    mode: DraftMode = DraftMode.NEW
    reply_to_id: str | None = Field(default=None, description="Provider id of the message.")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    bcc: list[EmailAddress] = Field(default_factory=list)
    subject: str | None = Field(default=None, description="Default for replies: 'Re: ...'.")
    body_text: str
    body_html: str | None = None
    idempotency_key: str | None = Field(
        default=None, description="Same key, same draft: a retried create does not duplicate."
    )


@runtime_checkable
class EmailConnector(Protocol):
    """A mailbox: read, sync, draft, send, move. All methods are async."""

    mailbox: str

    async def check(self) -> ConnectorHealth:
        """Reach the provider and authenticate; never raises."""
        ...

    async def list_folders(self) -> list[Folder]:
        """Every folder of the mailbox, with its role where the provider says it."""
        ...

    async def sync(
        self, folder: str, cursor: str | None = None, *, page_size: int = 100
    ) -> SyncBatch:
        """Changes in ``folder`` since ``cursor`` (None: from the beginning).

        Raises :class:`~integrations.errors.CursorExpiredError` when the cursor is no
        longer valid; the caller then syncs again from ``None``.
        """
        ...

    async def get_message(self, message_id: str) -> EmailMessage:
        """One message by provider id; ``ConnectorNotFoundError`` if it is gone."""
        ...

    async def create_draft(self, request: DraftRequest) -> EmailMessage:
        """Create a draft in the Drafts folder; replies carry In-Reply-To and References."""
        ...

    async def send_draft(self, draft_id: str) -> EmailMessage:
        """Send an existing draft; returns the sent message (in the Sent folder)."""
        ...

    async def delete_draft(self, draft_id: str) -> None:
        """Delete a draft that was not sent; deleting a missing draft is not an error."""
        ...

    async def move_message(self, message_id: str, folder: str) -> EmailMessage:
        """Move a message to another folder; returns it with its new id."""
        ...

    async def set_flags(
        self, message_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> EmailMessage:
        """Add and remove flags or labels (seen, flagged, ...)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# --------------------------------------------------------------------------- calendar


class ResponseStatus(StrEnum):
    NONE = "none"
    ORGANIZER = "organizer"
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"
    NEEDS_ACTION = "needs_action"


class AttendeeType(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    RESOURCE = "resource"


class Attendee(_Model):
    address: str
    name: str | None = None
    type: AttendeeType = AttendeeType.REQUIRED
    response: ResponseStatus = ResponseStatus.NEEDS_ACTION


class ShowAs(StrEnum):
    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "working_elsewhere"


class CalendarInfo(_Model):
    id: str
    name: str
    owner: str = Field(description="Address of the calendar's owner.")
    timezone: str = Field(default="UTC", description="IANA time zone of the owner.")
    can_edit: bool = True


class CalendarEvent(_Model):
    """One occurrence. Recurring series are expanded by ``list_events``."""

    id: str = Field(description="Provider id of this event or occurrence.")
    uid: str | None = Field(default=None, description="iCalendar UID / Graph iCalUId.")
    calendar_id: str
    subject: str = ""
    start: datetime
    end: datetime
    timezone: str = Field(default="UTC", description="IANA zone the event was written in.")
    all_day: bool = False
    location: str | None = None
    body: str | None = None
    organizer: str | None = None
    attendees: list[Attendee] = Field(default_factory=list)
    show_as: ShowAs = ShowAs.BUSY
    is_cancelled: bool = False
    series_id: str | None = Field(default=None, description="Master id of a recurring series.")
    recurrence_id: datetime | None = None
    etag: str | None = None

    _aware = field_validator("start", "end", "recurrence_id")(
        classmethod(lambda cls, v: _require_aware(v))
    )


class BusyInterval(_Model):
    start: datetime
    end: datetime
    show_as: ShowAs = ShowAs.BUSY

    _aware = field_validator("start", "end")(classmethod(lambda cls, v: _require_aware(v)))


class WorkingHours(_Model):
    """Recurring working hours in the person's own time zone."""

    timezone: str = "UTC"
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4],
        description="ISO weekdays minus one: 0=Monday ... 6=Sunday.",
    )
    start: time = time(9, 0)
    end: time = time(17, 0)


class FreeBusy(_Model):
    person: str
    timezone: str = "UTC"
    working_hours: WorkingHours | None = None
    busy: list[BusyInterval] = Field(default_factory=list)
    error: str | None = Field(default=None, description="Set when the schedule is unavailable.")


class EventRequest(_Model):
    """An event to create, with an idempotency key (Graph transactionId, CalDAV UID)."""

    calendar_id: str | None = Field(default=None, description="Default: the owner's calendar.")
    subject: str
    start: datetime
    end: datetime
    timezone: str = "UTC"
    attendees: list[Attendee] = Field(default_factory=list)
    location: str | None = None
    body: str | None = None
    show_as: ShowAs = ShowAs.BUSY
    is_online_meeting: bool = False
    idempotency_key: str | None = None

    _aware = field_validator("start", "end")(classmethod(lambda cls, v: _require_aware(v)))


class EventUpdate(_Model):
    """Fields to change on an event; None leaves a field as it is."""

    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    timezone: str | None = None
    attendees: list[Attendee] | None = None
    location: str | None = None
    body: str | None = None
    show_as: ShowAs | None = None


class InviteResponse(StrEnum):
    ACCEPT = "accept"
    TENTATIVE = "tentative"
    DECLINE = "decline"


@runtime_checkable
class CalendarConnector(Protocol):
    """Calendars of the executive and colleagues: read, free/busy, write, respond."""

    owner: str

    async def check(self) -> ConnectorHealth:
        """Reach the provider and authenticate; never raises."""
        ...

    async def list_calendars(self) -> list[CalendarInfo]:
        """Calendars the connector can see."""
        ...

    async def list_events(
        self, start: datetime, end: datetime, *, calendar_id: str | None = None
    ) -> list[CalendarEvent]:
        """Events overlapping [start, end), recurrences expanded, sorted by start."""
        ...

    async def get_event(self, event_id: str) -> CalendarEvent:
        """One event by id; ``ConnectorNotFoundError`` if it is gone."""
        ...

    async def get_free_busy(
        self, people: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusy]:
        """Busy intervals and working hours for each person (in the order given)."""
        ...

    async def create_event(self, request: EventRequest) -> CalendarEvent:
        """Create an event; the same idempotency key returns the same event."""
        ...

    async def update_event(self, event_id: str, update: EventUpdate) -> CalendarEvent:
        """Change an event the owner organises."""
        ...

    async def cancel_event(self, event_id: str, comment: str | None = None) -> None:
        """Cancel (organiser) or remove an event; cancelling twice is not an error."""
        ...

    async def respond_to_invite(
        self, event_id: str, response: InviteResponse, comment: str | None = None
    ) -> CalendarEvent:
        """Accept, tentatively accept or decline an invitation."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# --------------------------------------------------------------------------- ERP


class PartyRole(StrEnum):
    VENDOR = "vendor"
    CUSTOMER = "customer"


class Company(_Model):
    id: str
    name: str
    currency: str = "USD"


class Party(_Model):
    id: str
    name: str
    role: PartyRole
    number: str | None = None
    email: str | None = None
    email_domains: list[str] = Field(default_factory=list)


class OrderKind(StrEnum):
    PURCHASE = "purchase"
    SALE = "sale"


class OrderStatus(StrEnum):
    """Order states every ERP connector maps its own onto."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"  # quoted / in review: waiting for a decision
    APPROVED = "approved"  # confirmed / released, not processed yet
    PROCESSING = "processing"
    DONE = "done"
    CANCELLED = "cancelled"


class OrderLine(_Model):
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


class Order(_Model):
    id: str
    number: str
    kind: OrderKind
    party_id: str
    party_name: str
    order_date: date | None = None
    status: str = Field(description="An OrderStatus value.")
    currency: str = "USD"
    total: Decimal
    lines: list[OrderLine] = Field(default_factory=list)
    etag: str | None = None


class InvoiceKind(StrEnum):
    PAYABLE = "payable"
    RECEIVABLE = "receivable"


class InvoiceStatus(StrEnum):
    """Invoice states every ERP connector maps its own onto."""

    DRAFT = "draft"  # not posted: may still be deleted
    OPEN = "open"  # posted, something left to pay
    PAID = "paid"
    CANCELLED = "cancelled"


class Invoice(_Model):
    id: str
    number: str | None
    kind: InvoiceKind
    party_id: str
    party_name: str
    invoice_date: date | None = None
    due_date: date | None = None
    currency: str = "USD"
    total: Decimal
    amount_due: Decimal
    status: str = Field(description="draft, open, paid, cancelled, ...")
    is_posted: bool = True
    etag: str | None = None
    reference: str | None = Field(default=None, description="The vendor's own number.")
    description: str | None = None

    def is_overdue(self, on: date) -> bool:
        """Posted, not fully paid, and due before ``on``."""
        return (
            self.status == InvoiceStatus.OPEN
            and self.amount_due > 0
            and self.due_date is not None
            and self.due_date < on
        )


class InvoiceQuery(_Model):
    kind: InvoiceKind | None = None
    party_id: str | None = None
    min_amount: Decimal | None = None
    overdue_on: date | None = Field(default=None, description="Due before this date, unpaid.")
    unpaid_only: bool = False
    reference: str | None = Field(
        default=None, description="The ERP's invoice number or the vendor's own."
    )
    limit: int = Field(default=100, ge=1, le=10_000)


class VendorBillLine(_Model):
    description: str
    quantity: Decimal = Decimal(1)
    unit_price: Decimal


class VendorBillRequest(_Model):
    vendor_id: str
    invoice_date: date | None = None
    due_date: date | None = None
    vendor_reference: str | None = None
    lines: list[VendorBillLine]
    idempotency_key: str | None = None


@runtime_checkable
class ERPConnector(Protocol):
    """Business data of one company: parties, orders, invoices, governed writes."""

    async def check(self) -> ConnectorHealth:
        """Reach the ERP and authenticate; never raises."""
        ...

    async def list_companies(self) -> list[Company]:
        """Companies the connector may read."""
        ...

    async def find_parties(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        role: PartyRole | None = None,
        limit: int = 20,
    ) -> list[Party]:
        """Vendors and customers by (partial) name or email address/domain."""
        ...

    async def get_party(self, party_id: str) -> Party:
        """One party by id."""
        ...

    async def list_orders(
        self,
        kind: OrderKind,
        *,
        party_id: str | None = None,
        number: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Order]:
        """Purchase or sales orders, with lines."""
        ...

    async def get_order(self, kind: OrderKind, order_id: str) -> Order:
        """One order by id."""
        ...

    async def list_invoices(self, query: InvoiceQuery) -> list[Invoice]:
        """Invoices filtered on the server side (never fetch-all-then-filter)."""
        ...

    async def approve_purchase_order(self, order_id: str, *, etag: str | None = None) -> Order:
        """Approve (confirm) a purchase order awaiting approval."""
        ...

    async def reject_purchase_order(
        self, order_id: str, *, reason: str | None = None, etag: str | None = None
    ) -> Order:
        """Reject (cancel) a purchase order awaiting approval."""
        ...

    async def reopen_purchase_order(self, order_id: str) -> Order:
        """Compensation of approve/reject, where the ERP allows it."""
        ...

    async def create_draft_vendor_bill(self, request: VendorBillRequest) -> Invoice:
        """Create an unposted vendor bill."""
        ...

    async def delete_draft_vendor_bill(self, invoice_id: str) -> None:
        """Delete an unposted vendor bill (compensation of create)."""
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice:
        """One invoice (payable or receivable) by id; ``ConnectorNotFoundError`` if gone."""
        ...

    async def credit_vendor_bill(
        self, invoice_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Invoice:
        """A corrective credit memo for a posted vendor bill (compensation once posted);
        returns the credit memo. The same key returns the same memo."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector instance is built with: its identity and shared infrastructure.

    ``session_factory`` is the application's database (for connectors that keep state in
    it, such as the sandbox); ``http_client`` builds an ``httpx.AsyncClient`` with the
    service's timeouts and transport; ``extras`` carries optional long-lived clients
    (token providers, caches) that the application injects.
    """

    tenant_id: str
    instance_name: str
    session_factory: Any = None
    http_client_factory: Callable[..., Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)


ConnectorFactory = Callable[[Any, ConnectorContext], Awaitable[Any]]


@dataclass(frozen=True)
class ConnectorSpec:
    """Describes one connector: slug, the config it takes, what it can do, how to build it.

    ``kind`` names the system family (``sandbox``, ``microsoft365``, ``imap``, ``caldav``,
    ``businesscentral``, ``tryton``). ``factory(config, context)`` returns a new instance
    for one tenant; it must not share mutable state between instances.
    """

    slug: str
    kind: str
    title: str
    config_model: type[BaseModel]
    capabilities: frozenset[Capability]
    factory: ConnectorFactory
    description: str = ""

    def validate_config(self, raw: dict[str, Any]) -> BaseModel:
        """Validate a raw config; pydantic reports every error at once."""
        return self.config_model.model_validate(raw)


ConnectorKindLiteral = Literal[
    "sandbox", "microsoft365", "imap", "caldav", "businesscentral", "tryton"
]
