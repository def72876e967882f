"""Issue 13: whose assistant it is. One regression test per finding (each refusal is a
clear 403/409 with a ``governance.refused`` audit event), then the per-person matrix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select

from assistant.auth import users
from assistant.auth.permissions import DELEGABLE
from assistant.auth.runtime import DelegationCache, UserStateCache
from assistant.connector_store import bind_executive
from assistant.core.db import commit
from assistant.core.errors import PermissionDeniedError
from assistant.core.principal import (
    ActorType,
    Principal,
    Role,
    agent_principal,
    system_principal,
)
from assistant.core.settings import AutonomySettings, Settings
from governance.audit_models import AuditEvent
from governance.autonomy import set_level
from governance.models import Action, ActionApproval
from governance.policy import Autonomy
from governance.service import Proposal, is_system
from tests.api.test_triage_api import _store
from tests.conftest import FIXED_NOW, SEED_DIR
from tests.fixtures.auth import create_user_with_token
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    install_governance,
    review_settings,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture

ACTIONS = "/api/v1/actions"
REVIEW = "/api/v1/review"
OTHER_EXECUTIVE = "marcus.chen@northwind.example"  # an executive with no mailbox here
DELEGATE = "jordan@northwind.example"
DELEGABLE_SCOPES = [p.value for p in DELEGABLE]
OPERATOR = Principal(user_id="test-operator", tenant_id=TENANT, roles=frozenset({Role.ADMIN}))


@pytest.fixture
def settings(data_dir: Path, seeded_template: Path, tmp_path: Path) -> Settings:
    """The seeded sandbox, the test policy, no runner, state rechecked on every request."""
    return review_settings(data_dir, seeded_template, tmp_path, auth={"recheck_s": 0})


@pytest.fixture
async def runtime(client: httpx.AsyncClient) -> Any:
    return install_governance(client)


def mail(to: str, subject: str = "Hello") -> dict[str, Any]:
    return {"to": [{"address": to}], "subject": subject, "body_text": "Body."}


async def pipeline_proposes(
    runtime: Any, kind: str, arguments: dict[str, Any], executive: str = EXECUTIVE
) -> Any:
    async with runtime.services.sessions() as session, session.begin():
        return await runtime.actions.propose(
            session,
            system_principal(TENANT, "pipeline"),
            Proposal(kind=kind, arguments=arguments, on_behalf_of=executive),
        )


async def refusals(services: Any) -> list[AuditEvent]:
    async with services.sessions() as session:
        return list(
            (
                await session.execute(
                    select(AuditEvent)
                    .where(AuditEvent.action == "governance.refused")
                    .order_by(AuditEvent.seq)
                )
            ).scalars()
        )


async def assert_refused(
    services: Any, response: httpx.Response, status: int, error: str, actor: str | None = None
) -> None:
    """The response is a typed refusal, and the newest audit event records it."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    events = await refusals(services)
    assert events, "the refusal left no audit event"
    last = events[-1]
    assert last.payload["error"] == error and last.outcome == "denied"
    if actor is not None:
        assert last.actor_id == actor


async def store_level(services: Any, executive: str, kind: str, level: Autonomy) -> None:
    async with services.sessions() as session, session.begin():
        await set_level(
            session,
            OPERATOR,
            executive=executive,
            kind=kind,
            level=level,
            reason="an admin watches first",
            bar=AutonomySettings(),
            default=Autonomy.AUTO,
            now=FIXED_NOW,
        )


async def executive_user(services: Any, username: str, *roles: Role) -> tuple[str, dict[str, str]]:
    """A real executive (generated id, a real token) the sandbox connectors are bound to."""
    user_id, headers = await create_user_with_token(services, username, Role.EXECUTIVE, *roles)
    async with services.sessions() as session, session.begin():
        for connector in ("sandbox-mail", "sandbox-calendar"):
            await bind_executive(
                session, OPERATOR, tenant_id=TENANT, connector=connector, executive_id=user_id
            )
    await services.connectors.load_bindings()
    return user_id, headers


# ------------------------------------------------------------------ finding 1: autonomy


