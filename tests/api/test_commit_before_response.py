"""A write is acknowledged only once it is committed; a failed commit answers an error.

The failure is injected where a real one happens: the database refuses the COMMIT (the
engine's ``commit`` event raises the driver's OperationalError, as a lost connection does).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from assistant.connector_models import StoredConnector
from assistant.core.principal import Role
from assistant.core.settings import Settings
from governance.models import Action
from tests.conftest import SEED_DIR
from tests.fixtures.governance import COLLEAGUE, EXECUTIVE, policy_settings

ACTIONS = "/api/v1/actions"
CONNECTORS = "/api/v1/admin/connectors"


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    return policy_settings(data_dir, tmp_path)


def _services(client: httpx.AsyncClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


@contextmanager
def commits_fail(client: httpx.AsyncClient) -> Iterator[list[int]]:
    """Every COMMIT on the app's engine fails while inside; yields the count of attempts."""
    engine = _services(client).engine.sync_engine
    attempts: list[int] = []

    def refuse(connection: Any) -> None:
        attempts.append(1)
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

    event.listen(engine, "commit", refuse)
    try:
        yield attempts
    finally:
        event.remove(engine, "commit", refuse)


async def _count(client: httpx.AsyncClient, query: Any) -> int:
    async with _services(client).sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def test_a_proposal_whose_commit_fails_is_not_acknowledged(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    proposal = {
        "kind": "email.send",
        "arguments": {"to": [{"address": COLLEAGUE}], "subject": "Lost", "body_text": "x"},
    }
    with commits_fail(client) as attempts:
        answer = await client.post(ACTIONS, json=proposal)
    assert attempts, "the request never tried to commit"
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "DatabaseUnavailableError"
    assert "disk I/O" not in answer.text
    assert await _count(client, select(func.count()).select_from(Action)) == 0

    # The same request with a working database is acknowledged and readable at once.
    created = await client.post(ACTIONS, json=proposal)
    assert created.status_code == 201
    action_id = created.json()["id"]
    assert (await client.get(f"{ACTIONS}/{action_id}")).status_code == 200


async def test_a_connector_goes_live_only_after_its_row_commits(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.ADMIN)
    manager = _services(client).connectors
    body = {"name": "side-mail", "slug": "sandbox.email", "config": {"seed_dir": str(SEED_DIR)}}
    with commits_fail(client):
        refused = await client.post(CONNECTORS, json=body)
    assert refused.status_code == 503
    assert ("default", "side-mail") not in manager.instances
    assert await _count(client, select(func.count()).select_from(StoredConnector)) == 0

    created = await client.post(CONNECTORS, json=body)
    assert created.status_code == 201, created.text
    assert manager.instances[("default", "side-mail")].connector is not None

    # Switching it off with a failing commit leaves it running; a committed switch stops it.
    with commits_fail(client):
        failed = await client.patch(f"{CONNECTORS}/side-mail", json={"enabled": False})
    assert failed.status_code == 503
    assert manager.instances[("default", "side-mail")].connector is not None
    switched = await client.patch(f"{CONNECTORS}/side-mail", json={"enabled": False})
    assert switched.status_code == 200
    assert ("default", "side-mail") not in manager.instances

    with commits_fail(client):
        kept = await client.delete(f"{CONNECTORS}/side-mail")
    assert kept.status_code == 503
    assert await _count(client, select(func.count()).select_from(StoredConnector)) == 1
