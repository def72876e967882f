"""The ERP capability over the Dynamics 365 Business Central API v2.0.

OData v4 at ``{base_url}/{tenant}/{environment}/api/v2.0/companies({id})/...`` with app-only
tokens from msal (client credentials, scope ``https://api.businesscentral.dynamics.com/
.default``), through the shared Graph HTTP client (retries honouring ``Retry-After``,
typed errors, ``@odata.nextLink`` paging). Filters run on the server (``$filter``), only
the needed properties travel (``$select``), lines come with their document (``$expand``).
Writes send ``If-Match`` with the entity's ``@odata.etag``; a 412 is a conflict.

Mapping: vendors and customers are parties; purchase orders ``Draft`` / ``In Review`` /
``Open`` are draft / pending approval / approved; purchase invoices are payables, sales
invoices receivables (``remainingAmount`` where the API has it: sales invoices; an open
purchase invoice is due in full, because the standard API does not show its partial
payments). A draft vendor bill is a ``Draft`` purchase invoice with ``Account`` lines; it is
deleted while draft and corrected by a posted purchase credit memo once posted.

Approvals: the standard API v2.0 has no approval actions on purchase orders. A tenant that
approves through the API installs an API extension whose ``purchaseOrders`` entity set
binds ``Microsoft.NAV.approve``, ``Microsoft.NAV.reject`` and ``Microsoft.NAV.reopen``
(wrapping codeunit "Approvals Mgmt."); ``approval_api`` names its route
(``publisher/group/version``). Without it, approving and rejecting raise a typed error.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from pydantic import Field

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
    ConnectorUnavailableError,
    FatalConnectorError,
)
from integrations.msgraph.auth import (
    EntraAuthConfig,
    TokenProvider,
    token_provider_for,
)
from integrations.msgraph.client import GraphClient

log = structlog.stdlib.get_logger(__name__)

BC_BASE_URL = "https://api.businesscentral.dynamics.com/v2.0"
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"

_ORDER_STATUS = {
    "Draft": OrderStatus.DRAFT,
    "In Review": OrderStatus.PENDING_APPROVAL,
    "Open": OrderStatus.APPROVED,
    "Released": OrderStatus.APPROVED,
}
_INVOICE_STATUS = {
    "Draft": InvoiceStatus.DRAFT,
    "In Review": InvoiceStatus.DRAFT,
    "Open": InvoiceStatus.OPEN,
    "Paid": InvoiceStatus.PAID,
    "Canceled": InvoiceStatus.CANCELLED,
    "Cancelled": InvoiceStatus.CANCELLED,
    "Corrective": InvoiceStatus.CANCELLED,
}
_PARTY_SELECT = "id,number,displayName,email"
_ORDER_SETS = {
    OrderKind.PURCHASE: ("purchaseOrders", "purchaseOrderLines", "vendor"),
    OrderKind.SALE: ("salesOrders", "salesOrderLines", "customer"),
}
_INVOICE_SETS = {
    InvoiceKind.PAYABLE: ("purchaseInvoices", "vendor", "vendorInvoiceNumber"),
    InvoiceKind.RECEIVABLE: ("salesInvoices", "customer", "externalDocumentNumber"),
}


def odata_string(value: str) -> str:
    """An OData string literal: quoted, single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _guid(value: str) -> str:
    cleaned = value.strip().strip("{}").lower()
    parts = cleaned.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12] or not all(
        c in "0123456789abcdef" for c in cleaned.replace("-", "")
    ):
        raise ConnectorNotFoundError(f"not a Business Central id: {value!r}")
    return cleaned


def _dec(value: Any) -> Decimal:
    return Decimal(str(value if value is not None else 0))


def _date(value: Any) -> date | None:
    if not value or str(value).startswith("0001-01-01"):
        return None
    return date.fromisoformat(str(value)[:10])