async def test_a_proposal_cannot_raise_its_own_autonomy(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    await store_level(services, EXECUTIVE, "email.*", Autonomy.SHADOW)

    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    body = {"kind": "email.send", "arguments": mail(COLLEAGUE), "autonomy": "auto"}
    await assert_refused(
        services, await client.post(ACTIONS, json=body), 409, "AutonomyRaiseError", EXECUTIVE
    )
    as_role(
        client,
        Role.DELEGATE,
        user_id=DELEGATE,
        on_behalf_of=EXECUTIVE,
        delegated_scopes=frozenset({"actions.propose"}),
    )
    await assert_refused(
        services, await client.post(ACTIONS, json=body), 409, "AutonomyRaiseError", DELEGATE
    )
    # Without a level of its own, the stored one applies: shadow proposes nothing.
    stored = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    assert stored.status_code == 201, stored.text
    assert (stored.json()["autonomy"], stored.json()["state"]) == ("shadow", "denied")
    # Asking for less than the level is fine (calendar.* is at the policy's default, auto).
    event = {
        "subject": "Sync",
        "start": "2026-11-27T15:00:00+00:00",
        "end": "2026-11-27T15:30:00+00:00",
    }
    less = await client.post(
        ACTIONS, json={"kind": "calendar.event.create", "arguments": event, "autonomy": "suggest"}
    )
    assert less.status_code == 201, less.text
    assert (less.json()["autonomy"], less.json()["state"]) == ("suggest", "pending_review")


async def test_nobody_raises_their_own_autonomy_level(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    url = "/api/v1/admin/autonomy"
    boss_id, boss = await create_user_with_token(
        services, "boss@northwind.example", Role.ADMIN, Role.EXECUTIVE
    )
    _, ada = await create_user_with_token(services, "ada", Role.ADMIN)
    mine = {"executive": "boss@northwind.example", "kind": "email.*", "reason": "r"}
    for executive in ("boss@northwind.example", boss_id, "*"):
        lowered = await client.put(
            url, headers=boss, json=mine | {"executive": executive, "level": "shadow"}
        )
        assert lowered.status_code == 200, lowered.text  # taking autonomy away is fine
        raised = await client.put(
            url, headers=boss, json=mine | {"executive": executive, "level": "auto"}
        )
        await assert_refused(services, raised, 403, "SeparationOfDutiesError", boss_id)
    # Another admin may ask; the measured record then decides (none here: 409).
    other = await client.put(url, headers=ada, json=mine | {"level": "auto"})
    assert other.status_code == 409 and other.json()["error"] == "PromotionRefusedError"
    # A delegate who may propose for A cannot touch A's autonomy at all.
    as_role(
        client,
        Role.DELEGATE,
        user_id=DELEGATE,
        on_behalf_of=EXECUTIVE,
        delegated_scopes=frozenset({"actions.propose"}),
    )
    delegate = await client.put(url, json=mine | {"executive": EXECUTIVE, "level": "auto"})
    assert delegate.status_code == 403, delegate.text


# ------------------------------------------------------------------ finding 2: approvals


async def test_only_the_executive_or_her_delegate_with_the_scope_approves(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER, "Quote"))
    url = f"{REVIEW}/{pending.id}/approve"

    # An admin who is also an executive approves nobody else's action.
    as_role(client, Role.ADMIN, Role.EXECUTIVE, user_id="boss@northwind.example")
    await assert_refused(services, await client.post(url), 403, "OwnershipError")
    as_role(client, Role.EXECUTIVE, user_id=OTHER_EXECUTIVE)
    assert (await client.post(url)).status_code == 404  # she does not even see it
    as_role(
        client,
        Role.DELEGATE,
        user_id=DELEGATE,
        on_behalf_of=EXECUTIVE,
        delegated_scopes=frozenset({"review.read"}),
    )
    assert (await client.post(url)).status_code == 403  # the grant lacks review.decide
    as_role(
        client,
        Role.DELEGATE,
        user_id=DELEGATE,
        on_behalf_of=EXECUTIVE,
        delegated_scopes=frozenset({"review.read", "review.decide"}),
    )
    approved = await client.post(url)
    assert approved.status_code == 200 and approved.json()["state"] == "scheduled"


async def test_four_eyes_counts_persons_not_api_keys(
    client: httpx.AsyncClient, runtime: Any
) -> None:
    services = runtime.services
    dana_id, dana = await executive_user(services, "dana", Role.ADMIN)
    keys = []
    for name in ("laptop", "phone"):
        made = await client.post(
            "/api/v1/api-keys",
            headers=dana,
            json={"name": name, "roles": ["executive"], "personal": True},
        )
        assert made.status_code == 201, made.text
        assert made.json()["owner_id"] == dana_id
        keys.append({"X-API-Key": made.json()["key"]})
    me = await client.get("/api/v1/me", headers=keys[0])
    assert me.json()["user_id"] == dana_id and me.json()["roles"] == ["executive"]
    # A personal key never holds a role its person does not.
    auditor_key = await client.post(
        "/api/v1/api-keys",
        headers=dana,
        json={"name": "x", "roles": ["auditor"], "personal": True},
    )
    await assert_refused(services, auditor_key, 403, "SeparationOfDutiesError", dana_id)

    created = await pipeline_proposes(
        runtime,
        "calendar.event.create",
        {"subject": "Offsite", "start": "2026-11-27T15:00:00Z", "end": "2026-11-27T16:00:00Z"},
        executive=dana_id,
    )
    await runtime.executor.run_due()
    async with services.sessions() as session:
        row = await session.get(Action, created.id)
        assert row is not None and row.state == "succeeded", row.last_error if row else None
    cancel = await pipeline_proposes(
        runtime, "calendar.event.cancel", {"event_id": row.external_ids["event_id"]}, dana_id
    )
    assert cancel.approvals_required == 2
    first = await client.post(f"{REVIEW}/{cancel.id}/approve", headers=keys[0])
    assert first.status_code == 200 and first.json()["state"] == "pending_review"
    second = await client.post(f"{REVIEW}/{cancel.id}/approve", headers=keys[1])
    await assert_refused(services, second, 409, "DuplicateApprovalError", dana_id)


# ------------------------------------------------------------------ the chat agent's proposals


async def agent_proposes(
    runtime: Any, person: Principal, kind: str, arguments: dict[str, Any], executive: str
) -> Any:
    """What a chat tool does: the agent proposes, on ``person``'s rights, at her request."""
    async with runtime.services.sessions() as session, session.begin():
        return await runtime.actions.propose(
            session,
            agent_principal(person, executive=executive),
            Proposal(
                kind=kind, arguments=arguments, on_behalf_of=executive, autonomy=Autonomy.SUGGEST
            ),
        )


async def an_event_to_cancel(runtime: Any, executive: str) -> str:
    created = await pipeline_proposes(
        runtime,
        "calendar.event.create",
        {"subject": "Offsite", "start": "2026-11-27T15:00:00Z", "end": "2026-11-27T16:00:00Z"},
        executive=executive,
    )
    await runtime.executor.run_due()
    async with runtime.services.sessions() as session:
        row = await session.get(Action, created.id)
        assert row is not None and row.state == "succeeded", row.last_error if row else None
        return str(row.external_ids["event_id"])


def person(user_id: str, *roles: Role, **extra: Any) -> Principal:
    return Principal(user_id=user_id, tenant_id=TENANT, roles=frozenset(roles), **extra)


async def test_the_executive_approves_what_she_asked_her_assistant_for(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    """The agent's proposal names the agent as its actor and her as requester (row and
    audit); she approves it; another executive, an admin and the agent itself cannot."""
    services = runtime.services
    dana = person(EXECUTIVE, Role.EXECUTIVE)
    action = await agent_proposes(runtime, dana, "email.send", mail(OUTSIDER), EXECUTIVE)
    assert action.state == "pending_review" and action.autonomy == "suggest"
    url = f"{REVIEW}/{action.id}/approve"

    as_role(client, Role.EXECUTIVE, user_id=OTHER_EXECUTIVE)
    assert (await client.post(url)).status_code == 404  # not hers: as if absent
    as_role(client, Role.ADMIN, Role.EXECUTIVE, user_id="boss@northwind.example")
    await assert_refused(services, await client.post(url), 403, "OwnershipError")
    with pytest.raises(PermissionDeniedError):
        async with services.sessions() as session, session.begin():
            await runtime.review.approve(session, agent_principal(dana), action.id)

    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    shown = (await client.get(f"{ACTIONS}/{action.id}")).json()
    assert (shown["actor_type"], shown["actor_id"], shown["requested_by"]) == (
        "agent",
        "agent",
        EXECUTIVE,
    )
    approved = await client.post(url)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "scheduled"
    async with services.sessions() as session:
        proposed = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.action_id == action.id, AuditEvent.action == "action.proposed"
                )
            )
        ).scalar_one()
    assert (proposed.actor_type, proposed.actor_id) == ("agent", "agent")
    assert proposed.payload["requested_by"] == EXECUTIVE

    # A proposal made through the API keeps the old rule: its proposer never approves it.
    mine = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(OUTSIDER)})
    assert mine.json()["requested_by"] == EXECUTIVE and mine.json()["actor_type"] == "user"
    refused = await client.post(f"{REVIEW}/{mine.json()['id']}/approve")
    await assert_refused(services, refused, 403, "SeparationOfDutiesError", EXECUTIVE)


