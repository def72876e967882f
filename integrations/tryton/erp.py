"""The ERP capability over Tryton's JSON-RPC (trytond 7.0 with party, company, product,
account_invoice, purchase and sale).

Mapping:

* companies: ``company.company``; parties: ``party.party``, a vendor or a customer by its
  party category (configurable names), emails from its contact mechanisms;
* orders: ``purchase.purchase`` / ``sale.sale``; ``quotation`` is "pending approval",
  approving is the ``confirm`` button, rejecting is ``cancel``, reopening is ``draft``
  then ``quote`` (Tryton allows it from ``cancelled`` and, until the queue worker
  processes the order after the configured grace period, from ``confirmed``);
* invoices: ``account.invoice`` (``in`` payable, ``out`` receivable); overdue and unpaid
  are filtered by the server on the unreconciled move lines that carry a maturity date;
  the due date is the earliest maturity of the lines to pay;
* vendor bills: a draft ``in`` invoice (deleted while draft, cancelled once numbered, and
  credited by the ``account.invoice.credit`` wizard once posted).

The record's ``_timestamp`` is the etag: passed back in the context, Tryton refuses a
change to a record written meanwhile (ConcurrencyException -> ConnectorConflictError).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from integrations.base import (
    Capability,
    Company,
    ConnectorContext,
    ConnectorHealth,
    ConnectorSpec,
    ConnectorStatus,
    Invoice,
    InvoiceKind,
    InvoiceQuery,
    InvoiceStatus,
    Order,
    OrderKind,
    OrderLine,
    OrderStatus,
    Party,
    PartyRole,
    VendorBillRequest,
)
from integrations.errors import (
    ConnectorConflictError,
    ConnectorError,
    ConnectorNotFoundError,
    FatalConnectorError,
)
from integrations.tryton.client import TrytonClient

log = structlog.stdlib.get_logger(__name__)

_IDEMPOTENCY_MARK = "[assistant:idempotency={key}]"

_ORDER_STATES = {
    "draft": OrderStatus.DRAFT,
    "quotation": OrderStatus.PENDING_APPROVAL,
    "confirmed": OrderStatus.APPROVED,
    "processing": OrderStatus.PROCESSING,
    "done": OrderStatus.DONE,
    "cancelled": OrderStatus.CANCELLED,
}
_ORDER_MODELS = {
    OrderKind.PURCHASE: ("purchase.purchase", "purchase_date"),
    OrderKind.SALE: ("sale.sale", "sale_date"),
}
_ORDER_FIELDS = [
    "id",
    "number",
    "state",
    "party",
    "party.rec_name",
    "currency.code",
    "total_amount",
    "_timestamp",
    "lines.type",
    "lines.description",
    "lines.quantity",
    "lines.unit_price",
    "lines.amount",
    "lines.product.rec_name",
]
_INVOICE_FIELDS = [
    "id",
    "number",
    "reference",
    "description",
    "type",
    "state",
    "party",
    "party.rec_name",
    "invoice_date",
    "currency.code",
    "total_amount",
    "amount_to_pay",
    "_timestamp",
    "lines_to_pay.maturity_date",
    "lines_to_pay.reconciliation",
]
_PARTY_FIELDS = [
    "id",
    "name",
    "code",
    "categories.name",
    "contact_mechanisms.type",
    "contact_mechanisms.value",
]


class TrytonConfig(BaseModel):
    """A Tryton server, the database and the user the assistant reads and writes as."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(title="Server URL", description="e.g. https://erp.example.com:8000")
    database: str = Field(title="Database")
    login: str = Field(
        title="Login",
        description="A Tryton user with purchase and account rights (approvals run as this user).",
    )
    password: SecretStr = Field(title="Password")
    company_id: int | None = Field(
        default=None, title="Company id", description="Default: the user's current company."
    )
    vendor_category: str = Field(default="Vendors", title="Vendor party category")
    customer_category: str = Field(default="Customers", title="Customer party category")
    expense_account: str | None = Field(
        default=None,
        title="Expense account code",
        description="Account of draft vendor bill lines. Default: the accounting "
        "configuration's default expense account.",
    )
    ca_file: Path | None = Field(default=None, title="CA file")
    timeout_s: float = Field(default=30.0, gt=0, le=600, title="Request timeout (s)")
    max_attempts: int = Field(default=4, ge=1, le=20, title="Attempts per request")


