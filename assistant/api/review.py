"""The review queue: pending actions with a preview; approve, edit, reject, cancel, in bulk."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from assistant.api.actions import ACTION_COLUMNS, ActionOut, action_items
from assistant.api.deps import SessionDep, app_services, require
from assistant.api.pagination import CursorQuery, Keyset, json_page
from assistant.auth.permissions import Permission
from assistant.core.clock import utcnow
from assistant.core.limits import MAX_AGE_SECONDS, OffsetQuery
from assistant.core.principal import Principal
from assistant.governance_app import GovernanceDep, get_governance
from governance.models import ActionApproval, ActionEdit
from governance.review import BulkItem

router = APIRouter(prefix="/api/v1/review", tags=["review"])

Reader = Annotated[Principal, require(Permission.REVIEW_READ)]
Decider = Annotated[Principal, require(Permission.REVIEW_DECIDE)]


class ReviewItemOut(ActionOut):
    age_seconds: float


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    approver_id: str
    roles: list[str]
    created_at: datetime


class EditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    editor_id: str
    patch: list[dict[str, Any]]
    created_at: datetime


class ReviewDetailOut(BaseModel):
    action: ActionOut
    preview: dict[str, Any]
    approvals: list[ApprovalOut]
    edits: list[EditOut]


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(default=None, max_length=2000)


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arguments: dict[str, Any] = Field(description="The complete new arguments.")
    comment: str | None = Field(default=None, max_length=2000)


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class BulkItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action_id: str
    decision: Literal["approve", "edit", "reject", "cancel"]
    reason: str | None = Field(default=None, max_length=2000)
    arguments: dict[str, Any] | None = None


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BulkItemIn] = Field(min_length=1, max_length=200)


class BulkResultOut(BaseModel):
    action_id: str
    ok: bool
    state: str | None
    error: str | None
    detail: str | None


class BulkOut(BaseModel):
    results: list[BulkResultOut]


@router.get(
    "",
    summary="Pending actions (filter by executive, kind, age), newest first",
    response_model=list[ReviewItemOut],
    responses={400: {"description": "A cursor this listing did not issue for this query."}},
)
async def pending(
    request: Request,
    principal: Reader,
    session: SessionDep,
    owner: str | None = Query(default=None, description="The executive the action is for."),
    kind: str | None = Query(default=None, description="Kind; '*' as a wildcard."),
    older_than_seconds: Annotated[
        float | None, Query(ge=0, le=MAX_AGE_SECONDS, allow_inf_nan=False)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: OffsetQuery = 0,
    cursor: CursorQuery = None,
) -> Response:
    """A full page carries the next page's cursor in the X-Next-Cursor header."""
    # The app's services and governance straight from the request, not as dependencies:
    # FastAPI's solving of each dependency (its parameters looked up, even when it has
    # none) was a sixth of this hot listing's CPU.
    services = app_services(request)
    governance = await get_governance(request)
    keyset = Keyset.of(
        services.settings.secret_key.get_secret_value(),
        "review.pending",
        principal,
        cursor,
        offset,
        owner=owner,
        kind=kind,
        older_than_seconds=older_than_seconds,
    )
    rows = await governance.review.pending_rows(
        session,
        principal,
        columns=ACTION_COLUMNS,
        owner=owner,
        kind=kind,
        older_than_seconds=older_than_seconds,
        limit=limit,
        offset=offset,
        after=keyset.after,
    )
    now = utcnow()
    # Typed columns, straight from the database: no model per row, serialized once.
    items = action_items(rows)
    for item in items:
        item["age_seconds"] = (now - item["created_at"]).total_seconds()
    return json_page(items, keyset.next_cursor(items, limit))


@router.post("/bulk", summary="Several decisions; each item's result is reported")
async def bulk(
    body: BulkIn, principal: Decider, session: SessionDep, governance: GovernanceDep
) -> BulkOut:
    results = await governance.review.bulk(
        session,
        principal,
        [
            BulkItem(
                action_id=i.action_id, decision=i.decision, reason=i.reason, arguments=i.arguments
            )
            for i in body.items
        ],
    )
    return BulkOut(
        results=[
            BulkResultOut(
                action_id=r.action_id, ok=r.ok, state=r.state, error=r.error, detail=r.detail
            )
            for r in results
        ]
    )


@router.get("/{action_id}", summary="One action with a preview of what would happen")
async def detail(
    action_id: str, principal: Reader, session: SessionDep, governance: GovernanceDep
) -> ReviewDetailOut:
    action = await governance.actions.get(session, principal, action_id)
    approvals = (
        await session.execute(
            select(ActionApproval)
            .where(ActionApproval.action_id == action.id)
            .order_by(ActionApproval.created_at)
        )
    ).scalars()
    edits = (
        await session.execute(
            select(ActionEdit)
            .where(ActionEdit.action_id == action.id)
            .order_by(ActionEdit.created_at)
        )
    ).scalars()
    return ReviewDetailOut(
        action=ActionOut.model_validate(action),
        preview=await governance.review.preview(session, action),
        approvals=[ApprovalOut.model_validate(a) for a in approvals],
        edits=[EditOut.model_validate(e) for e in edits],
    )


@router.post("/{action_id}/approve", summary="Approve (one of N for four-eyes rules)")
async def approve(
    action_id: str,
    principal: Decider,
    session: SessionDep,
    governance: GovernanceDep,
    body: CommentIn | None = None,
) -> ActionOut:
    action = await governance.review.approve(
        session, principal, action_id, body.comment if body else None
    )
    return ActionOut.model_validate(action)


@router.post("/{action_id}/edit", summary="Edit the arguments and approve the result")
async def edit(
    action_id: str, body: EditIn, principal: Decider, session: SessionDep, governance: GovernanceDep
) -> ActionOut:
    action = await governance.review.edit(
        session, principal, action_id, body.arguments, body.comment
    )
    return ActionOut.model_validate(action)


@router.post("/{action_id}/reject", summary="Reject, with a reason")
async def reject(
    action_id: str,
    body: RejectIn,
    principal: Decider,
    session: SessionDep,
    governance: GovernanceDep,
) -> ActionOut:
    return ActionOut.model_validate(
        await governance.review.reject(session, principal, action_id, body.reason)
    )


@router.post("/{action_id}/cancel", summary="Withdraw a pending action")
async def cancel(
    action_id: str,
    principal: Decider,
    session: SessionDep,
    governance: GovernanceDep,
    body: CancelIn | None = None,
) -> ActionOut:
    return ActionOut.model_validate(
        await governance.review.cancel(session, principal, action_id, body.reason if body else None)
    )
