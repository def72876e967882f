"""The ERP contract against the Business Central API v2.0 emulator (real HTTPS, real msal)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trustme

from integrations.base import (
    ConnectorContext,
    ConnectorStatus,
    InvoiceKind,
    InvoiceQuery,
    OrderKind,
    OrderStatus,
)
from integrations.businesscentral import (
    ERP_SPEC,
    BusinessCentralConfig,
    BusinessCentralERPConnector,
    build_connector,
)
from integrations.errors import (
    ConnectorAuthError,
    ConnectorConflictError,
    FatalConnectorError,
    RetriableConnectorError,
)
from integrations.registry import ConnectorRegistry
from tests.contract.erp_contract import ERPContract
from tests.fakes.business_central import APPROVALS_ROUTE, BusinessCentralEmulator


@pytest.fixture(scope="module")
def bc_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("bc-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return root / "ca.pem", root / "cert.pem", root / "key.pem"


@pytest.fixture(scope="module")
def bc(bc_tls: tuple[Path, Path, Path]) -> Iterator[BusinessCentralEmulator]:
    emulator = BusinessCentralEmulator()
    _, cert, key = bc_tls
    with emulator.serve(cert_file=cert, key_file=key):
        yield emulator


def bc_config(emulator: BusinessCentralEmulator, ca_file: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "tenant_id": emulator.tenant_id,
        "environment": emulator.environment,
        "company_name": "Northwind Holdings",
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "base_url": f"{emulator.base_url}/v2.0",
        "authority_host": emulator.base_url,
        "ca_file": str(ca_file),
        "approval_api": APPROVALS_ROUTE,
        "expense_account": "6100",
        "max_attempts": 4,
    }
    config.update(extra)
    return config


def _connector(
    emulator: BusinessCentralEmulator, ca_file: Path, **extra: Any
) -> BusinessCentralERPConnector:
    config = BusinessCentralConfig.model_validate(bc_config(emulator, ca_file, **extra))
    return build_connector(config, ConnectorContext(tenant_id="t1", instance_name="bc-test"))


class TestBusinessCentralContract(ERPContract):
    payable_amount_due_exact = False  # the standard API shows no partial payments of bills

    @pytest.fixture
    async def erp_connector(
        self, bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
    ) -> AsyncIterator[BusinessCentralERPConnector]:
        connector = _connector(bc, bc_tls[0])
        yield connector
        await connector.aclose()

    @pytest.fixture
    def new_purchase_order(self, bc: BusinessCentralEmulator) -> Any:
        async def make(vendor_name: str, amount: Decimal) -> str:
            return bc.new_purchase_order(vendor_name, amount)

        return make

    @pytest.fixture
    def post_vendor_bill(self, bc: BusinessCentralEmulator) -> Any:
        async def post(invoice_id: str) -> None:
            bc.post_purchase_invoice(invoice_id)

        return post


async def test_entry_point_and_token_reuse(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    registry = ConnectorRegistry.discover()
    assert registry.get("businesscentral.erp") is ERP_SPEC
    connector = await registry.build(
        "businesscentral.erp",
        bc_config(bc, bc_tls[0]),
        ConnectorContext(tenant_id="t1", instance_name="bc"),
    )
    try:
        before = bc.token_requests
        assert (await connector.check()).status is ConnectorStatus.OK
        await connector.list_orders(OrderKind.PURCHASE)
        await connector.list_invoices(InvoiceQuery(kind=InvoiceKind.PAYABLE))
        assert bc.token_requests == before + 1  # msal caches the app token
    finally:
        await connector.aclose()


async def test_bad_secret_and_bad_token(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    wrong = _connector(bc, bc_tls[0], client_secret="wrong-secret")
    try:
        health = await wrong.check()
        assert health.status is ConnectorStatus.DOWN and "wrong-secret" not in health.detail
    finally:
        await wrong.aclose()
    stale = _connector(
        bc, bc_tls[0], auth="token", access_token="not-a-token", client_id=None, client_secret=None
    )
    try:
        with pytest.raises(ConnectorAuthError):
            await stale.list_companies()
    finally:
        await stale.aclose()


async def test_429_is_retried_after_retry_after(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    connector = _connector(bc, bc_tls[0])
    try:
        await connector.check()
        bc.fail_next(2, status=429, retry_after=0)
        orders = await connector.list_orders(OrderKind.PURCHASE)
        assert orders
        bc.fail_next(10, status=503, retry_after=0)
        with pytest.raises(RetriableConnectorError):
            await connector.list_orders(OrderKind.PURCHASE)
    finally:
        bc.faults.clear()
        await connector.aclose()


async def test_pages_follow_next_link(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    paged = _connector(bc, bc_tls[0], page_size=2)
    whole = _connector(bc, bc_tls[0])
    try:
        await paged.check()
        before = len(bc.requests)
        many = await paged.list_invoices(InvoiceQuery(kind=InvoiceKind.RECEIVABLE))
        pages = len(bc.requests) - before
        once = await whole.list_invoices(InvoiceQuery(kind=InvoiceKind.RECEIVABLE))
        assert [i.id for i in many] == [i.id for i in once] and len(once) >= 4
        assert pages >= 2
    finally:
        await paged.aclose()
        await whole.aclose()


async def test_etag_mismatch_on_delete_is_a_conflict(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    connector = _connector(bc, bc_tls[0])
    try:
        order_id = bc.new_purchase_order("Contoso Ltd", Decimal(10))
        order = await connector.get_order(OrderKind.PURCHASE, order_id)
        path = await connector._path(f"purchaseOrders({order_id})")
        with pytest.raises(ConnectorConflictError):
            await connector.client.request("DELETE", path, headers={"If-Match": 'W/"stale"'})
        assert (await connector.get_order(OrderKind.PURCHASE, order_id)).etag == order.etag
    finally:
        await connector.aclose()


async def test_without_an_approval_api_approving_is_refused(
    bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> None:
    connector = _connector(bc, bc_tls[0], approval_api=None)
    try:
        order_id = bc.new_purchase_order("Fabrikam Inc", Decimal(100))
        with pytest.raises(FatalConnectorError, match="approval_api"):
            await connector.approve_purchase_order(order_id)
        order = await connector.get_order(OrderKind.PURCHASE, order_id)
        assert order.status == OrderStatus.PENDING_APPROVAL
    finally:
        await connector.aclose()
