"""`assistant erp query overdue|po|invoices|party ...`: business answers from the ERP.

Reads only, through the tenant's configured ERP connector (``connectors`` in the settings:
``tryton.erp`` or ``businesscentral.erp``), as the principal given with ``--as``/``--role``
(default: an executive of the tenant). ``--json`` prints machine-readable output.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli_support import settings_or_exit
from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from assistant.erp.service import ERPReader, invoice_rows
from integrations.base import InvoiceKind, InvoiceQuery, OrderKind, PartyRole

T = TypeVar("T")

erp_app = typer.Typer(
    help="ERP answers (read-only; approvals go through `assistant actions`).", no_args_is_help=True
)
query_app = typer.Typer(
    help="Ask the ERP: overdue invoices, a purchase order, invoices, a party.", no_args_is_help=True
)
erp_app.add_typer(query_app, name="query")

console = Console()
err_console = Console(stderr=True)

TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant (default: the sandbox tenant of the settings)."),
]
ConnectorOpt = Annotated[str | None, typer.Option("--connector", help="ERP connector name.")]
AsOpt = Annotated[str | None, typer.Option("--as", help="Who asks (user id).")]
RoleOpt = Annotated[
    list[Role] | None, typer.Option("--role", help="Roles of that user (default: executive).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextlib.asynccontextmanager
async def _reader(settings: Settings) -> AsyncIterator[ERPReader]:
    from assistant.services import Services

    services = await Services.build(settings)
    try:
        yield ERPReader(services.connectors)
    finally:
        await services.aclose()


def _ask(
    tenant: str | None,
    user: str | None,
    roles: list[Role] | None,
    question: Callable[[ERPReader, Principal], Awaitable[T]],
) -> T:
    settings = settings_or_exit()
    principal = Principal(
        user_id=user or f"cli:{getpass.getuser()}",
        tenant_id=tenant or settings.sandbox.tenant,
        roles=frozenset(roles or [Role.EXECUTIVE]),
    )

    async def run() -> T:
        async with _reader(settings) as reader:
            return await question(reader, principal)

    try:
        return asyncio.run(run())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(1) from None


def _json(value: Any) -> None:
    def default(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return str(obj)
        if isinstance(obj, date):
            return obj.isoformat()
        if hasattr(obj, "model_dump"):
            return obj.model_dump(mode="json")
        raise TypeError(type(obj).__name__)

    typer.echo(json.dumps(value, default=default, indent=2))


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _invoice_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in (
        "number",
        "reference",
        "party",
        "kind",
        "due",
        "days over",
        "total",
        "due amount",
        "status",
    ):
        table.add_column(
            column, justify="right" if column in ("total", "due amount", "days over") else "left"
        )
    for row in rows:
        table.add_row(
            row["number"] or "-",
            row["reference"] or "",
            row["party"],
            row["kind"],
            row["due_date"].isoformat() if row["due_date"] else "",
            str(row["days_overdue"] or ""),
            f"{_money(row['total'])} {row['currency']}",
            _money(row["amount_due"]),
            row["status"],
        )
    return table


@query_app.command("overdue")
def overdue(
    kind: Annotated[InvoiceKind | None, typer.Option(help="payable or receivable.")] = None,
    min_amount: Annotated[
        Decimal | None, typer.Option("--min-amount", help="Invoice total at least.")
    ] = None,
    party: Annotated[str | None, typer.Option(help="Name or email of the party.")] = None,
    on: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD), default today.")] = None,
    tenant: TenantOpt = None,
    connector: ConnectorOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Which invoices are overdue (optionally: over an amount, of one party)?"""
    day = date.fromisoformat(on) if on else None

    async def question(reader: ERPReader, principal: Principal) -> Any:
        party_id = (
            (await reader.resolve_party(principal, party, connector=connector)).id
            if party
            else None
        )
        return await reader.overdue(
            principal,
            kind=kind,
            min_amount=min_amount,
            on=day,
            party_id=party_id,
            connector=connector,
        )

    report = _ask(tenant, user, role, question)
    if as_json:
        _json(report)
        return
    rows = invoice_rows(report.invoices, report.on)
    console.print(_invoice_table(f"Overdue on {report.on.isoformat()}", rows))
    totals = ", ".join(f"{_money(v)} {k}" for k, v in report.totals.items()) or "nothing"
    console.print(
        f"{report.count} overdue invoice(s); {totals} due"
        + (f"; oldest {report.oldest_days} days" if report.oldest_days else "")
    )


