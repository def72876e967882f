"""Every route of the OpenAPI schema, for every role, against the one route table
(assistant/auth/permissions.py ROUTE_PERMISSIONS). A route without an entry fails here."""

from __future__ import annotations

from typing import Any

import httpx

from assistant.auth.permissions import (
    DELEGABLE,
    READ_ONLY,
    ROLE_PERMISSIONS,
    ROUTE_PERMISSIONS,
    Access,
    Permission,
)
from assistant.core.principal import Role
from tests.fixtures.auth import create_user_with_token

WRITE_METHODS = {"post", "put", "patch", "delete"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", *WRITE_METHODS}
    )


def _fill(path: str) -> str:
    """Path parameters get a value that names nothing (404 or 422 once authorized)."""
    import re

    return re.sub(r"\{[^}]+\}", "no-such-id", path)


async def test_every_route_has_an_entry_and_no_entry_is_stale(
    client: httpx.AsyncClient,
) -> None:
    operations = {f"{m} {p}" for m, p in _operations((await client.get("/openapi.json")).json())}
    missing = sorted(operations - set(ROUTE_PERMISSIONS))
    stale = sorted(set(ROUTE_PERMISSIONS) - operations)
    assert not missing, (
        f"routes without an entry in assistant/auth/permissions.py ROUTE_PERMISSIONS: {missing}"
    )
    assert not stale, f"ROUTE_PERMISSIONS names routes that do not exist: {stale}"


async def test_every_route_for_every_role(client: httpx.AsyncClient, services: Any) -> None:
    callers: dict[str, tuple[dict[str, str], frozenset[Permission]]] = {}
    for role in (Role.EXECUTIVE, Role.ADMIN, Role.AUDITOR):
        _, headers = await create_user_with_token(services, f"the-{role.value}", role)
        callers[role.value] = (headers, ROLE_PERMISSIONS[role])
    exec_id, exec_headers = await create_user_with_token(services, "the-boss", Role.EXECUTIVE)
    delegate_id, delegate_headers = await create_user_with_token(
        services, "the-assistant", Role.DELEGATE
    )
    granted = await client.post(
        "/api/v1/delegations", headers=exec_headers, json={"delegate_id": delegate_id}
    )
    assert granted.status_code == 201, granted.text
    callers["delegate"] = (
        delegate_headers | {"X-On-Behalf-Of": exec_id},
        frozenset({Permission.ME_READ, *DELEGABLE}),
    )
    _, nobody = await create_user_with_token(services, "the-nobody")
    callers["no role"] = (nobody, frozenset())
    callers["anonymous"] = ({}, frozenset())

    problems: list[str] = []
    for method, path in _operations((await client.get("/openapi.json")).json()):
        rule = ROUTE_PERMISSIONS.get(f"{method} {path}")
        if rule is None:
            problems.append(f"{method} {path}: no entry")
            continue
        for name, (headers, held) in callers.items():
            client.cookies.clear()
            response = await client.request(
                method,
                _fill(path),
                headers=headers,
                json={} if method.lower() in WRITE_METHODS else None,
            )
            status = response.status_code
            if rule is Access.PUBLIC or rule in held:
                if status in (401, 403):
                    problems.append(f"{method} {path} as {name}: {status}, expected access")
            else:
                expected = 401 if name == "anonymous" else 403
                if status != expected:
                    problems.append(
                        f"{method} {path} as {name}: {status}, expected {expected} ({rule.value})"
                    )
    assert not problems, "\n".join(problems)


def test_the_matrix_keeps_its_promises() -> None:
    assert ROLE_PERMISSIONS[Role.AUDITOR] <= READ_ONLY  # auditors change nothing
    for role in (Role.ADMIN, Role.AUDITOR):  # only the executive's side approves
        assert Permission.REVIEW_DECIDE not in ROLE_PERMISSIONS[role]
        assert Permission.MAIL_READ not in ROLE_PERMISSIONS[role]
    assert ROLE_PERMISSIONS[Role.EXECUTIVE] >= DELEGABLE  # nobody delegates what they lack
    assert Permission.DELEGATIONS_GRANT not in ROLE_PERMISSIONS[Role.ADMIN]
    granted = set().union(*ROLE_PERMISSIONS.values())
    assert granted == set(Permission), f"unused permissions: {set(Permission) - granted}"
