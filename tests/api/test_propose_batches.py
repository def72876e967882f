"""POST /api/v1/actions under concurrency: proposals are group-committed (governance.proposals)
and each request still gets its own answer, only once committed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from assistant.core.principal import Role
from assistant.core.settings import Settings
from governance.audit_verify import verify_chain
from governance.models import Action
from tests.api.test_commit_before_response import commits_fail
from tests.fixtures.governance import EXECUTIVE, OUTSIDER, policy_settings

ACTIONS = "/api/v1/actions"


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    return policy_settings(data_dir, tmp_path)


def mail(i: int, **extra: Any) -> dict[str, Any]:
    arguments = {"to": [{"address": OUTSIDER}], "subject": f"Offer {i}", "body_text": "x"}
    return {"kind": "email.send", "arguments": arguments, **extra}


async def stored(client: httpx.AsyncClient) -> int:
    async with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        return int((await session.execute(select(func.count()).select_from(Action))).scalar_one())


async def test_concurrent_proposals_each_get_their_own_answer(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    bodies = [mail(i) for i in range(8)]
    bodies[3] = {"kind": "email.send", "arguments": {"body_text": "no recipient"}}  # a 4xx
    bodies[5] = mail(5, dedupe_key="offer-5")
    bodies[6] = mail(6, dedupe_key="offer-5")  # the same key: the same action
    answers = await asyncio.gather(*(client.post(ACTIONS, json=b) for b in bodies))
    assert answers[3].status_code == 422, answers[3].text
    good = [a for i, a in enumerate(answers) if i != 3]
    assert all(a.status_code == 201 for a in good), [a.text for a in good]
    assert answers[5].json()["id"] == answers[6].json()["id"]
    assert len({a.json()["id"] for a in good}) == 6
    assert await stored(client) == 6
    for answer in good:  # committed when answered: readable at once, as stored
        read = await client.get(f"{ACTIONS}/{answer.json()['id']}")
        assert read.json()["state"] == answer.json()["state"] == "pending_review"
    governance = client.app.state.governance  # type: ignore[attr-defined]
    assert governance.proposals.batches < 6  # some were stored together
    async with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        report = await verify_chain(session, "default")
    assert report.ok, report.to_dict()


async def test_a_batch_whose_commit_fails_acknowledges_none(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    with commits_fail(client):
        answers = await asyncio.gather(*(client.post(ACTIONS, json=mail(i)) for i in range(5)))
    assert [a.status_code for a in answers] == [503] * 5, [a.text for a in answers]
    assert await stored(client) == 0
    created = await client.post(ACTIONS, json=mail(9))
    assert created.status_code == 201
    assert await stored(client) == 1
