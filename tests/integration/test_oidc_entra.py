"""Entra mode against a local Entra ID over HTTPS: real msal flows (client credentials,
on-behalf-of, web sign-in with PKCE) and bearer validation through discovery and JWKS."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from sqlalchemy import select

from assistant.auth.entra import EntraClient
from assistant.auth.errors import EntraTokenError
from assistant.auth.models import MsalTokenCache, User, WebSession
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from tests.conftest import SEED_DIR
from tests.fakes.oidc_issuer import FakeEntra, FakeUser

TID_A = "aaaaaaaa-0000-4000-8000-00000000000a"
TID_B = "bbbbbbbb-0000-4000-8000-00000000000b"
CLIENT_ID = "c1c1c1c1-0000-4000-8000-0000000000c1"
PUBLIC_URL = "https://assistant.test"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"


@pytest.fixture
def entra_app(fake_entra: FakeEntra) -> Any:
    return fake_entra.register_app(
        TID_A,
        client_id=CLIENT_ID,
        app_permissions=["Mail.Read"],
        redirect_uris=[f"{PUBLIC_URL}/auth/callback"],
    )


@pytest.fixture
def settings(data_dir: Path, fake_entra: FakeEntra, entra_app: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        sandbox={"seed_dir": SEED_DIR},
        server={"public_url": PUBLIC_URL},
        auth={
            "mode": "entra",
            "default_tenant": "contoso",
            "tenants": {"contoso": {"tid": TID_A}, "fabrikam": {"tid": TID_B}},
            "ca_bundle": str(fake_entra.ca_path),
            "jwks_refresh_cooldown_s": 0,
            "entra": {
                "client_id": CLIENT_ID,
                "client_secret": entra_app.client_secret,
                "authority_host": fake_entra.base_url,
                "instance_discovery": False,
                "scopes": [f"api://{CLIENT_ID}/access_as_user"],
            },
        },
    )


@pytest.fixture
async def client(services: Any) -> AsyncIterator[httpx.AsyncClient]:
    from assistant.app import create_app

    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


@pytest.fixture
def alice(fake_entra: FakeEntra) -> FakeUser:
    return fake_entra.add_user(TID_A, "alice@contoso.example", "Alice Exec", ["Executive"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_actions(services: Any, tenant: str) -> list[AuditEvent]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant).order_by(AuditEvent.seq)
            )
        )


async def failures_claiming(services: Any, tenant: str) -> list[AuditEvent]:
    """Failed authentications naming ``tenant``: in the system chain, never the tenant's."""
    from assistant.auth.audit import SYSTEM_CHAIN

    return [
        e
        for e in await audit_actions(services, SYSTEM_CHAIN)
        if e.payload.get("claimed_tenant") == tenant
    ]


# ---------------------------------------------------------------------------- msal flows


async def test_client_credentials_cached_encrypted_per_tenant(
    services: Any, settings: Settings, fake_entra: FakeEntra, entra_app: Any
) -> None:
    entra = services.auth.entra
    token = await entra.acquire_for_client("contoso", [GRAPH_DEFAULT])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com" and claims["tid"] == TID_A
    assert claims["roles"] == ["Mail.Read"] and claims["idtyp"] == "app"
    grants = [r for r in fake_entra.token_requests if r["grant_type"] == "client_credentials"]
    assert len(grants) == 1

    assert await entra.acquire_for_client("contoso", [GRAPH_DEFAULT]) == token
    async with services.sessions() as session:
        row = await session.get(MsalTokenCache, "contoso")
    assert row is not None
    assert token.encode() not in row.ciphertext
    assert b"access_token" not in row.ciphertext.lower()
    assert entra_app.client_secret.encode() not in row.ciphertext

    # A new process loads the encrypted cache: no new request to Entra.
    restarted = EntraClient(settings, services.sessions, services.auth.directory)
    assert await restarted.acquire_for_client("contoso", [GRAPH_DEFAULT]) == token
    assert (
        len([r for r in fake_entra.token_requests if r["grant_type"] == "client_credentials"]) == 1
    )

    # Another tenant has a cache of its own.
    other = await entra.acquire_for_client("fabrikam", [GRAPH_DEFAULT])
    assert jwt.decode(other, options={"verify_signature": False})["tid"] == TID_B

    # With another secret the cache cannot be opened: a fresh token is fetched.
    rotated = settings.model_copy(
        update={
            "secret_key": settings.secret_key.__class__(
                "another-secret-of-at-least-thirty-two-chars"
            )
        }
    )
    fresh = EntraClient(rotated, services.sessions, services.auth.directory)
    await fresh.acquire_for_client("contoso", [GRAPH_DEFAULT])
    assert (
        len([r for r in fake_entra.token_requests if r["grant_type"] == "client_credentials"]) == 3
    )


