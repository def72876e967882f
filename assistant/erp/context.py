"""What the ERP knows about a message's sender: the party and its related documents.

A message from a known vendor or customer gets its party, the invoices it mentions (by the
ERP's number or the vendor's own reference), its open invoices and its open orders. The
sender is matched on the exact address first, then on the exact domain unless it is a
public mail provider's (anyone can write from gmail.com); a domain shared by several
parties matches none. The message text is untrusted: it is only scanned for reference
tokens, which are looked up among the matched party's own documents.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from integrations.base import (
    ERPConnector,
    Invoice,
    InvoiceQuery,
    Order,
    OrderKind,
    OrderStatus,
    Party,
    PartyRole,
)

PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "fastmail.com",
        "hey.com",
    }
)

_PO = re.compile(
    r"\b(?:PO|P\.O\.|purchase\s+order)\s*(?:no\.?|number|#)?\s*#?\s*(\d{3,12})\b", re.IGNORECASE
)
_INVOICE = re.compile(
    r"\binv(?:oice)?\.?\s*(?:no\.?|number|#)?\s*#?\s*"
    r"([A-Z0-9](?:[A-Z0-9/-]{0,30}[A-Z0-9])?)\b",
    re.IGNORECASE,
)
_CODE = re.compile(r"\b([A-Z]{2,6}-\d{2,10})\b")
_MAX_REFERENCES = 8


def extract_references(*texts: str) -> tuple[list[str], list[str]]:
    """(invoice references, purchase order numbers) mentioned in the texts, in order."""
    invoices: list[str] = []
    orders: list[str] = []
    for text in texts:
        for match in _PO.finditer(text or ""):
            if match.group(1) not in orders:
                orders.append(match.group(1))
        for pattern in (_INVOICE, _CODE):
            for match in pattern.finditer(text or ""):
                value = match.group(1).upper()
                if not any(c.isdigit() for c in value):
                    continue  # "invoice is overdue": a word, not a number
                if value not in invoices and value not in orders:
                    invoices.append(value)
    return invoices[:_MAX_REFERENCES], orders[:_MAX_REFERENCES]


class ERPContext(BaseModel):
    """The ERP facts a triage result carries for a message from a known party."""

    connector: str | None = None
    party: Party
    match: Literal["address", "domain"]
    mentioned_invoices: list[Invoice] = Field(default_factory=list)
    mentioned_orders: list[Order] = Field(default_factory=list)
    open_invoices: list[Invoice] = Field(default_factory=list)
    open_orders: list[Order] = Field(default_factory=list)
    references: list[str] = Field(
        default_factory=list,
        description="Tokens found in the message that looked like document numbers.",
    )
    overdue_total: Decimal = Decimal(0)
    open_total: Decimal = Decimal(0)
    summary: str = ""


async def match_party(
    connector: ERPConnector, address: str
) -> tuple[Party, Literal["address", "domain"]] | None:
    """The one party this address belongs to, and how it matched; None if unknown or
    ambiguous."""
    address = address.strip().lower()
    if "@" not in address:
        return None
    exact = await connector.find_parties(email=address, limit=3)
    if len(exact) == 1:
        return exact[0], "address"
    if len(exact) > 1:
        return None
    domain = address.rsplit("@", 1)[1]
    if domain in PUBLIC_MAIL_DOMAINS:
        return None
    by_domain = [
        p
        for p in await connector.find_parties(email=f"@{domain}", limit=3)
        if domain in p.email_domains
    ]
    return (by_domain[0], "domain") if len(by_domain) == 1 else None


def _money(value: Decimal, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _summary(context: ERPContext, today: date) -> str:
    party = context.party
    currency = next((i.currency for i in context.open_invoices), "USD")
    parts = [f"{party.name} ({party.role.value})"]
    if context.open_invoices:
        parts.append(
            f"{len(context.open_invoices)} open invoice(s), "
            f"{_money(context.open_total, currency)} due"
        )
        if context.overdue_total:
            parts.append(f"{_money(context.overdue_total, currency)} overdue")
    for invoice in context.mentioned_invoices[:3]:
        label = invoice.reference or invoice.number or invoice.id
        state = invoice.status
        if invoice.is_overdue(today) and invoice.due_date is not None:
            state = f"overdue {(today - invoice.due_date).days} days"
        elif invoice.due_date is not None and invoice.status == "open":
            state = f"open, due {invoice.due_date.isoformat()}"
        parts.append(f"{label}: {state}")
    for order in context.mentioned_orders[:3]:
        parts.append(f"PO {order.number}: {order.status}")
    return "; ".join(parts)


async def erp_context(
    connector: ERPConnector,
    sender: str,
    *,
    subject: str = "",
    text: str = "",
    today: date | None = None,
    connector_name: str | None = None,
    limit: int = 10,
) -> ERPContext | None:
    """The ERP context of a message from ``sender``; None when the sender is not a party."""
    today = today or date.today()
    matched = await match_party(connector, sender)
    if matched is None:
        return None
    party, how = matched
    invoice_refs, order_numbers = extract_references(subject, text)
    mentioned_invoices: list[Invoice] = []
    for reference in invoice_refs:
        for invoice in await connector.list_invoices(
            InvoiceQuery(party_id=party.id, reference=reference, limit=3)
        ):
            if invoice.id not in {i.id for i in mentioned_invoices}:
                mentioned_invoices.append(invoice)
    open_invoices = await connector.list_invoices(
        InvoiceQuery(party_id=party.id, unpaid_only=True, limit=limit)
    )
    kind = OrderKind.PURCHASE if party.role is PartyRole.VENDOR else OrderKind.SALE
    mentioned_orders: list[Order] = []
    for number in order_numbers:
        mentioned_orders += [
            o
            for o in await connector.list_orders(kind, number=number, party_id=party.id, limit=2)
            if o.id not in {m.id for m in mentioned_orders}
        ]
    open_orders = [
        o
        for o in await connector.list_orders(kind, party_id=party.id, limit=limit)
        if o.status in (OrderStatus.PENDING_APPROVAL, OrderStatus.APPROVED, OrderStatus.PROCESSING)
    ]
    context = ERPContext(
        connector=connector_name,
        party=party,
        match=how,
        mentioned_invoices=mentioned_invoices,
        mentioned_orders=mentioned_orders,
        open_invoices=open_invoices,
        open_orders=open_orders,
        references=[*invoice_refs, *order_numbers],
        overdue_total=sum((i.amount_due for i in open_invoices if i.is_overdue(today)), Decimal(0)),
        open_total=sum((i.amount_due for i in open_invoices), Decimal(0)),
    )
    context.summary = _summary(context, today)
    return context
