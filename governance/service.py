"""Proposing actions, reading them, and undoing them: the service the API and pipeline use.

``propose`` validates the arguments against the kind's schema, fills what must come from
a trusted source (reply recipients), evaluates the policy on the PROPOSED action and
stores it as the decision leaves it, DENIED, PENDING_REVIEW or APPROVED (then SCHEDULED),
with the events of the proposal and of the decision, all in the caller's transaction.
Services flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

import structlog
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    or_,
    select,
    true,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.auth.models import User
from assistant.core.clock import utcnow
from assistant.core.errors import (
    AutonomyRaiseError,
    NoConnectorForExecutiveError,
    NotFoundError,
    OwnershipError,
    PermissionDeniedError,
)
from assistant.core.ids import new_id
from assistant.core.principal import ActorType, Principal, Role, system_principal
from assistant.core.reads import read_rows
from assistant.core.settings import GovernanceSettings
from governance import audit
from governance.actions import KindRegistry, registry
from governance.aliases import aliases_of_user, bindings_of, executive_aliases
from governance.autonomy import grant_scope, most_specific, rank
from governance.executor import ConnectorResolver, Executor
from governance.models import Action
from governance.policy import Autonomy, Effect, PolicyInput, PolicyStore
from governance.production_models import AutonomyGrant
from governance.state import (
    ActionState,
    IllegalTransitionError,
    arguments_digest,
    decide_new,
    insert_many,
    insert_new,
    proposed_event,
    transition,
)
from integrations.base import Capability
from integrations.errors import ConnectorError, ConnectorUnavailableError, UnknownConnectorError

log = structlog.stdlib.get_logger(__name__)

S = ActionState

_VIEW_ALL = (Role.ADMIN, Role.AUDITOR)
#: The delegated scope that lets a delegate propose (assistant.auth.permissions).
PROPOSE = "actions.propose"
#: The actions table's columns, for the statements built once with bound parameters.
_T = Action.__table__.c


@dataclass
class Proposal:
    """What a proposer asks for. ``dedupe_key`` makes a re-run proposal return the first."""

    kind: str
    arguments: dict[str, Any]
    on_behalf_of: str | None = None
    correlation_id: str | None = None
    connector: str | None = None
    autonomy: Autonomy | None = None
    dedupe_key: str | None = None
    parent_id: str | None = None
    #: ``autonomy`` is a ceiling the proposer sets for itself (the meeting flow's "at most
    #: suggest"): the lower of it and the stored level applies. Otherwise asking for more
    #: than the stored level is refused.
    autonomy_at_most: bool = False


# --------------------------------------------------------------------------- access


@dataclass(slots=True)
class PreparedProposal:
    """A proposal checked and decided, not stored yet (:meth:`ActionService.prepare`): the
    row as the policy leaves it and its two audit events, built, redacted and checked."""

    tenant_id: str
    #: The row's object for the first attempt to store it.
    action: Action | None
    #: Its column values, for another attempt (a rolled-back attempt's object is not reused).
    columns: dict[str, Any]
    events: tuple[dict[str, Any], ...]
    rule: str | None

    @property
    def dedupe_key(self) -> str | None:
        key: str | None = self.columns["dedupe_key"]
        return key

    def new_action(self) -> Action:
        """The row's object for one attempt to store it."""
        action, self.action = self.action, None
        return action if action is not None else Action(**self.columns)

    def event_rows(self) -> list[dict[str, Any]]:
        """Copies of the events for one attempt (chaining writes into them)."""
        return [dict(values) for values in self.events]


def _columns(action: Action) -> dict[str, Any]:
    """The column values set on a new, unsaved ``action`` (the others are NULL)."""
    return {key: value for key, value in vars(action).items() if key != "_sa_instance_state"}


def is_system(principal: Principal) -> bool:
    return principal.actor_type is ActorType.SYSTEM