async def test_on_behalf_of_acts_as_the_signed_in_executive(
    services: Any, client: httpx.AsyncClient, fake_entra: FakeEntra, alice: FakeUser
) -> None:
    user_token = fake_entra.user_token(alice, CLIENT_ID)
    me = await client.get("/api/v1/me", headers=bearer(user_token))
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == alice.oid and me.json()["tenant_id"] == "contoso"
    assert me.json()["roles"] == ["executive"]

    graph = await services.auth.entra.acquire_on_behalf_of(
        "contoso", user_token, ["https://graph.microsoft.com/Mail.Read"]
    )
    claims = jwt.decode(graph, options={"verify_signature": False})
    assert claims["oid"] == alice.oid and claims["aud"] == "https://graph.microsoft.com"
    assert claims["scp"] == "Mail.Read"
    assert any(
        r["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        for r in fake_entra.token_requests
    )

    forged = fake_entra.token(
        jwt.decode(user_token, options={"verify_signature": False}),
        key=fake_entra.unpublished_key(),
    )
    with pytest.raises(EntraTokenError) as refused:
        await services.auth.entra.acquire_on_behalf_of("contoso", forged, ["User.Read"])
    assert forged not in str(refused.value.detail)


# ---------------------------------------------------------------------------- web sign-in


async def _authorize(fake_entra: FakeEntra, location: str) -> dict[str, str]:
    verify = ssl.create_default_context(cafile=str(fake_entra.ca_path))
    async with httpx.AsyncClient(verify=verify, trust_env=False) as browser:
        response = await browser.get(location)
    assert response.status_code == 302, response.text
    callback = urlsplit(response.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{PUBLIC_URL}/auth/callback"
    return {k: v[0] for k, v in parse_qs(callback.query).items()}


async def test_sign_in_end_to_end(
    services: Any, client: httpx.AsyncClient, fake_entra: FakeEntra, alice: FakeUser
) -> None:
    login = await client.get("/auth/login", params={"next": "/api/v1/me"})
    assert login.status_code == 302
    authorize = urlsplit(login.headers["location"])
    query = parse_qs(authorize.query)
    assert authorize.path == f"/{TID_A}/oauth2/v2.0/authorize"
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]
    state_cookie = login.headers["set-cookie"]
    assert "ea_signin=" in state_cookie and "HttpOnly" in state_cookie
    assert "Secure" in state_cookie and "samesite=lax" in state_cookie.lower()

    fake_entra.sign_in_as = alice.oid
    params = await _authorize(fake_entra, login.headers["location"])
    done = await client.get("/auth/callback", params=params)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/api/v1/me"
    session_cookie = next(
        c for c in done.headers.get_list("set-cookie") if c.startswith("ea_session=")
    )
    assert "HttpOnly" in session_cookie and "Secure" in session_cookie
    assert "samesite=lax" in session_cookie.lower()

    me = await client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    assert list(me.json()["executives"]) == [alice.oid]  # she acts for herself
    assert me.json() | {"permissions": None, "delegations": None, "executives": None} == {
        "user_id": alice.oid,
        "tenant_id": "contoso",
        "roles": ["executive"],
        "actor_type": "user",
        "auth_method": "session",
        "on_behalf_of": None,
        "display_name": "Alice Exec",
        "permissions": None,
        "delegations": None,
        "executives": None,
    }
    async with services.sessions() as session:
        user = await session.get(User, alice.oid)
        assert user is not None and user.source == "entra"
        assert user.username == "alice@contoso.example"
        assert (await session.scalar(select(WebSession))) is not None
    actions = [e.action for e in await audit_actions(services, "contoso")]
    assert "auth.signin.succeeded" in actions

    # The code cannot be redeemed twice (msal and Entra both refuse a replay).
    replay = await client.get("/auth/callback", params=params)
    assert replay.status_code == 401

    out = await client.post("/auth/logout")
    assert out.status_code == 303
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_sign_in_refuses_a_forged_state_and_a_missing_state(
    services: Any, client: httpx.AsyncClient, fake_entra: FakeEntra, alice: FakeUser
) -> None:
    login = await client.get("/auth/login")
    fake_entra.sign_in_as = alice.oid
    params = await _authorize(fake_entra, login.headers["location"])
    forged = await client.get("/auth/callback", params=params | {"state": "forged"})
    assert forged.status_code == 401
    assert (await client.get("/api/v1/me")).status_code == 401

    client.cookies.clear()
    no_state = await client.get("/auth/callback", params=params)
    assert no_state.status_code == 401
    failures = [
        e for e in await failures_claiming(services, "contoso") if e.action == "auth.signin.failed"
    ]
    assert len(failures) == 2
    assert all(params["code"] not in (e.payload_json + (e.reason or "")) for e in failures)


# ---------------------------------------------------------------------------- bearer tokens


def _claims(fake: FakeEntra, user: FakeUser, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": fake.issuer(user.tid),
        "aud": CLIENT_ID,
        "tid": user.tid,
        "oid": user.oid,
        "sub": f"sub-{user.oid}",
        "roles": user.app_roles,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "ver": "2.0",
        "name": user.name,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _unsigned(claims: dict[str, Any], kid: str) -> str:
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(claims)}."


def _hs256_with_public_key(fake: FakeEntra, claims: dict[str, Any]) -> str:
    import base64
    import hashlib
    import hmac

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = (
        f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': fake.signing_key.kid})}.{part(claims)}"
    )
    signature = hmac.new(fake.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_bearer_token_negatives(
    services: Any, client: httpx.AsyncClient, fake_entra: FakeEntra, alice: FakeUser
) -> None:
    fabrikam_admin = fake_entra.add_user(TID_B, "eve@fabrikam.example", "Eve", ["Admin"])
    now = int(time.time())
    good = fake_entra.token(_claims(fake_entra, alice))
    assert (await client.get("/api/v1/me", headers=bearer(good))).status_code == 200
    cases = {
        "wrong aud": fake_entra.token(_claims(fake_entra, alice, aud="api://someone-else")),
        "wrong iss": fake_entra.token(_claims(fake_entra, alice, iss="https://evil.example/v2.0")),
        "expired": fake_entra.token(
            _claims(fake_entra, alice, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        ),
        "nbf in the future": fake_entra.token(_claims(fake_entra, alice, nbf=now + 3600)),
        "unknown kid": fake_entra.token(
            _claims(fake_entra, alice), key=fake_entra.unpublished_key()
        ),
        "alg none": _unsigned(_claims(fake_entra, alice), fake_entra.signing_key.kid),
        "HS256 with the public key": _hs256_with_public_key(fake_entra, _claims(fake_entra, alice)),
        # fabrikam's issuer may not speak for contoso's directory
        "role from another tenant": fake_entra.token(
            _claims(fake_entra, fabrikam_admin, tid=TID_A)
        ),
        "unknown directory": fake_entra.token(
            _claims(
                fake_entra,
                alice,
                tid="cccccccc-0000-4000-8000-00000000000c",
                iss=fake_entra.issuer("cccccccc-0000-4000-8000-00000000000c"),
            )
        ),
    }
    for name, token in cases.items():
        response = await client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert token not in response.text
    no_role = fake_entra.token(_claims(fake_entra, alice, roles=[]))
    assert (await client.get("/api/v1/me", headers=bearer(no_role))).status_code == 403
    # A fabrikam admin is an admin of fabrikam only.
    eve = fake_entra.token(_claims(fake_entra, fabrikam_admin))
    me = await client.get("/api/v1/me", headers=bearer(eve))
    assert me.status_code == 200 and me.json()["tenant_id"] == "fabrikam"

    rejected = [
        e for e in await failures_claiming(services, "contoso") if e.action == "auth.token.rejected"
    ]
    assert {e.reason for e in rejected} == {
        "wrong audience",
        "untrusted issuer",
        "expired",
        "not yet valid",
        "unknown signing key",
        "algorithm not allowed",
        "issuer not allowed for the tenant",
    }
    stored = " ".join(e.payload_json + (e.reason or "") for e in rejected)
    assert all(token not in stored for token in cases.values())


async def test_key_rotation_is_accepted(
    client: httpx.AsyncClient, fake_entra: FakeEntra, alice: FakeUser
) -> None:
    before = fake_entra.token(_claims(fake_entra, alice))
    assert (await client.get("/api/v1/me", headers=bearer(before))).status_code == 200
    fake_entra.rotate_keys(keep_old=False)
    after = fake_entra.token(_claims(fake_entra, alice))
    response = await client.get("/api/v1/me", headers=bearer(after))
    assert response.status_code == 200, response.text
    # The retired key is gone from the refreshed JWKS.
    assert (await client.get("/api/v1/me", headers=bearer(before))).status_code == 401


# ---------------------------------------------------------------------------- rechecks (issue 13)


async def _sign_in(client: httpx.AsyncClient, fake_entra: FakeEntra, user: FakeUser) -> None:
    login = await client.get("/auth/login")
    fake_entra.sign_in_as = user.oid
    done = await client.get(
        "/auth/callback", params=await _authorize(fake_entra, login.headers["location"])
    )
    assert done.status_code == 303, done.text


async def _age_session(services: Any, user: FakeUser, settings: Settings) -> None:
    """As if ``auth.entra.session_recheck_s`` had passed since Entra last answered."""
    from datetime import timedelta

    from assistant.core.clock import utcnow

    async with services.sessions() as session, session.begin():
        for row in await session.scalars(select(WebSession).where(WebSession.user_id == user.oid)):
            row.roles_checked_at = utcnow() - timedelta(
                seconds=settings.auth.entra.session_recheck_s + 1
            )


def _refreshes(fake_entra: FakeEntra) -> int:
    return len([r for r in fake_entra.token_requests if r["grant_type"] == "refresh_token"])


async def test_a_web_session_asks_entra_again_and_ends_when_entra_refuses(
    services: Any, settings: Settings, client: httpx.AsyncClient, fake_entra: FakeEntra
) -> None:
    ines = fake_entra.add_user(TID_A, "ines@contoso.example", "Ines", ["Executive", "Auditor"])
    await _sign_in(client, fake_entra, ines)
    assert (await client.get("/api/v1/me")).json()["roles"] == ["auditor", "executive"]
    assert (await client.get("/api/v1/audit/events")).status_code == 200

    # Removed at the issuer: the session keeps it no longer than session_recheck_s...
    ines.app_roles = ["Executive"]
    assert (await client.get("/api/v1/audit/events")).status_code == 200
    assert _refreshes(fake_entra) == 0
    # ...then msal redeems the refresh token and Entra's fresh ID token rules.
    await _age_session(services, ines, settings)
    assert (await client.get("/api/v1/audit/events")).status_code == 403
    assert _refreshes(fake_entra) == 1
    assert (await client.get("/api/v1/me")).json()["roles"] == ["executive"]
    assert _refreshes(fake_entra) == 1  # answered again only after the interval
    async with services.sessions() as session:
        from assistant.auth.users import roles_of

        assert await roles_of(session, "contoso", ines.oid) == {"executive"}
    mirrored = [
        e
        for e in await audit_actions(services, "contoso")
        if e.action == "auth.role.changed" and e.resource_id == ines.oid
    ]
    assert mirrored[-1].payload == {
        "before": ["auditor", "executive"],
        "after": ["executive"],
        "source": "entra",
    }

    # Disabled in Entra: the next renewal is refused and the session ends, audited.
    ines.enabled = False
    await _age_session(services, ines, settings)
    refused = await client.get("/api/v1/me")
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "AuthenticationError"
    ended = [
        e for e in await audit_actions(services, "contoso") if e.action == "auth.session.ended"
    ]
    assert len(ended) == 1 and ended[0].actor_id == ines.oid and ended[0].outcome == "denied"
    assert "invalid_grant" in (ended[0].reason or "")
    async with services.sessions() as session:
        row = await session.scalar(select(WebSession).where(WebSession.user_id == ines.oid))
        assert row is not None and row.revoked_at is not None
    ines.enabled = True  # even re-enabled, the ended session stays ended
    assert (await client.get("/api/v1/me")).status_code == 401

    # Sessions revoked at Entra (revokeSignInSessions) end the same way.
    await _sign_in(client, fake_entra, ines)
    assert (await client.get("/api/v1/me")).status_code == 200
    fake_entra.revoke_sign_in_sessions(ines.oid)
    await _age_session(services, ines, settings)
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_what_the_app_controls_applies_within_recheck_s_on_tokens_and_sessions(
    services: Any, settings: Settings, client: httpx.AsyncClient, fake_entra: FakeEntra
) -> None:
    from assistant.auth.runtime import UserStateCache

    now = [0.0]
    services.auth.states = UserStateCache(settings.auth.recheck_s, clock=lambda: now[0])
    assert settings.auth.recheck_s == 5.0  # the documented default
    ines = fake_entra.add_user(TID_A, "ines@contoso.example", "Ines", ["Executive", "Auditor"])
    root = fake_entra.add_user(TID_A, "root@contoso.example", "Root", ["Admin"])
    admin = bearer(fake_entra.user_token(root, CLIENT_ID))
    token = bearer(fake_entra.user_token(ines, CLIENT_ID))
    await _sign_in(client, fake_entra, ines)  # records her (source "entra")
    session_cookie = dict(client.cookies)
    audit_url = "/api/v1/audit/events"
    assert (await client.get(audit_url)).status_code == 200
    assert (await client.get(audit_url, headers=token)).status_code == 200

    # An admin withdraws a role Entra grants: gone on token and session within recheck_s.
    url = f"/api/v1/users/{ines.oid}/roles"
    withdrawn = await client.put(url, headers=admin, json={"roles": ["executive"]})
    assert withdrawn.status_code == 200, withdrawn.text
    now[0] = 4.9
    assert (await client.get(audit_url, headers=token)).status_code == 200  # cached
    now[0] = 5.0
    assert (await client.get(audit_url, headers=token)).status_code == 403
    assert (await client.get(audit_url)).status_code == 403
    # The app takes away; only Entra gives: a role Entra never assigned is a 409.
    added = await client.put(url, headers=admin, json={"roles": ["executive", "admin"]})
    assert added.status_code == 409 and added.json()["error"] == "ConflictError"
    # The withdrawal outlives a new sign-in, which mirrors Entra's roles less it.
    await _sign_in(client, fake_entra, ines)
    now[0] = 10.0
    assert (await client.get("/api/v1/me")).json()["roles"] == ["executive"]
    assert (await client.get(f"/api/v1/users/{ines.oid}", headers=admin)).json()["roles"] == [
        "executive"
    ]

    # Disabled in the app (here as the CLI would, without revoking her sessions): both
    # her token and her session are refused within recheck_s, each with an audit event.
    async with services.sessions() as session, session.begin():
        user = await session.get(User, ines.oid)
        assert user is not None
        user.disabled = True
    assert (await client.get("/api/v1/me", headers=token)).status_code == 200  # cached
    now[0] = 15.0
    before = len(await failures_claiming(services, "contoso"))
    by_token = await client.get("/api/v1/me", headers=token)
    assert by_token.status_code == 401 and by_token.json()["detail"] == "this account is disabled"
    client.cookies.clear()
    client.cookies.update(session_cookie)
    by_session = await client.get("/api/v1/me")
    assert by_session.status_code == 401, by_session.text
    rejections = (await failures_claiming(services, "contoso"))[before:]
    assert [(e.action, e.reason, e.payload["claimed_subject"]) for e in rejections] == [
        ("auth.token.rejected", "disabled user", ines.oid),
        ("auth.token.rejected", "disabled user", ines.oid),
    ]
    # And she cannot sign in again while disabled.
    login = await client.get("/auth/login")
    fake_entra.sign_in_as = ines.oid
    again = await client.get(
        "/auth/callback", params=await _authorize(fake_entra, login.headers["location"])
    )
    assert again.status_code == 401
    failed = [
        e for e in await failures_claiming(services, "contoso") if e.action == "auth.signin.failed"
    ]
    assert failed[-1].reason == "account disabled in the assistant"


async def test_a_session_entra_cannot_confirm_is_refused_but_not_ended(
    services: Any, settings: Settings, client: httpx.AsyncClient, fake_entra: FakeEntra
) -> None:
    ines = fake_entra.add_user(TID_A, "ines@contoso.example", "Ines", ["Executive"])
    await _sign_in(client, fake_entra, ines)
    fake_entra.stop()  # an outage: nothing confirms her roles, nothing refuses them
    await _age_session(services, ines, settings)
    unconfirmed = await client.get("/api/v1/me")
    assert unconfirmed.status_code == 503, unconfirmed.text
    assert unconfirmed.json()["error"] == "EntraUnreachableError"
    assert unconfirmed.headers["retry-after"] == "30"
    async with services.sessions() as session:
        row = await session.scalar(select(WebSession).where(WebSession.user_id == ines.oid))
        assert row is not None and row.revoked_at is None


async def test_signing_out_drops_the_refresh_token_of_the_last_session(
    services: Any, client: httpx.AsyncClient, fake_entra: FakeEntra
) -> None:
    ines = fake_entra.add_user(TID_A, "ines@contoso.example", "Ines", ["Executive"])
    await _sign_in(client, fake_entra, ines)
    async with services.sessions() as session:
        row = await session.scalar(select(WebSession).where(WebSession.user_id == ines.oid))
        assert row is not None and row.account_id == f"{ines.oid}.{TID_A}"
    renewed = await services.auth.entra.refresh_session(row.account_id)
    assert "id_token" in renewed
    assert (await client.post("/auth/logout")).status_code == 303
    with pytest.raises(EntraTokenError) as gone:
        await services.auth.entra.refresh_session(row.account_id)
    assert gone.value.reason == "no_account"
