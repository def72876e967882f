"""The ERP contract against a real trytond (JSON-RPC over HTTP, SQLite database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from integrations.base import ConnectorContext, ConnectorStatus, OrderKind, OrderStatus
from integrations.errors import ConnectorAuthError
from integrations.registry import ConnectorRegistry
from integrations.tryton import ERP_SPEC, TrytonConfig, TrytonERPConnector, build_connector
from tests.contract.erp_contract import ERPContract
from tests.fixtures.tryton import (  # noqa: F401 - session fixtures
    TrytonRPC,
    TrytonServer,
    new_purchase_order,
    tryton_server,
    tryton_template,
)

pytestmark = pytest.mark.tryton


def tryton_config(server: TrytonServer, **extra: Any) -> TrytonConfig:
    return TrytonConfig.model_validate(
        {
            "url": server.url,
            "database": server.database,
            "login": server.login,
            "password": server.password,
            **extra,
        }
    )


def _connector(server: TrytonServer, **extra: Any) -> TrytonERPConnector:
    return build_connector(
        tryton_config(server, **extra),
        ConnectorContext(tenant_id="t1", instance_name="tryton-test"),
    )


@pytest.fixture(scope="module")
def rpc(tryton_server: TrytonServer) -> Iterator[TrytonRPC]:
    client = TrytonRPC(tryton_server)
    yield client
    client.close()


class TestTrytonContract(ERPContract):
    @pytest.fixture
    async def erp_connector(
        self,
        tryton_server: TrytonServer,
    ) -> AsyncIterator[TrytonERPConnector]:
        connector = _connector(tryton_server)
        yield connector
        await connector.aclose()

    @pytest.fixture
    def new_purchase_order(self, rpc: TrytonRPC) -> Any:
        async def make(vendor_name: str, amount: Decimal) -> str:
            (vendor,) = rpc.search_read("party.party", [("name", "=", vendor_name)], ["id"])
            return str(new_purchase_order(rpc, vendor["id"], amount))

        return make

    @pytest.fixture
    def post_vendor_bill(self, rpc: TrytonRPC) -> Any:
        async def post(invoice_id: str) -> None:
            rpc.call("account.invoice", "post", [int(invoice_id)])

        return post


async def test_entry_point_builds_the_connector(
    tryton_server: TrytonServer,
) -> None:
    registry = ConnectorRegistry.discover()
    assert registry.get("tryton.erp") is ERP_SPEC
    connector = await registry.build(
        "tryton.erp",
        tryton_config(tryton_server).model_dump(mode="json") | {"password": tryton_server.password},
        ConnectorContext(tenant_id="t1", instance_name="erp"),
    )
    try:
        assert (await connector.check()).status is ConnectorStatus.OK
    finally:
        await connector.aclose()


async def test_wrong_password_is_an_auth_error(
    tryton_server: TrytonServer,
) -> None:
    connector = _connector(tryton_server, password="not-the-password")
    try:
        health = await connector.check()
        assert health.status is ConnectorStatus.DOWN
        assert "not-the-password" not in health.detail
        with pytest.raises(ConnectorAuthError):
            await connector.list_companies()
    finally:
        await connector.aclose()


async def test_expired_session_logs_in_again(
    tryton_server: TrytonServer,
) -> None:
    connector = _connector(tryton_server)
    try:
        await connector.list_companies()
        # The session ends on the server (what the session timeout does too).
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{tryton_server.url}/{tryton_server.database}/",
                json={"method": "common.db.logout", "params": [], "id": 1},
                headers={"Authorization": connector.client._auth or ""},
            )
            assert response.status_code == 200
        before = connector.client.requests
        companies = await connector.list_companies()
        assert companies and connector.client.requests > before + 1  # a login happened
    finally:
        await connector.aclose()


async def test_processed_order_cannot_be_reopened(
    tryton_server: TrytonServer,
    rpc: TrytonRPC,
) -> None:
    """Once the queue worker processed an approved order, Tryton keeps it: the compensator
    gets a conflict, not a silent success."""
    (vendor,) = rpc.search_read("party.party", [("name", "=", "Contoso Ltd")], ["id"])
    order_id = new_purchase_order(rpc, vendor["id"], Decimal(300))
    connector = _connector(tryton_server)
    try:
        await connector.approve_purchase_order(str(order_id))
        rpc.call("purchase.purchase", "process", [order_id])  # what the worker does
        order = await connector.get_order(OrderKind.PURCHASE, str(order_id))
        assert order.status in (OrderStatus.PROCESSING, OrderStatus.DONE)
        from integrations.errors import ConnectorConflictError

        with pytest.raises(ConnectorConflictError):
            await connector.reopen_purchase_order(str(order_id))
    finally:
        await connector.aclose()