def is_agent(principal: Principal) -> bool:
    """The chat agent proposing at a person's request (``requested_by``): her rights only."""
    return principal.actor_type is ActorType.AGENT


def requester(principal: Principal) -> str | None:
    """The person behind a proposal: the caller, or whoever the agent proposes for."""
    if is_system(principal):
        return None
    return principal.requested_by if is_agent(principal) else principal.user_id


def sees_everything(principal: Principal) -> bool:
    """The system, and admins and auditors not acting for anyone, see the whole tenant."""
    return is_system(principal) or (principal.on_behalf_of is None and principal.has(*_VIEW_ALL))


def _seen(principal: Principal) -> tuple[str, dict[str, Any]]:
    """Which rows of the tenant the principal reads (see :func:`visibility`), and the
    values of that rule."""
    values: dict[str, Any] = {"tenant_id": principal.tenant_id}
    if sees_everything(principal):
        return "tenant", values
    values["acting_for"] = principal.acting_for
    if is_agent(principal):
        return "agent", values
    values["me"] = principal.user_id
    return "person", values


def _visible(seen: str, tenant_id: Any, acting_for: Any, me: Any) -> ColumnElement[bool]:
    """The rule named by :func:`_seen` on its values (or on bound parameters)."""
    rule = _T.tenant_id == tenant_id
    if seen == "tenant":
        return rule & true()
    if seen == "agent":
        return rule & (_T.on_behalf_of == acting_for)
    return rule & or_(_T.on_behalf_of == acting_for, _T.requested_by == me)


def visibility(principal: Principal) -> ColumnElement[bool]:
    """Rows of the principal's tenant they may read: everything for the system, admins and
    auditors; otherwise the actions for the executive they act as (themselves, or the one a
    delegate acts for) and the actions they proposed."""
    seen, values = _seen(principal)
    return _visible(seen, values["tenant_id"], values.get("acting_for"), values.get("me"))


def ensure_can_manage(principal: Principal, action: Action) -> None:
    """Undo, cancel, roll back: the system, the person who asked for it, and the executive
    the action is for (or her delegate); the agent changes nothing. An admin who is nothing
    else may stop any action (the operator's console; the API gives admins no such route);
    an admin who is also an executive is an executive here, and another executive's action
    is not hers. Auditors change nothing."""
    if is_system(principal):
        return
    if is_agent(principal):
        raise PermissionDeniedError("the assistant's agent only proposes", action_id=action.id)
    if principal.roles and principal.roles <= {Role.AUDITOR}:
        raise PermissionDeniedError("auditors change nothing", action_id=action.id)
    if principal.user_id == action.requested_by or principal.acts_for(action.on_behalf_of):
        return
    if (
        principal.has(Role.ADMIN)
        and principal.on_behalf_of is None
        and not principal.has(Role.EXECUTIVE, Role.DELEGATE)
    ):
        return
    raise OwnershipError("you may not change this action", action_id=action.id)


class _Shape(NamedTuple):
    """Which filters a listing has: one prepared statement per shape (see _listing)."""

    visibility: str  # see _seen()
    #: How many states: one parameter each, so that the statement has no expanding IN to
    #: render on every execution.
    states: int
    kind: bool
    correlation_id: bool
    owner: bool
    created_before: bool
    after: bool
    offset: bool


