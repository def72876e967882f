"""The embedded default end to end: the app's lifespan runs the in-process runner, which
executes what the API approved (and what the review queue lets through)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from assistant.app import create_app
from assistant.core.principal import Role
from assistant.core.settings import Settings
from tests.conftest import SEED_DIR
from tests.fixtures.auth import as_role
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TEST_POLICY,
    copy_template,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture


async def wait_for_state(client: httpx.AsyncClient, action_id: str, state: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(200):
        body = (await client.get(f"/api/v1/actions/{action_id}")).json()
        if body["state"] == state:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"action stayed {body.get('state')}")


async def test_lifespan_runner_executes_approved_actions(
    data_dir: Path, seeded_template: Path, tmp_path: Path
) -> None:
    copy_template(seeded_template, data_dir)
    policy = tmp_path / "policies.yaml"
    policy.write_text(TEST_POLICY)
    settings = Settings(
        data_dir=data_dir,
        sandbox={"seed_dir": SEED_DIR},
        governance={"runner": "inprocess", "policy_file": policy, "poll_interval_seconds": 0.05},
    )
    app = create_app(settings)
    async with LifespanManager(app):
        assert app.state.governance.started
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            as_role(http, Role.EXECUTIVE, user_id=EXECUTIVE)
            draft = await http.post(
                "/api/v1/actions",
                json={
                    "kind": "email.draft.create",
                    "arguments": {
                        "to": [{"address": COLLEAGUE}],
                        "subject": "Agenda",
                        "body_text": "Draft.",
                    },
                },
            )
            assert draft.status_code == 201, draft.text
            done = await wait_for_state(http, draft.json()["id"], "succeeded")
            assert done["external_ids"]["draft_id"]

            pending = (
                await http.post(
                    "/api/v1/actions",
                    json={
                        "kind": "email.send",
                        "arguments": {"to": [{"address": OUTSIDER}], "body_text": "Hi."},
                    },
                )
            ).json()
            assert pending["state"] == "pending_review"
            as_role(http, Role.DELEGATE, user_id="jordan", on_behalf_of=EXECUTIVE)
            approved = await http.post(f"/api/v1/review/{pending['id']}/approve")
            assert approved.json()["state"] == "scheduled"  # held 30 s: still undoable
            undone = await http.post(f"/api/v1/actions/{pending['id']}/undo")
            assert undone.json()["state"] == "cancelled"
    assert not app.state.governance.started
