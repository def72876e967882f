"""Cross-tenant isolation across every list and get endpoint of the OpenAPI schema.

Tenant "default" holds data (the sandbox, users, API keys, a delegation, audit events, and
whatever other routers store); every identifier of it, read from every table that has a
``tenant_id`` column, is a marker. Callers of tenant "other", with every role, then call
every GET route: no list may show a marker, and no item route may return one.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import String, select

from assistant.core.db import Base
from assistant.core.models import import_all_models
from assistant.core.principal import Role
from tests.fixtures.auth import create_user_with_token

MIN_MARKER = 12
SAMPLE_PER_COLUMN = 4


async def _markers(services: Any, tenant: str) -> tuple[list[str], list[str]]:
    """Identifiers (primary keys and unique columns, long enough to be unambiguous) of every
    row of ``tenant`` in every tenant-scoped table: (all of them, a few of each column)."""
    import_all_models()
    found: list[str] = []
    sample: list[str] = []
    async with services.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if "tenant_id" not in table.c:
                continue
            columns = [
                c
                for c in table.c
                if c.name != "tenant_id"
                and isinstance(c.type, String)
                and (c.primary_key or c.unique or c.name in {"id", "prefix"})
            ]
            for column in columns:
                values = await session.scalars(select(column).where(table.c.tenant_id == tenant))
                ids = [v for v in values if isinstance(v, str) and len(v) >= MIN_MARKER]
                found += ids
                sample += ids[:SAMPLE_PER_COLUMN]
    return sorted(set(found)), sorted(set(sample))


async def test_no_endpoint_shows_another_tenants_data(
    client: httpx.AsyncClient, services: Any, seeded: Any
) -> None:
    exec_a, exec_a_headers = await create_user_with_token(services, "tenant-a-exec", Role.EXECUTIVE)
    delegate_a, _ = await create_user_with_token(services, "tenant-a-delegate", Role.DELEGATE)
    _, admin_a = await create_user_with_token(services, "tenant-a-admin", Role.ADMIN)
    assert (
        await client.post(
            "/api/v1/api-keys", headers=admin_a, json={"name": "a-key", "roles": ["auditor"]}
        )
    ).status_code == 201
    assert (
        await client.post(
            "/api/v1/delegations", headers=exec_a_headers, json={"delegate_id": delegate_a}
        )
    ).status_code == 201
    # Whatever other routers keep per tenant (a governed action, when it validates).
    await client.post(
        "/api/v1/actions",
        headers=exec_a_headers,
        json={
            "kind": "email.draft.create",
            "arguments": {
                "mode": "new",
                "to": [{"address": "someone@example.com"}],
                "subject": "tenant a",
                "body_text": "tenant a",
            },
        },
    )

    markers, sample = await _markers(services, "default")
    assert exec_a in sample and len(markers) > 10

    callers: dict[str, dict[str, str]] = {}
    for role in (Role.EXECUTIVE, Role.ADMIN, Role.AUDITOR):
        _, callers[role.value] = await create_user_with_token(
            services, f"tenant-b-{role.value}", role, tenant="other"
        )
    b_exec_id, b_exec = await create_user_with_token(
        services, "tenant-b-boss", Role.EXECUTIVE, tenant="other"
    )
    b_delegate_id, b_delegate = await create_user_with_token(
        services, "tenant-b-assistant", Role.DELEGATE, tenant="other"
    )
    assert (
        await client.post(
            "/api/v1/delegations", headers=b_exec, json={"delegate_id": b_delegate_id}
        )
    ).status_code == 201
    callers["delegate"] = b_delegate | {"X-On-Behalf-Of": b_exec_id}

    schema = (await client.get("/openapi.json")).json()
    # Lists first: item requests below name tenant A's ids, and refusals are audited in
    # tenant B with the path the caller sent (its own input, not a leak).
    routes = sorted(
        (path for path, item in schema["paths"].items() if "get" in item),
        key=lambda path: ("{" in path, path),
    )
    leaks: list[str] = []
    checked = 0
    for path in routes:
        params = re.findall(r"\{[^}]+\}", path)
        for name, headers in callers.items():
            if not params:
                response = await client.get(path, headers=headers)
                checked += 1
                shown = [m for m in markers if m in response.text]
                if shown:
                    leaks.append(f"GET {path} as {name} of 'other' shows {shown[:3]}")
                continue
            for marker in sample:
                response = await client.get(re.sub(r"\{[^}]+\}", marker, path), headers=headers)
                checked += 1
                if response.status_code == 200 and marker in response.text:
                    leaks.append(f"GET {path} as {name} of 'other' returns {marker}")
    assert checked > 50
    assert not leaks, "\n".join(leaks)

    # The same requests from tenant A do see its data (the markers are real).
    own = await client.get("/api/v1/users", headers=admin_a)
    assert exec_a in own.text
    # A delegate of tenant B cannot borrow tenant A's executive either. (Last: its audit
    # row in tenant B names the id the caller sent.)
    borrowed = await client.get("/api/v1/me", headers=b_delegate | {"X-On-Behalf-Of": exec_a})
    assert borrowed.status_code == 403