@lru_cache(maxsize=256)
def _listing_statement(columns: tuple[Any, ...], shape: _Shape) -> Select[Any]:
    """The statement of one listing shape, its values left as bound parameters.

    Built once per shape and reused: building a select and computing its cache key is most
    of the Python a small listing costs (SQLAlchemy memoizes the key on the statement)."""
    query = select(*columns).where(
        _visible(shape.visibility, bindparam("tenant_id"), bindparam("acting_for"), bindparam("me"))
    )
    if shape.states:
        query = query.where(_T.state.in_([bindparam(f"state_{i}") for i in range(shape.states)]))
    if shape.kind:
        query = query.where(_T.kind.like(bindparam("kind")))
    if shape.correlation_id:
        query = query.where(_T.correlation_id == bindparam("correlation_id"))
    if shape.owner:
        query = query.where(_T.on_behalf_of == bindparam("owner"))
    if shape.created_before:
        query = query.where(_T.created_at <= bindparam("created_before"))
    if shape.after:
        # The plain bound first: every planner turns it into an index range.
        query = query.where(_T.created_at <= bindparam("after_at"))
        query = query.where(
            or_(
                _T.created_at < bindparam("after_at"),
                and_(_T.created_at == bindparam("after_at"), _T.id < bindparam("after_id")),
            )
        )
    query = query.order_by(_T.created_at.desc(), _T.id.desc()).limit(bindparam("limit"))
    if shape.offset:
        query = query.offset(bindparam("offset"))
    return query


def _listing(
    columns: tuple[Any, ...],
    principal: Principal,
    *,
    states: Sequence[ActionState] | None,
    kind: str | None,
    correlation_id: str | None,
    owner: str | None,
    created_before: datetime | None,
    limit: int,
    offset: int,
    after: tuple[datetime, str] | None,
) -> tuple[Select[Any], dict[str, Any]]:
    """The filters, keyset and order of action listings on ``columns``, with the rows the
    principal may read (:func:`visibility`): a prepared statement and its values."""
    seen, params = _seen(principal)
    params["limit"] = limit
    for i, state in enumerate(states or ()):
        params[f"state_{i}"] = state.value
    if kind:
        params["kind"] = kind.replace("*", "%")
    if correlation_id:
        params["correlation_id"] = correlation_id
    if owner:
        params["owner"] = owner
    if created_before is not None:
        params["created_before"] = created_before
    if after is not None:
        params["after_at"], params["after_id"] = after
    if offset:
        params["offset"] = offset
    shape = _Shape(
        visibility=seen,
        states=len(states or ()),
        kind=bool(kind),
        correlation_id=bool(correlation_id),
        owner=bool(owner),
        created_before=created_before is not None,
        after=after is not None,
        offset=bool(offset),
    )
    return _listing_statement(columns, shape), params


#: The executive's user row joined with the autonomy grants that may cover her (one row of
#: NULLs when neither exists): built once, so that a proposal neither builds the statement
#: nor computes its cache key again (a third of a millisecond of CPU each time).
_ME = select(bindparam("executive", type_=String()).label("id")).subquery("executive")
#: Its columns, typed loosely: its rows are read by position (see _executive_context).
_EXECUTIVE_COLUMNS: tuple[Any, ...] = (
    User.tenant_id,
    User.source,
    User.username,
    AutonomyGrant.executive,
    AutonomyGrant.kind,
    AutonomyGrant.level,
)
_EXECUTIVE_CONTEXT = (
    select(*_EXECUTIVE_COLUMNS)
    .select_from(_ME)
    .outerjoin(User, User.id == _ME.c.id)
    .outerjoin(
        AutonomyGrant,
        and_(
            AutonomyGrant.tenant_id == bindparam("tenant"),
            AutonomyGrant.executive.in_([bindparam("grant_executive"), bindparam("any_executive")]),
        ),
    )
)


class _UserNames(NamedTuple):
    """The executive's user row as :func:`aliases_of_user` reads it (_EXECUTIVE_CONTEXT)."""

    tenant_id: str
    source: str
    username: str


class _Grant(NamedTuple):
    """An autonomy grant as :func:`most_specific` reads it (_EXECUTIVE_CONTEXT)."""

    executive: str
    kind: str
    level: str


# --------------------------------------------------------------------------- service


