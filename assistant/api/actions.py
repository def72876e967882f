"""Governed actions: propose, list, read, undo, roll back (one action or a correlation id)."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, select

from assistant.api.deps import SessionDep, app_services, require
from assistant.api.pagination import CursorQuery, Keyset, json_page
from assistant.auth.permissions import Permission
from assistant.core.db import stored_json
from assistant.core.errors import OwnershipError
from assistant.core.limits import OffsetQuery
from assistant.core.principal import Principal
from assistant.governance_app import GovernanceDep, get_governance
from governance.compensation import RollbackOutcome
from governance.models import Action, ActionException
from governance.policy import Autonomy
from governance.service import Proposal
from governance.state import ActionState

router = APIRouter(prefix="/api/v1/actions", tags=["actions"])

Proposer = Annotated[Principal, require(Permission.ACTIONS_PROPOSE)]
Reader = Annotated[Principal, require(Permission.ACTIONS_READ)]
Canceller = Annotated[Principal, require(Permission.ACTIONS_CANCEL)]
Compensator = Annotated[Principal, require(Permission.ACTIONS_COMPENSATE)]
ExceptionReader = Annotated[Principal, require(Permission.EXCEPTIONS_READ)]


class ActionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    state: str
    version: int
    risk: str
    capability: str
    connector: str | None
    arguments: dict[str, Any]
    actor_id: str
    actor_type: str = Field(description="user, service, system, or agent (the chat agent).")
    on_behalf_of: str | None
    requested_by: str | None = Field(
        description="The person who asked for it (the proposer, or whoever the agent "
        "proposed it for); none for the system's own proposals."
    )
    correlation_id: str | None
    autonomy: str
    parent_id: str | None
    decision: str | None
    policy_rule_id: str | None
    policy_version: str | None
    decision_reason: str | None
    explanation: list[dict[str, Any]] | None
    approvals_required: int
    approver_roles: list[str]
    review_expires_at: datetime | None
    approved_at: datetime | None
    hold_seconds: float
    not_before: datetime | None
    attempts: int
    external_ids: dict[str, Any]
    result: dict[str, Any] | None
    last_error: str | None
    finished_at: datetime | None
    compensation_result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


_ACTION_FIELDS = tuple(ActionOut.model_fields)
#: ActionOut's columns in its order, for the listings (ActionService.list_rows; see
#: action_items). JSON columns come as their stored text, written out as is.
ACTION_COLUMNS = tuple(
    stored_json(column) if isinstance(column.type, JSON) else column
    for column in (Action.__table__.c[name] for name in _ACTION_FIELDS)
)


def action_items(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """ActionOut's fields of rows of ACTION_COLUMNS, as dicts for json_page."""
    return [dict(zip(_ACTION_FIELDS, row, strict=True)) for row in rows]


class ProposeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="Action kind, e.g. email.send.")
    arguments: dict[str, Any] = Field(description="Arguments, checked against the kind's schema.")
    on_behalf_of: str | None = Field(
        default=None,
        description="The executive: yourself, or the one you act for as her delegate.",
    )
    correlation_id: str | None = Field(default=None, max_length=128)
    connector: str | None = Field(default=None, description="Connector instance name.")
    autonomy: Autonomy | None = None
    dedupe_key: str | None = Field(
        default=None, max_length=200, description="Proposing twice with one key returns the first."
    )


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class CorrelationRollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correlation_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=2000)


class RollbackOut(BaseModel):
    action_id: str
    kind: str
    ok: bool
    state: str
    detail: str
    effect_undone: bool | None
    follow_up_action_id: str | None
    result: dict[str, Any]

    @classmethod
    def of(cls, outcome: RollbackOutcome) -> "RollbackOut":
        return cls(
            action_id=outcome.action_id,
            kind=outcome.kind,
            ok=outcome.ok,
            state=outcome.state,
            detail=outcome.detail,
            effect_undone=outcome.effect_undone,
            follow_up_action_id=outcome.follow_up_action_id,
            result=outcome.result,
        )


class ExceptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    action_id: str
    kind: str
    state: str
    owner: str
    error: str | None
    status: str
    created_at: datetime


