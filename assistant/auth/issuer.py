"""The built-in issuer of local mode: signs short-lived access tokens for local users and
publishes its discovery document and JWKS, so that validation takes the same path as for
Entra tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from assistant.auth.keys import LocalKeyStore
from assistant.core.clock import utcnow
from assistant.core.ids import new_id
from assistant.core.principal import Role
from assistant.core.settings import Settings


def local_issuer_url(settings: Settings) -> str:
    return (settings.auth.issuer or settings.server.public_url).rstrip("/")


class LocalIssuer:
    def __init__(self, settings: Settings, keystore: LocalKeyStore) -> None:
        self.settings = settings
        self.keystore = keystore
        self.issuer = local_issuer_url(settings)

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata (the parts this issuer implements)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/.well-known/jwks.json",
            "authorization_endpoint": f"{self.issuer}/auth/login",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["sub", "oid", "tid", "roles", "name", "preferred_username"],
        }

    def jwks(self) -> dict[str, Any]:
        return self.keystore.jwks()

    def mint(
        self,
        *,
        user_id: str,
        tenant_id: str,
        roles: Iterable[Role],
        ttl_s: int | None = None,
        username: str | None = None,
        display_name: str | None = None,
        audience: str | None = None,
    ) -> str:
        """A signed access token; ``tid`` is the tenant, ``roles`` the user's roles."""
        now = utcnow()
        ttl = ttl_s or self.settings.auth.token_ttl_s
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience or self.settings.auth.audiences[0],
            "sub": user_id,
            "oid": user_id,
            "tid": tenant_id,
            "roles": sorted(role.value for role in roles),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl)).timestamp()),
            "jti": new_id(),
            "ver": "2.0",
        }
        if username:
            claims["preferred_username"] = username
        if display_name:
            claims["name"] = display_name
        import jwt  # with the first token signed, not at the service's start

        key = self.keystore.current()
        return jwt.encode(
            claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": "JWT"}
        )