@query_app.command("po")
def purchase_order(
    number: Annotated[str, typer.Argument(help="e.g. 1043 or PO-1043")],
    tenant: TenantOpt = None,
    connector: ConnectorOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where is this purchase order?"""
    order = _ask(
        tenant,
        user,
        role,
        lambda reader, principal: reader.purchase_order(principal, number, connector=connector),
    )
    if as_json:
        _json(order)
        return
    console.print(
        f"PO {order.number} — {order.party_name}: [bold]{order.status}[/bold], "
        f"{_money(order.total)} {order.currency}"
        + (f", ordered {order.order_date.isoformat()}" if order.order_date else "")
    )
    for line in order.lines:
        console.print(
            f"  {line.quantity} x {line.description} @ {_money(line.unit_price)}"
            f" = {_money(line.amount)}"
        )
    console.print(f"  id {order.id} (propose `erp.purchase_order.approve` with this id)")


@query_app.command("invoices")
def invoices(
    party: Annotated[str | None, typer.Option(help="Name or email of the party.")] = None,
    kind: Annotated[InvoiceKind | None, typer.Option()] = None,
    reference: Annotated[str | None, typer.Option(help="Invoice or vendor number.")] = None,
    unpaid: Annotated[bool, typer.Option("--unpaid", help="Unpaid only.")] = False,
    min_amount: Annotated[Decimal | None, typer.Option("--min-amount")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    tenant: TenantOpt = None,
    connector: ConnectorOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invoices by party, kind, reference, amount or payment status."""

    async def question(reader: ERPReader, principal: Principal) -> Any:
        party_id = (
            (await reader.resolve_party(principal, party, connector=connector)).id
            if party
            else None
        )
        return await reader.invoices(
            principal,
            InvoiceQuery(
                kind=kind,
                party_id=party_id,
                reference=reference,
                unpaid_only=unpaid,
                min_amount=min_amount,
                limit=limit,
            ),
            connector=connector,
        )

    found = _ask(tenant, user, role, question)
    if as_json:
        _json(found)
        return
    console.print(_invoice_table("Invoices", invoice_rows(found, date.today())))


@query_app.command("party")
def party(
    name_or_email: Annotated[str, typer.Argument(help="Name (partial), address or @domain.")],
    role_filter: Annotated[PartyRole | None, typer.Option("--party-role")] = None,
    tenant: TenantOpt = None,
    connector: ConnectorOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A vendor or customer, with what is open with them."""

    async def question(reader: ERPReader, principal: Principal) -> Any:
        found = await reader.resolve_party(
            principal, name_or_email, role=role_filter, connector=connector
        )
        open_invoices = await reader.invoices(
            principal,
            InvoiceQuery(party_id=found.id, unpaid_only=True, limit=50),
            connector=connector,
        )
        kind = OrderKind.PURCHASE if found.role is PartyRole.VENDOR else OrderKind.SALE
        orders = await reader.orders(
            principal, kind, party_id=found.id, limit=20, connector=connector
        )
        return found, open_invoices, orders

    found, open_invoices, orders = _ask(tenant, user, role, question)
    if as_json:
        _json({"party": found, "open_invoices": open_invoices, "orders": orders})
        return
    console.print(
        f"[bold]{found.name}[/bold] ({found.role.value}"
        + (f", {found.number}" if found.number else "")
        + ")"
        + (f" <{found.email}>" if found.email else "")
    )
    console.print(_invoice_table("Open invoices", invoice_rows(open_invoices, date.today())))
    for order in orders:
        console.print(
            f"  PO/SO {order.number}: {order.status}, {_money(order.total)} {order.currency}"
        )
