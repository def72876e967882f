"""A Dynamics 365 Business Central API v2.0 emulator, served over real HTTPS for tests.

It follows the documented shapes of the calls the ERP connector makes:

- the identity platform: OpenID discovery and ``/oauth2/v2.0/token`` (client credentials,
  scope ``https://api.businesscentral.dynamics.com/.default``), so that msal runs unchanged;
- ``/v2.0/{tenant}/{environment}/api/v2.0/companies`` and, per company, ``vendors``,
  ``customers``, ``companyInformation``, ``purchaseOrders`` (``purchaseOrderLines``),
  ``salesOrders`` (``salesOrderLines``), ``purchaseInvoices`` (``purchaseInvoiceLines``),
  ``salesInvoices`` (``salesInvoiceLines``) and ``purchaseCreditMemos``
  (``purchaseCreditMemoLines``), with the documented property names and status values;
- OData v4 query options: ``$filter`` (eq ne lt le gt ge, and/or, parentheses,
  ``contains``/``startswith``/``endswith``; text compares case-insensitively, as BC's
  collation does), ``$select``, ``$expand`` of lines, ``$orderby``, ``$top``, and
  server-driven paging through ``@odata.nextLink`` (``$skiptoken``) with
  ``Prefer: odata.maxpagesize``;
- ``@odata.etag`` on every entity, a new one on every change; ``If-Match`` checked on PATCH,
  DELETE and bound actions (412 on a mismatch; PATCH and DELETE without it: 428);
- bound actions ``Microsoft.NAV.post`` (purchase invoices and credit memos, sales
  invoices), ``Microsoft.NAV.cancel`` (sales invoices);
- the standard API has no approval actions: like a BC tenant with an API extension, the
  route ``/api/northwind/approvals/v1.0/companies({id})/purchaseOrders({id})`` offers the
  bound actions ``Microsoft.NAV.approve``, ``Microsoft.NAV.reject`` and
  ``Microsoft.NAV.reopen`` (In Review -> Open, In Review -> Draft, Draft/Open -> In Review);
- faults on demand: 429 (``Retry-After``) and 503, 401 for an unknown token, and errors as
  ``{"error": {"code", "message"}}``.

The data are :mod:`tests.fixtures.erp_seed`. Nothing here imports the code under test.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.entra_token import add_token_endpoint
from tests.fakes.serving import serve_app
from tests.fixtures import erp_seed

BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
APPROVALS_ROUTE = "northwind/approvals/v1.0"
_LINES = {
    "purchaseOrders": "purchaseOrderLines",
    "salesOrders": "salesOrderLines",
    "purchaseInvoices": "purchaseInvoiceLines",
    "salesInvoices": "salesInvoiceLines",
    "purchaseCreditMemos": "purchaseCreditMemoLines",
}
_SETS = ("vendors", "customers", *_LINES)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _num(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


# --------------------------------------------------------------------------- $filter


_TOKEN = re.compile(
    r"\s*(?:(\()|(\))|(,)|('(?:[^']|'')*')|"
    r"([0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})|"
    r"([A-Za-z_][\w/]*)|(-?\d{4}-\d{2}-\d{2}(?![\d:T]))|"
    r"(-?\d+(?:\.\d+)?))"
)


class FilterError(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise FilterError(f"cannot parse $filter at {text[pos : pos + 20]!r}")
        pos = match.end()
        lpar, rpar, comma, string, guid, name, day, number = match.groups()
        if lpar:
            out.append(("(", None))
        elif rpar:
            out.append((")", None))
        elif comma:
            out.append((",", None))
        elif string is not None:
            out.append(("lit", string[1:-1].replace("''", "'")))
        elif day:
            out.append(("lit", date.fromisoformat(day)))
        elif guid:
            out.append(("lit", guid.lower()))
        elif number:
            out.append(("lit", Decimal(number)))
        elif name in ("true", "false"):
            out.append(("lit", name == "true"))
        elif name == "null":
            out.append(("lit", None))
        else:
            out.append(("name", name))
    return out


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    if isinstance(right, date) and isinstance(left, str) and left:
        left = date.fromisoformat(left[:10])
    if isinstance(right, Decimal) and isinstance(left, int | float):
        left = Decimal(str(left))
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[
            op
        ]
    except TypeError:
        raise FilterError(f"cannot compare {left!r} {op} {right!r}") from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise FilterError("unexpected end of $filter")
        self.pos += 1
        return token

    def parse(self) -> Any:
        tree = self.or_expr()
        if self.peek() is not None:
            raise FilterError("trailing tokens in $filter")
        return tree

    def or_expr(self) -> Any:
        left = self.and_expr()
        while self.peek() == ("name", "or"):
            self.take()
            left = ("or", left, self.and_expr())
        return left

    def and_expr(self) -> Any:
        left = self.atom()
        while self.peek() == ("name", "and"):
            self.take()
            left = ("and", left, self.atom())
        return left

    def atom(self) -> Any:
        kind, value = self.take()
        if kind == "(":
            inner = self.or_expr()
            if self.take()[0] != ")":
                raise FilterError("missing )")
            return inner
        if kind == "name" and value == "not":
            return ("not", self.atom())
        if kind == "name" and self.peek() == ("(", None):
            self.take()
            _, field_name = self.take()
            self.take()  # ,
            _, literal = self.take()
            if self.take()[0] != ")":
                raise FilterError("missing )")
            if value not in ("contains", "startswith", "endswith"):
                raise FilterError(f"function {value} not supported")
            return ("fn", value, field_name, literal)
        if kind != "name":
            raise FilterError("a comparison starts with a property name")
        _, op = self.take()
        if op not in ("eq", "ne", "lt", "le", "gt", "ge"):
            raise FilterError(f"operator {op} not supported")
        _, literal = self.take()
        return ("cmp", value, op, literal)


def _matches(tree: Any, row: dict[str, Any]) -> bool:
    kind = tree[0]
    if kind == "and":
        return _matches(tree[1], row) and _matches(tree[2], row)
    if kind == "or":
        return _matches(tree[1], row) or _matches(tree[2], row)
    if kind == "not":
        return not _matches(tree[1], row)
    if kind == "fn":
        _, fn, name, literal = tree
        value = str(row.get(name) or "").lower()
        needle = str(literal).lower()
        return {
            "contains": needle in value,
            "startswith": value.startswith(needle),
            "endswith": value.endswith(needle),
        }[fn]
    _, name, op, literal = tree
    if name not in row:
        raise FilterError(f"Could not find a property named '{name}'")
    return _compare(row[name], op, literal)


# --------------------------------------------------------------------------- state


@dataclass
class BCCompany:
    id: str
    name: str
    currency: str = "USD"
    tables: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in _SETS}
    )
    lines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def next_number(self, prefix: str, start: int) -> str:
        value = self.counters.get(prefix, start)
        self.counters[prefix] = value + 1
        return f"{prefix}{value}"


class BusinessCentralEmulator:
    """State and app of the emulator; ``serve()`` runs it with uvicorn over HTTPS."""

    def __init__(
        self,
        *,
        tenant_id: str = "northwind-tenant",
        environment: str = "production",
        client_id: str = "bc-app-id",
        client_secret: str = "bc-app-secret",  # noqa: S107
        page_size: int = 20000,
    ) -> None:
        self.tenant_id = tenant_id
        self.environment = environment
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        self.lock = threading.RLock()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.faults: list[tuple[int, float]] = []
        self.requests: list[tuple[str, str]] = []
        self.companies: dict[str, BCCompany] = {}
        self.base_url = ""
        self.today = date.today()
        self.seed_company = self._seed()
        self._add_company("CRONUS USA, Inc.")
        self.app = self._build_app()

    # ------------------------------------------------------------------ test controls

    @property
    def api_root(self) -> str:
        """``…/v2.0/{tenant}/{environment}/api/v2.0`` of the running emulator."""
        return f"{self.base_url}/v2.0/{self.tenant_id}/{self.environment}/api/v2.0"

    def fail_next(self, count: int, status: int = 429, retry_after: float = 1) -> None:
        """The next ``count`` API requests answer ``status`` with ``Retry-After``."""
        with self.lock:
            self.faults.extend([(status, retry_after)] * count)

    def issue_token(self) -> str:
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens.add(token)
        return token

    def new_purchase_order(
        self, vendor_name: str, amount: Decimal, description: str = "Contract test order"
    ) -> str:
        """A purchase order sent for approval (status In Review), as a buyer would."""
        with self.lock:
            company = self.seed_company
            vendor = next(
                v for v in company.tables["vendors"].values() if v["displayName"] == vendor_name
            )
            order = self._purchase_order(
                company, vendor, "In Review", [(description, Decimal(1), Decimal(amount))]
            )
            return str(order["id"])

    def post_purchase_invoice(self, invoice_id: str) -> None:
        """Post a draft purchase invoice, as an accountant would."""
        with self.lock:
            company = self.seed_company
            self._post(company, "purchaseInvoices", company.tables["purchaseInvoices"][invoice_id])

    # ------------------------------------------------------------------ model

    def _add_company(self, name: str) -> BCCompany:
        company = BCCompany(id=str(uuid.uuid4()), name=name)
        self.companies[company.id] = company
        return company

    def _touch(self, row: dict[str, Any]) -> None:
        version = int(row.get("_version", 0)) + 1
        row["_version"] = version
        raw = f"'{version};{uuid.uuid4().int % 10**12};'"
        row["@odata.etag"] = f'W/"{base64.b64encode(raw.encode()).decode()}"'
        row["lastModifiedDateTime"] = _now()

    def _party(
        self, company: BCCompany, set_name: str, number: str, name: str, email: str
    ) -> dict[str, Any]:
        row = {
            "id": str(uuid.uuid4()),
            "number": number,
            "displayName": name,
            "type": "Company",
            "addressLine1": "",
            "addressLine2": "",
            "city": "",
            "state": "",
            "country": "US",
            "postalCode": "",
            "phoneNumber": "",
            "email": email,
            "website": "",
            "taxRegistrationNumber": "",
            "currencyId": "00000000-0000-0000-0000-000000000000",
            "currencyCode": "USD",
            "paymentTermsId": "",
            "paymentMethodId": "",
            "taxLiable": False,
            "blocked": " ",
            "balance": 0,
        }
        self._touch(row)
        company.tables[set_name][row["id"]] = row
        return row

    def _set_lines(
        self,
        company: BCCompany,
        set_name: str,
        document: dict[str, Any],
        lines: list[tuple[str, Decimal, Decimal]],
    ) -> None:
        rows = []
        for seq, (description, quantity, price) in enumerate(lines, start=1):
            amount = quantity * price
            row = {
                "id": str(uuid.uuid4()),
                "documentId": document["id"],
                "sequence": seq * 10000,
                "itemId": "00000000-0000-0000-0000-000000000000",
                "accountId": "00000000-0000-0000-0000-000000000000",
                "lineType": "Account",
                "lineObjectNumber": "6100",
                "description": description,
                "unitOfMeasureCode": "",
                "quantity": _num(quantity),
                "discountAmount": 0,
                "discountPercent": 0,
                "amountExcludingTax": _num(amount),
                "taxCode": "",
                "taxPercent": 0,
                "totalTaxAmount": 0,
                "amountIncludingTax": _num(amount),
                "netAmount": _num(amount),
            }
            row["directUnitCost" if set_name.startswith("purchase") else "unitPrice"] = _num(price)
            self._touch(row)
            rows.append(row)
        company.lines[document["id"]] = rows
        self._totals(company, document)

    def _totals(self, company: BCCompany, document: dict[str, Any]) -> None:
        total = sum(
            (Decimal(str(r["amountIncludingTax"])) for r in company.lines.get(document["id"], [])),
            Decimal(0),
        )
        document["totalAmountExcludingTax"] = _num(total)
        document["totalTaxAmount"] = 0
        document["totalAmountIncludingTax"] = _num(total)
        if "remainingAmount" in document and document["status"] in ("Draft", "In Review"):
            document["remainingAmount"] = _num(total)
        self._touch(document)

    def _purchase_order(
        self,
        company: BCCompany,
        vendor: dict[str, Any],
        status: str,
        lines: list[tuple[str, Decimal, Decimal]],
    ) -> dict[str, Any]:
        row = {
            "id": str(uuid.uuid4()),
            "number": company.next_number("", erp_seed.FIRST_PO_NUMBER),
            "orderDate": self.today.isoformat(),
            "postingDate": self.today.isoformat(),
            "vendorId": vendor["id"],
            "vendorNumber": vendor["number"],
            "vendorName": vendor["displayName"],
            "payToName": vendor["displayName"],
            "payToVendorId": vendor["id"],
            "payToVendorNumber": vendor["number"],
            "currencyId": "00000000-0000-0000-0000-000000000000",
            "currencyCode": "USD",
            "pricesIncludeTax": False,
            "paymentTermsId": "",
            "purchaser": "",
            "requestedReceiptDate": "0001-01-01",
            "discountAmount": 0,
            "discountAppliedBeforeTax": True,
            "fullyReceived": False,
            "status": status,
        }
        company.tables["purchaseOrders"][row["id"]] = row
        self._set_lines(company, "purchaseOrders", row, lines)
        return row

    def _seed(self) -> BCCompany:
        company = self._add_company(erp_seed.COMPANY_NAME)
        parties: dict[str, dict[str, Any]] = {}
        counters = {"vendor": 10000, "customer": 10000}
        for seed_party in erp_seed.PARTIES:
            counters[seed_party.role] += 10000
            set_name = "vendors" if seed_party.role == "vendor" else "customers"
            parties[seed_party.key] = self._party(
                company, set_name, str(counters[seed_party.role]), seed_party.name, seed_party.email
            )
        status_of = {"draft": "Draft", "pending_approval": "In Review", "approved": "Open"}
        for seed_order in erp_seed.ORDERS:
            lines = [(x.description, x.quantity, x.unit_price) for x in seed_order.lines]
            party = parties[seed_order.party]
            if seed_order.kind == "purchase":
                if seed_order.status == "draft":
                    continue  # numbered last, after the ones that were sent for approval
                self._purchase_order(company, party, status_of[seed_order.status], lines)
            else:
                row = {
                    "id": str(uuid.uuid4()),
                    "number": company.next_number("S-ORD", 101001),
                    "externalDocumentNumber": "",
                    "orderDate": self.today.isoformat(),
                    "postingDate": self.today.isoformat(),
                    "customerId": party["id"],
                    "customerNumber": party["number"],
                    "customerName": party["displayName"],
                    "currencyCode": "USD",
                    "pricesIncludeTax": False,
                    "fullyShipped": False,
                    "status": status_of[seed_order.status],
                }
                company.tables["salesOrders"][row["id"]] = row
                self._set_lines(company, "salesOrders", row, lines)
        for seed_order in erp_seed.ORDERS:
            if seed_order.kind == "purchase" and seed_order.status == "draft":
                self._purchase_order(
                    company,
                    parties[seed_order.party],
                    "Draft",
                    [(x.description, x.quantity, x.unit_price) for x in seed_order.lines],
                )
        for seed_invoice in erp_seed.INVOICES:
            party = parties[seed_invoice.party]
            payable = seed_invoice.kind == "payable"
            set_name = "purchaseInvoices" if payable else "salesInvoices"
            status = {"draft": "Draft", "open": "Open", "paid": "Paid"}[seed_invoice.status]
            row = self._invoice_row(
                company,
                set_name,
                party,
                seed_invoice.invoice_date(self.today),
                seed_invoice.due_date(self.today),
                seed_invoice.reference or "",
            )
            company.tables[set_name][row["id"]] = row
            self._set_lines(
                company,
                set_name,
                row,
                [(seed_invoice.description, Decimal(1), seed_invoice.amount)],
            )
            row["status"] = status
            if not payable:
                row["remainingAmount"] = _num(seed_invoice.amount_due)
            self._touch(row)
        return company

    def _invoice_row(
        self,
        company: BCCompany,
        set_name: str,
        party: dict[str, Any],
        invoice_date: date | None,
        due_date: date | None,
        reference: str,
    ) -> dict[str, Any]:
        day = (invoice_date or self.today).isoformat()
        due = (due_date or invoice_date or self.today).isoformat()
        if set_name == "purchaseInvoices":
            return {
                "id": str(uuid.uuid4()),
                "number": company.next_number("PI", 108001),
                "invoiceDate": day,
                "postingDate": day,
                "dueDate": due,
                "vendorInvoiceNumber": reference,
                "vendorId": party["id"],
                "vendorNumber": party["number"],
                "vendorName": party["displayName"],
                "payToName": party["displayName"],
                "payToVendorId": party["id"],
                "currencyCode": "USD",
                "pricesIncludeTax": False,
                "discountAmount": 0,
                "status": "Draft",
            }
        return {
            "id": str(uuid.uuid4()),
            "number": company.next_number("S-INV", 103001),
            "externalDocumentNumber": reference,
            "invoiceDate": day,
            "postingDate": day,
            "dueDate": due,
            "customerId": party["id"],
            "customerNumber": party["number"],
            "customerName": party["displayName"],
            "currencyCode": "USD",
            "pricesIncludeTax": False,
            "discountAmount": 0,
            "remainingAmount": 0,
            "status": "Draft",
        }

    def _post(self, company: BCCompany, set_name: str, row: dict[str, Any]) -> Response | None:
        if row["status"] not in ("Draft", "In Review"):
            return _error(
                400,
                "Application_DialogException",
                f"The document {row['number']} is already posted.",
            )
        if not company.lines.get(row["id"]):
            return _error(400, "Application_DialogException", "There is nothing to post.")
        if set_name == "purchaseInvoices" and not row.get("vendorInvoiceNumber"):
            return _error(
                400,
                "Application_FieldValidationException",
                "Vendor Invoice No. must have a value in Purchase Header.",
            )
        row["status"] = "Open"
        if "remainingAmount" in row:
            row["remainingAmount"] = row["totalAmountIncludingTax"]
        self._touch(row)
        return None

    # ------------------------------------------------------------------ querying

    def _shape(
        self,
        company: BCCompany,
        set_name: str,
        row: dict[str, Any],
        select: list[str] | None,
        expand: list[str],
    ) -> dict[str, Any]:
        out = {k: v for k, v in row.items() if not k.startswith("_")}
        if select:
            out = {k: v for k, v in out.items() if k in select or k == "@odata.etag"}
        for name in expand:
            if name != _LINES.get(set_name):
                raise FilterError(f"Could not find a property named '{name}'")
            out[name] = [
                {k: v for k, v in line.items() if not k.startswith("_")}
                for line in company.lines.get(row["id"], [])
            ]
        return out

    def _query(
        self, company: BCCompany, set_name: str, request: Request, base: str
    ) -> JSONResponse:
        params = request.query_params
        rows = list(company.tables[set_name].values())
        if "$filter" in params:
            tree = _Parser(params["$filter"]).parse()
            rows = [r for r in rows if _matches(tree, r)]
        if "$orderby" in params:
            for clause in reversed(params["$orderby"].split(",")):
                name, _, direction = clause.strip().partition(" ")
                rows.sort(
                    key=lambda r, n=name: (r.get(n) is None, r.get(n) or ""),
                    reverse=direction.lower() == "desc",
                )
        if "$top" in params:
            rows = rows[: int(params["$top"])]
        page = self.page_size
        prefer = request.headers.get("Prefer", "")
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        if match:
            page = min(page, int(match.group(1)))
        skip = int(params.get("$skiptoken", "0") or 0)
        chunk = rows[skip : skip + page]
        select = params["$select"].split(",") if "$select" in params else None
        expand = params["$expand"].split(",") if "$expand" in params else []
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#companies({company.id})/{set_name}",
            "value": [self._shape(company, set_name, r, select, expand) for r in chunk],
        }
        if skip + page < len(rows):
            kept = [f"{k}={quote(v, safe='')}" for k, v in params.items() if k != "$skiptoken"]
            kept.append(f"$skiptoken={skip + page}")
            body["@odata.nextLink"] = f"{base}/companies({company.id})/{set_name}?" + "&".join(kept)
        return JSONResponse(body)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> FastAPI:  # noqa: C901 - one route table, read top to bottom
        app = FastAPI()
        emulator = self
        prefix = "/v2.0/{tenant}/{environment}/api"

        add_token_endpoint(
            app, emulator, authority_root=lambda: emulator.base_url, required_scope=BC_SCOPE
        )

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Any:
            if not request.url.path.startswith("/v2.0/"):
                return await call_next(request)
            with emulator.lock:
                emulator.requests.append((request.method, request.url.path))
                fault = emulator.faults.pop(0) if emulator.faults else None
            if fault is not None:
                status, retry_after = fault
                return _error(
                    status,
                    "Application_TooManyRequests" if status == 429 else "ServiceUnavailable",
                    "Too many requests reached. Please try again later."
                    if status == 429
                    else "The service is temporarily unavailable.",
                    headers={"Retry-After": str(int(retry_after))},
                )
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in emulator.tokens:
                return _error(
                    401,
                    "Authentication_InvalidCredentials",
                    "The server has rejected the client credentials.",
                )
            parts = request.url.path.split("/")
            if len(parts) < 4 or parts[2] != emulator.tenant_id or parts[3] != emulator.environment:
                return _error(404, "NoEnvironment", "The environment does not exist.")
            try:
                return await call_next(request)
            except FilterError as exc:
                return _error(400, "BadRequest", str(exc))

        def company_of(company_id: str) -> BCCompany | Response:
            company = emulator.companies.get(company_id.lower())
            if company is None:
                return _error(404, "Internal_CompanyNotFound", f"Cannot find company {company_id}.")
            return company

        def not_found(set_name: str) -> Response:
            return _error(
                404,
                "Internal_RecordNotFound",
                f"The {set_name} does not exist. Identification fields and values: Id",
            )

        def check_if_match(
            request: Request, row: dict[str, Any], *, required: bool
        ) -> Response | None:
            value = request.headers.get("If-Match")
            if value is None:
                return (
                    _error(428, "Request_IfMatchMissing", "The If-Match header is required.")
                    if required
                    else None
                )
            if value != "*" and value != row["@odata.etag"]:
                return _error(
                    412, "Request_EntityChanged", "Another user has already changed the record."
                )
            return None

        def api_base(request: Request) -> str:
            return str(request.url).split("/companies", 1)[0].split("?", 1)[0]

        @app.get(prefix + "/v2.0/companies")
        async def list_companies(request: Request) -> Any:
            return {
                "@odata.context": f"{api_base(request)}/$metadata#companies",
                "value": [
                    {
                        "id": c.id,
                        "systemVersion": "24.0.16410.0",
                        "timestamp": 1,
                        "name": c.name,
                        "displayName": c.name,
                        "businessProfileId": "",
                        "systemCreatedAt": _now(),
                        "systemCreatedBy": str(uuid.UUID(int=0)),
                        "systemModifiedAt": _now(),
                        "systemModifiedBy": str(uuid.UUID(int=0)),
                    }
                    for c in emulator.companies.values()
                ],
            }

        @app.get(prefix + "/v2.0/companies({company_id})/companyInformation")
        async def company_information(company_id: str) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            return {
                "value": [
                    {
                        "id": company.id,
                        "displayName": company.name,
                        "currencyCode": company.currency,
                        "country": "US",
                        "lastModifiedDateTime": _now(),
                    }
                ]
            }

        @app.get(prefix + "/v2.0/companies({company_id})/{set_name}({key})")
        async def get_one(company_id: str, set_name: str, key: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            with emulator.lock:
                row = company.tables.get(set_name, {}).get(key.lower())
                if row is None:
                    return not_found(set_name)
                params = request.query_params
                select = params["$select"].split(",") if "$select" in params else None
                expand = params["$expand"].split(",") if "$expand" in params else []
                return JSONResponse(emulator._shape(company, set_name, row, select, expand))

        @app.get(prefix + "/v2.0/companies({company_id})/{set_name}({key})/{lines}")
        async def list_lines(company_id: str, set_name: str, key: str, lines: str) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            with emulator.lock:
                row = company.tables.get(set_name, {}).get(key.lower())
                if row is None or _LINES.get(set_name) != lines:
                    return not_found(set_name)
                return {
                    "value": [
                        {k: v for k, v in line.items() if not k.startswith("_")}
                        for line in company.lines.get(row["id"], [])
                    ]
                }

        @app.get(prefix + "/v2.0/companies({company_id})/{set_name}")
        async def list_set(company_id: str, set_name: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            if set_name not in _SETS:
                return _error(404, "BadRequest_NotFound", f"No HTTP resource {set_name}.")
            with emulator.lock:
                return emulator._query(company, set_name, request, api_base(request))

        @app.post(prefix + "/v2.0/companies({company_id})/{set_name}")
        async def create(company_id: str, set_name: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            body = await request.json()
            with emulator.lock:
                if set_name == "purchaseInvoices":
                    vendor = company.tables["vendors"].get(str(body.get("vendorId", "")).lower())
                    if vendor is None:
                        return _error(400, "Internal_RecordNotFound", "The vendor does not exist.")
                    row = emulator._invoice_row(
                        company,
                        set_name,
                        vendor,
                        date.fromisoformat(body["invoiceDate"])
                        if body.get("invoiceDate")
                        else None,
                        date.fromisoformat(body["dueDate"]) if body.get("dueDate") else None,
                        body.get("vendorInvoiceNumber", ""),
                    )
                    if not body.get("dueDate"):
                        row["dueDate"] = (
                            date.fromisoformat(row["invoiceDate"])
                            + timedelta(days=erp_seed.NET_DAYS)
                        ).isoformat()
                elif set_name == "purchaseCreditMemos":
                    vendor = company.tables["vendors"].get(str(body.get("vendorId", "")).lower())
                    if vendor is None:
                        return _error(400, "Internal_RecordNotFound", "The vendor does not exist.")
                    invoice = company.tables["purchaseInvoices"].get(
                        str(body.get("invoiceId", "")).lower()
                    )
                    day = body.get("creditMemoDate") or emulator.today.isoformat()
                    row = {
                        "id": str(uuid.uuid4()),
                        "number": company.next_number("PCM", 1001),
                        "creditMemoDate": day,
                        "postingDate": day,
                        "dueDate": day,
                        "vendorId": vendor["id"],
                        "vendorNumber": vendor["number"],
                        "vendorName": vendor["displayName"],
                        "invoiceId": invoice["id"]
                        if invoice
                        else "00000000-0000-0000-0000-000000000000",
                        "invoiceNumber": invoice["number"] if invoice else "",
                        "currencyCode": "USD",
                        "pricesIncludeTax": False,
                        "status": "Draft",
                    }
                else:
                    return _error(
                        405,
                        "BadRequest_MethodNotAllowed",
                        f"POST is not allowed on {set_name} here.",
                    )
                company.tables[set_name][row["id"]] = row
                company.lines[row["id"]] = []
                emulator._totals(company, row)
                return JSONResponse(
                    emulator._shape(company, set_name, row, None, []), status_code=201
                )

        @app.post(prefix + "/v2.0/companies({company_id})/{set_name}({key})/{lines}")
        async def create_line(
            company_id: str, set_name: str, key: str, lines: str, request: Request
        ) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            with emulator.lock:
                row = company.tables.get(set_name, {}).get(key.lower())
                if lines.startswith("Microsoft.NAV."):
                    return await bound_action(company, set_name, row, lines, request)
            body = await request.json()
            with emulator.lock:
                if row is None or _LINES.get(set_name) != lines:
                    return not_found(set_name)
                if row["status"] not in ("Draft",):
                    return _error(
                        400,
                        "Application_DialogException",
                        "Status must be equal to 'Open' in Purchase Header.",
                    )
                if body.get("lineType") == "Account" and not body.get("lineObjectNumber"):
                    return _error(
                        400,
                        "Application_FieldValidationException",
                        "No. must have a value in Purchase Line.",
                    )
                quantity = Decimal(str(body.get("quantity", 1)))
                price = Decimal(str(body.get("directUnitCost", body.get("unitPrice", 0))))
                existing = company.lines.setdefault(row["id"], [])
                line = {
                    "id": str(uuid.uuid4()),
                    "documentId": row["id"],
                    "sequence": (len(existing) + 1) * 10000,
                    "lineType": body.get("lineType", "Comment"),
                    "lineObjectNumber": body.get("lineObjectNumber", ""),
                    "description": body.get("description", ""),
                    "quantity": _num(quantity),
                    "directUnitCost": _num(price),
                    "amountExcludingTax": _num(quantity * price),
                    "amountIncludingTax": _num(quantity * price),
                    "totalTaxAmount": 0,
                    "netAmount": _num(quantity * price),
                }
                emulator._touch(line)
                existing.append(line)
                emulator._totals(company, row)
                return JSONResponse(
                    {k: v for k, v in line.items() if not k.startswith("_")}, status_code=201
                )

        async def bound_action(
            company: BCCompany,
            set_name: str,
            row: dict[str, Any] | None,
            action: str,
            request: Request,
        ) -> Any:
            if row is None:
                return not_found(set_name)
            problem = check_if_match(request, row, required=False)
            if problem is not None:
                return problem
            name = action.removeprefix("Microsoft.NAV.")
            if name == "post" and set_name in (
                "purchaseInvoices",
                "salesInvoices",
                "purchaseCreditMemos",
            ):
                failed = emulator._post(company, set_name, row)
                return failed or Response(status_code=204)
            if name == "cancel" and set_name == "salesInvoices":
                if row["status"] != "Open":
                    return _error(
                        400, "Application_DialogException", "Only open invoices can be cancelled."
                    )
                row["status"] = "Canceled"
                row["remainingAmount"] = 0
                emulator._touch(row)
                return Response(status_code=204)
            if name == "receiveAndInvoice" and set_name == "purchaseOrders":
                if row["status"] != "Open":
                    return _error(
                        400,
                        "Application_DialogException",
                        "Status must be equal to 'Released' in Purchase Header.",
                    )
                row["fullyReceived"] = True
                emulator._touch(row)
                return Response(status_code=204)
            return _error(
                400, "BadRequest_MethodNotFound", f"The action {action} is not bound to {set_name}."
            )

        @app.patch(prefix + "/v2.0/companies({company_id})/{set_name}({key})")
        async def patch(company_id: str, set_name: str, key: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            body = await request.json()
            with emulator.lock:
                row = company.tables.get(set_name, {}).get(key.lower())
                if row is None:
                    return not_found(set_name)
                problem = check_if_match(request, row, required=True)
                if problem is not None:
                    return problem
                read_only = {
                    "id",
                    "number",
                    "status",
                    "lastModifiedDateTime",
                    "totalAmountIncludingTax",
                    "remainingAmount",
                }
                bad = sorted(set(body) & read_only)
                if bad:
                    return _error(400, "BadRequest", f"The property '{bad[0]}' is read-only.")
                row.update(body)
                emulator._touch(row)
                return JSONResponse(emulator._shape(company, set_name, row, None, []))

        @app.delete(prefix + "/v2.0/companies({company_id})/{set_name}({key})")
        async def delete(company_id: str, set_name: str, key: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            with emulator.lock:
                row = company.tables.get(set_name, {}).get(key.lower())
                if row is None:
                    return not_found(set_name)
                problem = check_if_match(request, row, required=True)
                if problem is not None:
                    return problem
                if row.get("status") not in (None, "Draft"):
                    return _error(
                        400, "Application_DialogException", "You cannot delete a posted document."
                    )
                del company.tables[set_name][row["id"]]
                company.lines.pop(row["id"], None)
                return Response(status_code=204)

        approvals = f"/v2.0/{{tenant}}/{{environment}}/api/{APPROVALS_ROUTE}"

        @app.post(approvals + "/companies({company_id})/purchaseOrders({key})/{action}")
        async def approval(company_id: str, key: str, action: str, request: Request) -> Any:
            company = company_of(company_id)
            if isinstance(company, Response):
                return company
            with emulator.lock:
                row = company.tables["purchaseOrders"].get(key.lower())
                if row is None:
                    return not_found("purchaseOrders")
                problem = check_if_match(request, row, required=False)
                if problem is not None:
                    return problem
                moves = {
                    "Microsoft.NAV.approve": ({"In Review"}, "Open"),
                    "Microsoft.NAV.reject": ({"In Review"}, "Draft"),
                    "Microsoft.NAV.reopen": ({"Draft", "Open"}, "In Review"),
                }
                if action not in moves:
                    return _error(
                        400,
                        "BadRequest_MethodNotFound",
                        f"The action {action} is not bound to purchaseOrders.",
                    )
                allowed, target = moves[action]
                if row["status"] not in allowed:
                    return _error(
                        400,
                        "Application_DialogException",
                        f"The purchase order {row['number']} is {row['status']}.",
                    )
                if action == "Microsoft.NAV.reopen" and row.get("fullyReceived"):
                    return _error(
                        400, "Application_DialogException", "A received order cannot be reopened."
                    )
                row["status"] = target
                emulator._touch(row)
                return Response(status_code=204)

        return app

    # ------------------------------------------------------------------ serving

    @contextlib.contextmanager
    def serve(self, *, cert_file: Path, key_file: Path) -> Iterator[str]:
        """Run over HTTPS with uvicorn in a thread; yield the API root (…/api/v2.0)."""
        with serve_app(
            self.app, name="Business Central emulator", cert_file=cert_file, key_file=key_file
        ) as port:
            self.base_url = f"https://127.0.0.1:{port}"
            yield self.api_root


__all__ = ["APPROVALS_ROUTE", "BC_SCOPE", "BusinessCentralEmulator"]
