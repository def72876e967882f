"""Read-only ERP questions, scoped to the caller's tenant and rights.

Every question goes to the connector of the caller's own tenant (``ConnectorManager.get``)
and needs the ``erp.read`` permission (an executive, or a delegate the executive granted
it); the assistant's own workers (triage) read as the system. Filters run in the ERP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

import structlog
from pydantic import BaseModel, Field

from assistant.auth.permissions import Permission, can
from assistant.core.errors import NotFoundError, PermissionDeniedError, ValidationFailedError
from assistant.core.principal import ActorType, Principal
from assistant.erp.context import ERPContext, erp_context
from integrations.base import (
    Capability,
    Company,
    ERPConnector,
    Invoice,
    InvoiceKind,
    InvoiceQuery,
    Order,
    OrderKind,
    Party,
    PartyRole,
)

log = structlog.stdlib.get_logger(__name__)


class Resolver(Protocol):
    def get(
        self,
        tenant_id: str,
        capability: Capability,
        name: str | None = None,
        *,
        executive: str | None = None,
    ) -> Any: ...


class OverdueReport(BaseModel):
    """Overdue invoices on a date, with totals per currency."""

    on: date
    kind: InvoiceKind | None = None
    min_amount: Decimal | None = None
    count: int
    totals: dict[str, Decimal] = Field(default_factory=dict)
    oldest_days: int | None = None
    invoices: list[Invoice] = Field(default_factory=list)
    truncated: bool = False


@dataclass
class ERPReader:
    """The ERP questions of the CLI, the API, triage and drafting."""

    resolver: Resolver
    today: Any = field(default=date.today)

    def connector(self, principal: Principal, name: str | None = None) -> ERPConnector:
        """The caller's tenant's ERP connector, once the caller may read the ERP."""
        if principal.actor_type is not ActorType.SYSTEM and not can(principal, Permission.ERP_READ):
            raise PermissionDeniedError("you may not read the ERP")
        # An ERP company bound to executives answers only them (and their delegates).
        executive = None if principal.actor_type is ActorType.SYSTEM else principal.acting_for
        connector: ERPConnector = self.resolver.get(
            principal.tenant_id, Capability.ERP, name, executive=executive
        )
        return connector

    async def companies(
        self, principal: Principal, *, connector: str | None = None
    ) -> list[Company]:
        return await self.connector(principal, connector).list_companies()

    async def parties(
        self,
        principal: Principal,
        *,
        name: str | None = None,
        email: str | None = None,
        role: PartyRole | None = None,
        limit: int = 20,
        connector: str | None = None,
    ) -> list[Party]:
        return await self.connector(principal, connector).find_parties(
            name=name, email=email, role=role, limit=limit
        )

    async def resolve_party(
        self,
        principal: Principal,
        text: str,
        *,
        role: PartyRole | None = None,
        connector: str | None = None,
    ) -> Party:
        """One party from a name (partial), an address, an ``@domain`` or an id."""
        erp = self.connector(principal, connector)
        text = text.strip()
        if "@" in text:
            found = await erp.find_parties(email=text, role=role, limit=5)
        else:
            found = await erp.find_parties(name=text, role=role, limit=5)
            exact = [p for p in found if p.name.lower() == text.lower()]
            found = exact or found
            if not found:
                try:
                    found = [await erp.get_party(text)]
                except Exception:  # not an id either: report "not found" below
                    found = []
        if not found:
            raise NotFoundError(f"no party matches {text!r}")
        if len(found) > 1:
            raise ValidationFailedError(
                f"{text!r} matches several parties", problems=[p.name for p in found]
            )
        return found[0]

    async def overdue(
        self,
        principal: Principal,
        *,
        kind: InvoiceKind | None = None,
        min_amount: Decimal | None = None,
        on: date | None = None,
        party_id: str | None = None,
        limit: int = 500,
        connector: str | None = None,
    ) -> OverdueReport:
        """Invoices due before ``on`` (default today) and not fully paid."""
        on = on or self.today()
        invoices = await self.connector(principal, connector).list_invoices(
            InvoiceQuery(
                kind=kind, min_amount=min_amount, overdue_on=on, party_id=party_id, limit=limit
            )
        )
        totals: dict[str, Decimal] = {}
        for invoice in invoices:
            totals[invoice.currency] = totals.get(invoice.currency, Decimal(0)) + invoice.amount_due
        oldest = min((i.due_date for i in invoices if i.due_date), default=None)
        return OverdueReport(
            on=on,
            kind=kind,
            min_amount=min_amount,
            count=len(invoices),
            totals=totals,
            invoices=invoices,
            oldest_days=(on - oldest).days if oldest else None,
            truncated=len(invoices) >= limit,
        )

    async def invoices(
        self, principal: Principal, query: InvoiceQuery, *, connector: str | None = None
    ) -> list[Invoice]:
        return await self.connector(principal, connector).list_invoices(query)

    async def orders(
        self,
        principal: Principal,
        kind: OrderKind,
        *,
        number: str | None = None,
        party_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        connector: str | None = None,
    ) -> list[Order]:
        return await self.connector(principal, connector).list_orders(
            kind, number=number, party_id=party_id, status=status, limit=limit
        )

    async def purchase_order(
        self, principal: Principal, number: str, *, connector: str | None = None
    ) -> Order:
        """A purchase order by its number ("1043", "PO 1043", "PO-1043")."""
        cleaned = number.strip()
        for prefix in ("PO-", "PO ", "PO#", "PO"):
            if cleaned.upper().startswith(prefix) and cleaned[len(prefix) :].strip():
                cleaned = cleaned[len(prefix) :].strip()
                break
        orders = await self.orders(
            principal, OrderKind.PURCHASE, number=cleaned, limit=2, connector=connector
        )
        if not orders:
            raise NotFoundError(f"no purchase order {cleaned}")
        return orders[0]

    async def context(
        self,
        principal: Principal,
        sender: str,
        *,
        subject: str = "",
        text: str = "",
        connector: str | None = None,
    ) -> ERPContext | None:
        """What the ERP knows about a message's sender (None: not a known party)."""
        return await erp_context(
            self.connector(principal, connector),
            sender,
            subject=subject,
            text=text,
            today=self.today(),
            connector_name=connector,
        )


def invoice_rows(invoices: Sequence[Invoice], today: date) -> list[dict[str, Any]]:
    """Invoices as flat rows for tables and tools."""
    return [
        {
            "id": i.id,
            "number": i.number,
            "reference": i.reference,
            "kind": i.kind.value,
            "party": i.party_name,
            "invoice_date": i.invoice_date,
            "due_date": i.due_date,
            "days_overdue": (today - i.due_date).days if i.is_overdue(today) and i.due_date else 0,
            "total": i.total,
            "amount_due": i.amount_due,
            "currency": i.currency,
            "status": i.status,
        }
        for i in invoices
    ]