class ActionService:
    """Propose, list, read and undo governed actions."""

    def __init__(
        self,
        policy: PolicyStore,
        executor: Executor,
        settings: GovernanceSettings,
        *,
        kinds: KindRegistry = registry,
        resolver: ConnectorResolver | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.policy = policy
        self.executor = executor
        self.settings = settings
        self.kinds = kinds
        self.resolver = resolver
        self.clock = clock

    def connector_for(self, action: Action) -> Any:
        if self.resolver is None:
            raise ConnectorUnavailableError("no connector resolver configured")
        return self.resolver.get(
            action.tenant_id,
            Capability(action.capability),
            action.connector,
            executive=action.on_behalf_of,
        )

    async def aliases_of(
        self, session: AsyncSession, tenant_id: str, executive: str | None
    ) -> tuple[str, ...]:
        """Every name the policy may know the executive by (governance.aliases)."""
        return await executive_aliases(session, tenant_id, executive, bindings_of(self.resolver))

    async def propose(
        self, session: AsyncSession, principal: Principal, proposal: Proposal
    ) -> Action:
        """Store a new action and apply the policy to it (flushes, never commits)."""
        prepared = await self.prepare(session, principal, proposal)
        if isinstance(prepared, Action):  # the action proposed before under its dedupe key
            return prepared
        return await self.store(session, prepared)

    async def prepare(
        self, session: AsyncSession, principal: Principal, proposal: Proposal
    ) -> PreparedProposal | Action:
        """Everything of :meth:`propose` but the writes: the checks, the validation, the
        policy's decision and the audit events, built and checked. Returns the action
        already stored under the proposal's dedupe key if there is one. Only reads.

        :meth:`store` (or :meth:`store_batch`, governance.proposals' group commit) writes
        the result; whatever is wrong with a proposal raises here, before that."""
        if is_agent(principal) and not principal.holds_scope(PROPOSE):
            # The agent holds the asking person's grant: without the right to propose she
            # cannot propose through it either.
            raise PermissionDeniedError(
                "your grant does not let you propose actions for this executive"
            )
        kind = self.kinds.get(proposal.kind)
        args = kind.validate(proposal.arguments)
        on_behalf_of = proposal.on_behalf_of or (
            None if is_system(principal) else principal.acting_for
        )
        if on_behalf_of and self.resolver is not None:
            self._ensure_connector_serves(principal, kind.capability, proposal, on_behalf_of)
        if kind.complete is not None and self.resolver is not None:
            try:
                connector = self.resolver.get(
                    principal.tenant_id, kind.capability, proposal.connector, executive=on_behalf_of
                )
                args = await kind.complete(connector, args)
            except (ConnectorError, UnknownConnectorError, ConnectorUnavailableError) as exc:
                # Left incomplete, the policy treats the recipients as unknown (external).
                log.warning("action.complete_failed", kind=kind.name, error=type(exc).__name__)
        arguments = kind.dump(args)
        if proposal.dedupe_key:
            existing = await self._by_dedupe_key(session, principal.tenant_id, proposal.dedupe_key)
            if existing is not None:
                return existing
        policy = self.policy.current()
        now = self.clock()
        stored, aliases = await self._executive_context(
            session, principal.tenant_id, on_behalf_of or None, kind.name
        )
        autonomy = self._autonomy(proposal, stored, kind.name)
        action = Action(
            id=new_id(),
            tenant_id=principal.tenant_id,
            kind=kind.name,
            capability=kind.capability.value,
            connector=proposal.connector,
            risk=kind.risk.value,
            state=S.PROPOSED.value,
            version=1,
            arguments=arguments,
            actor_id=principal.user_id,
            actor_type=principal.actor_type.value,
            requested_by=requester(principal),
            on_behalf_of=on_behalf_of or None,
            correlation_id=proposal.correlation_id,
            dedupe_key=proposal.dedupe_key,
            autonomy=autonomy.value,
            parent_id=proposal.parent_id,
            approvals_required=0,
            approver_roles=[],
            hold_seconds=0.0,
            attempts=0,
            external_ids={},
            created_at=now,
            updated_at=now,
        )
        # Both events name the arguments by one digest, computed once.
        digest = arguments_digest(arguments)
        proposed = proposed_event(
            action,
            digest=digest,
            payload={
                "autonomy": autonomy.value,
                "risk": kind.risk.value,
                "on_behalf_of": action.on_behalf_of,
                "parent_id": proposal.parent_id,
                "requested_by": action.requested_by,
            },
        )
        facts = kind.facts(args)
        decision = policy.evaluate(
            PolicyInput(
                kind=kind.name,
                tenant=principal.tenant_id,
                actor=principal.user_id,
                at=now,
                capability=kind.capability.value,
                connector=proposal.connector,
                on_behalf_of=action.on_behalf_of,
                on_behalf_of_aliases=aliases,
                recipients=facts.recipients,
                amount=facts.amount,
                autonomy=autonomy,
            )
        )
        values: dict[str, Any] = {
            "decision": decision.effect.value,
            "policy_rule_id": decision.rule_id,
            "policy_version": decision.policy_version,
            "decision_reason": decision.reason,
            "explanation": decision.explanation_dicts(),
        }
        payload: dict[str, Any] = {
            "decision": decision.effect.value,
            "rule": decision.rule_id,
            "policy_version": decision.policy_version,
            "capped": decision.capped,
            "autonomy": autonomy.value,
        }
        if decision.effect is Effect.DENY:
            target = S.DENIED
        elif decision.effect is Effect.REQUIRE_APPROVAL:
            assert decision.approval is not None
            target = S.PENDING_REVIEW
            expires = now + timedelta(seconds=decision.approval.ttl_seconds)
            values.update(
                approvals_required=decision.approval.approvals,
                approver_roles=sorted(r.value for r in decision.approval.roles),
                review_expires_at=expires,
            )
            payload.update(
                approvals_required=decision.approval.approvals,
                approver_roles=values["approver_roles"],
                expires_at=expires.isoformat(),
            )
        else:
            target = S.APPROVED
            values["approved_at"] = now
        # Stored as it stands after the decision (one INSERT), with both events.
        decided = decide_new(
            action,
            target,
            now=now,
            values=values,
            reason=decision.reason,
            payload=payload,
            digest=digest,
        )
        return PreparedProposal(
            tenant_id=principal.tenant_id,
            action=action,
            columns=_columns(action),
            events=(
                audit.prepare_event(principal, proposed),
                audit.prepare_event(system_principal(principal.tenant_id, "policy"), decided),
            ),
            rule=decision.rule_id,
        )

    async def store(self, session: AsyncSession, prepared: PreparedProposal) -> Action:
        """Write one prepared proposal in the caller's transaction (flushes, never
        commits): the action, its events (chained at commit), its scheduling when the
        policy approved it. A dedupe key stored meanwhile returns that action instead."""
        if prepared.dedupe_key:
            action = await self._insert_alone(session, prepared)
            if action.id != prepared.columns["id"]:
                return action  # the one already stored under its dedupe key
        else:
            # Nothing to deduplicate: no savepoint (two round trips fewer per proposal).
            action = prepared.new_action()
            await insert_new(session, action)
        await self._stored(session, prepared, action)
        return action

    async def store_batch(
        self, session: AsyncSession, batch: Sequence[PreparedProposal]
    ) -> list[Action | Exception]:
        """:meth:`store` of several prepared proposals in the caller's transaction (flushes,
        never commits): their rows in one multi-row INSERT, their events chained at commit
        in one append. Returns each member's action, or the error that refused its row.

        The INSERT runs in a savepoint: when it fails (a dedupe key stored meanwhile, a
        constraint), only the savepoint rolls back and each row is inserted alone in a
        savepoint of its own, so that one member's failure is that member's only."""
        actions = [prepared.new_action() for prepared in batch]
        results: list[Action | Exception] = []
        try:
            async with session.begin_nested():
                await insert_many(session, actions)
        except DBAPIError as exc:
            log.info("action.batch_insert_failed", size=len(batch), error=type(exc).__name__)
            for prepared in batch:
                try:
                    results.append(await self._insert_alone(session, prepared))
                except DBAPIError as error:
                    results.append(error)
        else:
            results.extend(actions)
        for prepared, result in zip(batch, results, strict=True):
            if isinstance(result, Action) and result.id == prepared.columns["id"]:
                await self._stored(session, prepared, result)
        return results

    async def _insert_alone(self, session: AsyncSession, prepared: PreparedProposal) -> Action:
        """Insert one prepared row in a savepoint (a duplicate dedupe key rolls back the
        insert only; the events are chained at commit); the action already stored under
        its dedupe key instead when there is one."""
        action = prepared.new_action()
        try:
            async with session.begin_nested():
                await insert_new(session, action)
        except IntegrityError:
            if not prepared.dedupe_key:
                raise
            existing = await self._by_dedupe_key(session, prepared.tenant_id, prepared.dedupe_key)
            if existing is None:
                raise
            return existing
        return action

    async def _stored(
        self, session: AsyncSession, prepared: PreparedProposal, action: Action
    ) -> None:
        """After the insert: the events, deferred to the commit; scheduling when approved."""
        await audit.record_prepared_at_commit(session, prepared.tenant_id, prepared.event_rows())
        if action.state == S.APPROVED:
            await self.executor.schedule(session, action)
        log.info(
            "action.proposed",
            action_id=action.id,
            kind=action.kind,
            tenant=action.tenant_id,
            state=action.state,
            rule=prepared.rule,
        )

    def _ensure_connector_serves(
        self,
        principal: Principal,
        capability: Capability,
        proposal: Proposal,
        executive: str,
    ) -> None:
        """An action runs on a connector bound to its executive, never on another's."""
        assert self.resolver is not None
        try:
            self.resolver.get(
                principal.tenant_id, capability, proposal.connector, executive=executive
            )
        except UnknownConnectorError as exc:
            raise NoConnectorForExecutiveError(
                f"no {capability.value} connector"
                + (f" named {proposal.connector!r}" if proposal.connector else "")
                + " serves this executive",
                executive=executive,
                capability=capability.value,
            ) from exc

    async def _executive_context(
        self, session: AsyncSession, tenant_id: str, executive: str | None, kind: str
    ) -> tuple[Autonomy | None, tuple[str, ...]]:
        """The autonomy level stored for ``executive`` and ``kind`` (None: no grant covers
        it; :func:`governance.autonomy.stored_level`) and her names for the policy
        (:meth:`aliases_of`), read in one statement: her user row, joined with the grants
        that may cover her (none: one row of NULLs).

        Read with :func:`read_rows`: a request that has not touched its session yet (the
        API's proposals) reads on a pooled connection in one round trip, without opening
        a transaction it would then have to commit (a proposal that joins another's
        group commit writes nothing in its own). What it reads is what the session's new
        transaction would have read; inside a transaction it reads there."""
        scope, any_executive = grant_scope(executive)
        rows = await read_rows(
            session,
            _EXECUTIVE_CONTEXT,
            {
                "executive": executive or "",
                "tenant": tenant_id,
                "grant_executive": scope,
                "any_executive": any_executive,
            },
        )
        first = rows[0]
        user = _UserNames(first[0], first[1], first[2]) if first[2] is not None else None
        aliases = aliases_of_user(tenant_id, executive, user, bindings_of(self.resolver))
        grant = most_specific(
            (_Grant(row[3], row[4], row[5]) for row in rows if row[4] is not None), kind
        )
        return (Autonomy(grant.level) if grant is not None else None), aliases

    def _autonomy(self, proposal: Proposal, stored: Autonomy | None, kind: str) -> Autonomy:
        """The level stored for this executive and kind (governance.autonomy), else the
        policy's default. A proposal may ask for less, never for more."""
        ceiling = stored or self.policy.current().default_autonomy
        requested = proposal.autonomy
        if requested is None or rank(requested) <= rank(ceiling):
            return requested or ceiling
        if proposal.autonomy_at_most:
            return ceiling
        raise AutonomyRaiseError(
            f"the proposal asks for {requested.value} but {kind} for this executive is at "
            f"{ceiling.value}: a proposal may ask for less autonomy, never more",
            requested=requested.value,
            allowed=ceiling.value,
        )

    async def _by_dedupe_key(
        self, session: AsyncSession, tenant_id: str, key: str
    ) -> Action | None:
        return (
            await session.execute(
                select(Action).where(Action.tenant_id == tenant_id, Action.dedupe_key == key)
            )
        ).scalar_one_or_none()

    async def get(
        self,
        session: AsyncSession,
        principal: Principal,
        action_id: str,
        *,
        for_update: bool = False,
    ) -> Action:
        """One action of the principal's tenant that they may see; 404 otherwise."""
        query = select(Action).where(Action.id == action_id, visibility(principal))
        if for_update:
            query = query.with_for_update()
        action = (await session.execute(query)).scalar_one_or_none()
        if action is None:
            raise NotFoundError(f"no action {action_id!r}")
        return action

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        states: Sequence[ActionState] | None = None,
        kind: str | None = None,
        correlation_id: str | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        after: tuple[datetime, str] | None = None,
    ) -> list[Action]:
        """Newest first (created_at DESC, id DESC). ``after`` is the (created_at, id) of the
        previous page's last row: the page starts strictly after it (keyset paging, which
        neither skips nor repeats rows inserted between pages)."""
        query, params = _listing(
            (Action,),
            principal,
            states=states,
            kind=kind,
            correlation_id=correlation_id,
            owner=owner,
            created_before=created_before,
            limit=limit,
            offset=offset,
            after=after,
        )
        return list((await session.execute(query, params)).scalars())

    async def list_rows(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        columns: Sequence[Any] | None = None,
        states: Sequence[ActionState] | None = None,
        kind: str | None = None,
        correlation_id: str | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
        after: tuple[datetime, str] | None = None,
    ) -> Sequence[Sequence[Any]]:
        """:meth:`list`'s rows, for listings that only answer them: ``columns`` (every
        column of the table by default; keep the tuple the same between calls, a prepared
        statement is kept per tuple) as read-only rows, with no ORM object per row."""
        query, params = _listing(
            tuple(columns) if columns is not None else tuple(Action.__table__.columns),
            principal,
            states=states,
            kind=kind,
            correlation_id=correlation_id,
            owner=owner,
            created_before=created_before,
            limit=limit,
            offset=offset,
            after=after,
        )
        # Core execution, without the ORM's per-row loading machinery: in the session's
        # transaction when it has one, else on the driver's connection in one round trip.
        return await read_rows(session, query, params)

    async def undo(
        self, session: AsyncSession, principal: Principal, action_id: str, reason: str | None = None
    ) -> Action:
        """Cancel an action that has not run: inside its hold window, or still in review."""
        action = await self.get(session, principal, action_id)
        ensure_can_manage(principal, action)
        if action.state not in {S.SCHEDULED, S.PENDING_REVIEW}:
            hint = " (it ran: roll it back instead)" if action.state == S.SUCCEEDED else ""
            raise IllegalTransitionError(
                f"action {action.id} is {action.state}: only scheduled or pending actions "
                f"can be undone{hint}",
                action_id=action.id,
                state=action.state,
            )
        now = self.clock()
        await transition(
            session,
            action,
            S.CANCELLED,
            actor=principal,
            now=now,
            reason=reason or "undone",
            values={"finished_at": now},
            payload={
                "undo": True,
                "inside_hold_window": bool(action.not_before and now < action.not_before),
            },
        )
        log.info("action.undone", action_id=action.id, tenant=action.tenant_id)
        return action