@router.post("", status_code=201, summary="Propose an action (it goes through the policy)")
async def propose(
    body: ProposeIn, principal: Proposer, session: SessionDep, governance: GovernanceDep
) -> ActionOut:
    on_behalf_of = body.on_behalf_of or principal.acting_for
    if on_behalf_of != principal.acting_for:
        raise OwnershipError("you propose for yourself or the executive you act for")
    prepared = await governance.actions.prepare(
        session,
        principal,
        Proposal(
            kind=body.kind,
            arguments=body.arguments,
            on_behalf_of=on_behalf_of,
            correlation_id=body.correlation_id,
            connector=body.connector,
            autonomy=body.autonomy,
            dedupe_key=body.dedupe_key,
        ),
    )
    if isinstance(prepared, Action):  # proposed before under this dedupe key
        return ActionOut.model_validate(prepared)
    # Stored and committed with the proposals of other requests waiting at the same moment
    # (group commit): answered only once committed.
    action = await governance.proposals.store(session, prepared)
    return ActionOut.model_validate(action)


@router.get(
    "",
    summary="List actions of the tenant, newest first",
    response_model=list[ActionOut],
    responses={400: {"description": "A cursor this listing did not issue for this query."}},
)
async def list_actions(
    request: Request,
    principal: Reader,
    session: SessionDep,
    state: Annotated[list[ActionState] | None, Query()] = None,
    kind: str | None = None,
    correlation_id: str | None = None,
    owner: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: OffsetQuery = 0,
    cursor: CursorQuery = None,
) -> Response:
    """A full page carries the next page's cursor in the X-Next-Cursor header."""
    # Services and governance from the request, not as dependencies: see review.pending.
    services = app_services(request)
    governance = await get_governance(request)
    keyset = Keyset.of(
        services.settings.secret_key.get_secret_value(),
        "actions.list",
        principal,
        cursor,
        offset,
        state=sorted(s.value for s in state or []),
        kind=kind,
        correlation_id=correlation_id,
        owner=owner,
    )
    rows = await governance.actions.list_rows(
        session,
        principal,
        columns=ACTION_COLUMNS,
        states=state,
        kind=kind,
        correlation_id=correlation_id,
        owner=owner,
        limit=limit,
        offset=offset,
        after=keyset.after,
    )
    # Typed columns, straight from the database: no model per row, serialized once.
    items = action_items(rows)
    return json_page(items, keyset.next_cursor(items, limit))


@router.get("/exceptions", summary="The exception queue: failed actions and compensations")
async def list_exceptions(
    principal: ExceptionReader,
    session: SessionDep,
    owner: str | None = None,
    status: str = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ExceptionOut]:
    query = select(ActionException).where(
        ActionException.tenant_id == principal.tenant_id, ActionException.status == status
    )
    if owner:
        query = query.where(ActionException.owner == owner)
    rows = (
        await session.execute(query.order_by(ActionException.created_at.desc()).limit(limit))
    ).scalars()
    return [ExceptionOut.model_validate(row) for row in rows]


@router.post("/rollback", summary="Roll back every action of a correlation id, newest first")
async def rollback_correlation(
    body: CorrelationRollbackIn, principal: Compensator, governance: GovernanceDep
) -> list[RollbackOut]:
    outcomes = await governance.compensation.rollback_correlation(
        principal, body.correlation_id, body.reason
    )
    return [RollbackOut.of(o) for o in outcomes]


@router.get("/{action_id}", summary="One action, with its policy decision and explanation")
async def get_action(
    action_id: str, principal: Reader, session: SessionDep, governance: GovernanceDep
) -> ActionOut:
    return ActionOut.model_validate(await governance.actions.get(session, principal, action_id))


@router.post("/{action_id}/undo", summary="Undo inside the hold window (or while in review)")
async def undo(
    action_id: str,
    principal: Canceller,
    session: SessionDep,
    governance: GovernanceDep,
    body: ReasonIn | None = None,
) -> ActionOut:
    action = await governance.actions.undo(
        session, principal, action_id, body.reason if body else None
    )
    return ActionOut.model_validate(action)


@router.post("/{action_id}/rollback", summary="Compensate an executed action")
async def rollback(
    action_id: str, principal: Compensator, governance: GovernanceDep, body: ReasonIn | None = None
) -> RollbackOut:
    outcome = await governance.compensation.rollback(
        principal, action_id, body.reason if body else None
    )
    return RollbackOut.of(outcome)
