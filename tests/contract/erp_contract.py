"""The ERP capability contract: every ERPConnector must pass these tests.

The ERP under test holds the business data of :mod:`tests.fixtures.erp_seed`. A subclass
provides these fixtures:

- ``erp_connector``: a connector for the seeded company;
- ``new_purchase_order``: ``await new_purchase_order(vendor_name, amount)`` enters a new
  purchase order awaiting approval the way a buyer would, and returns its id;
- ``post_vendor_bill``: ``await post_vendor_bill(invoice_id)`` posts a draft vendor bill
  the way an accountant would.

and may set ``payable_amount_due_exact = False`` when the ERP's API does not show partial
payments of vendor bills (Business Central's standard API).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from integrations.base import (
    ERPConnector,
    InvoiceKind,
    InvoiceQuery,
    InvoiceStatus,
    OrderKind,
    OrderStatus,
    PartyRole,
    VendorBillLine,
    VendorBillRequest,
)
from integrations.errors import ConnectorConflictError, ConnectorNotFoundError
from tests.fixtures import erp_seed

NewPurchaseOrder = Callable[[str, Decimal], Awaitable[str]]
PostVendorBill = Callable[[str], Awaitable[Any]]


def _key(kind: str, party: str, amount: Decimal) -> tuple[str, str, Decimal]:
    return kind, party, Decimal(amount).quantize(Decimal("0.01"))


def _seeded(keys: set[str]) -> set[tuple[str, str, Decimal]]:
    out = set()
    for key in keys:
        seed = erp_seed.invoice(key)
        out.add(_key(seed.kind, erp_seed.party(seed.party).name, seed.amount))
    return out


async def _vendor_id(connector: ERPConnector, name: str) -> str:
    found = await connector.find_parties(name=name, role=PartyRole.VENDOR)
    assert found, f"vendor {name} not found"
    return found[0].id


class ERPContract:
    payable_amount_due_exact = True

    # ------------------------------------------------------------------ basics

    async def test_is_an_erp_connector(self, erp_connector: ERPConnector) -> None:
        assert isinstance(erp_connector, ERPConnector)
        health = await erp_connector.check()
        assert health.status.value == "ok", health.detail

    async def test_lists_the_company(self, erp_connector: ERPConnector) -> None:
        companies = await erp_connector.list_companies()
        mine = [c for c in companies if c.name == erp_seed.COMPANY_NAME]
        assert mine and mine[0].currency == erp_seed.CURRENCY

    # ------------------------------------------------------------------ parties

    async def test_finds_parties_by_partial_name_any_case(
        self, erp_connector: ERPConnector
    ) -> None:
        found = await erp_connector.find_parties(name="contoso")
        assert [p.name for p in found] == ["Contoso Ltd"]
        contoso = found[0]
        assert contoso.role is PartyRole.VENDOR
        assert contoso.email == "ap@contoso.example"
        assert contoso.email_domains == ["contoso.example"]

    async def test_finds_parties_by_address_and_by_domain(
        self, erp_connector: ERPConnector
    ) -> None:
        exact = await erp_connector.find_parties(email="Finance@Adventure-Works.example")
        assert [(p.name, p.role) for p in exact] == [("Adventure Works", PartyRole.CUSTOMER)]
        by_domain = await erp_connector.find_parties(email="@fabrikam.example")
        assert [p.name for p in by_domain] == ["Fabrikam Inc"]
        assert await erp_connector.find_parties(email="nobody@unknown.example") == []

    async def test_role_filter(self, erp_connector: ERPConnector) -> None:
        vendors = {p.name for p in await erp_connector.find_parties(role=PartyRole.VENDOR)}
        customers = {p.name for p in await erp_connector.find_parties(role=PartyRole.CUSTOMER)}
        assert {p.name for p in erp_seed.PARTIES if p.role == "vendor"} <= vendors
        assert {p.name for p in erp_seed.PARTIES if p.role == "customer"} <= customers
        assert not vendors & customers
        assert await erp_connector.find_parties(name="Contoso", role=PartyRole.CUSTOMER) == []

    async def test_get_party_round_trip_and_missing(self, erp_connector: ERPConnector) -> None:
        vendor_id = await _vendor_id(erp_connector, "Litware")
        party = await erp_connector.get_party(vendor_id)
        assert party.name == "Litware Supplies" and party.id == vendor_id
        with pytest.raises(ConnectorNotFoundError):
            await erp_connector.get_party(await self.missing_id(erp_connector, vendor_id))

    async def missing_id(self, connector: ERPConnector, existing: str) -> str:
        return "999999" if existing.isdigit() else str(uuid.uuid4())

    # ------------------------------------------------------------------ orders

    async def test_purchase_orders_awaiting_approval(self, erp_connector: ERPConnector) -> None:
        pending = await erp_connector.list_orders(
            OrderKind.PURCHASE, status=OrderStatus.PENDING_APPROVAL
        )
        by_number = {o.number: o for o in pending}
        servers = by_number[erp_seed.po_number("po-servers")]
        assert servers.party_name == "Contoso Ltd"
        assert servers.total == Decimal("12500")
        assert servers.status == OrderStatus.PENDING_APPROVAL
        assert [(line.description, line.quantity, line.amount) for line in servers.lines] == [
            ("Rack servers", Decimal(5), Decimal(12500))
        ]
        assert erp_seed.po_number("po-consulting") in by_number
        assert erp_seed.po_number("po-chairs") not in by_number  # approved already
        assert all(o.status == OrderStatus.PENDING_APPROVAL for o in pending)

    async def test_order_by_number_and_by_party(self, erp_connector: ERPConnector) -> None:
        number = erp_seed.po_number("po-chairs")
        found = await erp_connector.list_orders(OrderKind.PURCHASE, number=number)
        assert [(o.number, o.status, o.total) for o in found] == [
            (number, OrderStatus.APPROVED, Decimal(3000))
        ]
        again = await erp_connector.get_order(OrderKind.PURCHASE, found[0].id)
        assert again.number == number and again.etag
        contoso = await _vendor_id(erp_connector, "Contoso")
        of_contoso = await erp_connector.list_orders(OrderKind.PURCHASE, party_id=contoso)
        numbers = {o.number for o in of_contoso}
        assert {erp_seed.po_number("po-servers"), number} <= numbers
        assert all(o.party_id == contoso for o in of_contoso)
        with pytest.raises(ConnectorNotFoundError):
            await erp_connector.get_order(
                OrderKind.PURCHASE, await self.missing_id(erp_connector, found[0].id)
            )

    async def test_sales_orders(self, erp_connector: ERPConnector) -> None:
        sales = await erp_connector.list_orders(OrderKind.SALE)
        seen = {(o.party_name, o.total, o.status) for o in sales}
        assert ("Adventure Works", Decimal(25000), OrderStatus.PENDING_APPROVAL) in seen
        assert ("Tailspin Toys", Decimal(7500), OrderStatus.APPROVED) in seen

    # ------------------------------------------------------------------ invoices

    async def test_overdue_payables_and_receivables(self, erp_connector: ERPConnector) -> None:
        today = date.today()
        for kind in (InvoiceKind.PAYABLE, InvoiceKind.RECEIVABLE):
            overdue = await erp_connector.list_invoices(InvoiceQuery(kind=kind, overdue_on=today))
            got = {_key(i.kind.value, i.party_name, i.total) for i in overdue}
            assert got == _seeded(erp_seed.overdue(kind.value, today))
            for invoice in overdue:
                assert invoice.is_overdue(today), invoice
                assert invoice.status == InvoiceStatus.OPEN and invoice.is_posted

    async def test_overdue_over_an_amount(self, erp_connector: ERPConnector) -> None:
        today = date.today()
        big = await erp_connector.list_invoices(
            InvoiceQuery(kind=InvoiceKind.PAYABLE, overdue_on=today, min_amount=Decimal(10000))
        )
        assert {_key(i.kind.value, i.party_name, i.total) for i in big} == _seeded(
            erp_seed.overdue("payable", today, min_amount=Decimal(10000))
        )

    async def test_invoice_facts(self, erp_connector: ERPConnector) -> None:
        today = date.today()
        invoices = await erp_connector.list_invoices(InvoiceQuery(limit=1000))
        by_key = {_key(i.kind.value, i.party_name, i.total): i for i in invoices}
        for seed in erp_seed.INVOICES:
            invoice = by_key[_key(seed.kind, erp_seed.party(seed.party).name, seed.amount)]
            assert invoice.status == seed.status, seed.key
            assert invoice.is_posted == (seed.status != "draft"), seed.key
            if seed.status != "draft":
                assert invoice.invoice_date == seed.invoice_date(today), seed.key
                assert invoice.due_date == seed.due_date(today), seed.key
            if seed.reference:
                assert invoice.reference == seed.reference, seed.key
            if seed.kind == "payable" and seed.paid and not self.payable_amount_due_exact:
                continue
            if seed.status != "draft":
                assert invoice.amount_due == seed.amount_due, seed.key

    async def test_unpaid_party_and_reference_filters(self, erp_connector: ERPConnector) -> None:
        fabrikam = await _vendor_id(erp_connector, "Fabrikam")
        unpaid = await erp_connector.list_invoices(
            InvoiceQuery(party_id=fabrikam, unpaid_only=True)
        )
        assert [(i.party_name, i.total) for i in unpaid] == [("Fabrikam Inc", Decimal(11000))]
        by_ref = await erp_connector.list_invoices(InvoiceQuery(reference="CON-7781"))
        assert [(i.reference, i.total) for i in by_ref] == [("CON-7781", Decimal(15000))]
        again = await erp_connector.get_invoice(by_ref[0].id)
        assert again.total == Decimal(15000) and again.kind is InvoiceKind.PAYABLE
        limited = await erp_connector.list_invoices(InvoiceQuery(limit=2))
        assert len(limited) == 2

    # ------------------------------------------------------------------ approvals

    async def test_approve_with_etag_is_idempotent(
        self, erp_connector: ERPConnector, new_purchase_order: NewPurchaseOrder
    ) -> None:
        order_id = await new_purchase_order("Fabrikam Inc", Decimal(2500))
        order = await erp_connector.get_order(OrderKind.PURCHASE, order_id)
        assert order.status == OrderStatus.PENDING_APPROVAL and order.total == Decimal(2500)
        approved = await erp_connector.approve_purchase_order(order_id, etag=order.etag)
        assert approved.status == OrderStatus.APPROVED
        again = await erp_connector.approve_purchase_order(order_id)
        assert again.status == OrderStatus.APPROVED

    async def test_stale_etag_changes_nothing(
        self, erp_connector: ERPConnector, new_purchase_order: NewPurchaseOrder
    ) -> None:
        order_id = await new_purchase_order("Contoso Ltd", Decimal(900))
        order = await erp_connector.get_order(OrderKind.PURCHASE, order_id)
        stale = await self.stale_etag(order.etag)
        with pytest.raises(ConnectorConflictError):
            await erp_connector.approve_purchase_order(order_id, etag=stale)
        after = await erp_connector.get_order(OrderKind.PURCHASE, order_id)
        assert after.status == OrderStatus.PENDING_APPROVAL

    async def stale_etag(self, etag: str | None) -> str:
        assert etag
        return "1" if etag.isdigit() else 'W/"JzE7MTsn"'

    async def test_reject_then_reopen(
        self, erp_connector: ERPConnector, new_purchase_order: NewPurchaseOrder
    ) -> None:
        order_id = await new_purchase_order("Litware Supplies", Decimal(450))
        rejected = await erp_connector.reject_purchase_order(order_id, reason="Over budget")
        assert rejected.status not in (OrderStatus.PENDING_APPROVAL, OrderStatus.APPROVED)
        with pytest.raises(ConnectorConflictError):
            await erp_connector.approve_purchase_order(order_id)
        reopened = await erp_connector.reopen_purchase_order(order_id)
        assert reopened.status == OrderStatus.PENDING_APPROVAL

    async def test_approval_reopened_while_unprocessed(
        self, erp_connector: ERPConnector, new_purchase_order: NewPurchaseOrder
    ) -> None:
        order_id = await new_purchase_order("Contoso Ltd", Decimal(1200))
        await erp_connector.approve_purchase_order(order_id)
        reopened = await erp_connector.reopen_purchase_order(order_id)
        assert reopened.status == OrderStatus.PENDING_APPROVAL

    # ------------------------------------------------------------------ vendor bills

    async def test_draft_vendor_bill_is_idempotent_and_deletable(
        self, erp_connector: ERPConnector
    ) -> None:
        vendor = await _vendor_id(erp_connector, "Litware")
        key = uuid.uuid4().hex
        request = VendorBillRequest(
            vendor_id=vendor,
            vendor_reference=f"LIT-{key[:6]}",
            invoice_date=date.today(),
            due_date=date.today() + timedelta(days=30),
            lines=[
                VendorBillLine(
                    description="Toner cartridges", quantity=Decimal(3), unit_price=Decimal("80")
                )
            ],
            idempotency_key=key,
        )
        bill = await erp_connector.create_draft_vendor_bill(request)
        again = await erp_connector.create_draft_vendor_bill(request)
        assert again.id == bill.id
        assert bill.status == InvoiceStatus.DRAFT and not bill.is_posted
        assert bill.kind is InvoiceKind.PAYABLE and bill.total == Decimal(240)
        assert bill.party_id == vendor
        await erp_connector.delete_draft_vendor_bill(bill.id)
        await erp_connector.delete_draft_vendor_bill(bill.id)  # twice is not an error
        try:
            gone = await erp_connector.get_invoice(bill.id)
        except ConnectorNotFoundError:
            return
        assert gone.status == InvoiceStatus.CANCELLED

    async def test_posted_bill_takes_a_credit_memo(
        self, erp_connector: ERPConnector, post_vendor_bill: PostVendorBill
    ) -> None:
        vendor = await _vendor_id(erp_connector, "Litware")
        key = uuid.uuid4().hex
        bill = await erp_connector.create_draft_vendor_bill(
            VendorBillRequest(
                vendor_id=vendor,
                vendor_reference=f"LIT-{key[:6]}",
                invoice_date=date.today(),
                lines=[VendorBillLine(description="Workshop catering", unit_price=Decimal(640))],
                idempotency_key=key,
            )
        )
        await post_vendor_bill(bill.id)
        posted = await erp_connector.get_invoice(bill.id)
        assert posted.is_posted and posted.status == InvoiceStatus.OPEN
        with pytest.raises(ConnectorConflictError):
            await erp_connector.delete_draft_vendor_bill(bill.id)
        credit = await erp_connector.credit_vendor_bill(
            bill.id, reason="entered twice", idempotency_key=f"{key}-credit"
        )
        assert credit.id != bill.id and credit.is_posted
        assert abs(credit.total) == Decimal(640) and credit.party_id == vendor
        again = await erp_connector.credit_vendor_bill(bill.id, idempotency_key=f"{key}-credit")
        assert again.id == credit.id
