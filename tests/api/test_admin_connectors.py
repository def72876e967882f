"""Connector administration API: validation, secrets at rest, tenancy, test, audit."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select, text

from assistant.connector_models import StoredConnector
from assistant.core.principal import Role
from tests.fixtures.dovecot import PASSWORD, MailServer, mail_server  # noqa: F401

BASE = "/api/v1/admin/connectors"


def _services(client: httpx.AsyncClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


async def test_only_admins_may_manage_connectors(client: httpx.AsyncClient, as_role: Any) -> None:
    as_role(client, Role.EXECUTIVE)
    assert (await client.get(BASE)).status_code == 403
    as_role(client, Role.AUDITOR)
    assert (await client.post(BASE, json={"name": "x", "slug": "imap.email"})).status_code == 403


async def test_invalid_config_reports_every_error_at_once(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.ADMIN)
    answer = await client.post(
        BASE,
        json={
            "name": "bad-mail",
            "slug": "imap.email",
            "config": {
                "address": "nobody",
                "imap_port": 0,
                "imap_security": "plain",
                "password": "hunter2-secret",
            },
        },
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "ValidationFailedError"
    fields = {p.split(":")[0] for p in body["problems"]}
    assert {"address", "imap_host", "imap_port", "imap_security"} <= fields
    assert "hunter2-secret" not in answer.text
    unknown = await client.post(BASE, json={"name": "y", "slug": "no.such", "config": {}})
    assert unknown.status_code == 404 and unknown.json()["error"] == "UnknownConnectorError"


async def test_crud_secrets_masked_and_encrypted_test_and_live_instance(
    client: httpx.AsyncClient,
    as_role: Any,
    mail_server: MailServer,
) -> None:
    as_role(client, Role.ADMIN, tenant="acme")
    address = mail_server.add_user()
    config = mail_server.imap_config(address)
    created = await client.post(
        BASE, json={"name": "work-mail", "slug": "imap.email", "config": config}
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"]["password"] == "********"
    assert PASSWORD not in created.text
    services = _services(client)
    async with services.sessions() as session:
        row = (await session.execute(select(StoredConnector))).scalar_one()
        raw = (await session.execute(text("SELECT config, secrets FROM connector_instances"))).one()
    assert "password" not in row.config and PASSWORD not in str(raw[0])
    assert raw[1] and PASSWORD not in raw[1]  # encrypted at rest

    live = services.connectors.instances[("acme", "work-mail")]
    assert live.connector is not None

    tested = await client.post(f"{BASE}/work-mail/test")
    assert tested.status_code == 200 and tested.json()["status"] == "ok", tested.text

    # Merge a change; the masked secret keeps its value; the connector still logs in.
    patched = await client.patch(
        f"{BASE}/work-mail", json={"config": {"timeout_s": 12, "password": "********"}}
    )
    assert patched.status_code == 200 and patched.json()["config"]["timeout_s"] == 12
    assert (await client.post(f"{BASE}/work-mail/test")).json()["status"] == "ok"
    wrong = await client.patch(f"{BASE}/work-mail", json={"config": {"password": "nope"}})
    assert wrong.status_code == 200
    assert (await client.post(f"{BASE}/work-mail/test")).json()["status"] == "down"

    listed = (await client.get(BASE)).json()
    assert [c["name"] for c in listed if c["source"] == "database"] == ["work-mail"]
    assert all(
        c["config"] is None or c["config"].get("password") in (None, "********") for c in listed
    )

    duplicate = await client.post(
        BASE, json={"name": "work-mail", "slug": "imap.email", "config": config}
    )
    assert duplicate.status_code == 409

    as_role(client, Role.ADMIN, tenant="other")  # another tenant sees nothing of it
    assert (await client.get(f"{BASE}/work-mail")).status_code == 404
    assert (await client.delete(f"{BASE}/work-mail")).status_code == 404

    as_role(client, Role.ADMIN, tenant="acme")
    assert (await client.delete(f"{BASE}/work-mail")).status_code == 204
    assert ("acme", "work-mail") not in services.connectors.instances
    assert (await client.get(f"{BASE}/work-mail")).status_code == 404

    async with services.sessions() as session:
        actions = [
            r[0]
            for r in await session.execute(
                text("SELECT action FROM audit_events WHERE tenant_id = 'acme' ORDER BY seq")
            )
        ]
    assert actions.count("connector.created") == 1
    assert "connector.tested" in actions and "connector.deleted" in actions
    assert PASSWORD not in str(actions)


async def test_types_list_schemas_and_secret_fields(
    client: httpx.AsyncClient, as_role: Any
) -> None:
    as_role(client, Role.ADMIN)
    types = {t["slug"]: t for t in (await client.get(f"{BASE}/types")).json()}
    assert types["imap.email"]["secret_fields"] == ["oauth_token", "password"]
    assert types["msgraph.email"]["secret_fields"] == ["access_token", "client_secret"]
    assert "properties" in types["msgraph.email"]["config_schema"]
