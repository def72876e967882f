"""The review and actions APIs: propose, preview, decide (four-eyes, edits, bulk), undo,
roll back, tenant scoping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assistant.core.clock import utcnow
from assistant.core.principal import Role, system_principal
from assistant.core.settings import Settings
from governance.models import Action, ActionEdit
from governance.service import Proposal
from integrations.sandbox.models import SandboxMessage
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    install_governance,
    review_settings,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture

ACTIONS = "/api/v1/actions"
REVIEW = "/api/v1/review"


@pytest.fixture
def settings(data_dir: Path, seeded_template: Path, tmp_path: Path) -> Settings:
    """Settings on a copy of the seeded database, with the test policy and no runner."""
    return review_settings(data_dir, seeded_template, tmp_path)


@pytest.fixture
async def runtime(client: httpx.AsyncClient) -> Any:
    return install_governance(client)


def executive(client: httpx.AsyncClient, as_role: Any) -> Any:
    return as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)


def delegate(client: httpx.AsyncClient, as_role: Any) -> Any:
    return as_role(
        client, Role.DELEGATE, user_id="jordan@northwind.example", on_behalf_of=EXECUTIVE
    )


def mail(to: str, subject: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"to": [{"address": to}], "subject": subject, "body_text": "Body.", **extra}


async def pipeline_proposes(
    runtime: Any, kind: str, arguments: dict[str, Any], **extra: Any
) -> Any:
    """What the triage/drafting pipeline does: propose as the system, for the executive."""
    async with runtime.services.sessions() as session, session.begin():
        return await runtime.actions.propose(
            session,
            system_principal(TENANT, "pipeline"),
            Proposal(kind=kind, arguments=arguments, on_behalf_of=EXECUTIVE, **extra),
        )


async def seeded_message_id(runtime: Any, key: str) -> str:
    async with runtime.services.sessions() as session:
        return str(
            (
                await session.execute(
                    select(SandboxMessage.id).where(SandboxMessage.seed_key == key)
                )
            ).scalar_one()
        )


async def test_propose_through_the_policy(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    executive(client, as_role)
    internal = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    assert internal.status_code == 201, internal.text
    body = internal.json()
    assert body["state"] == "scheduled" and body["policy_rule_id"] == "internal-mail"
    assert body["policy_version"].startswith("test-1@sha256:")
    assert body["on_behalf_of"] == EXECUTIVE and body["hold_seconds"] == 30.0
    assert [t["outcome"] for t in body["explanation"]][:3] == ["skipped", "skipped", "matched"]

    external = await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(OUTSIDER)})
    assert external.json()["state"] == "pending_review"
    assert external.json()["approver_roles"] == ["delegate", "executive"]

    denied = await client.post(
        ACTIONS,
        json={
            "kind": "email.send",
            "arguments": {
                "to": [{"address": f"p{i}@fabrikam.example"} for i in range(25)],
                "body_text": "x",
            },
        },
    )
    assert denied.json()["state"] == "denied"
    assert denied.json()["decision_reason"] == "too many recipients"

    unknown = await client.post(ACTIONS, json={"kind": "shell.exec", "arguments": {}})
    assert unknown.status_code == 422 and unknown.json()["error"] == "UnknownActionKindError"
    invalid = await client.post(
        ACTIONS, json={"kind": "email.send", "arguments": {"to": [], "body_text": "x"}}
    )
    assert invalid.status_code == 422
    assert any("recipient" in p for p in invalid.json()["problems"])
    for_someone_else = await client.post(
        ACTIONS,
        json={
            "kind": "email.send",
            "arguments": mail(COLLEAGUE),
            "on_behalf_of": "marcus@x.example",
        },
    )
    assert for_someone_else.status_code == 403


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.ADMIN])
async def test_roles_without_the_permission_cannot_propose_or_decide(
    client: httpx.AsyncClient, runtime: Any, as_role: Any, role: Role
) -> None:
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER))
    as_role(client, role, user_id=f"{role.value}@northwind.example")
    assert (
        await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    ).status_code == 403
    response = await client.post(f"{REVIEW}/{pending.id}/approve")
    assert response.status_code == 403
    detail = await client.get(f"{REVIEW}/{pending.id}")
    assert detail.status_code == 403  # review.read is not theirs either (authz matrix)


async def test_queue_filters_and_preview(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    original = await seeded_message_id(runtime, "m02")
    reply = await pipeline_proposes(
        runtime,
        "email.send",
        {
            "mode": "reply_all",
            "reply_to_id": original,
            "to": [{"address": OUTSIDER}],
            "body_text": "Thanks, on it.",
        },
    )
    cancel_id = await pipeline_proposes(
        runtime,
        "calendar.event.create",
        {
            "subject": "Vendor dinner",
            "start": "2026-11-26T23:00:00+00:00",
            "end": "2026-11-27T01:00:00+00:00",
            "attendees": [{"address": OUTSIDER}, {"address": COLLEAGUE}],
        },
    )
    assert cancel_id.state == "scheduled"  # calendar-other allows it
    executive(client, as_role)

    queue = (await client.get(REVIEW)).json()
    assert [item["id"] for item in queue] == [reply.id]
    assert queue[0]["age_seconds"] >= 0
    assert (await client.get(REVIEW, params={"owner": EXECUTIVE})).json()[0]["id"] == reply.id
    assert (await client.get(REVIEW, params={"owner": "someone@else.example"})).json() == []
    assert len((await client.get(REVIEW, params={"kind": "email.*"})).json()) == 1
    assert (await client.get(REVIEW, params={"kind": "calendar.*"})).json() == []
    assert (await client.get(REVIEW, params={"older_than_seconds": 3600})).json() == []

    detail = (await client.get(f"{REVIEW}/{reply.id}")).json()
    preview = detail["preview"]
    assert preview["type"] == "email" and preview["from"] == EXECUTIVE
    assert preview["to"] == [OUTSIDER]
    assert preview["subject"].startswith("Re: ")
    async with runtime.services.sessions() as session:
        row = await session.get(SandboxMessage, original)
        assert row is not None
    assert preview["threading"]["in_reply_to"] == row.message_id
    assert preview["threading"]["references"][-1] == row.message_id
    assert preview["body_text"] == "Thanks, on it."
    assert detail["approvals"] == [] and detail["edits"] == []

    event = (await client.get(f"{REVIEW}/{cancel_id.id}")).json()["preview"]
    assert event["type"] == "event" and event["timezone"] == "America/New_York"
    assert event["start"] == "2026-11-26T18:00:00-05:00"  # 23:00 UTC in New York
    assert [a["address"] for a in event["attendees"]] == [OUTSIDER, COLLEAGUE]


async def test_approve_and_the_requester_cannot_approve(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    executive(client, as_role)
    mine = (
        await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(OUTSIDER)})
    ).json()
    refused = await client.post(f"{REVIEW}/{mine['id']}/approve")
    assert refused.status_code == 403 and "own request" in refused.json()["detail"]

    delegate(client, as_role)
    approved = await client.post(f"{REVIEW}/{mine['id']}/approve", json={"comment": "fine"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "scheduled"
    assert approved.json()["approved_at"] is not None
    again = await client.post(f"{REVIEW}/{mine['id']}/approve")
    assert again.status_code == 409


async def test_four_eyes_needs_two_distinct_approvers(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    created = await pipeline_proposes(
        runtime,
        "calendar.event.create",
        {
            "subject": "Offsite",
            "start": "2026-11-27T15:00:00+00:00",
            "end": "2026-11-27T16:00:00+00:00",
        },
    )
    await runtime.executor.run_due()
    executive(client, as_role)
    async with runtime.services.sessions() as session:
        row = await session.get(Action, created.id)
        assert row is not None and row.state == "succeeded"
    cancel = await pipeline_proposes(
        runtime, "calendar.event.cancel", {"event_id": row.external_ids["event_id"]}
    )
    assert cancel.approvals_required == 2

    first = await client.post(f"{REVIEW}/{cancel.id}/approve")
    assert first.status_code == 200 and first.json()["state"] == "pending_review"
    twice = await client.post(f"{REVIEW}/{cancel.id}/approve")
    assert twice.status_code == 409 and "second approver" in twice.json()["detail"]
    delegate(client, as_role)
    second = await client.post(f"{REVIEW}/{cancel.id}/approve")
    assert second.json()["state"] == "scheduled"
    detail = (await client.get(f"{REVIEW}/{cancel.id}")).json()
    assert sorted(a["approver_id"] for a in detail["approvals"]) == [
        EXECUTIVE,
        "jordan@northwind.example",
    ]


async def test_edit_is_validated_stored_as_a_patch_and_rechecked_by_the_policy(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER, "Quote"))
    executive(client, as_role)
    bad = await client.post(
        f"{REVIEW}/{pending.id}/edit",
        json={"arguments": {"to": [{"address": "nope"}], "body_text": "x"}},
    )
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationFailedError"
    mass = await client.post(
        f"{REVIEW}/{pending.id}/edit",
        json={
            "arguments": {
                "to": [{"address": f"p{i}@fabrikam.example"} for i in range(25)],
                "body_text": "x",
            }
        },
    )
    assert mass.status_code == 422 and "policy denies" in mass.json()["detail"]
    assert (await client.get(f"{ACTIONS}/{pending.id}")).json()["version"] == pending.version

    edited = await client.post(
        f"{REVIEW}/{pending.id}/edit",
        json={"arguments": mail(OUTSIDER, "Quote (revised)"), "comment": "tighter subject"},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["state"] == "scheduled"
    assert edited.json()["arguments"]["subject"] == "Quote (revised)"
    async with runtime.services.sessions() as session:
        patch = (
            await session.execute(
                select(ActionEdit.patch).where(ActionEdit.action_id == pending.id)
            )
        ).scalar_one()
    assert patch == [{"op": "replace", "path": "/subject", "value": "Quote (revised)"}]


async def test_reject_cancel_and_bulk(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    ids = [
        (await pipeline_proposes(runtime, "email.send", mail(OUTSIDER, f"n{i}"))).id
        for i in range(4)
    ]
    delegate(client, as_role)
    no_reason = await client.post(f"{REVIEW}/{ids[0]}/reject", json={"reason": ""})
    assert no_reason.status_code == 422
    rejected = await client.post(f"{REVIEW}/{ids[0]}/reject", json={"reason": "wrong tone"})
    assert rejected.json()["state"] == "rejected"

    bulk = await client.post(
        f"{REVIEW}/bulk",
        json={
            "items": [
                {"action_id": ids[1], "decision": "approve"},
                {"action_id": ids[2], "decision": "reject"},  # no reason: refused, others go on
                {"action_id": ids[3], "decision": "cancel", "reason": "duplicate"},
                {"action_id": ids[0], "decision": "approve"},  # already rejected
                {"action_id": "missing", "decision": "approve"},
            ]
        },
    )
    assert bulk.status_code == 200
    results = {r["action_id"]: r for r in bulk.json()["results"]}
    assert results[ids[1]]["ok"] and results[ids[1]]["state"] == "scheduled"
    assert results[ids[2]]["error"] == "ValidationFailedError"
    assert results[ids[3]]["ok"] and results[ids[3]]["state"] == "cancelled"
    assert results[ids[0]]["error"] == "IllegalTransitionError"
    assert results["missing"]["error"] == "NotFoundError"
    states = {i: (await client.get(f"{ACTIONS}/{i}")).json()["state"] for i in ids}
    assert states == {
        ids[0]: "rejected",
        ids[1]: "scheduled",
        ids[2]: "pending_review",
        ids[3]: "cancelled",
    }


async def test_reviews_expire_after_the_ttl(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER))
    clock = Clock(utcnow() + timedelta(hours=4, seconds=1))
    runtime.review.clock = clock
    assert await runtime.expire_reviews() == 1
    executive(client, as_role)
    assert (await client.get(f"{ACTIONS}/{pending.id}")).json()["state"] == "expired"
    late = await client.post(f"{REVIEW}/{pending.id}/approve")
    assert late.status_code == 409


async def test_undo_inside_the_hold_window_and_rollback(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    executive(client, as_role)
    sent = (
        await client.post(ACTIONS, json={"kind": "email.send", "arguments": mail(COLLEAGUE)})
    ).json()
    undone = await client.post(f"{ACTIONS}/{sent['id']}/undo", json={"reason": "typo"})
    assert undone.status_code == 200 and undone.json()["state"] == "cancelled"
    assert (await client.post(f"{ACTIONS}/{sent['id']}/undo")).status_code == 409

    draft = (
        await client.post(
            ACTIONS,
            json={
                "kind": "email.draft.create",
                "arguments": mail(COLLEAGUE),
                "correlation_id": "thread-7",
            },
        )
    ).json()
    await runtime.executor.run_due()
    assert (await client.get(f"{ACTIONS}/{draft['id']}")).json()["state"] == "succeeded"
    rolled = await client.post(f"{ACTIONS}/{draft['id']}/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["ok"] and rolled.json()["state"] == "compensated"

    listed = (await client.get(ACTIONS, params={"correlation_id": "thread-7"})).json()
    assert [a["id"] for a in listed] == [draft["id"]]
    again = await client.post(f"{ACTIONS}/rollback", json={"correlation_id": "thread-7"})
    assert again.status_code == 200
    assert again.json()[0]["detail"].startswith("nothing to roll back")


async def test_tenant_scoping_and_the_exception_queue(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    pending = await pipeline_proposes(runtime, "email.send", mail(OUTSIDER))
    failing = await pipeline_proposes(
        runtime, "email.move", {"message_id": "gone", "folder": "archive"}
    )
    await runtime.executor.run_due()
    as_role(client, Role.EXECUTIVE, tenant="other-tenant", user_id=EXECUTIVE)
    assert (await client.get(f"{ACTIONS}/{pending.id}")).status_code == 404
    assert (await client.get(REVIEW)).json() == []
    assert (await client.post(f"{REVIEW}/{pending.id}/approve")).status_code == 404

    as_role(client, Role.EXECUTIVE, user_id="marcus.chen@northwind.example")
    assert (await client.get(f"{ACTIONS}/{pending.id}")).status_code == 404  # not theirs

    as_role(client, Role.ADMIN, user_id="ada@northwind.example")
    queue = (await client.get(f"{ACTIONS}/exceptions")).json()
    assert [(e["action_id"], e["state"], e["owner"]) for e in queue] == [
        (failing.id, "failed", "unassigned")
    ]  # no owners configured in this test
