"""The ERP read API and CLI on the Business Central emulator: answers, tenant and role
scoping, and the context a vendor's email gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from assistant.core.principal import Role
from assistant.core.settings import Settings
from tests.conftest import SEED_DIR
from tests.contract.test_business_central import bc, bc_config, bc_tls
from tests.fakes.business_central import BusinessCentralEmulator
from tests.fixtures.auth import as_role
from tests.fixtures.erp_seed import NET_DAYS, invoice

__all__ = ["bc", "bc_tls"]  # fixtures

EXEC = "dana.whitfield@northwind.example"


def _connectors(emulator: BusinessCentralEmulator, ca: Path) -> list[dict[str, Any]]:
    return [
        {"name": "sandbox-mail", "slug": "sandbox.email"},
        {
            "name": "erp",
            "slug": "businesscentral.erp",
            "tenant": "default",
            "config": bc_config(emulator, ca),
        },
    ]


@pytest.fixture
def erp_settings(
    data_dir: Path, bc: BusinessCentralEmulator, bc_tls: tuple[Path, Path, Path]
) -> Settings:
    return Settings(
        data_dir=data_dir, sandbox={"seed_dir": SEED_DIR}, connectors=_connectors(bc, bc_tls[0])
    )


@pytest.fixture
async def erp_client(erp_settings: Settings, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    from assistant.app import create_app
    from assistant.core.db import create_engine, upgrade
    from assistant.services import Services

    engine = create_engine(erp_settings.database_url)
    await upgrade(engine)
    await engine.dispose()
    services = await Services.build(erp_settings)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        http.app = app  # type: ignore[attr-defined]
        yield http
    await services.aclose()


async def test_overdue_over_10k_and_a_purchase_order(erp_client: httpx.AsyncClient) -> None:
    as_role(erp_client, Role.EXECUTIVE, user_id=EXEC)
    response = await erp_client.get(
        "/api/v1/erp/overdue", params={"kind": "payable", "min_amount": "10000"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(i["reference"] for i in body["invoices"]) == ["CON-7781", "FAB-2201"]
    assert body["count"] == 2 and Decimal(body["totals"]["USD"]) == Decimal(26000)
    assert body["oldest_days"] == -invoice("in-contoso-overdue").invoice_offset - NET_DAYS

    po = await erp_client.get("/api/v1/erp/purchase-orders/PO-1040")
    assert po.status_code == 200, po.text
    assert (po.json()["party_name"], po.json()["status"], Decimal(po.json()["total"])) == (
        "Contoso Ltd",
        "pending_approval",
        Decimal(12500),
    )
    missing = await erp_client.get("/api/v1/erp/purchase-orders/99999")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"

    of_party = await erp_client.get(
        "/api/v1/erp/invoices", params={"party": "Fabrikam", "unpaid_only": "true"}
    )
    assert [i["reference"] for i in of_party.json()] == ["FAB-2201"]


async def test_read_api_is_scoped_by_role_and_tenant(erp_client: httpx.AsyncClient) -> None:
    for role in (Role.AUDITOR, Role.ADMIN):
        as_role(erp_client, role)
        response = await erp_client.get("/api/v1/erp/overdue")
        assert response.status_code == 403, role
    as_role(erp_client, Role.DELEGATE, on_behalf_of=EXEC, delegated_scopes=frozenset({"mail.read"}))
    assert (await erp_client.get("/api/v1/erp/overdue")).status_code == 403
    as_role(erp_client, Role.DELEGATE, on_behalf_of=EXEC, delegated_scopes=frozenset({"erp.read"}))
    assert (await erp_client.get("/api/v1/erp/overdue")).status_code == 200
    # Another tenant has no ERP here: it never reads this one's.
    as_role(erp_client, Role.EXECUTIVE, tenant="contoso-tenant")
    other = await erp_client.get("/api/v1/erp/overdue")
    assert other.status_code == 404 and other.json()["error"] == "UnknownConnectorError"


async def test_vendor_email_gets_its_documents(erp_client: httpx.AsyncClient) -> None:
    as_role(erp_client, Role.EXECUTIVE, user_id=EXEC)
    response = await erp_client.get(
        "/api/v1/erp/context",
        params={
            "sender": "Accounts@Fabrikam.example",
            "subject": "Unpaid invoice FAB-2201 — second reminder",
            "text": "Our invoice FAB-2201 is overdue. Please also confirm PO 1041.",
        },
    )
    assert response.status_code == 200, response.text
    context = response.json()
    assert context["party"]["name"] == "Fabrikam Inc" and context["match"] == "domain"
    assert [i["reference"] for i in context["mentioned_invoices"]] == ["FAB-2201"]
    mentioned = context["mentioned_invoices"][0]
    assert mentioned["status"] == "open"
    assert date.fromisoformat(mentioned["due_date"]) < date.today()
    assert [o["number"] for o in context["mentioned_orders"]] == ["1041"]
    assert "overdue" in context["summary"] and "FAB-2201" in context["summary"]
    # Lookalike and public domains match nobody.
    for sender in ("billing@fabrikam-payments.example", "fabrikam.billing@gmail.com"):
        unknown = await erp_client.get("/api/v1/erp/context", params={"sender": sender})
        assert unknown.status_code == 200 and unknown.json() is None, sender


def test_cli_query_overdue_po_and_party(
    erp_settings: Settings, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from assistant.cli import app
    from assistant.core.db import create_engine, upgrade

    async def migrate() -> None:
        engine = create_engine(erp_settings.database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ASSISTANT_SANDBOX__SEED_DIR", str(SEED_DIR))
    monkeypatch.setenv(
        "ASSISTANT_CONNECTORS",
        json.dumps([c.model_dump(mode="json") for c in erp_settings.connectors]),
    )
    runner = CliRunner()
    result = runner.invoke(app, ["erp", "query", "overdue", "--kind", "receivable", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # log lines go to stderr
    assert {i["party_name"] for i in report["invoices"]} == {"Adventure Works", "Tailspin Toys"}
    result = runner.invoke(app, ["erp", "query", "po", "1042"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Contoso Ltd" in result.output and "approved" in result.output
    result = runner.invoke(
        app, ["erp", "query", "party", "ap@tailspintoys.example"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "Tailspin Toys" in result.output and "customer" in result.output
    result = runner.invoke(app, ["erp", "query", "overdue", "--role", "auditor"])
    assert result.exit_code == 1 and "PermissionDeniedError" in result.output
