"""ERP answers over HTTP: overdue invoices, orders, invoices, parties, a sender's context.

Read-only; every route needs ``erp.read`` and reads the caller's own tenant's ERP. ERP
writes are proposed through ``POST /api/v1/actions`` (kinds ``erp.*``) and pass the policy.
"""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from assistant.api.deps import ServicesDep, require
from assistant.auth.permissions import Permission
from assistant.core.limits import MinAmountQuery
from assistant.core.principal import Principal
from assistant.erp.context import ERPContext
from assistant.erp.service import ERPReader, OverdueReport
from integrations.base import (
    Company,
    Invoice,
    InvoiceKind,
    InvoiceQuery,
    Order,
    OrderKind,
    Party,
    PartyRole,
)

router = APIRouter(prefix="/api/v1/erp", tags=["erp"])

ERPReaderDep = Annotated[Principal, require(Permission.ERP_READ)]
ConnectorQ = Annotated[
    str | None,
    Query(
        max_length=100, description="ERP connector name (default: the tenant's first working one)."
    ),
]


def _reader(services: ServicesDep) -> ERPReader:
    return ERPReader(services.connectors)


@router.get("/companies", response_model=list[Company])
async def companies(
    principal: ERPReaderDep, services: ServicesDep, connector: ConnectorQ = None
) -> list[Company]:
    return await _reader(services).companies(principal, connector=connector)


@router.get("/parties", response_model=list[Party])
async def parties(
    principal: ERPReaderDep,
    services: ServicesDep,
    name: Annotated[str | None, Query(max_length=200)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    role: PartyRole | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    connector: ConnectorQ = None,
) -> list[Party]:
    return await _reader(services).parties(
        principal, name=name, email=email, role=role, limit=limit, connector=connector
    )


@router.get("/overdue", response_model=OverdueReport)
async def overdue(
    principal: ERPReaderDep,
    services: ServicesDep,
    kind: InvoiceKind | None = None,
    min_amount: MinAmountQuery = None,
    on: Annotated[date | None, Query(description="Default: today.")] = None,
    party: Annotated[str | None, Query(max_length=200, description="Name, email or id.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    connector: ConnectorQ = None,
) -> OverdueReport:
    reader = _reader(services)
    party_id = (
        (await reader.resolve_party(principal, party, connector=connector)).id if party else None
    )
    return await reader.overdue(
        principal,
        kind=kind,
        min_amount=min_amount,
        on=on,
        party_id=party_id,
        limit=limit,
        connector=connector,
    )


@router.get("/invoices", response_model=list[Invoice])
async def invoices(
    principal: ERPReaderDep,
    services: ServicesDep,
    kind: InvoiceKind | None = None,
    party: Annotated[str | None, Query(max_length=200, description="Name, email or id.")] = None,
    min_amount: MinAmountQuery = None,
    overdue_on: date | None = None,
    unpaid_only: bool = False,
    reference: Annotated[str | None, Query(max_length=60)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    connector: ConnectorQ = None,
) -> list[Invoice]:
    reader = _reader(services)
    party_id = (
        (await reader.resolve_party(principal, party, connector=connector)).id if party else None
    )
    return await reader.invoices(
        principal,
        InvoiceQuery(
            kind=kind,
            party_id=party_id,
            min_amount=min_amount,
            overdue_on=overdue_on,
            unpaid_only=unpaid_only,
            reference=reference,
            limit=limit,
        ),
        connector=connector,
    )


@router.get("/orders", response_model=list[Order])
async def orders(
    principal: ERPReaderDep,
    services: ServicesDep,
    kind: OrderKind = OrderKind.PURCHASE,
    number: Annotated[str | None, Query(max_length=60)] = None,
    party: Annotated[str | None, Query(max_length=200, description="Name, email or id.")] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    connector: ConnectorQ = None,
) -> list[Order]:
    reader = _reader(services)
    party_id = (
        (await reader.resolve_party(principal, party, connector=connector)).id if party else None
    )
    return await reader.orders(
        principal,
        kind,
        number=number,
        party_id=party_id,
        status=status,
        limit=limit,
        connector=connector,
    )


@router.get("/purchase-orders/{number}", response_model=Order)
async def purchase_order(
    number: str, principal: ERPReaderDep, services: ServicesDep, connector: ConnectorQ = None
) -> Order:
    return await _reader(services).purchase_order(principal, number, connector=connector)


@router.get("/context", response_model=ERPContext | None)
async def context(
    principal: ERPReaderDep,
    services: ServicesDep,
    sender: Annotated[str, Query(min_length=3, max_length=320)],
    subject: Annotated[str, Query(max_length=998)] = "",
    text: Annotated[str, Query(max_length=20_000)] = "",
    connector: ConnectorQ = None,
) -> Any:
    """The ERP context triage attaches to a message from ``sender`` (null: unknown)."""
    return await _reader(services).context(
        principal, sender, subject=subject, text=text, connector=connector
    )
