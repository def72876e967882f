"""Governed ERP writes end to end: proposal, policy on the ERP's amount, review, executor,
rollback, against a real trytond (and the Business Central emulator for etags)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.errors import OwnershipError
from assistant.core.principal import Role
from governance.actions import registry
from governance.erp_actions import APPROVE, CREATE_BILL, REJECT
from governance.state import ActionState
from integrations.base import (
    Capability,
    ConnectorContext,
    InvoiceStatus,
    OrderKind,
    OrderStatus,
    PartyRole,
)
from integrations.businesscentral import BusinessCentralConfig
from integrations.businesscentral import build_connector as build_bc
from integrations.errors import ConnectorNotFoundError, UnknownConnectorError
from integrations.tryton import TrytonConfig, TrytonERPConnector
from integrations.tryton import build_connector as build_tryton
from tests.conftest import FIXED_NOW
from tests.fakes.business_central import APPROVALS_ROUTE, BusinessCentralEmulator
from tests.fixtures.governance import (
    EXECUTIVE,
    TENANT,
    Clock,
    Harness,
    SandboxResolver,
    build_harness,
    person,
    seeded_db,
    seeded_template,
)
from tests.fixtures.tryton import (
    TrytonRPC,
    TrytonServer,
    new_purchase_order,
    tryton_server,
    tryton_template,
)

__all__ = ["seeded_db", "seeded_template", "tryton_server", "tryton_template"]  # fixtures

S = ActionState

ERP_POLICY = """
version: erp-test
internal_domains: [northwind.example]
defaults:
  autonomy: auto
  approval: {roles: [executive, delegate], approvals: 1, ttl: 4h}
rules:
  - id: four-eyes-large-amounts
    when: {kinds: [erp.*], amount: {min: 10000}}
    decision: require_approval
    approval: {roles: [executive, delegate], approvals: 2, ttl: 8h}
  - id: draft-bills
    when: {kinds: [erp.vendor_bill.create_draft]}
    decision: allow
  - id: erp-writes
    when: {kinds: [erp.*]}
    decision: require_approval
    approval: {roles: [executive, admin], approvals: 1, ttl: 8h}
"""

EXEC = person(EXECUTIVE, Role.EXECUTIVE)
ADMIN = person("ops-admin", Role.ADMIN)
DELEGATE = person("jordan", Role.DELEGATE, on_behalf_of=EXECUTIVE)


class ERPResolver(SandboxResolver):
    """The sandbox mailbox and calendar, and one ERP connector."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], erp: Any) -> None:
        super().__init__(sessions)
        self.erp = erp

    def get(
        self,
        tenant_id: str,
        capability: Capability,
        name: str | None = None,
        *,
        executive: str | None = None,
    ) -> Any:
        if capability is Capability.ERP:
            if tenant_id != TENANT:
                raise UnknownConnectorError(f"no erp connector for {tenant_id!r}")
            return self.erp
        return super().get(tenant_id, capability, name, executive=executive)


@pytest.fixture
def clock() -> Clock:
    return Clock(FIXED_NOW)


@pytest.fixture(scope="module")
def rpc(tryton_server: TrytonServer) -> Iterator[TrytonRPC]:
    client = TrytonRPC(tryton_server)
    yield client
    client.close()


@pytest.fixture
async def tryton(tryton_server: TrytonServer) -> AsyncIterator[TrytonERPConnector]:
    connector = build_tryton(
        TrytonConfig(
            url=tryton_server.url,
            database=tryton_server.database,
            login=tryton_server.login,
            password=tryton_server.password,
        ),
        ConnectorContext(tenant_id=TENANT, instance_name="tryton"),
    )
    yield connector
    await connector.aclose()


def _harness(sessions: async_sessionmaker[AsyncSession], clock: Clock, erp: Any) -> Harness:
    return build_harness(
        sessions,
        clock,
        resolver=ERPResolver(sessions, erp),
        policy_text=ERP_POLICY,
        hold_compensable_seconds=60,
        hold_reversible_seconds=10,
    )


@pytest.fixture
def harness(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock, tryton: TrytonERPConnector
) -> Harness:
    return _harness(seeded_db, clock, tryton)


