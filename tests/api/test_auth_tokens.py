"""Local mode: the built-in issuer's discovery and JWKS, bearer token negatives, key rotation,
and API keys of service accounts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from assistant.auth.models import ApiKey
from assistant.core.principal import Role
from governance.audit_models import AuditEvent
from tests.fixtures.auth import create_user_with_token

ISSUER = "http://127.0.0.1:8000"


def _part(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "executive-assistant",
        "sub": user_id,
        "tid": "default",
        "roles": ["executive"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(changes)
    return claims


def _sign(
    services: Any,
    claims: dict[str, Any],
    *,
    kid: str | None = None,
    key: rsa.RSAPrivateKey | None = None,
) -> str:
    current = services.auth.local_issuer.keystore.current()
    return jwt.encode(
        claims, key or current.private_key, algorithm="RS256", headers={"kid": kid or current.kid}
    )


async def test_discovery_and_jwks(client: httpx.AsyncClient, services: Any) -> None:
    discovery = (await client.get("/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    assert [k["kid"] for k in keys] == [services.auth.local_issuer.keystore.current().kid]
    assert {"d", "p", "q"}.isdisjoint(keys[0])  # public parts only


async def test_a_local_token_authenticates(client: httpx.AsyncClient, services: Any) -> None:
    user_id, headers = await create_user_with_token(services, "erin", Role.EXECUTIVE)
    me = await client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user_id"] == user_id and body["tenant_id"] == "default"
    assert body["roles"] == ["executive"] and body["auth_method"] == "bearer"
    assert "review.decide" in body["permissions"] and "users.manage" not in body["permissions"]


async def test_no_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"] == "AuthenticationError"
    basic = await client.get("/api/v1/me", headers={"Authorization": "Basic YTpi"})
    assert basic.status_code == 401


async def test_token_negatives(client: httpx.AsyncClient, services: Any) -> None:
    user_id, _ = await create_user_with_token(services, "erin", Role.EXECUTIVE)
    now = int(time.time())
    current = services.auth.local_issuer.keystore.current()
    public_pem = current.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_input = (
        f"{_part({'alg': 'HS256', 'typ': 'JWT', 'kid': current.kid})}.{_part(_claims(user_id))}"
    )
    hs_signature = (
        base64.urlsafe_b64encode(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
        .rstrip(b"=")
        .decode()
    )
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "wrong audience": _sign(services, _claims(user_id, aud="another-api")),
        "untrusted issuer": _sign(services, _claims(user_id, iss="https://evil.example")),
        "expired": _sign(
            services, _claims(user_id, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
        ),
        "not yet valid": _sign(services, _claims(user_id, nbf=now + 3600)),
        "unknown signing key": _sign(services, _claims(user_id), kid="unknown-kid", key=stranger),
        "algorithm not allowed": f"{_part({'alg': 'none', 'kid': current.kid})}."
        f"{_part(_claims(user_id))}.",
        "HS256 with the public key": f"{hs_input}.{hs_signature}",
        "bad signature": _sign(services, _claims(user_id), key=stranger),
        "no tenant": _sign(services, {k: v for k, v in _claims(user_id).items() if k != "tid"}),
        "malformed": "eyJhbGciOi.not-a-token",
    }
    for name, token in cases.items():
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (name, response.text)
        assert token not in response.text
    missing_role = _sign(services, _claims(user_id, roles=[]))
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {missing_role}"})
    assert response.status_code == 403
    unknown_role = _sign(services, _claims(user_id, roles=["superuser"]))
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {unknown_role}"})
    assert response.status_code == 403

    async with services.sessions() as session:
        rows = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "auth.token.rejected")
            )
        )
    reasons = {row.reason for row in rows}
    assert {
        "wrong audience",
        "untrusted issuer",
        "expired",
        "not yet valid",
        "unknown signing key",
        "algorithm not allowed",
        "bad signature",
        "no tenant",
        "malformed",
    } <= reasons
    stored = " ".join(row.payload_json + (row.reason or "") for row in rows)
    assert not any(token in stored for token in cases.values())


async def test_key_rotation(client: httpx.AsyncClient, services: Any) -> None:
    user_id, old_headers = await create_user_with_token(services, "erin", Role.EXECUTIVE)
    assert (await client.get("/api/v1/me", headers=old_headers)).status_code == 200
    keystore = services.auth.local_issuer.keystore
    old_kid = keystore.current().kid
    new = keystore.rotate()  # e.g. by another process: the validator has a cached JWKS
    token = services.auth.mint(user_id, "default", [Role.EXECUTIVE])
    assert jwt.get_unverified_header(token)["kid"] == new.kid != old_kid
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    # Tokens signed before the rotation stay valid until they expire.
    assert (await client.get("/api/v1/me", headers=old_headers)).status_code == 200
    kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids == [new.kid, old_kid]


async def test_api_keys(client: httpx.AsyncClient, services: Any) -> None:
    _, admin = await create_user_with_token(services, "root", Role.ADMIN)
    created = await client.post(
        "/api/v1/api-keys", headers=admin, json={"name": "prometheus", "roles": ["auditor"]}
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    prefix = created.json()["prefix"]
    assert key.startswith(f"ea_{prefix}_") and created.json()["last_used_at"] is None
    async with services.sessions() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        assert row is not None and key not in row.key_hash and row.key_hash != key

    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = await client.get("/api/v1/me", headers=headers)
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == f"apikey:{prefix}"
        assert me.json()["actor_type"] == "service" and me.json()["roles"] == ["auditor"]
    # role-scoped: an auditor key manages nothing
    assert (await client.get("/api/v1/users", headers={"X-API-Key": key})).status_code == 200
    assert (
        await client.post("/api/v1/users", headers={"X-API-Key": key}, json={"username": "x"})
    ).status_code == 403

    listed = (await client.get("/api/v1/api-keys", headers=admin)).json()
    assert [k["prefix"] for k in listed] == [prefix]
    assert listed[0]["last_used_at"] is not None and "key" not in listed[0]

    wrong = key[:-4] + "AAAA"
    assert (await client.get("/api/v1/me", headers={"X-API-Key": wrong})).status_code == 401
    assert (
        await client.post(
            "/api/v1/api-keys", headers=admin, json={"name": "x", "roles": ["delegate"]}
        )
    ).status_code == 422

    revoked = await client.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await client.get("/api/v1/me", headers={"X-API-Key": key})).status_code == 401

    async with services.sessions() as session:
        actions = [
            e.action for e in await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
        rows = list(await session.scalars(select(AuditEvent)))
    assert "auth.apikey.created" in actions and "auth.apikey.revoked" in actions
    assert not any(key in (r.payload_json + (r.reason or "")) for r in rows)
