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
