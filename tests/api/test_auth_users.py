"""Local mode: users and roles, delegations, the password sign-in pages (CSRF, cookies,
lockout, rate limit), and what reaches logs and audit rows."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assistant.auth.audit import SYSTEM_CHAIN
from assistant.auth.models import User
from assistant.core.principal import Role
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from tests.conftest import SEED_DIR
from tests.fixtures.auth import create_user_with_token
from tests.fixtures.logs import rendered_logs

PASSWORD = "correct horse battery staple"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        sandbox={"seed_dir": SEED_DIR},
        auth={"lockout_threshold": 3, "lockout_s": 600, "signin_rate_limit": 6},
    )


async def audit_rows(services: Any, tenant: str = "default") -> list[AuditEvent]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant).order_by(AuditEvent.seq)
            )
        )


async def sign_in(
    client: httpx.AsyncClient,
    username: str,
    password: str,
    tenant: str = "default",
    next_path: str = "/api/v1/me",
) -> httpx.Response:
    page = await client.get("/auth/login", params={"next": next_path})
    assert page.status_code == 200 and "<form" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return await client.post(
        "/auth/password",
        data={
            "username": username,
            "password": password,
            "csrf": csrf.group(1),
            "tenant": tenant,
            "next": next_path,
        },
    )


# ---------------------------------------------------------------------------- users


async def test_users_and_roles(client: httpx.AsyncClient, services: Any) -> None:
    admin_id, admin = await create_user_with_token(services, "root", Role.ADMIN)
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": "alice",
            "display_name": "Alice",
            "roles": ["executive"],
            "password": PASSWORD,
        },
    )
    assert created.status_code == 201, created.text
    alice = created.json()
    assert alice["roles"] == ["executive"] and "password" not in created.text
    assert "hash" not in created.text

    duplicate = await client.post("/api/v1/users", headers=admin, json={"username": "alice"})
    assert duplicate.status_code == 409
    short = await client.post(
        "/api/v1/users", headers=admin, json={"username": "bob", "password": "short"}
    )
    assert short.status_code == 422 and "short" not in short.text
    for field, value in (("username", "eve\x00"), ("display_name", "Eve\x1b[31m")):
        odd = await client.post(
            "/api/v1/users", headers=admin, json={"username": "eve", field: value}
        )
        assert odd.status_code == 422, odd.text
        assert odd.json()["error"] == "ValidationFailedError"
        assert f"{field}: control characters" in odd.text

    listed = (await client.get("/api/v1/users", headers=admin)).json()
    assert {u["username"]: u["roles"] for u in listed} == {
        "root": ["admin"],
        "alice": ["executive"],
    }
    changed = await client.put(
        f"/api/v1/users/{alice['id']}/roles",
        headers=admin,
        json={"roles": ["executive", "auditor"]},
    )
    assert changed.json()["roles"] == ["auditor", "executive"]
    last_admin = await client.put(
        f"/api/v1/users/{admin_id}/roles", headers=admin, json={"roles": []}
    )
    assert last_admin.status_code == 409
    assert (await client.get("/api/v1/users/nope", headers=admin)).status_code == 404

    events = [e for e in await audit_rows(services) if e.action == "auth.role.changed"]
    assert events[-1].payload == {"after": ["auditor", "executive"], "before": ["executive"]}
    assert events[-1].actor_id == admin_id

    _, executive = await create_user_with_token(services, "erin", Role.EXECUTIVE)
    assert (await client.get("/api/v1/users", headers=executive)).status_code == 403
    _, auditor = await create_user_with_token(services, "audrey", Role.AUDITOR)
    assert (await client.get("/api/v1/users", headers=auditor)).status_code == 200
    assert (
        await client.put(f"/api/v1/users/{alice['id']}/roles", headers=auditor, json={"roles": []})
    ).status_code == 403
    denied = [e for e in await audit_rows(services) if e.action == "auth.access.denied"]
    assert len(denied) == 2 and denied[-1].outcome == "denied"


# ---------------------------------------------------------------------------- delegations


async def test_delegations(client: httpx.AsyncClient, services: Any) -> None:
    alice_id, alice = await create_user_with_token(services, "alice", Role.EXECUTIVE)
    bob_id, bob = await create_user_with_token(services, "bob", Role.EXECUTIVE)
    dave_id, dave = await create_user_with_token(services, "dave", Role.DELEGATE)
    _, admin = await create_user_with_token(services, "root", Role.ADMIN)
    acme_exec_id, _ = await create_user_with_token(services, "zed", Role.EXECUTIVE, tenant="acme")

    alone = (await client.get("/api/v1/me", headers=dave)).json()
    assert alone["permissions"] == ["me.read"]  # a delegate acting for nobody sees itself

    granted = await client.post(
        "/api/v1/delegations",
        headers=alice,
        json={"delegate_id": dave_id, "scopes": ["review.read", "review.decide", "triage.read"]},
    )
    assert granted.status_code == 201, granted.text
    assert (
        await client.post("/api/v1/delegations", headers=admin, json={"delegate_id": dave_id})
    ).status_code == 403
    assert (
        await client.post(
            "/api/v1/delegations",
            headers=alice,
            json={"delegate_id": dave_id, "scopes": ["users.manage"]},
        )
    ).status_code == 422

    acting = await client.get("/api/v1/me", headers=dave | {"X-On-Behalf-Of": alice_id})
    assert acting.status_code == 200, acting.text
    body = acting.json()
    assert body["on_behalf_of"] == alice_id and body["roles"] == ["delegate"]
    assert body["permissions"] == ["me.read", "review.decide", "review.read", "triage.read"]
    assert [d["executive_id"] for d in alone["delegations"] + body["delegations"]] == [alice_id]

    for executive_id in (bob_id, acme_exec_id, "nobody"):
        refused = await client.get("/api/v1/me", headers=dave | {"X-On-Behalf-Of": executive_id})
        assert refused.status_code == 403
    # acting for an executive does not carry one's own roles over
    assert (
        await client.get("/api/v1/delegations", headers=dave | {"X-On-Behalf-Of": alice_id})
    ).status_code == 403

    assert len((await client.get("/api/v1/delegations", headers=bob)).json()) == 0
    assert len((await client.get("/api/v1/delegations", headers=alice)).json()) == 1
    assert len((await client.get("/api/v1/delegations", headers=admin)).json()) == 1
    grant_id = granted.json()["id"]
    assert (await client.delete(f"/api/v1/delegations/{grant_id}", headers=bob)).status_code == 404
    assert (
        await client.delete(f"/api/v1/delegations/{grant_id}", headers=admin)
    ).status_code == 200
    after = await client.get("/api/v1/me", headers=dave | {"X-On-Behalf-Of": alice_id})
    assert after.status_code == 403


async def test_a_delegate_without_the_header_is_told_to_name_her_executive(
    client: httpx.AsyncClient, services: Any
) -> None:
    """A delegate holds her grant's permissions only while acting for an executive: her
    first call without X-On-Behalf-Of is refused (403, audited) with that said, not with
    a bare "you may not do this"; what no grant could give keeps the bare refusal."""
    alice_id, alice = await create_user_with_token(services, "alice", Role.EXECUTIVE)
    dave_id, dave = await create_user_with_token(services, "dave", Role.DELEGATE)
    granted = await client.post(
        "/api/v1/delegations",
        headers=alice,
        json={"delegate_id": dave_id, "scopes": ["review.read", "triage.read"]},
    )
    assert granted.status_code == 201, granted.text
    bare = await client.get("/api/v1/review", headers=dave)
    assert bare.status_code == 403
    assert bare.json()["error"] == "PermissionDeniedError"
    assert "X-On-Behalf-Of" in bare.json()["detail"]
    acting = await client.get("/api/v1/review", headers=dave | {"X-On-Behalf-Of": alice_id})
    assert acting.status_code == 200, acting.text
    users = await client.get("/api/v1/users", headers=dave)
    assert users.status_code == 403 and "X-On-Behalf-Of" not in users.json()["detail"]
    async with services.sessions() as session:
        denied = list(
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.action == "auth.access.denied", AuditEvent.actor_id == dave_id
                )
            )
        )
    assert len(denied) == 2


# ---------------------------------------------------------------------------- sign-in


async def test_password_sign_in_session_and_sign_out(
    client: httpx.AsyncClient, services: Any
) -> None:
    user_id, admin = await create_user_with_token(
        services, "alice", Role.EXECUTIVE, Role.ADMIN, password=PASSWORD
    )
    page = await client.get("/auth/login")
    assert "ea_csrf=" in page.headers["set-cookie"]
    assert page.headers["content-security-policy"].startswith("default-src 'none'")

    done = await sign_in(client, "alice", PASSWORD)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/api/v1/me"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("ea_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain-http development only; see test_cookie_security

    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["user_id"] == user_id
    assert me.json()["auth_method"] == "session"

    # cookie-authenticated writes from another site are refused
    cross = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "roles": ["auditor"]},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    same = await client.post(
        "/api/v1/api-keys",
        json={"name": "k", "roles": ["auditor"]},
        headers={"Origin": "http://testserver"},
    )
    assert same.status_code == 201

    # nobody grants roles to themselves (issue 13), another admin does
    own = await client.put(
        f"/api/v1/users/{user_id}/roles",
        headers=admin,
        json={"roles": ["executive", "admin", "auditor"]},
    )
    assert own.status_code == 403 and own.json()["error"] == "SeparationOfDutiesError"
    # a role change applies to the running session at once
    _, root = await create_user_with_token(services, "root", Role.ADMIN)
    changed = await client.put(
        f"/api/v1/users/{user_id}/roles",
        headers=root,
        json={"roles": ["executive", "admin", "auditor"]},
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/api/v1/me")).json()["roles"] == ["admin", "auditor", "executive"]

    out = await client.post("/auth/logout")
    assert out.status_code == 303 and out.headers["location"] == "/auth/login"
    client.cookies.set("ea_session", cookie.split(";")[0].split("=", 1)[1])
    assert (await client.get("/api/v1/me")).status_code == 401  # revoked server-side

    actions = [e.action for e in await audit_rows(services)]
    assert "auth.signin.succeeded" in actions and "auth.signout" in actions


async def test_open_redirects_and_forged_forms_are_refused(
    client: httpx.AsyncClient, services: Any
) -> None:
    await create_user_with_token(services, "alice", Role.EXECUTIVE, password=PASSWORD)
    done = await sign_in(client, "alice", PASSWORD, next_path="//evil.example/x")
    assert done.headers["location"] == "/app"  # the web app, never the foreign site
    forged = await client.post(
        "/auth/password", data={"username": "alice", "password": PASSWORD, "csrf": "guess"}
    )
    assert forged.status_code == 400


async def test_lockout_after_repeated_failures(client: httpx.AsyncClient, services: Any) -> None:
    user_id, admin = await create_user_with_token(services, "alice", Role.ADMIN, password=PASSWORD)
    for _ in range(3):
        assert (await sign_in(client, "alice", "wrong password!!")).status_code == 401
    locked = await sign_in(client, "alice", PASSWORD)
    assert locked.status_code == 401  # locked: even the right password fails
    unknown = await sign_in(client, "nobody", PASSWORD)
    assert unknown.status_code == 401 and "locked" in unknown.text  # same message for all

    # Unproven callers write the system chain only, with the tenant they claimed as data.
    rows = await audit_rows(services, SYSTEM_CHAIN)
    assert [e.reason for e in rows if e.action == "auth.lockout"] == ["3 failed sign-ins"]
    failures = [e.reason for e in rows if e.action == "auth.signin.failed"]
    assert failures == ["wrong password"] * 3 + ["account locked", "unknown user"]
    assert {e.payload["claimed_tenant"] for e in rows} == {"default"}
    assert not [e for e in await audit_rows(services) if e.actor_id == "anonymous"]

    unlocked = await client.patch(f"/api/v1/users/{user_id}", headers=admin, json={"unlock": True})
    assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303


async def test_rate_limit_per_source(client: httpx.AsyncClient, services: Any) -> None:
    await create_user_with_token(services, "alice", Role.EXECUTIVE, password=PASSWORD)
    for attempt in range(6):
        assert (await sign_in(client, f"guess{attempt}", "whatever-123")).status_code == 401
    limited = await sign_in(client, "alice", PASSWORD)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


async def test_disabled_users_lose_their_sessions(client: httpx.AsyncClient, services: Any) -> None:
    alice_id, _ = await create_user_with_token(services, "alice", Role.EXECUTIVE, password=PASSWORD)
    _, admin = await create_user_with_token(services, "root", Role.ADMIN)
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    disabled = await client.patch(
        f"/api/v1/users/{alice_id}", headers=admin, json={"disabled": True}
    )
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert (await client.get("/api/v1/me")).status_code == 401
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 401


def test_cookie_security(data_dir: Path) -> None:
    from assistant.auth.sessions import cookie_secure

    assert cookie_secure(Settings(data_dir=data_dir)) is False  # http://127.0.0.1 dev
    assert (
        cookie_secure(Settings(data_dir=data_dir, server={"public_url": "https://ea.example"}))
        is True
    )
    assert cookie_secure(Settings(data_dir=data_dir, environment="production")) is True
    from assistant.core.settings import load_settings

    with pytest.raises(Exception, match="cookie_secure"):
        load_settings(
            data_dir=data_dir,
            environment="production",
            secret_key="x" * 40,
            auth={"cookie_secure": False},
        )


# ---------------------------------------------------------------------------- secrets


async def test_no_secret_reaches_logs_or_audit_rows(
    client: httpx.AsyncClient,
    services: Any,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with rendered_logs() as rendered:
        await _exercise_every_credential(client, services, settings, rendered, caplog)


async def _exercise_every_credential(
    client: httpx.AsyncClient,
    services: Any,
    settings: Settings,
    rendered: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, admin = await create_user_with_token(services, "root", Role.ADMIN, password=PASSWORD)
    secrets_seen: list[str] = [
        PASSWORD,
        admin["Authorization"].split()[1],
        settings.secret_key.get_secret_value(),
    ]
    other_password = "another secret password 42"
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={"username": "alice", "roles": ["executive"], "password": other_password},
    )
    assert created.status_code == 201
    key = (
        await client.post(
            "/api/v1/api-keys", headers=admin, json={"name": "ci", "roles": ["auditor"]}
        )
    ).json()["key"]
    secrets_seen += [other_password, key]
    await client.get("/api/v1/me", headers={"X-API-Key": key})
    await client.get("/api/v1/me", headers={"X-API-Key": key[:-3] + "xyz"})
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}x"})
    forged = admin["Authorization"].split()[1][:-6] + "AAAAAA"
    secrets_seen.append(forged)
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    await sign_in(client, "root", PASSWORD)
    await sign_in(client, "alice", "wrong but secret password")
    secrets_seen.append("wrong but secret password")
    session_cookie = client.cookies.get("ea_session")
    assert session_cookie
    secrets_seen.append(session_cookie)

    logs = rendered.getvalue() + caplog.text
    assert "auth.credentials.rejected" in rendered.getvalue()
    assert "auth.signin.failed" in rendered.getvalue()
    async with services.sessions() as session:
        rows = list(await session.scalars(select(AuditEvent)))
        users = list(await session.scalars(select(User)))
    stored = " ".join(" ".join(str(v) for v in vars(r).values()) for r in rows)
    assert len(rows) > 5 and "auth.token.rejected" in stored
    for secret in secrets_seen:
        assert secret not in logs
        assert secret not in stored
    assert all(u.password_hash is None or u.password_hash.startswith("$argon2id$") for u in users)


async def test_the_as_role_helper(client: httpx.AsyncClient, as_role: Any) -> None:
    principal = as_role(client, Role.AUDITOR, tenant="acme")
    assert principal.tenant_id == "acme"
    assert (await client.get("/api/v1/users")).status_code == 200
    assert (await client.post("/api/v1/users", json={"username": "x"})).status_code == 403
    as_role(client, Role.DELEGATE, on_behalf_of="boss", delegated_scopes=frozenset({"review.read"}))
    me = (await client.get("/api/v1/me")).json()
    assert me["permissions"] == ["me.read", "review.read"] and me["on_behalf_of"] == "boss"
    as_role(client)
    assert (await client.get("/api/v1/me")).status_code == 403
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert (await client.get("/api/v1/me")).status_code == 401