async def test_a_delegate_never_approves_what_she_asked_the_assistant_for(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    """Jordan (a delegate with review.decide) asks the agent for a reply: he may not approve
    or edit it; the executive, or another delegate, does."""
    services = runtime.services
    scopes = frozenset(DELEGABLE_SCOPES)
    jordan = person(DELEGATE, Role.DELEGATE, on_behalf_of=EXECUTIVE, delegated_scopes=scopes)
    action = await agent_proposes(runtime, jordan, "email.send", mail(OUTSIDER), EXECUTIVE)
    assert (action.actor_type, action.requested_by) == ("agent", DELEGATE)

    as_role(
        client, Role.DELEGATE, user_id=DELEGATE, on_behalf_of=EXECUTIVE, delegated_scopes=scopes
    )
    await assert_refused(
        services,
        await client.post(f"{REVIEW}/{action.id}/approve"),
        403,
        "SeparationOfDutiesError",
        DELEGATE,
    )
    await assert_refused(
        services,
        await client.post(
            f"{REVIEW}/{action.id}/edit", json={"arguments": mail(OUTSIDER, "Changed")}
        ),
        403,
        "SeparationOfDutiesError",
        DELEGATE,
    )
    # Sam, another delegate of hers with the scope, may.
    as_role(
        client,
        Role.DELEGATE,
        user_id="sam@northwind.example",
        on_behalf_of=EXECUTIVE,
        delegated_scopes=scopes,
    )
    approved = await client.post(f"{REVIEW}/{action.id}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "scheduled"


async def test_a_delegate_without_the_propose_scope_proposes_nothing_through_the_agent(
    runtime: Any,
) -> None:
    jordan = person(
        DELEGATE,
        Role.DELEGATE,
        on_behalf_of=EXECUTIVE,
        delegated_scopes=frozenset({"mail.read", "review.read", "review.decide"}),
    )
    with pytest.raises(PermissionDeniedError, match="propose"):
        await agent_proposes(runtime, jordan, "email.send", mail(OUTSIDER), EXECUTIVE)
    async with runtime.services.sessions() as session:
        assert (await session.execute(select(Action))).scalars().all() == []
    # The agent is never the system: it is refused the system's reach.
    agent = agent_principal(jordan)
    assert not is_system(agent) and agent.actor_type is ActorType.AGENT
    with pytest.raises(ValueError):
        agent_principal(system_principal(TENANT, "pipeline"))


async def test_four_eyes_on_the_agents_proposal_counts_persons(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    """A two-approver rule: the executive who asked gives one approval, not two (nor two
    through two keys of hers); a delegate who asked gives none."""
    services = runtime.services
    dana_id, dana = await executive_user(services, "dana", Role.ADMIN)
    keys = []
    for name in ("laptop", "phone"):
        made = await client.post(
            "/api/v1/api-keys",
            headers=dana,
            json={"name": name, "roles": ["executive"], "personal": True},
        )
        assert made.status_code == 201, made.text
        keys.append({"X-API-Key": made.json()["key"]})

    hers = await agent_proposes(
        runtime,
        person(dana_id, Role.EXECUTIVE),
        "calendar.event.cancel",
        {"event_id": await an_event_to_cancel(runtime, dana_id)},
        dana_id,
    )
    assert hers.approvals_required == 2 and hers.requested_by == dana_id
    first = await client.post(f"{REVIEW}/{hers.id}/approve", headers=keys[0])
    assert first.status_code == 200 and first.json()["state"] == "pending_review"
    for again in (keys[1], dana):
        second = await client.post(f"{REVIEW}/{hers.id}/approve", headers=again)
        await assert_refused(services, second, 409, "DuplicateApprovalError", dana_id)

    # Jordan asks for the other cancellation: his approval never counts.
    scopes = frozenset(DELEGABLE_SCOPES)
    jordan = person(DELEGATE, Role.DELEGATE, on_behalf_of=dana_id, delegated_scopes=scopes)
    his = await agent_proposes(
        runtime,
        jordan,
        "calendar.event.cancel",
        {"event_id": await an_event_to_cancel(runtime, dana_id)},
        dana_id,
    )
    as_role(client, Role.DELEGATE, user_id=DELEGATE, on_behalf_of=dana_id, delegated_scopes=scopes)
    await assert_refused(
        services,
        await client.post(f"{REVIEW}/{his.id}/approve"),
        403,
        "SeparationOfDutiesError",
        DELEGATE,
    )
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    one = await client.post(f"{REVIEW}/{his.id}/approve", headers=keys[0])
    assert one.json()["state"] == "pending_review" and one.json()["version"] > 0
    as_role(client, Role.DELEGATE, user_id=DELEGATE, on_behalf_of=dana_id, delegated_scopes=scopes)
    await assert_refused(
        services,
        await client.post(f"{REVIEW}/{his.id}/approve"),
        403,
        "SeparationOfDutiesError",
        DELEGATE,
    )
    as_role(
        client,
        Role.DELEGATE,
        user_id="sam@northwind.example",
        on_behalf_of=dana_id,
        delegated_scopes=scopes,
    )
    two = await client.post(f"{REVIEW}/{his.id}/approve")
    assert two.status_code == 200 and two.json()["state"] == "scheduled"
    async with services.sessions() as session:
        approvers = (
            await session.execute(
                select(ActionApproval.approver_id).where(ActionApproval.action_id == his.id)
            )
        ).scalars()
        assert sorted(approvers) == sorted([dana_id, "sam@northwind.example"])


async def test_nobody_grants_roles_to_themselves(client: httpx.AsyncClient, runtime: Any) -> None:
    services = runtime.services
    admin_id, admin = await create_user_with_token(services, "root", Role.ADMIN)
    own = await client.put(
        f"/api/v1/users/{admin_id}/roles", headers=admin, json={"roles": ["admin", "executive"]}
    )
    await assert_refused(services, own, 403, "SeparationOfDutiesError", admin_id)
    me = await client.get("/api/v1/me", headers=admin)
    assert me.json()["roles"] == ["admin"]


async def test_each_item_refused_in_a_bulk_review_is_audited_on_its_own(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    own = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(OUTSIDER)})
    assert own.status_code == 201 and own.json()["state"] == "pending_review", own.text
    filed = [(await pipeline_proposes(runtime, "email.send", mail(OUTSIDER, s))).id for s in "ab"]
    before = len(await refusals(services))

    # An admin who is also an executive bulk-approves A's actions: each one refused.
    as_role(client, Role.ADMIN, Role.EXECUTIVE, user_id="boss@northwind.example")
    items = [{"action_id": i, "decision": "approve"} for i in filed]
    foreign = await client.post(f"{REVIEW}/bulk", json={"items": items})
    assert foreign.status_code == 200, foreign.text
    assert [(r["action_id"], r["ok"], r["error"]) for r in foreign.json()["results"]] == [
        (filed[0], False, "OwnershipError"),
        (filed[1], False, "OwnershipError"),
    ]

    # A herself: her own proposal (nobody approves their own request), one fine, one
    # malformed, one unknown; each item's outcome is listed.
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    mixed = await client.post(
        f"{REVIEW}/bulk",
        json={
            "items": [
                {"action_id": own.json()["id"], "decision": "approve"},
                {"action_id": filed[0], "decision": "approve"},
                {"action_id": filed[1], "decision": "reject"},
                {"action_id": "no-such-action", "decision": "approve"},
            ]
        },
    )
    assert mixed.status_code == 200, mixed.text
    assert [(r["ok"], r["state"], r["error"]) for r in mixed.json()["results"]] == [
        (False, None, "SeparationOfDutiesError"),
        (True, "scheduled", None),
        (False, None, "ValidationFailedError"),
        (False, None, "NotFoundError"),
    ]

    events = (await refusals(services))[before:]
    assert [
        (e.actor_id, e.resource_type, e.resource_id, e.payload["error"], e.outcome) for e in events
    ] == [
        ("boss@northwind.example", "action", filed[0], "OwnershipError", "denied"),
        ("boss@northwind.example", "action", filed[1], "OwnershipError", "denied"),
        (EXECUTIVE, "action", own.json()["id"], "SeparationOfDutiesError", "denied"),
        (EXECUTIVE, "action", filed[1], "ValidationFailedError", "denied"),
        (EXECUTIVE, "action", "no-such-action", "NotFoundError", "denied"),
    ]
    assert all(e.reason and e.payload["decision"] in {"approve", "reject"} for e in events)
    assert "own request" in (events[2].reason or "")


async def test_an_admin_cannot_borrow_an_executives_power_by_delegation(
    client: httpx.AsyncClient, runtime: Any
) -> None:
    services = runtime.services
    sophie_id, _ = await executive_user(services, "sophie")
    admin_id, admin = await create_user_with_token(services, "root", Role.ADMIN)
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER), sophie_id)
    # Delegations are granted by the executive for herself, never by an admin.
    granted = await client.post(
        "/api/v1/delegations", headers=admin, json={"delegate_id": admin_id}
    )
    assert granted.status_code == 403, granted.text
    # Claiming to act for her without her grant is refused and audited.
    claimed = await client.post(
        f"{REVIEW}/{pending.id}/approve", headers=admin | {"X-On-Behalf-Of": sophie_id}
    )
    assert claimed.status_code == 403, claimed.text
    async with services.sessions() as session:
        denied = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
            )
        )
    assert (denied[-1].actor_id, denied[-1].resource_id) == (admin_id, sophie_id)
    assert (await client.get(f"{ACTIONS}/{pending.id}", headers=admin)).json()["state"] == (
        "pending_review"
    )