class BusinessCentralConfig(EntraAuthConfig):
    """A Business Central environment and company, and how to get tokens for it."""

    tenant_id: str = Field(title="Entra tenant id")
    environment: str = Field(default="production", title="Environment name")
    company_id: str | None = Field(default=None, title="Company id (GUID)")
    company_name: str | None = Field(
        default=None, title="Company name", description="Used when company_id is not set."
    )
    base_url: str = Field(
        default=BC_BASE_URL,
        title="API base URL",
        description="Up to /v2.0; the tenant and environment follow.",
    )
    ca_file: Path | None = Field(default=None, title="CA file")
    approval_api: str | None = Field(
        default=None,
        title="Approval API route",
        description="publisher/group/version of the API extension with the approve, reject "
        "and reopen actions on purchaseOrders (the standard API has none).",
    )
    expense_account: str | None = Field(
        default=None,
        title="G/L account for vendor bill lines",
        description="lineObjectNumber of the Account lines of draft vendor bills.",
    )
    page_size: int | None = Field(
        default=None,
        ge=1,
        le=20000,
        title="Page size",
        description="Prefer: odata.maxpagesize; none: BC's own.",
    )

    @property
    def api_root(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.tenant_id}/{self.environment}/api"


class BusinessCentralERPConnector:
    """ERPConnector for one Business Central company."""

    def __init__(
        self, client: GraphClient, config: BusinessCentralConfig, *, name: str = "businesscentral"
    ) -> None:
        self.client = client
        self.config = config
        self.name = name
        self._company_id: str | None = config.company_id.lower() if config.company_id else None

    # ------------------------------------------------------------------ helpers

    @property
    def _headers(self) -> dict[str, str]:
        if self.config.page_size:
            return {"Prefer": f"odata.maxpagesize={self.config.page_size}"}
        return {}

    async def _company(self) -> str:
        if self._company_id is None:
            companies = await self.client.get_json("v2.0/companies", params={"$select": "id,name"})
            rows = companies.get("value", [])
            if self.config.company_name:
                rows = [r for r in rows if r.get("name") == self.config.company_name]
            if not rows:
                raise ConnectorUnavailableError(
                    f"company {self.config.company_name or '(any)'} not found", connector=self.name
                )
            self._company_id = str(rows[0]["id"]).lower()
        return self._company_id

    async def _path(self, tail: str) -> str:
        return f"v2.0/companies({await self._company()})/{tail}"

    async def _items(
        self, tail: str, params: dict[str, str], limit: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        count = 0
        async for item in self.client.items(
            await self._path(tail), params=params, headers=self._headers
        ):
            yield item
            count += 1
            if limit is not None and count >= limit:
                return

    @staticmethod
    def _party(row: dict[str, Any], role: PartyRole) -> Party:
        email = str(row.get("email") or "").strip().lower() or None
        return Party(
            id=str(row["id"]),
            name=row.get("displayName", ""),
            role=role,
            number=row.get("number") or None,
            email=email,
            email_domains=[email.rsplit("@", 1)[1]] if email and "@" in email else [],
        )

    @staticmethod
    def _order(kind: OrderKind, row: dict[str, Any], lines_name: str, party: str) -> Order:
        status = _ORDER_STATUS.get(row.get("status", ""), OrderStatus.DRAFT)
        if status is OrderStatus.APPROVED and (row.get("fullyReceived") or row.get("fullyShipped")):
            status = OrderStatus.DONE
        price_key = "directUnitCost" if kind is OrderKind.PURCHASE else "unitPrice"
        lines = [
            OrderLine(
                description=line.get("description", ""),
                quantity=_dec(line.get("quantity")),
                unit_price=_dec(line.get(price_key)),
                amount=_dec(line.get("amountIncludingTax", line.get("netAmount"))),
            )
            for line in row.get(lines_name, [])
            if line.get("lineType") != "Comment"
        ]
        return Order(
            id=str(row["id"]),
            number=str(row.get("number", "")),
            kind=kind,
            party_id=str(row.get(f"{party}Id", "")),
            party_name=row.get(f"{party}Name", ""),
            order_date=_date(row.get("orderDate")),
            status=status.value,
            currency=row.get("currencyCode") or "USD",
            total=_dec(row.get("totalAmountIncludingTax")),
            lines=lines,
            etag=row.get("@odata.etag"),
        )

    @staticmethod
    def _invoice(row: dict[str, Any], kind: InvoiceKind, *, credit: bool = False) -> Invoice:
        status = _INVOICE_STATUS.get(row.get("status", ""), InvoiceStatus.DRAFT)
        total = _dec(row.get("totalAmountIncludingTax"))
        if "remainingAmount" in row and status is InvoiceStatus.OPEN:
            due = _dec(row.get("remainingAmount"))
        elif status in (InvoiceStatus.PAID, InvoiceStatus.CANCELLED):
            due = Decimal(0)
        else:
            due = total
        party = "vendor" if kind is InvoiceKind.PAYABLE else "customer"
        reference = row.get("vendorInvoiceNumber") or row.get("externalDocumentNumber")
        sign = Decimal(-1) if credit else Decimal(1)
        return Invoice(
            id=str(row["id"]),
            number=row.get("number") or None,
            kind=kind,
            party_id=str(row.get(f"{party}Id", "")),
            party_name=row.get(f"{party}Name", ""),
            invoice_date=_date(row.get("invoiceDate") or row.get("creditMemoDate")),
            due_date=_date(row.get("dueDate")),
            currency=row.get("currencyCode") or "USD",
            total=total * sign,
            amount_due=due * sign,
            status=status.value,
            is_posted=status not in (InvoiceStatus.DRAFT,),
            etag=row.get("@odata.etag"),
            reference=reference or None,
        )

    # ------------------------------------------------------------------ reads

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._company()
        except ConnectorError as exc:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=exc.detail)
        except Exception as exc:  # check() never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=round((time.perf_counter() - started) * 1000, 1)
        )

    async def list_companies(self) -> list[Company]:
        body = await self.client.get_json("v2.0/companies", params={"$select": "id,name"})
        companies = []
        for row in body.get("value", []):
            info = await self.client.get_json(
                f"v2.0/companies({row['id']})/companyInformation",
                params={"$select": "currencyCode"},
            )
            values = info.get("value") or [info]
            currency = (values[0].get("currencyCode") if values else None) or "USD"
            companies.append(Company(id=str(row["id"]), name=row["name"], currency=currency))
        return companies

    async def find_parties(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        role: PartyRole | None = None,
        limit: int = 20,
    ) -> list[Party]:
        clauses: list[str] = []
        if name:
            clauses.append(f"contains(displayName,{odata_string(name.strip())})")
        if email:
            value = email.strip().lower()
            clauses.append(
                f"endswith(email,{odata_string(value)})"
                if value.startswith("@")
                else f"email eq {odata_string(value)}"
            )
        params = {"$select": _PARTY_SELECT, "$orderby": "displayName", "$top": str(limit)}
        if clauses:
            params["$filter"] = " and ".join(clauses)
        roles = [role] if role is not None else [PartyRole.VENDOR, PartyRole.CUSTOMER]
        found: list[Party] = []
        for each in roles:
            set_name = "vendors" if each is PartyRole.VENDOR else "customers"
            async for row in self._items(set_name, params, limit):
                found.append(self._party(row, each))
        return sorted(found, key=lambda p: p.name)[:limit]

    async def get_party(self, party_id: str) -> Party:
        key = _guid(party_id)
        for set_name, role in (("vendors", PartyRole.VENDOR), ("customers", PartyRole.CUSTOMER)):
            try:
                row = await self.client.get_json(
                    await self._path(f"{set_name}({key})"), params={"$select": _PARTY_SELECT}
                )
            except ConnectorNotFoundError:
                continue
            return self._party(row, role)
        raise ConnectorNotFoundError(f"no vendor or customer {party_id}", connector=self.name)

    async def list_orders(
        self,
        kind: OrderKind,
        *,
        party_id: str | None = None,
        number: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Order]:
        kind = OrderKind(kind)
        set_name, lines_name, party = _ORDER_SETS[kind]
        clauses: list[str] = []
        if party_id:
            clauses.append(f"{party}Id eq {_guid(party_id)}")
        if number:
            clauses.append(f"number eq {odata_string(number.strip())}")
        if status:
            values = [k for k, v in _ORDER_STATUS.items() if v == status]
            if not values:
                return []
            clauses.append("(" + " or ".join(f"status eq {odata_string(v)}" for v in values) + ")")
        params = {"$expand": lines_name, "$orderby": "number desc", "$top": str(limit)}
        if clauses:
            params["$filter"] = " and ".join(clauses)
        return [
            self._order(kind, row, lines_name, party)
            async for row in self._items(set_name, params, limit)
        ]

    async def get_order(self, kind: OrderKind, order_id: str) -> Order:
        kind = OrderKind(kind)
        set_name, lines_name, party = _ORDER_SETS[kind]
        row = await self.client.get_json(
            await self._path(f"{set_name}({_guid(order_id)})"), params={"$expand": lines_name}
        )
        return self._order(kind, row, lines_name, party)

    def invoice_filter(self, query: InvoiceQuery, kind: InvoiceKind) -> str | None:
        """The ``$filter`` of an invoice query for one kind (also used by the benchmark)."""
        _, party, reference = _INVOICE_SETS[kind]
        clauses: list[str] = []
        if query.party_id:
            clauses.append(f"{party}Id eq {_guid(query.party_id)}")
        if query.min_amount is not None:
            clauses.append(f"totalAmountIncludingTax ge {query.min_amount}")
        if query.reference:
            literal = odata_string(query.reference)
            clauses.append(f"(number eq {literal} or {reference} eq {literal})")
        if query.overdue_on is not None:
            clauses.append(f"dueDate lt {query.overdue_on.isoformat()}")
        if query.overdue_on is not None or query.unpaid_only:
            clauses.append("status eq 'Open'")
            if kind is InvoiceKind.RECEIVABLE:
                clauses.append("remainingAmount gt 0")
        return " and ".join(clauses) or None

    async def list_invoices(self, query: InvoiceQuery) -> list[Invoice]:
        kinds = [query.kind] if query.kind is not None else list(InvoiceKind)
        invoices: list[Invoice] = []
        for kind in kinds:
            set_name = _INVOICE_SETS[kind][0]
            params = {"$orderby": "invoiceDate,number", "$top": str(query.limit)}
            where = self.invoice_filter(query, kind)
            if where:
                params["$filter"] = where
            async for row in self._items(set_name, params, query.limit):
                invoices.append(self._invoice(row, kind))
        invoices.sort(key=lambda i: (i.invoice_date or date.min, i.number or ""))
        return invoices[: query.limit]

    async def get_invoice(self, invoice_id: str) -> Invoice:
        key = _guid(invoice_id)
        for set_name, kind, credit in (
            ("purchaseInvoices", InvoiceKind.PAYABLE, False),
            ("salesInvoices", InvoiceKind.RECEIVABLE, False),
            ("purchaseCreditMemos", InvoiceKind.PAYABLE, True),
        ):
            try:
                row = await self.client.get_json(await self._path(f"{set_name}({key})"))
            except ConnectorNotFoundError:
                continue
            return self._invoice(row, kind, credit=credit)
        raise ConnectorNotFoundError(f"no invoice {invoice_id}", connector=self.name)

    # ------------------------------------------------------------------ approvals

    async def _approval(self, order_id: str, action: str, etag: str | None) -> None:
        if not self.config.approval_api:
            raise FatalConnectorError(
                "Business Central's standard API has no purchase order approvals: configure "
                "approval_api (an API extension with approve/reject/reopen)",
                connector=self.name,
            )
        path = (
            f"{self.config.approval_api.strip('/')}/companies({await self._company()})/"
            f"purchaseOrders({_guid(order_id)})/Microsoft.NAV.{action}"
        )
        headers = {"If-Match": etag} if etag else None
        await self.client.request("POST", path, headers=headers)

    async def approve_purchase_order(self, order_id: str, *, etag: str | None = None) -> Order:
        order = await self.get_order(OrderKind.PURCHASE, order_id)
        if order.status in (OrderStatus.APPROVED, OrderStatus.DONE):
            return order  # a retried approval
        if order.status != OrderStatus.PENDING_APPROVAL:
            raise ConnectorConflictError(
                f"purchase order {order.number} is {order.status}, not awaiting approval",
                connector=self.name,
            )
        await self._approval(order_id, "approve", etag)
        log.info("businesscentral.purchase_approved", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    async def reject_purchase_order(
        self, order_id: str, *, reason: str | None = None, etag: str | None = None
    ) -> Order:
        order = await self.get_order(OrderKind.PURCHASE, order_id)
        if order.status == OrderStatus.DRAFT:
            return order  # rejected already: BC sends it back to the buyer as Draft
        if order.status != OrderStatus.PENDING_APPROVAL:
            raise ConnectorConflictError(
                f"purchase order {order.number} is {order.status}, not awaiting approval",
                connector=self.name,
            )
        await self._approval(order_id, "reject", etag)
        log.info("businesscentral.purchase_rejected", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    async def reopen_purchase_order(self, order_id: str) -> Order:
        order = await self.get_order(OrderKind.PURCHASE, order_id)
        if order.status == OrderStatus.PENDING_APPROVAL:
            return order
        if order.status == OrderStatus.DONE:
            raise ConnectorConflictError(
                f"purchase order {order.number} is received: it cannot be reopened",
                connector=self.name,
            )
        await self._approval(order_id, "reopen", order.etag)
        log.info("businesscentral.purchase_reopened", connector=self.name, order_id=order_id)
        return await self.get_order(OrderKind.PURCHASE, order_id)

    # ------------------------------------------------------------------ vendor bills

    def _bill_reference(self, request: VendorBillRequest) -> str:
        if request.vendor_reference:
            return request.vendor_reference[:35]
        if request.idempotency_key:
            # BC needs a vendor invoice number to post, and it finds a retried create.
            return f"AA-{request.idempotency_key[:32]}"
        return ""

    async def create_draft_vendor_bill(self, request: VendorBillRequest) -> Invoice:
        if not self.config.expense_account:
            raise FatalConnectorError(
                "expense_account is not configured: vendor bill lines need a G/L account",
                connector=self.name,
            )
        vendor = _guid(request.vendor_id)
        reference = self._bill_reference(request)
        existing: dict[str, Any] | None = None
        if request.idempotency_key and reference:
            async for row in self._items(
                "purchaseInvoices",
                {
                    "$filter": f"vendorId eq {vendor} and vendorInvoiceNumber eq "
                    f"{odata_string(reference)}",
                    "$expand": "purchaseInvoiceLines",
                },
                1,
            ):
                existing = row
        if existing is None:
            body: dict[str, Any] = {"vendorId": vendor, "vendorInvoiceNumber": reference}
            if request.invoice_date:
                body["invoiceDate"] = request.invoice_date.isoformat()
            if request.due_date:
                body["dueDate"] = request.due_date.isoformat()
            existing = await self.client.post_json(await self._path("purchaseInvoices"), body)
            existing["purchaseInvoiceLines"] = []
        invoice_id = str(existing["id"])
        # A create interrupted between the header and its lines is completed, not repeated.
        for line in request.lines[len(existing.get("purchaseInvoiceLines", [])) :]:
            await self.client.post_json(
                await self._path(f"purchaseInvoices({invoice_id})/purchaseInvoiceLines"),
                {
                    "lineType": "Account",
                    "lineObjectNumber": self.config.expense_account,
                    "description": line.description[:100],
                    "quantity": float(line.quantity),
                    "directUnitCost": float(line.unit_price),
                },
            )
        log.info("businesscentral.vendor_bill_created", connector=self.name, invoice_id=invoice_id)
        return await self.get_invoice(invoice_id)

    async def delete_draft_vendor_bill(self, invoice_id: str) -> None:
        path = await self._path(f"purchaseInvoices({_guid(invoice_id)})")
        try:
            row = await self.client.get_json(path, params={"$select": "id,status"})
        except ConnectorNotFoundError:
            return
        status = _INVOICE_STATUS.get(row.get("status", ""), InvoiceStatus.DRAFT)
        if status is InvoiceStatus.CANCELLED:
            return
        if status is not InvoiceStatus.DRAFT:
            raise ConnectorConflictError(
                f"vendor bill {invoice_id} is posted: it takes a credit memo", connector=self.name
            )
        try:
            await self.client.request(
                "DELETE", path, headers={"If-Match": row.get("@odata.etag") or "*"}
            )
        except ConnectorNotFoundError:
            return
        log.info("businesscentral.vendor_bill_deleted", connector=self.name, invoice_id=invoice_id)

    async def credit_vendor_bill(
        self, invoice_id: str, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> Invoice:
        key = _guid(invoice_id)
        async for row in self._items("purchaseCreditMemos", {"$filter": f"invoiceId eq {key}"}, 1):
            memo = row  # one corrective memo per invoice: a retry finds it
            break
        else:
            original = await self.client.get_json(
                await self._path(f"purchaseInvoices({key})"),
                params={"$expand": "purchaseInvoiceLines"},
            )
            if _INVOICE_STATUS.get(original.get("status", "")) not in (
                InvoiceStatus.OPEN,
                InvoiceStatus.PAID,
            ):
                raise ConnectorConflictError(
                    f"invoice {invoice_id} is not a posted vendor bill", connector=self.name
                )
            memo = await self.client.post_json(
                await self._path("purchaseCreditMemos"),
                {
                    "vendorId": original["vendorId"],
                    "invoiceId": key,
                    "creditMemoDate": date.today().isoformat(),
                },
            )
            for line in original.get("purchaseInvoiceLines", []):
                await self.client.post_json(
                    await self._path(f"purchaseCreditMemos({memo['id']})/purchaseCreditMemoLines"),
                    {
                        "lineType": line.get("lineType", "Account"),
                        "lineObjectNumber": line.get("lineObjectNumber", ""),
                        "description": line.get("description", ""),
                        "quantity": line.get("quantity", 1),
                        "directUnitCost": line.get("directUnitCost", 0),
                    },
                )
        if memo.get("status") in (None, "Draft"):
            await self.client.request(
                "POST", await self._path(f"purchaseCreditMemos({memo['id']})/Microsoft.NAV.post")
            )
        log.info(
            "businesscentral.vendor_bill_credited",
            connector=self.name,
            invoice_id=invoice_id,
            credit_id=memo["id"],
            reason_given=bool(reason),
        )
        return await self.get_invoice(str(memo["id"]))

    async def aclose(self) -> None:
        await self.client.aclose()


def _token_provider(config: BusinessCentralConfig, context: ConnectorContext) -> TokenProvider:
    return token_provider_for(
        config,
        context,
        context_key="bc_token_provider",
        scopes=(BC_SCOPE,),
        ca_file=str(config.ca_file) if config.ca_file else None,
    )


def build_connector(
    config: BusinessCentralConfig, context: ConnectorContext
) -> BusinessCentralERPConnector:
    """A connector instance for one tenant (synchronous form of the factory)."""
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_file))
    import httpx  # with the first instance, not with connector discovery

    http = httpx.AsyncClient(timeout=config.timeout_s, verify=verify)
    client = GraphClient(
        _token_provider(config, context),
        base_url=config.api_root,
        http_client=http,
        connector=context.instance_name,
        max_attempts=config.max_attempts,
        timeout_s=config.timeout_s,
        owns_http=True,
    )
    return BusinessCentralERPConnector(client, config, name=context.instance_name)


async def _build(
    config: BusinessCentralConfig, context: ConnectorContext
) -> BusinessCentralERPConnector:
    return build_connector(config, context)


ERP_SPEC = ConnectorSpec(
    slug="businesscentral.erp",
    kind="businesscentral",
    title="Dynamics 365 Business Central (API v2.0)",
    config_model=BusinessCentralConfig,
    capabilities=frozenset({Capability.ERP}),
    factory=_build,
    description="Vendors, customers, purchase and sales orders, invoices over OData v4 with "
    "msal app-only tokens; governed approvals (through an approval API extension) and "
    "draft vendor bills.",
)

__all__ = [
    "BC_SCOPE",
    "ERP_SPEC",
    "BusinessCentralConfig",
    "BusinessCentralERPConnector",
    "build_connector",
    "odata_string",
]