def _id(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConnectorNotFoundError(f"not a Tryton record id: {value!r}") from None


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


class TrytonERPConnector:
    """ERPConnector for one Tryton company."""

    def __init__(self, client: TrytonClient, config: TrytonConfig, *, name: str = "tryton") -> None:
        self.client = client
        self.config = config
        self.name = name

    # ------------------------------------------------------------------ helpers

    def _context(self, **extra: Any) -> dict[str, Any]:
        context: dict[str, Any] = {}
        if self.config.company_id is not None:
            context["company"] = self.config.company_id
            context["companies"] = [self.config.company_id]
        context.update(extra)
        return context

    async def _search(
        self,
        model: str,
        domain: list[Any],
        fields: Sequence[str],
        *,
        limit: int | None = None,
        order: list[list[str]] | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        return await self.client.search_read(
            model, domain, fields, offset=offset, limit=limit, order=order, context=self._context()
        )

    async def _call(
        self,
        model: str,
        method: str,
        *args: Any,
        etag_of: int | None = None,
        etag: str | None = None,
    ) -> Any:
        context = self._context()
        if etag is not None and etag_of is not None:
            context["_timestamp"] = {f"{model},{etag_of}": etag}
        return await self.client.model(model, method, *args, context=context)

    def _role(self, categories: list[dict[str, Any]]) -> PartyRole | None:
        names = {c.get("name") for c in categories}
        if self.config.vendor_category in names:
            return PartyRole.VENDOR
        if self.config.customer_category in names:
            return PartyRole.CUSTOMER
        return None

    def _party(self, row: dict[str, Any], role: PartyRole | None = None) -> Party:
        emails = [
            str(m["value"]).strip().lower()
            for m in row.get("contact_mechanisms.", [])
            if m.get("type") == "email" and m.get("value")
        ]
        domains = sorted({e.rsplit("@", 1)[1] for e in emails if "@" in e})
        return Party(
            id=str(row["id"]),
            name=row["name"],
            role=role or self._role(row.get("categories.", [])) or PartyRole.VENDOR,
            number=row.get("code") or None,
            email=emails[0] if emails else None,
            email_domains=domains,
        )

    @staticmethod
    def _order(kind: OrderKind, row: dict[str, Any], date_field: str) -> Order:
        lines = [
            OrderLine(
                description=line.get("description")
                or (line.get("product.") or {}).get("rec_name", ""),
                quantity=_dec(line.get("quantity")),
                unit_price=_dec(line.get("unit_price")),
                amount=_dec(line.get("amount")),
            )
            for line in row.get("lines.", [])
            if line.get("type", "line") == "line"
        ]
        return Order(
            id=str(row["id"]),
            number=row.get("number") or f"draft-{row['id']}",
            kind=kind,
            party_id=str(row["party"]),
            party_name=(row.get("party.") or {}).get("rec_name", ""),
            order_date=row.get(date_field),
            status=_ORDER_STATES.get(row["state"], row["state"]).__str__(),
            currency=(row.get("currency.") or {}).get("code", "USD"),
            total=_dec(row.get("total_amount")),
            lines=lines,
            etag=str(row.get("_timestamp")) if row.get("_timestamp") else None,
        )

    @staticmethod
    def _invoice(row: dict[str, Any]) -> Invoice:
        state = row["state"]
        total = _dec(row.get("total_amount"))
        to_pay = _dec(row.get("amount_to_pay"))
        lines = row.get("lines_to_pay.", [])
        open_dates = [
            line["maturity_date"]
            for line in lines
            if line.get("maturity_date") and not line.get("reconciliation")
        ]
        all_dates = [line["maturity_date"] for line in lines if line.get("maturity_date")]
        due = min(open_dates or all_dates) if (open_dates or all_dates) else None
        if state in ("draft", "validated"):
            status, amount_due = InvoiceStatus.DRAFT, total
        elif state == "cancelled":
            status, amount_due = InvoiceStatus.CANCELLED, Decimal(0)
        elif state == "paid" or (lines and not open_dates):
            # Fully reconciled; the queue worker may not have marked it paid yet.
            status, amount_due = InvoiceStatus.PAID, Decimal(0)
        else:
            status, amount_due = InvoiceStatus.OPEN, to_pay
        return Invoice(
            id=str(row["id"]),
            number=row.get("number") or None,
            kind=InvoiceKind.PAYABLE if row["type"] == "in" else InvoiceKind.RECEIVABLE,
            party_id=str(row["party"]),
            party_name=(row.get("party.") or {}).get("rec_name", ""),
            invoice_date=row.get("invoice_date"),
            due_date=due,
            currency=(row.get("currency.") or {}).get("code", "USD"),
            total=total,
            amount_due=amount_due,
            status=status.value,
            is_posted=state in ("posted", "paid"),
            etag=str(row.get("_timestamp")) if row.get("_timestamp") else None,
            reference=row.get("reference") or None,
            description=row.get("description") or None,
        )

    # ------------------------------------------------------------------ reads

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self.client.login()
            companies = await self.list_companies()
        except ConnectorError as exc:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=exc.detail)
        except Exception as exc:  # check() never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        if self.config.company_id is not None and not any(
            c.id == str(self.config.company_id) for c in companies
        ):
            return ConnectorHealth(
                status=ConnectorStatus.DEGRADED,
                detail=f"company {self.config.company_id} not visible",
            )
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=round((time.perf_counter() - started) * 1000, 1)
        )

    async def list_companies(self) -> list[Company]:
        rows = await self._search("company.company", [], ["id", "rec_name", "currency.code"])
        return [
            Company(
                id=str(r["id"]),
                name=r["rec_name"],
                currency=(r.get("currency.") or {}).get("code", "USD"),
            )
            for r in rows
        ]

    def _role_domain(self, role: PartyRole | None) -> list[Any]:
        if role is PartyRole.VENDOR:
            return [("categories.name", "=", self.config.vendor_category)]
        if role is PartyRole.CUSTOMER:
            return [("categories.name", "=", self.config.customer_category)]
        return [
            ("categories.name", "in", [self.config.vendor_category, self.config.customer_category])
        ]

    async def find_parties(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        role: PartyRole | None = None,
        limit: int = 20,
    ) -> list[Party]:
        domain: list[Any] = self._role_domain(role)
        if name:
            domain.append(("rec_name", "ilike", f"%{name.strip()}%"))
        if email:
            value = email.strip().lower()
            pattern = f"%{value}" if value.startswith("@") else value
            domain.append(
                (
                    "contact_mechanisms",
                    "where",
                    [("type", "=", "email"), ("value", "ilike", pattern)],
                )
            )
        rows = await self._search(
            "party.party",
            domain,
            _PARTY_FIELDS,
            limit=limit,
            order=[["name", "ASC"], ["id", "ASC"]],
        )
        return [self._party(row, role) for row in rows]

    async def get_party(self, party_id: str) -> Party:
        rows = await self._search("party.party", [("id", "=", _id(party_id))], _PARTY_FIELDS)
        if not rows:
            raise ConnectorNotFoundError(f"no party {party_id}", connector=self.name)
        return self._party(rows[0])

    async def list_orders(
        self,
        kind: OrderKind,
        *,
        party_id: str | None = None,
        number: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Order]:
        model, date_field = _ORDER_MODELS[OrderKind(kind)]
        domain: list[Any] = []
        if party_id:
            domain.append(("party", "=", _id(party_id)))
        if number:
            domain.append(("number", "=", number.strip()))
        if status:
            states = [k for k, v in _ORDER_STATES.items() if v == status]
            domain.append(("state", "in", states or [status]))
        rows = await self._search(
            model, domain, [*_ORDER_FIELDS, date_field], limit=limit, order=[["id", "DESC"]]
        )
        return [self._order(OrderKind(kind), row, date_field) for row in rows]

    async def get_order(self, kind: OrderKind, order_id: str) -> Order:
        model, date_field = _ORDER_MODELS[OrderKind(kind)]
        rows = await self._search(model, [("id", "=", _id(order_id))], [*_ORDER_FIELDS, date_field])
        if not rows:
            raise ConnectorNotFoundError(f"no {kind} order {order_id}", connector=self.name)
        return self._order(OrderKind(kind), rows[0], date_field)

    def invoice_domain(self, query: InvoiceQuery) -> list[Any]:
        """The server-side filter of an invoice query (also used by the benchmark)."""
        domain: list[Any] = []
        if query.kind is not None:
            domain.append(("type", "=", "in" if query.kind is InvoiceKind.PAYABLE else "out"))
        if query.party_id:
            domain.append(("party", "=", _id(query.party_id)))
        if query.min_amount is not None:
            domain.append(("total_amount", ">=", query.min_amount))
        if query.reference:
            domain.append(
                ["OR", ("number", "=", query.reference), ("reference", "=", query.reference)]
            )
        if query.overdue_on is not None or query.unpaid_only:
            # Only the lines to pay carry a maturity date; unreconciled means unpaid.
            lines: list[Any] = [("reconciliation", "=", None)]
            lines.append(
                ("maturity_date", "<", query.overdue_on)
                if query.overdue_on
                else ("maturity_date", "!=", None)
            )
            domain += [("state", "=", "posted"), ("move.lines", "where", lines)]
        return domain

    async def list_invoices(self, query: InvoiceQuery) -> list[Invoice]:
        rows = await self._search(
            "account.invoice",
            self.invoice_domain(query),
            _INVOICE_FIELDS,
            limit=query.limit,
            order=[["invoice_date", "ASC"], ["id", "ASC"]],
        )
        return [self._invoice(row) for row in rows]

    async def get_invoice(self, invoice_id: str) -> Invoice:
        rows = await self._search(
            "account.invoice", [("id", "=", _id(invoice_id))], _INVOICE_FIELDS
        )
        if not rows:
            raise ConnectorNotFoundError(f"no invoice {invoice_id}", connector=self.name)
        return self._invoice(rows[0])

    # ------------------------------------------------------------------ purchase orders

    async def _purchase_state(self, order_id: str) -> tuple[int, str]:
        record_id = _id(order_id)
        rows = await self._search("purchase.purchase", [("id", "=", record_id)], ["state"])
        if not rows:
            raise ConnectorNotFoundError(f"no purchase order {order_id}", connector=self.name)
        return record_id, str(rows[0]["state"])

    async def approve_purchase_order(self, order_id: str, *, etag: str | None = None) -> Order:
        record_id, state = await self._purchase_state(order_id)
        if state in ("confirmed", "processing", "done"):
            return await self.get_order(OrderKind.PURCHASE, order_id)  # a retried approval
        if state != "quotation":
            raise ConnectorConflictError(
                f"purchase order {order_id} is {state}, not awaiting approval", connector=self.name
            )
        await self._call("purchase.purchase", "confirm", [record_id], etag_of=record_id, etag=etag)
        log.info("tryton.purchase_approved", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    async def reject_purchase_order(
        self, order_id: str, *, reason: str | None = None, etag: str | None = None
    ) -> Order:
        record_id, state = await self._purchase_state(order_id)
        if state == "cancelled":
            return await self.get_order(OrderKind.PURCHASE, order_id)
        if state not in ("draft", "quotation"):
            raise ConnectorConflictError(
                f"purchase order {order_id} is {state}: Tryton cancels only draft or quoted orders",
                connector=self.name,
            )
        if reason:
            rows = await self._search("purchase.purchase", [("id", "=", record_id)], ["comment"])
            comment = "\n".join(
                x for x in [rows[0].get("comment") or "", f"Rejected: {reason}"] if x
            )
            await self._call(
                "purchase.purchase",
                "write",
                [record_id],
                {"comment": comment},
                etag_of=record_id,
                etag=etag,
            )
            etag = None  # checked by the write
        await self._call("purchase.purchase", "cancel", [record_id], etag_of=record_id, etag=etag)
        log.info("tryton.purchase_rejected", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    async def reopen_purchase_order(self, order_id: str) -> Order:
        record_id, state = await self._purchase_state(order_id)
        if state in ("processing", "done"):
            raise ConnectorConflictError(
                f"purchase order {order_id} is already {state}: Tryton can no longer "
                "reset it to draft",
                connector=self.name,
            )
        if state in ("cancelled", "confirmed"):
            await self._call("purchase.purchase", "draft", [record_id])
            state = "draft"
        if state == "draft":
            await self._call("purchase.purchase", "quote", [record_id])
        log.info("tryton.purchase_reopened", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    # ------------------------------------------------------------------ vendor bills

    async def _by_idempotency_key(self, key: str) -> Invoice | None:
        mark = _IDEMPOTENCY_MARK.format(key=key)
        rows = await self._search(
            "account.invoice",
            [("type", "=", "in"), ("comment", "like", f"%{mark}%")],
            _INVOICE_FIELDS,
            limit=1,
        )
        return self._invoice(rows[0]) if rows else None

    async def _expense_account(self) -> int:
        if self.config.expense_account:
            rows = await self._search(
                "account.account", [("code", "=", self.config.expense_account)], ["id"]
            )
            if not rows:
                raise FatalConnectorError(
                    f"no account with code {self.config.expense_account!r}", connector=self.name
                )
            return int(rows[0]["id"])
        rows = await self._search(
            "account.configuration", [], ["default_category_account_expense"], limit=1
        )
        account = rows[0].get("default_category_account_expense") if rows else None
        if not account:
            rows = await self._search(
                "account.account",
                [("type.expense", "=", True), ("closed", "!=", True)],
                ["id"],
                limit=1,
            )
            account = rows[0]["id"] if rows else None
        if not account:
            raise FatalConnectorError("no expense account configured", connector=self.name)
        return int(account)

    async def create_draft_vendor_bill(self, request: VendorBillRequest) -> Invoice:
        if request.idempotency_key:
            existing = await self._by_idempotency_key(request.idempotency_key)
            if existing is not None:
                return existing
        vendor_id = _id(request.vendor_id)
        rows = await self._search(
            "party.party",
            [("id", "=", vendor_id)],
            ["addresses", "account_payable", "supplier_payment_term"],
        )
        if not rows:
            raise ConnectorNotFoundError(f"no vendor {request.vendor_id}", connector=self.name)
        party = rows[0]
        payable = party.get("account_payable")
        if not payable:  # the party uses the accounting configuration's default
            config = await self._search(
                "account.configuration", [], ["default_account_payable"], limit=1
            )
            payable = config[0].get("default_account_payable") if config else None
        if not party.get("addresses") or not payable:
            raise FatalConnectorError(
                f"vendor {request.vendor_id} has no address or payable account", connector=self.name
            )
        journals = await self._search(
            "account.journal", [("type", "=", "expense")], ["id"], limit=1
        )
        companies = await self._search("company.company", [], ["id", "currency"], limit=1)
        company = self.config.company_id or (
            self.client.context.get("company") or companies[0]["id"]
        )
        currency = next(
            (c["currency"] for c in companies if c["id"] == company), companies[0]["currency"]
        )
        account = await self._expense_account()
        comment = (
            _IDEMPOTENCY_MARK.format(key=request.idempotency_key)
            if request.idempotency_key
            else None
        )
        values: dict[str, Any] = {
            "type": "in",
            "party": vendor_id,
            "company": company,
            "currency": currency,
            "invoice_address": party["addresses"][0],
            "account": payable,
            "journal": journals[0]["id"] if journals else None,
            "payment_term": party.get("supplier_payment_term"),
            "invoice_date": request.invoice_date,
            "reference": request.vendor_reference,
            "comment": comment,
            "lines": [
                [
                    "create",
                    [
                        {
                            "type": "line",
                            "description": line.description,
                            "quantity": float(line.quantity),
                            "unit_price": line.unit_price,
                            "account": account,
                            "company": company,
                            "currency": currency,
                            "invoice_type": "in",
                            "party": vendor_id,
                        }
                        for line in request.lines
                    ],
                ]
            ],
        }
        created = await self._call("account.invoice", "create", [values])
        invoice_id = str(created[0])
        log.info("tryton.vendor_bill_created", connector=self.name, invoice_id=invoice_id)
        return await self.get_invoice(invoice_id)

    async def delete_draft_vendor_bill(self, invoice_id: str) -> None:
        rows = await self._search(
            "account.invoice", [("id", "=", _id(invoice_id))], ["state", "number", "type"]
        )
        if not rows:
            return  # deleting twice is not an error
        row = rows[0]
        if row["type"] != "in":
            raise FatalConnectorError(
                f"invoice {invoice_id} is not a vendor bill", connector=self.name
            )
        if row["state"] == "cancelled":
            return
        if row["state"] in ("posted", "paid"):
            raise ConnectorConflictError(
                f"vendor bill {invoice_id} is posted: it takes a credit memo", connector=self.name
            )
        if row.get("number"):
            # Numbered invoices are kept for the sequence: Tryton cancels them instead.
            await self._call("account.invoice", "cancel", [_id(invoice_id)])
        else:
            await self._call("account.invoice", "delete", [_id(invoice_id)])
        log.info("tryton.vendor_bill_deleted", connector=self.name, invoice_id=invoice_id)

    async def credit_vendor_bill(
        self, invoice_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Invoice:
        if idempotency_key:
            existing = await self._by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing
        original = await self.get_invoice(invoice_id)
        if original.kind is not InvoiceKind.PAYABLE or not original.is_posted:
            raise ConnectorConflictError(
                f"invoice {invoice_id} is not a posted vendor bill", connector=self.name
            )
        result = await self.client.run_wizard(
            "account.invoice.credit",
            "credit",
            {"start": {"with_refund": False, "invoice_date": date.today()}},
            model="account.invoice",
            ids=[_id(invoice_id)],
        )
        credit_ids = _wizard_res_ids(result)
        if not credit_ids:
            raise FatalConnectorError(
                "the credit wizard returned no credit note", connector=self.name
            )
        comment = "\n".join(
            x
            for x in [
                f"Credit of {original.number or invoice_id}" + (f": {reason}" if reason else ""),
                _IDEMPOTENCY_MARK.format(key=idempotency_key) if idempotency_key else "",
            ]
            if x
        )
        await self._call("account.invoice", "write", credit_ids, {"comment": comment})
        await self._call("account.invoice", "post", credit_ids)
        log.info(
            "tryton.vendor_bill_credited",
            connector=self.name,
            invoice_id=invoice_id,
            credit_id=credit_ids[0],
        )
        return await self.get_invoice(str(credit_ids[0]))

    async def aclose(self) -> None:
        await self.client.aclose()


def _wizard_res_ids(result: Any) -> list[int]:
    """Record ids a wizard's action returned (``{"actions": [[action, {"res_id": [...]}]]}``)."""
    actions = result.get("actions", []) if isinstance(result, dict) else []
    for item in actions:
        if isinstance(item, list | tuple) and len(item) > 1 and isinstance(item[1], dict):
            ids = item[1].get("res_id")
            if isinstance(ids, list):
                return [int(i) for i in ids]
            if isinstance(ids, int):
                return [ids]
    return []


def build_connector(config: TrytonConfig, context: ConnectorContext) -> TrytonERPConnector:
    """A connector instance for one tenant (synchronous form of the factory)."""
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_file))
    import httpx  # with the first instance, not with connector discovery

    http = httpx.AsyncClient(timeout=config.timeout_s, verify=verify)
    client = TrytonClient(
        config.url,
        config.database,
        config.login,
        config.password,
        http_client=http,
        connector=context.instance_name,
        max_attempts=config.max_attempts,
        timeout_s=config.timeout_s,
        owns_http=True,
    )
    return TrytonERPConnector(client, config, name=context.instance_name)


async def _build(config: TrytonConfig, context: ConnectorContext) -> TrytonERPConnector:
    return build_connector(config, context)


ERP_SPEC = ConnectorSpec(
    slug="tryton.erp",
    kind="tryton",
    title="Tryton ERP (JSON-RPC)",
    config_model=TrytonConfig,
    capabilities=frozenset({Capability.ERP}),
    factory=_build,
    description="Parties, purchase and sales orders, invoices; approvals and draft vendor "
    "bills through Tryton's own workflow buttons.",
)

__all__ = ["ERP_SPEC", "TrytonConfig", "TrytonERPConnector", "build_connector"]