# ------------------------------------------------------------------ finding 3: connectors


async def test_actions_run_on_the_executives_own_connector_and_she_sees_her_queue(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    # An executive no connector serves cannot send from the tenant's one mailbox.
    as_role(client, Role.EXECUTIVE, user_id=OTHER_EXECUTIVE)
    refused = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    await assert_refused(services, refused, 409, "NoConnectorForExecutiveError", OTHER_EXECUTIVE)

    # Bound to an executive-only user (a generated id), the sandbox serves her alone.
    sophie_id, sophie = await executive_user(services, "sophie")
    mailbox = services.connectors.instances[(TENANT, "sandbox-mail")]
    assert mailbox.executives == (sophie_id,) and mailbox.primary_executive() == sophie_id
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)  # the address no longer owns it
    moved = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    await assert_refused(services, moved, 409, "NoConnectorForExecutiveError", EXECUTIVE)

    # What the pipeline files for the mailbox is hers: her review queue shows it.
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    pending = await pipeline_proposes(
        runtime, "email.send", mail(OUTSIDER, "Terms"), executive=mailbox.primary_executive()
    )
    queue = await client.get(REVIEW, headers=sophie)
    assert queue.status_code == 200, queue.text
    assert [a["id"] for a in queue.json()] == [pending.id]
    approved = await client.post(f"{REVIEW}/{pending.id}/approve", headers=sophie)
    assert approved.status_code == 200 and approved.json()["state"] == "scheduled"
    _, other = await create_user_with_token(services, "raj", Role.EXECUTIVE)
    assert (await client.get(REVIEW, headers=other)).json() == []