def _po(rpc: TrytonRPC, vendor: str, amount: str) -> str:
    (party,) = rpc.search_read("party.party", [("name", "=", vendor)], ["id"])
    return str(new_purchase_order(rpc, party["id"], Decimal(amount)))


async def _approve(harness: Harness, action_id: str, *who: Any) -> None:
    for principal in who:
        async with harness.sessions() as session, session.begin():
            await harness.review.approve(session, principal, action_id)


async def _run(harness: Harness, seconds: float = 61) -> None:
    harness.clock.advance(seconds)
    await harness.executor.run_due()


def test_erp_kinds_are_registered() -> None:
    for name in (APPROVE, REJECT, CREATE_BILL):
        assert registry.get(name).capability is Capability.ERP


async def test_large_approval_waits_for_two_approvers(
    harness: Harness, rpc: TrytonRPC, tryton: TrytonERPConnector
) -> None:
    order_id = _po(rpc, "Contoso Ltd", "12500")
    # A proposer cannot lower the amount the policy sees: it comes from the ERP.
    action = await harness.propose(APPROVE, {"order_id": order_id, "amount": "10"})
    assert action.state == S.PENDING_REVIEW
    assert action.policy_rule_id == "four-eyes-large-amounts"
    assert action.approvals_required == 2
    assert Decimal(action.arguments["amount"]) == Decimal(12500)

    await _approve(harness, action.id, EXEC)
    assert (await harness.load(action.id)).state == S.PENDING_REVIEW
    await _run(harness)
    order = await tryton.get_order(OrderKind.PURCHASE, order_id)
    assert order.status == OrderStatus.PENDING_APPROVAL  # one approver is not enough

    # An admin is no second approver of an executive's action (issue 13): her delegate is.
    with pytest.raises(OwnershipError):
        await _approve(harness, action.id, ADMIN)
    await _approve(harness, action.id, DELEGATE)
    assert (await harness.load(action.id)).state == S.SCHEDULED
    await _run(harness)
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED, done.last_error
    assert done.result["status"] == OrderStatus.APPROVED
    assert (await tryton.get_order(OrderKind.PURCHASE, order_id)).status == OrderStatus.APPROVED


async def test_small_approval_needs_one(harness: Harness, rpc: TrytonRPC) -> None:
    order_id = _po(rpc, "Fabrikam Inc", "800")
    action = await harness.propose(APPROVE, {"order_id": order_id})
    assert action.policy_rule_id == "erp-writes" and action.approvals_required == 1


async def test_rejected_write_changes_nothing(
    harness: Harness, rpc: TrytonRPC, tryton: TrytonERPConnector
) -> None:
    order_id = _po(rpc, "Litware Supplies", "15000")
    before = await tryton.get_order(OrderKind.PURCHASE, order_id)
    action = await harness.propose(APPROVE, {"order_id": order_id})
    async with harness.sessions() as session, session.begin():
        await harness.review.reject(session, EXEC, action.id, "not this quarter")
    assert (await harness.load(action.id)).state == S.REJECTED
    await _run(harness, 3600)
    after = await tryton.get_order(OrderKind.PURCHASE, order_id)
    assert (after.status, after.etag, after.total) == (before.status, before.etag, before.total)


async def test_compensated_approval_and_rejection_are_reversed(
    harness: Harness, rpc: TrytonRPC, tryton: TrytonERPConnector
) -> None:
    approved_id = _po(rpc, "Contoso Ltd", "2000")
    rejected_id = _po(rpc, "Fabrikam Inc", "3000")
    approve = await harness.propose(APPROVE, {"order_id": approved_id}, correlation_id="erp-batch")
    reject = await harness.propose(
        REJECT, {"order_id": rejected_id, "reason": "duplicate"}, correlation_id="erp-batch"
    )
    await _approve(harness, approve.id, EXEC)
    await _approve(harness, reject.id, EXEC)
    await _run(harness)
    assert (await tryton.get_order(OrderKind.PURCHASE, approved_id)).status == OrderStatus.APPROVED
    assert (await tryton.get_order(OrderKind.PURCHASE, rejected_id)).status == OrderStatus.CANCELLED

    outcomes = await harness.compensation.rollback_correlation(
        EXEC, "erp-batch", reason="wrong batch"
    )
    assert all(o.ok for o in outcomes), [o.detail for o in outcomes]
    for order_id in (approved_id, rejected_id):
        order = await tryton.get_order(OrderKind.PURCHASE, order_id)
        assert order.status == OrderStatus.PENDING_APPROVAL
    assert (await harness.load(approve.id)).state == S.COMPENSATED


