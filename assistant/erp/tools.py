"""Read-only ERP tools for models (triage, drafting, the agent).

Each tool has a pydantic argument schema and returns plain JSON data; none changes the ERP
(writes are proposed as governed actions: ``erp.purchase_order.approve`` and friends).
Values that come from the ERP (descriptions, names) are data: callers put tool output in
the prompt's untrusted section.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assistant.core.principal import Principal
from assistant.erp.service import ERPReader, invoice_rows
from integrations.base import InvoiceKind, InvoiceQuery, OrderKind, PartyRole


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverdueArgs(_Args):
    kind: InvoiceKind | None = Field(default=None, description="payable or receivable; none: both")
    min_amount: Decimal | None = Field(
        default=None, ge=0, description="Invoice total at least this much."
    )


class PurchaseOrderArgs(_Args):
    number: str = Field(min_length=1, max_length=40, description="e.g. 1043 or PO 1043")


class PartyArgs(_Args):
    name_or_email: str = Field(min_length=1, max_length=200)
    role: PartyRole | None = None


class InvoicesArgs(_Args):
    party: str | None = Field(default=None, description="Name or email of the party.")
    kind: InvoiceKind | None = None
    reference: str | None = Field(default=None, max_length=40)
    unpaid_only: bool = False
    min_amount: Decimal | None = Field(default=None, ge=0)
    limit: int = Field(default=20, ge=1, le=100)


@dataclass(frozen=True)
class ERPTool:
    name: str
    description: str
    args_model: type[BaseModel]
    run: Callable[[ERPReader, Principal, Any], Awaitable[Any]]


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, Decimal | date):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


async def _overdue(reader: ERPReader, principal: Principal, args: OverdueArgs) -> Any:
    report = await reader.overdue(principal, kind=args.kind, min_amount=args.min_amount, limit=200)
    return {
        "on": report.on.isoformat(),
        "count": report.count,
        "totals": {k: str(v) for k, v in report.totals.items()},
        "oldest_days": report.oldest_days,
        "invoices": _dump(invoice_rows(report.invoices, report.on)),
    }


async def _purchase_order(reader: ERPReader, principal: Principal, args: PurchaseOrderArgs) -> Any:
    return _dump(await reader.purchase_order(principal, args.number))


async def _party(reader: ERPReader, principal: Principal, args: PartyArgs) -> Any:
    return _dump(await reader.resolve_party(principal, args.name_or_email, role=args.role))


async def _invoices(reader: ERPReader, principal: Principal, args: InvoicesArgs) -> Any:
    party_id = None
    if args.party:
        party_id = (await reader.resolve_party(principal, args.party)).id
    invoices = await reader.invoices(
        principal,
        InvoiceQuery(
            kind=args.kind,
            party_id=party_id,
            reference=args.reference,
            unpaid_only=args.unpaid_only,
            min_amount=args.min_amount,
            limit=args.limit,
        ),
    )
    return _dump(invoice_rows(invoices, reader.today()))


async def _open_orders(reader: ERPReader, principal: Principal, args: PartyArgs) -> Any:
    party = await reader.resolve_party(principal, args.name_or_email, role=args.role)
    kind = OrderKind.PURCHASE if party.role is PartyRole.VENDOR else OrderKind.SALE
    return _dump(await reader.orders(principal, kind, party_id=party.id, limit=20))


ERP_TOOLS: tuple[ERPTool, ...] = (
    ERPTool(
        "erp_overdue_invoices",
        "Invoices past their due date and not fully paid, with "
        "totals; payable (we owe) or receivable (owed to us).",
        OverdueArgs,
        _overdue,
    ),
    ERPTool(
        "erp_purchase_order",
        "One purchase order by its number: vendor, status, total and lines.",
        PurchaseOrderArgs,
        _purchase_order,
    ),
    ERPTool("erp_party", "A vendor or customer by name or email address.", PartyArgs, _party),
    ERPTool(
        "erp_invoices",
        "Invoices filtered by party, kind, reference, amount or unpaid.",
        InvoicesArgs,
        _invoices,
    ),
    ERPTool(
        "erp_orders_of_party",
        "Purchase orders of a vendor or sales orders of a customer.",
        PartyArgs,
        _open_orders,
    ),
)


async def run_tool(
    reader: ERPReader, principal: Principal, name: str, arguments: dict[str, Any]
) -> Any:
    """Validate ``arguments`` against the tool's schema and run it (read-only)."""
    tool = next((t for t in ERP_TOOLS if t.name == name), None)
    if tool is None:
        raise KeyError(f"unknown ERP tool {name!r}")
    return await tool.run(reader, principal, tool.args_model.model_validate(arguments))


def langchain_tools(reader: ERPReader, principal: Principal) -> list[Any]:
    """The tools as LangChain ``StructuredTool`` objects bound to one caller."""
    from langchain_core.tools import StructuredTool

    def bind(tool: ERPTool) -> Any:
        async def call(**kwargs: Any) -> Any:
            return await tool.run(reader, principal, tool.args_model.model_validate(kwargs))

        return StructuredTool.from_function(
            coroutine=call,
            name=tool.name,
            description=tool.description,
            args_schema=tool.args_model,
        )

    return [bind(tool) for tool in ERP_TOOLS]