# ------------------------------------------------------------------ finding 4: data per executive


async def test_triage_and_calendars_belong_to_their_executive(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    await _store(services.sessions, "m-dana")
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    mine = await client.post("/api/v1/triage/m-dana/correction", json={"category": "respond"})
    assert mine.status_code == 201, mine.text

    as_role(client, Role.EXECUTIVE, user_id=OTHER_EXECUTIVE)
    theirs = await client.post("/api/v1/triage/m-dana/correction", json={"category": "ignore"})
    await assert_refused(services, theirs, 403, "OwnershipError", OTHER_EXECUTIVE)
    listed = (await client.get("/api/v1/triage/corrections")).json()
    assert listed["items"] == [] and listed["metrics"]["corrections"] == 0
    find = await client.post(
        "/api/v1/schedule/find",
        json={
            "participants": [{"address": COLLEAGUE}],
            "duration_minutes": 30,
            "window_start": "2026-11-26T14:00:00Z",
            "window_end": "2026-11-26T17:00:00Z",
        },
    )
    await assert_refused(services, find, 409, "NoConnectorForExecutiveError", OTHER_EXECUTIVE)

    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    assert [
        c["message_id"] for c in (await client.get("/api/v1/triage/corrections")).json()["items"]
    ] == ["m-dana"]


# ------------------------------------------------------------------ finding 5: recheck


async def test_disabled_users_and_removed_roles_stop_working_at_once(
    client: httpx.AsyncClient, runtime: Any
) -> None:
    services = runtime.services
    _, root = await create_user_with_token(services, "root", Role.ADMIN)
    auditor_id, auditor = await create_user_with_token(
        services, "audrey", Role.AUDITOR, Role.EXECUTIVE
    )
    assert (await client.get("/api/v1/audit/events", headers=auditor)).status_code == 200
    changed = await client.put(
        f"/api/v1/users/{auditor_id}/roles", headers=root, json={"roles": ["executive"]}
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/audit/events", headers=auditor)).status_code == 403

    key = await client.post(
        "/api/v1/api-keys", headers=root, json={"name": "ops", "roles": ["admin"], "personal": True}
    )
    root_key = {"X-API-Key": key.json()["key"]}
    assert (await client.get("/api/v1/users", headers=root_key)).status_code == 200
    disabled = await client.patch(
        f"/api/v1/users/{auditor_id}", headers=root_key, json={"disabled": True}
    )
    assert disabled.status_code == 200, disabled.text
    assert (await client.get("/api/v1/me", headers=auditor)).status_code == 401
    root_id = (await client.get("/api/v1/me", headers=root)).json()["user_id"]
    async with services.sessions() as session, session.begin():
        user = await users.get_user(session, TENANT, root_id)
        user.disabled = True  # another admin (or the CLI) disabled the key's person
    assert (await client.get("/api/v1/me", headers=root_key)).status_code == 401


async def test_a_day_long_cli_token_is_rechecked_like_any_other(
    client: httpx.AsyncClient, runtime: Any
) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app as cli

    services = runtime.services
    _, root = await create_user_with_token(services, "root", Role.ADMIN)
    auditor_id, _ = await create_user_with_token(services, "audrey", Role.AUDITOR)
    env = {
        "ASSISTANT_DATA_DIR": str(services.settings.data_dir),
        "ASSISTANT_SANDBOX__SEED_DIR": str(SEED_DIR),
    }
    minted = await asyncio.to_thread(
        CliRunner().invoke, cli, ["token", "audrey", "--ttl", "86400"], env=env
    )
    assert minted.exit_code == 0, minted.output
    token = next(w for w in minted.output.split() if w.startswith("eyJ"))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 86400
    day_long = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/audit/events", headers=day_long)).status_code == 200
    removed = await client.put(
        f"/api/v1/users/{auditor_id}/roles", headers=root, json={"roles": ["executive"]}
    )
    assert removed.status_code == 200, removed.text
    assert (await client.get("/api/v1/audit/events", headers=day_long)).status_code == 403
    await client.patch(f"/api/v1/users/{auditor_id}", headers=root, json={"disabled": True})
    assert (await client.get("/api/v1/me", headers=day_long)).status_code == 401


async def test_the_state_cache_keeps_a_person_at_most_its_ttl(sessions: Any, engine: Any) -> None:
    now = [0.0]
    cache = UserStateCache(5.0, clock=lambda: now[0])
    async with sessions() as session, session.begin():
        user = await users.create_user(
            session, OPERATOR, tenant_id=TENANT, username="kim", roles=[Role.AUDITOR]
        )
    async with sessions() as session:
        assert (await cache.get(session, TENANT, user.id)).roles == {Role.AUDITOR}  # type: ignore[union-attr]
    async with sessions() as session, session.begin():
        row = await users.get_user(session, TENANT, user.id)
        await users.set_roles(session, OPERATOR, row, [Role.EXECUTIVE])
    now[0] = 4.9
    async with sessions() as session:
        assert (await cache.get(session, TENANT, user.id)).roles == {Role.AUDITOR}  # type: ignore[union-attr]
    now[0] = 5.0
    async with sessions() as session:
        assert (await cache.get(session, TENANT, user.id)).roles == {Role.EXECUTIVE}  # type: ignore[union-attr]
        assert await cache.get(session, "other", user.id) is None  # tenant-bound


async def test_the_delegation_cache_keeps_a_grant_at_most_its_ttl(sessions: Any) -> None:
    """Another process's revocation reaches the cache within its TTL; one committed in this
    process (through the request's commit) at once. A refusal is never kept."""
    now = [0.0]
    cache = DelegationCache(5.0, clock=lambda: now[0])
    async with sessions() as session:
        executive = await users.create_user(
            session, OPERATOR, tenant_id=TENANT, username="eve", roles=[Role.EXECUTIVE]
        )
        delegate = await users.create_user(
            session, OPERATOR, tenant_id=TENANT, username="del", roles=[Role.DELEGATE]
        )
        boss = Principal(user_id=executive.id, tenant_id=TENANT, roles=frozenset({Role.EXECUTIVE}))
        grant = await users.grant_delegation(
            session, boss, executive=executive, delegate=delegate, scopes=["review.read"]
        )
        await commit(session)
    ids = (TENANT, executive.id, delegate.id)
    async with sessions() as session:
        assert await cache.scopes(session, *ids) == ("review.read",)
    async with sessions() as session, session.begin():  # as another process commits it
        row = await session.get(type(grant), grant.id)
        row.revoked_at = FIXED_NOW
    now[0] = 4.9
    async with sessions() as session:
        assert await cache.scopes(session, *ids) == ("review.read",)
    now[0] = 5.0
    async with sessions() as session:
        assert await cache.scopes(session, *ids) is None
    async with sessions() as session:
        grant = await users.grant_delegation(
            session, boss, executive=executive, delegate=delegate, scopes=["review.read"]
        )
        await commit(session)
        assert await cache.scopes(session, *ids) == ("review.read",)  # refusals are not kept
    async with sessions() as session:
        await users.revoke_delegation(session, boss, TENANT, grant.id)
        await commit(session)
    async with sessions() as session:
        assert await cache.scopes(session, *ids) is None  # revoked here: at once


async def test_requests_missing_one_expired_entry_read_it_once(
    sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry expires for every request in flight at once: they wait for one read
    instead of each reading (a stampede on the pool). A read that fails leaves the
    others to read for themselves; with no TTL each request reads its own."""
    from assistant.auth import runtime

    async with sessions() as session, session.begin():
        user = await users.create_user(
            session, OPERATOR, tenant_id=TENANT, username="lee", roles=[Role.AUDITOR]
        )
    reads: list[str] = []
    real_roles_of = runtime.roles_of
    fail_next = [False]

    async def counted_roles_of(session: Any, tenant_id: str, user_id: str) -> Any:
        reads.append(user_id)
        await asyncio.sleep(0.01)  # the others arrive while it reads
        if fail_next[0]:
            fail_next[0] = False
            raise ConnectionError("the database went away")
        return await real_roles_of(session, tenant_id, user_id)

    monkeypatch.setattr(runtime, "roles_of", counted_roles_of)

    async def get(cache: UserStateCache) -> Any:
        async with sessions() as session:
            return await cache.get(session, TENANT, user.id)

    cache = UserStateCache(5.0)
    states = await asyncio.gather(*(get(cache) for _ in range(8)))
    assert reads == [user.id]
    assert all(state.roles == {Role.AUDITOR} for state in states)

    reads.clear()
    fail_next[0] = True
    cache = UserStateCache(5.0)
    results = await asyncio.gather(*(get(cache) for _ in range(4)), return_exceptions=True)
    assert isinstance(results[0], ConnectionError)
    assert all(r.roles == {Role.AUDITOR} for r in results[1:])  # type: ignore[union-attr]
    assert len(reads) == 2  # the failed read, then one for the three waiting

    reads.clear()
    await asyncio.gather(*(get(UserStateCache(0.0)) for _ in range(3)))
    uncached = UserStateCache(0.0)
    await asyncio.gather(*(get(uncached) for _ in range(3)))
    assert len(reads) == 6


# ------------------------------------------------------------------ finding 6: connector secrets


async def test_moving_a_connector_needs_its_secret_again(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    as_role(client, Role.ADMIN, user_id="ada")
    config = {
        "url": "https://dav.northwind.example/",
        "username": "dana",
        "password": "s3cret-dav-password",
        "owner": EXECUTIVE,
    }
    base = "/api/v1/admin/connectors"
    created = await client.post(
        base, json={"name": "dav", "slug": "caldav.calendar", "config": config}
    )
    assert created.status_code == 201, created.text
    moved = await client.patch(
        f"{base}/dav", json={"config": {"url": "https://attacker.example/", "password": "********"}}
    )
    await assert_refused(services, moved, 409, "SecretRequiredError", "ada")
    assert "s3cret" not in moved.text
    assert (await client.get(f"{base}/dav")).json()["config"]["url"] == config["url"]
    # Another field alone keeps the masked secret; a move with the secret entered is fine.
    assert (
        await client.patch(f"{base}/dav", json={"config": {"timeout_s": 12}})
    ).status_code == 200
    again = await client.patch(
        f"{base}/dav",
        json={"config": {"url": "https://dav2.northwind.example/", "password": "new-secret"}},
    )
    assert again.status_code == 200 and again.json()["config"]["password"] == "********"
    events = await refusals(services)
    assert all("s3cret" not in e.payload_json for e in events)


def test_how_safely_a_connector_connects_is_part_of_its_destination() -> None:
    from assistant.connector_store import destination_changes

    # A weaker transport would hand the stored password to whoever sits on the path.
    assert destination_changes({"smtp_security": "tls"}, {"smtp_security": "starttls"}) == [
        "smtp_security"
    ]
    assert destination_changes({"verify_tls": True}, {"verify_tls": False}) == ["verify_tls"]
    assert destination_changes({"timeout_s": 5}, {"timeout_s": 9}) == []


class _Listener:
    """An HTTP server on 127.0.0.1 that asks for Basic credentials and keeps every
    Authorization header it is sent: the host an attacker would point a connector to."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.authorizations: list[str] = []
        seen = self.authorizations

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _challenge(self) -> None:
                if self.headers.get("Authorization"):
                    seen.append(self.headers["Authorization"])
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="dav"')
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PROPFIND = do_OPTIONS = do_REPORT = _challenge  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_connector_test_never_sends_the_stored_secret_to_a_new_host(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    import base64
    import socket

    services = runtime.services
    with socket.socket() as closed:  # a port nothing listens on: the real server is away
        closed.bind(("127.0.0.1", 0))
        home = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    attacker = _Listener()
    try:
        as_role(client, Role.ADMIN, user_id="ada")
        base = "/api/v1/admin/connectors"
        config = {"url": home, "username": "dana", "password": "s3cret-dav-password"}
        made = await client.post(
            base, json={"name": "dav", "slug": "caldav.calendar", "config": config}
        )
        assert made.status_code == 201, made.text
        for change in (
            {"url": attacker.url},
            {"url": attacker.url, "password": "********"},
        ):
            moved = await client.patch(f"{base}/dav", json={"config": change})
            await assert_refused(services, moved, 409, "SecretRequiredError", "ada")
        tested = await client.post(f"{base}/dav/test")
        assert tested.status_code == 200 and tested.json()["status"] == "down"
        assert attacker.authorizations == []  # /test went home, not to the attacker

        # Entering a secret again is the owner's choice: only that one ever travels.
        entered = await client.patch(
            f"{base}/dav", json={"config": {"url": attacker.url, "password": "typed-again"}}
        )
        assert entered.status_code == 200, entered.text
        await client.post(f"{base}/dav/test")
        sent = {base64.b64decode(a.split()[1]).decode() for a in attacker.authorizations}
        assert sent == {"dana:typed-again"}
    finally:
        attacker.close()


# ------------------------------------------------------------------ the per-person matrix


def persons() -> dict[str, dict[str, Any]]:
    """Who calls, as ``as_role`` arguments: the executive A (the sandbox is hers), another
    executive B, A's delegate holding each single scope, an admin, an auditor, and a
    service account's API key (it acts for nobody)."""
    people: dict[str, dict[str, Any]] = {
        "executive A": {"roles": (Role.EXECUTIVE,), "user_id": EXECUTIVE},
        "executive B": {"roles": (Role.EXECUTIVE,), "user_id": OTHER_EXECUTIVE},
        "admin": {"roles": (Role.ADMIN,), "user_id": "ada"},
        "admin and executive": {"roles": (Role.ADMIN, Role.EXECUTIVE), "user_id": "boss"},
        "auditor": {"roles": (Role.AUDITOR,), "user_id": "audrey"},
        "service key": {
            "roles": (Role.EXECUTIVE,),
            "user_id": "apikey:svc",
            "actor_type": ActorType.SERVICE,
        },
    }
    for scope in sorted(DELEGABLE):
        people[f"A's delegate with {scope.value}"] = {
            "roles": (Role.DELEGATE,),
            "user_id": DELEGATE,
            "on_behalf_of": EXECUTIVE,
            "delegated_scopes": frozenset({scope.value}),
        }
    return people


#: Who may do what on executive A's data: nobody else, whatever their roles.
EXPECTED: dict[str, set[str]] = {
    "see A's review queue": {"executive A", "A's delegate with review.read"},
    "read A's action": {
        "executive A",
        "A's delegate with actions.read",
        "admin",
        "admin and executive",
        "auditor",
    },
    "approve A's action": {"executive A", "A's delegate with review.decide"},
    "undo A's action": {"executive A", "A's delegate with actions.cancel"},
    "propose for A": {"executive A", "A's delegate with actions.propose"},
    "correct A's triage": {"executive A", "A's delegate with triage.correct"},
    "list A's corrections": {"executive A", "A's delegate with triage.read"},
    "read A's inbox": {"executive A", "A's delegate with triage.read"},
    "find slots in A's calendar": {"executive A", "A's delegate with calendar.read"},
}


async def test_every_person_on_executive_as_data(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    await _store(services.sessions, "m-matrix")
    async with services.sessions() as session, session.begin():
        from assistant.triage import store
        from assistant.triage.store import CorrectionIn

        a = Principal(user_id=EXECUTIVE, tenant_id=TENANT, roles=frozenset({Role.EXECUTIVE}))
        await store.correct(
            session, a, "m-matrix", CorrectionIn(category="notify"), mailboxes={EXECUTIVE}
        )
    find = {
        "participants": [{"address": COLLEAGUE}],
        "duration_minutes": 30,
        "window_start": "2026-11-26T14:00:00Z",
        "window_end": "2026-11-26T17:00:00Z",
    }

    async def attempt(operation: str) -> bool:
        if operation in {"see A's review queue", "read A's action"}:
            pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER))
            if operation == "read A's action":
                return (await client.get(f"{ACTIONS}/{pending.id}")).status_code == 200
            listed = await client.get(REVIEW)
            return listed.status_code == 200 and pending.id in {a["id"] for a in listed.json()}
        if operation in {"approve A's action", "undo A's action"}:
            pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER))
            verb = "approve" if operation == "approve A's action" else "undo"
            url = (
                f"{REVIEW}/{pending.id}/approve"
                if verb == "approve"
                else f"{ACTIONS}/{pending.id}/undo"
            )
            return (await client.post(url)).status_code == 200
        if operation == "propose for A":
            body = {
                "kind": "email.draft.create",
                "arguments": mail(COLLEAGUE),
                "on_behalf_of": EXECUTIVE,
            }
            return (await client.post(ACTIONS, json=body)).status_code == 201
        if operation == "correct A's triage":
            url = "/api/v1/triage/m-matrix/correction"
            return (await client.post(url, json={"category": "respond"})).status_code == 201
        if operation == "list A's corrections":
            listed = await client.get("/api/v1/triage/corrections")
            return listed.status_code == 200 and any(
                c["message_id"] == "m-matrix" for c in listed.json()["items"]
            )
        if operation == "read A's inbox":
            listed = await client.get("/api/v1/triage/inbox")
            return listed.status_code == 200 and any(
                m["message_id"] == "m-matrix" for m in listed.json()
            )
        assert operation == "find slots in A's calendar"
        return (await client.post("/api/v1/schedule/find", json=find)).status_code == 200

    problems = []
    for operation, expected in EXPECTED.items():
        allowed = set()
        for name, who in persons().items():
            roles = who.pop("roles")
            as_role(client, *roles, **who)
            if await attempt(operation):
                allowed.add(name)
        if allowed != expected:
            problems.append(
                f"{operation}: also {sorted(allowed - expected)}, not {sorted(expected - allowed)}"
            )
    assert not problems, "\n".join(problems)


async def test_admins_bind_a_connector_to_its_executives(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    services = runtime.services
    dana_id, _ = await create_user_with_token(services, "dana", Role.EXECUTIVE)
    auditor_id, _ = await create_user_with_token(services, "audrey", Role.AUDITOR)
    as_role(client, Role.ADMIN, user_id="ada")
    base = "/api/v1/admin/connectors"
    config = {"url": "https://dav.northwind.example/", "username": "d", "password": "pw-123456"}
    body = {"name": "dav", "slug": "caldav.calendar", "config": config, "executives": [dana_id]}
    created = await client.post(base, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["executives"] == [dana_id]
    assert services.connectors.instances[(TENANT, "dav")].serves(dana_id)
    # Only executives of the tenant are bound; nothing changes on a refusal.
    refused = await client.patch(f"{base}/dav", json={"executives": [auditor_id]})
    assert refused.status_code == 422, refused.text
    shared = await client.patch(f"{base}/dav", json={"executives": [dana_id, dana_id]})
    assert shared.status_code == 200 and shared.json()["executives"] == [dana_id]
    me = await client.get("/api/v1/me")
    assert me.json()["executives"] == {}  # an admin acts for nobody
    as_role(client, Role.EXECUTIVE, user_id=dana_id)
    mine = (await client.get("/api/v1/me")).json()["executives"]
    assert list(mine) == [dana_id] and "review.decide" in mine[dana_id]