async def test_compensated_vendor_bill_is_deleted(
    harness: Harness, tryton: TrytonERPConnector
) -> None:
    vendor = (await tryton.find_parties(name="Litware", role=PartyRole.VENDOR))[0]
    action = await harness.propose(
        CREATE_BILL,
        {
            "vendor_id": vendor.id,
            "vendor_reference": "LIT-GOV-1",
            "lines": [{"description": "Paper", "quantity": "10", "unit_price": "12.5"}],
        },
    )
    assert action.state == S.SCHEDULED and action.policy_rule_id == "draft-bills"
    await _run(harness, 11)
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED, done.last_error
    invoice_id = done.external_ids["invoice_id"]
    bill = await tryton.get_invoice(invoice_id)
    assert bill.status == InvoiceStatus.DRAFT and bill.total == Decimal(125)

    outcome = await harness.compensation.rollback(EXEC, action.id)
    assert outcome.ok and outcome.effect_undone, outcome.detail
    with pytest.raises(ConnectorNotFoundError):
        await tryton.get_invoice(invoice_id)


async def test_processed_order_compensation_fails_visibly(
    harness: Harness, rpc: TrytonRPC, tryton: TrytonERPConnector
) -> None:
    order_id = _po(rpc, "Contoso Ltd", "400")
    action = await harness.propose(APPROVE, {"order_id": order_id})
    await _approve(harness, action.id, EXEC)
    await _run(harness)
    rpc.call("purchase.purchase", "process", [int(order_id)])  # the queue worker ran
    outcome = await harness.compensation.rollback(EXEC, action.id)
    assert not outcome.ok
    assert (await harness.load(action.id)).state == S.COMPENSATION_FAILED
    assert (await tryton.get_order(OrderKind.PURCHASE, order_id)).status in (
        OrderStatus.PROCESSING,
        OrderStatus.DONE,
    )


# --------------------------------------------------------------------------- etags (BC)


@pytest.fixture(scope="module")
def bc_emulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BusinessCentralEmulator, Path]]:
    root = tmp_path_factory.mktemp("bc-gov-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    emulator = BusinessCentralEmulator()
    with emulator.serve(cert_file=root / "cert.pem", key_file=root / "key.pem"):
        yield emulator, root / "ca.pem"


async def test_order_changed_after_review_is_not_approved(
    seeded_db: async_sessionmaker[AsyncSession],
    clock: Clock,
    bc_emulator: tuple[BusinessCentralEmulator, Path],
) -> None:
    emulator, ca_file = bc_emulator
    connector = build_bc(
        BusinessCentralConfig(
            tenant_id=emulator.tenant_id,
            company_name="Northwind Holdings",
            client_id=emulator.client_id,
            client_secret=emulator.client_secret,
            base_url=f"{emulator.base_url}/v2.0",
            authority_host=emulator.base_url,
            ca_file=ca_file,
            approval_api=APPROVALS_ROUTE,
            expense_account="6100",
            max_attempts=2,
        ),
        ConnectorContext(tenant_id=TENANT, instance_name="bc"),
    )
    try:
        harness = _harness(seeded_db, clock, connector)
        order_id = emulator.new_purchase_order("Contoso Ltd", Decimal(900))
        action = await harness.propose(APPROVE, {"order_id": order_id})
        await _approve(harness, action.id, EXEC)
        # The buyer edits the order after the review (BC gives it a new etag).
        order = await connector.get_order(OrderKind.PURCHASE, order_id)
        await connector.client.patch_json(
            await connector._path(f"purchaseOrders({order_id})"),
            {"purchaser": "JR"},
            headers={"If-Match": order.etag or "*"},
        )
        await _run(harness)
        failed = await harness.load(action.id)
        assert failed.state == S.FAILED
        assert "ConnectorConflictError" in (failed.last_error or "")
        again = await connector.get_order(OrderKind.PURCHASE, order_id)
        assert again.status == OrderStatus.PENDING_APPROVAL
    finally:
        await connector.aclose()
