"""ERP action kinds: approve or reject a purchase order, create a draft vendor bill.

The amount the policy sees comes from the ERP, never from the proposer: arguments named in
``TRUSTED_FIELDS`` are dropped from what a proposer (or an editing reviewer) sends and are
filled by ``complete`` from the connector (the order's total, number, vendor and etag).
When the ERP cannot be asked, the amount stays unknown and :func:`_order_facts` reports it
as unbounded, so an "over 10,000" rule applies rather than a cheaper one.

The etag captured at proposal time travels with the action: if the order changed before
the approval runs, the ERP refuses it (conflict) and the action fails instead of approving
something nobody reviewed.

Compensation is what each ERP allows: an approval or a rejection is taken back by
reopening the order (awaiting approval again) while the ERP permits it; a draft vendor bill
is deleted while unposted and corrected by a credit memo once posted.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.core.limits import Amount
from governance.actions import (
    ActionFacts,
    ActionKind,
    CompensationContext,
    CompensationImpossibleError,
    CompensationResult,
    ExecutionContext,
    ExecutionResult,
    PreviewContext,
    RiskClass,
    register_kind,
    registry,
)
from integrations.base import (
    Capability,
    InvoiceStatus,
    Order,
    OrderKind,
    OrderStatus,
    VendorBillLine,
    VendorBillRequest,
)
from integrations.errors import ConnectorConflictError, ConnectorNotFoundError

APPROVE = "erp.purchase_order.approve"
REJECT = "erp.purchase_order.reject"
CREATE_BILL = "erp.vendor_bill.create_draft"

#: Filled from the ERP by ``complete``; never taken from a proposer.
TRUSTED_FIELDS = frozenset({"amount", "currency", "number", "party_name", "etag", "status"})

#: What the policy sees when the ERP could not tell the amount: more than any limit.
UNKNOWN_AMOUNT = Decimal("Infinity")


class _Args(BaseModel):
    # Built when an action of the kind is first proposed or checked, not at start-up.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class PurchaseOrderArgs(_Args):
    order_id: str = Field(min_length=1, max_length=100, description="The ERP's order id.")
    # Facts from the ERP (see TRUSTED_FIELDS).
    amount: Amount | None = None
    currency: str | None = None
    number: str | None = None
    party_name: str | None = None
    etag: str | None = None
    status: str | None = None


class RejectArgs(PurchaseOrderArgs):
    reason: str | None = Field(default=None, max_length=1000)


class BillLineArgs(_Args):
    description: str = Field(min_length=1, max_length=500)
    quantity: Amount = Field(default=Decimal(1), gt=0)
    unit_price: Amount


class VendorBillArgs(_Args):
    vendor_id: str = Field(min_length=1, max_length=100)
    invoice_date: date | None = None
    due_date: date | None = None
    vendor_reference: str | None = Field(default=None, max_length=35)
    lines: list[BillLineArgs] = Field(min_length=1, max_length=200)
    # Facts from the ERP (see TRUSTED_FIELDS).
    party_name: str | None = None
    currency: str | None = None

    @field_validator("lines")
    @classmethod
    def _total_positive(cls, lines: list[BillLineArgs]) -> list[BillLineArgs]:
        if sum((line.quantity * line.unit_price for line in lines), Decimal(0)) <= 0:
            raise ValueError("a vendor bill totals more than zero")
        return lines

    @property
    def total(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal(0))

    def request(self, idempotency_key: str) -> VendorBillRequest:
        return VendorBillRequest(
            vendor_id=self.vendor_id,
            invoice_date=self.invoice_date,
            due_date=self.due_date,
            vendor_reference=self.vendor_reference,
            idempotency_key=idempotency_key,
            lines=[
                VendorBillLine(
                    description=line.description, quantity=line.quantity, unit_price=line.unit_price
                )
                for line in self.lines
            ],
        )


@dataclass(frozen=True)
class ERPActionKind(ActionKind):
    """An ActionKind whose trusted facts are stripped from proposed arguments."""

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        untrusted = {k: v for k, v in arguments.items() if k not in TRUSTED_FIELDS}
        return super().validate(untrusted)


# --------------------------------------------------------------------------- orders


async def _complete_order(connector: Any, args: PurchaseOrderArgs) -> PurchaseOrderArgs:
    order: Order = await connector.get_order(OrderKind.PURCHASE, args.order_id)
    return args.model_copy(
        update={
            "amount": order.total,
            "currency": order.currency,
            "number": order.number,
            "party_name": order.party_name,
            "etag": order.etag,
            "status": order.status,
        }
    )


def _order_facts(args: PurchaseOrderArgs) -> ActionFacts:
    return ActionFacts(
        recipients=(), amount=args.amount if args.amount is not None else UNKNOWN_AMOUNT
    )


async def _preview_order(
    connector: Any, args: PurchaseOrderArgs, ctx: PreviewContext
) -> dict[str, Any]:
    preview: dict[str, Any] = {
        "type": "erp_purchase_order",
        "order_id": args.order_id,
        "number": args.number,
        "vendor": args.party_name,
        "total": str(args.amount) if args.amount is not None else None,
        "currency": args.currency,
        "status_at_proposal": args.status,
        "reason": getattr(args, "reason", None),
    }
    if connector is not None:
        order = await connector.get_order(OrderKind.PURCHASE, args.order_id)
        preview.update(
            status=order.status,
            current_total=str(order.total),
            changed_since_proposal=bool(args.etag and order.etag != args.etag),
            lines=[
                {
                    "description": line.description,
                    "quantity": str(line.quantity),
                    "unit_price": str(line.unit_price),
                    "amount": str(line.amount),
                }
                for line in order.lines
            ],
        )
    return preview


async def _prepare_order(connector: Any, args: PurchaseOrderArgs) -> dict[str, Any]:
    order = await connector.get_order(OrderKind.PURCHASE, args.order_id)
    return {"status": order.status, "number": order.number}


def _order_result(order: Order) -> ExecutionResult:
    return ExecutionResult(
        external_ids={"order_id": order.id},
        result={
            "number": order.number,
            "status": order.status,
            "total": str(order.total),
            "currency": order.currency,
        },
    )


async def _execute_approve(ctx: ExecutionContext, args: PurchaseOrderArgs) -> ExecutionResult:
    return _order_result(await ctx.connector.approve_purchase_order(args.order_id, etag=args.etag))


async def _execute_reject(ctx: ExecutionContext, args: RejectArgs) -> ExecutionResult:
    return _order_result(
        await ctx.connector.reject_purchase_order(args.order_id, reason=args.reason, etag=args.etag)
    )


async def _compensate_order(
    ctx: CompensationContext, args: PurchaseOrderArgs
) -> CompensationResult:
    before = (ctx.snapshot or {}).get("status")
    if before not in (None, OrderStatus.PENDING_APPROVAL.value):
        raise CompensationImpossibleError(
            f"the order was {before} before the decision: reopening would not restore it"
        )
    try:
        order = await ctx.connector.reopen_purchase_order(args.order_id)
    except ConnectorConflictError as exc:
        raise CompensationImpossibleError(
            f"the ERP no longer lets the order be reopened: {exc.detail}"
        ) from None
    return CompensationResult(
        result={"order_id": order.id, "number": order.number, "status": order.status}
    )


# --------------------------------------------------------------------------- vendor bills


async def _complete_bill(connector: Any, args: VendorBillArgs) -> VendorBillArgs:
    vendor = await connector.get_party(args.vendor_id)
    companies = await connector.list_companies()
    return args.model_copy(
        update={"party_name": vendor.name, "currency": companies[0].currency if companies else None}
    )


def _bill_facts(args: VendorBillArgs) -> ActionFacts:
    return ActionFacts(recipients=(), amount=args.total)


async def _preview_bill(
    connector: Any, args: VendorBillArgs, ctx: PreviewContext
) -> dict[str, Any]:
    return {
        "type": "erp_vendor_bill",
        "vendor_id": args.vendor_id,
        "vendor": args.party_name,
        "vendor_reference": args.vendor_reference,
        "invoice_date": args.invoice_date.isoformat() if args.invoice_date else None,
        "due_date": args.due_date.isoformat() if args.due_date else None,
        "currency": args.currency,
        "total": str(args.total),
        "lines": [
            {
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_price": str(line.unit_price),
                "amount": str(line.quantity * line.unit_price),
            }
            for line in args.lines
        ],
    }


async def _execute_bill(ctx: ExecutionContext, args: VendorBillArgs) -> ExecutionResult:
    bill = await ctx.connector.create_draft_vendor_bill(args.request(ctx.idempotency_key))
    return ExecutionResult(
        external_ids={"invoice_id": bill.id},
        result={
            "number": bill.number,
            "status": bill.status,
            "total": str(bill.total),
            "currency": bill.currency,
        },
    )


async def _compensate_bill(ctx: CompensationContext, args: VendorBillArgs) -> CompensationResult:
    invoice_id = ctx.external_ids.get("invoice_id")
    if not invoice_id:
        raise CompensationImpossibleError("the vendor bill's id was not recorded")
    try:
        bill = await ctx.connector.get_invoice(invoice_id)
    except ConnectorNotFoundError:
        return CompensationResult(result={"invoice_id": invoice_id, "already_gone": True})
    if bill.status in (InvoiceStatus.DRAFT, InvoiceStatus.CANCELLED):
        await ctx.connector.delete_draft_vendor_bill(invoice_id)
        return CompensationResult(result={"deleted_invoice_id": invoice_id})
    # Posted meanwhile (by an accountant): the ERP keeps it, a credit memo corrects it.
    credit = await ctx.connector.credit_vendor_bill(
        invoice_id, reason="created in error by the assistant", idempotency_key=ctx.idempotency_key
    )
    return CompensationResult(
        result={
            "invoice_id": invoice_id,
            "credit_memo_id": credit.id,
            "credit_memo_number": credit.number,
        }
    )


# --------------------------------------------------------------------------- registration


def register_erp_kinds() -> None:
    """Add the ERP kinds to the process-wide registry (once)."""
    if APPROVE in registry:
        return
    register_kind(
        ERPActionKind(
            name=APPROVE,
            title="Approve a purchase order",
            args_model=PurchaseOrderArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.ERP,
            execute=_execute_approve,
            compensate=_compensate_order,
            facts=_order_facts,
            preview=_preview_order,
            prepare=_prepare_order,
            complete=_complete_order,
        )
    )
    register_kind(
        ERPActionKind(
            name=REJECT,
            title="Reject a purchase order",
            args_model=RejectArgs,
            risk=RiskClass.COMPENSABLE,
            capability=Capability.ERP,
            execute=_execute_reject,
            compensate=_compensate_order,
            facts=_order_facts,
            preview=_preview_order,
            prepare=_prepare_order,
            complete=_complete_order,
        )
    )
    register_kind(
        ERPActionKind(
            name=CREATE_BILL,
            title="Create a draft vendor bill",
            args_model=VendorBillArgs,
            risk=RiskClass.REVERSIBLE,
            capability=Capability.ERP,
            execute=_execute_bill,
            compensate=_compensate_bill,
            facts=_bill_facts,
            preview=_preview_bill,
            complete=_complete_bill,
        )
    )


register_erp_kinds()
