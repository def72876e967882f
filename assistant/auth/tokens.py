"""Bearer JWT validation with PyJWT and its JWKS client.

Signature against the issuer's JWKS (found through its OpenID configuration, cached, and
refreshed when a token names an unknown ``kid``), ``iss`` against the tenant's allowed
issuers, ``aud``, ``exp``/``nbf`` with a small leeway, and an asymmetric algorithm allowlist.
Keys are fetched only for configured issuers, never for one a token merely names.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from assistant.auth.errors import TokenRejectedError
from assistant.auth.keys import LocalKeyStore
from assistant.auth.principal import parse_roles
from assistant.auth.tenants import TenantDirectory
from assistant.core.errors import ServiceUnavailableError
from assistant.core.principal import Role
from assistant.core.settings import Settings
from assistant.core.tenancy import is_reserved_tenant

if TYPE_CHECKING:
    # PyJWT (with cryptography's X.509 parser) loads with the first token checked or key set
    # read, not at the service's start: 25 ms of `assistant serve` that no start-up check used.
    from jwt import PyJWK, PyJWKClient

log = structlog.stdlib.get_logger(__name__)

REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub", "tid"]
#: Verified tokens remembered per process (see TokenValidator).
_MAX_VERIFIED = 10_000


def issuer_ssl_context(settings: Settings) -> ssl.SSLContext:
    """System trust plus ``auth.ca_bundle`` (a private CA), for every call to an issuer."""
    context = ssl.create_default_context()
    if settings.auth.ca_bundle is not None:
        context.load_verify_locations(cafile=str(settings.auth.ca_bundle))
    return context


class KeySource(Protocol):
    async def signing_key(self, kid: str) -> PyJWK: ...

    def publishes(self, kid: str) -> bool:
        """Whether the key set as last fetched (no network) still holds ``kid``."""
        ...


def _published(client: PyJWKClient | None, kid: str) -> bool:
    """``kid`` is in ``client``'s cached key set; False once that cache is empty or expired
    (the next full check fetches the set again)."""
    cache = client.jwk_set_cache if client is not None else None
    jwk_set = cache.get() if cache is not None else None
    return jwk_set is not None and any(key.key_id == kid for key in jwk_set.keys)


class LocalKeySource:
    def __init__(self, keystore: LocalKeyStore, settings: Settings) -> None:
        self._keystore = keystore
        self._lifespan = settings.auth.jwks_cache_s
        # Made with the first token checked (it imports PyJWT); until then no key set was
        # read, so publishes() answers False as for an expired cache.
        self._client: PyJWKClient | None = None

    def _jwks_client(self) -> PyJWKClient:
        if self._client is None:
            from assistant.auth.local_jwks import LocalJWKSClient

            # Reading local files is cheap: no cooldown, so a key rotated by the CLI is seen
            # at once.
            self._client = LocalJWKSClient(self._keystore, lifespan=self._lifespan, cooldown=0)
        return self._client

    async def signing_key(self, kid: str) -> PyJWK:
        return await asyncio.to_thread(self._jwks_client().get_signing_key, kid)

    def publishes(self, kid: str) -> bool:
        return _published(self._client, kid)


class RemoteKeySource:
    """An issuer's keys: ``jwks_uri`` from its OpenID configuration, then PyJWKClient."""

    def __init__(self, issuer: str, settings: Settings, context: ssl.SSLContext) -> None:
        self.issuer = issuer
        self._settings = settings
        self._context = context
        self._client: PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _discover(self) -> PyJWKClient:
        import httpx  # with the first external issuer's discovery, not at start-up
        from jwt import PyJWKClient

        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(
                verify=self._context, timeout=self._settings.auth.http_timeout_s
            ) as http:
                response = await http.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("auth.discovery.failed", issuer=self.issuer, error=type(exc).__name__)
            raise ServiceUnavailableError("the token issuer cannot be reached") from None
        if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
            log.warning(
                "auth.discovery.mismatch", issuer=self.issuer, advertised=document.get("issuer")
            )
            raise ServiceUnavailableError("the token issuer's configuration is inconsistent")
        return PyJWKClient(
            document["jwks_uri"],
            lifespan=self._settings.auth.jwks_cache_s,
            cooldown_duration=self._settings.auth.jwks_refresh_cooldown_s,
            timeout=self._settings.auth.http_timeout_s,
            ssl_context=self._context,
        )

    async def signing_key(self, kid: str) -> PyJWK:
        from jwt.exceptions import PyJWKClientConnectionError

        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._discover()
        try:
            return await asyncio.to_thread(self._client.get_signing_key, kid)
        except PyJWKClientConnectionError:
            log.warning("auth.jwks.unreachable", issuer=self.issuer)
            raise ServiceUnavailableError("the token issuer's keys cannot be fetched") from None

    def publishes(self, kid: str) -> bool:
        return _published(self._client, kid)


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    issuer: str
    tenant_id: str
    subject: str
    roles: frozenset[Role]

    @property
    def display_name(self) -> str | None:
        value = self.claims.get("name") or self.claims.get("preferred_username")
        return str(value) if value else None

    @property
    def is_app(self) -> bool:
        """An application token (client credentials), not a user's."""
        return self.claims.get("idtyp") == "app"


class TokenValidator:
    def __init__(
        self, settings: Settings, directory: TenantDirectory, sources: dict[str, KeySource]
    ) -> None:
        self._settings = settings
        self.directory = directory
        self._sources = sources
        self._algorithms = list(settings.auth.algorithms)
        # Tokens verified lately, by their SHA-256: a client sends the same bearer token on
        # every request, and a full check (header, claims, RSA signature) is a good part of
        # a small request's cost. Kept recheck_s at most (the staleness the user-state
        # check already allows), never past the token's own expiry, and only while its
        # issuer's key set as last fetched still holds the token's key: a key withdrawn
        # from the JWKS stops working as soon as the set is fetched again. Per process.
        self._verified: dict[bytes, tuple[float, float, str, VerifiedToken]] = {}
        self._verified_ttl_s = settings.auth.recheck_s

    def default_audiences(self) -> list[str]:
        audiences = list(self._settings.auth.audiences)
        client_id = self._settings.auth.entra.client_id
        if self._settings.auth.mode == "entra" and client_id:
            audiences += [client_id, f"api://{client_id}"]
        return audiences

    def _source(self, issuer: str) -> KeySource:
        source = self._sources.get(issuer)
        if source is None:
            source = RemoteKeySource(issuer, self._settings, issuer_ssl_context(self._settings))
            self._sources[issuer] = source
        return source

    async def validate(
        self, token: str, *, audiences: Iterable[str] | None = None
    ) -> VerifiedToken:
        """Verify ``token`` completely, or raise :class:`TokenRejectedError`.

        A token verified for the default audiences less than ``auth.recheck_s`` ago (and not
        expired since) is answered from memory."""
        if audiences is not None or self._verified_ttl_s <= 0:
            return await self._validate(token, audiences=audiences)
        key = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(key)
        now = time.monotonic()
        if cached is not None:
            checked_at, expires_at, kid, verified = cached
            if (
                now - checked_at < self._verified_ttl_s
                and time.time() < expires_at
                and self._source(verified.issuer).publishes(kid)
            ):
                return verified
            del self._verified[key]
        verified = await self._validate(token)
        import jwt

        if len(self._verified) >= _MAX_VERIFIED:  # bounded: drop everything rather than grow
            self._verified.clear()
        expires_at = float(verified.claims["exp"]) + self._settings.auth.leeway_s
        kid = str(jwt.get_unverified_header(token)["kid"])  # present: _validate requires it
        self._verified[key] = (now, expires_at, kid, verified)
        return verified

    async def _validate(
        self, token: str, *, audiences: Iterable[str] | None = None
    ) -> VerifiedToken:
        import jwt
        from jwt.exceptions import PyJWKClientError

        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise TokenRejectedError("malformed") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise TokenRejectedError("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejectedError("no key id")
        issuer = unverified.get("iss")
        tid = unverified.get("tid")
        subject = unverified.get("oid") or unverified.get("sub")
        hint = {"subject": str(subject) if subject else None}
        if not isinstance(issuer, str) or issuer not in self.directory.trusted_issuers():
            raise TokenRejectedError("untrusted issuer", **hint)
        if not isinstance(tid, str) or not tid:
            raise TokenRejectedError("no tenant", **hint)
        tenant_id = self.directory.tenant_for(tid, issuer)
        if tenant_id is None:
            raise TokenRejectedError("unknown tenant", **hint)
        if is_reserved_tenant(tenant_id):
            # A name of the chains of no tenant (the system chain): never a tenant.
            raise TokenRejectedError("reserved tenant", **hint)
        if issuer not in self.directory.allowed_issuers(tenant_id):
            raise TokenRejectedError(
                "issuer not allowed for the tenant", tenant_id=tenant_id, **hint
            )
        try:
            key = await self._source(issuer).signing_key(kid)
        except PyJWKClientError:
            raise TokenRejectedError("unknown signing key", tenant_id=tenant_id, **hint) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=self._algorithms,
                audience=list(audiences or self.default_audiences()),
                issuer=issuer,
                leeway=self._settings.auth.leeway_s,
                options={"require": REQUIRED_CLAIMS, "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejectedError("expired", tenant_id=tenant_id, **hint) from None
        except jwt.ImmatureSignatureError:
            raise TokenRejectedError("not yet valid", tenant_id=tenant_id, **hint) from None
        except jwt.InvalidAudienceError:
            raise TokenRejectedError("wrong audience", tenant_id=tenant_id, **hint) from None
        except jwt.InvalidIssuerError:
            raise TokenRejectedError("wrong issuer", tenant_id=tenant_id, **hint) from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejectedError(
                f"missing claim {exc.claim}", tenant_id=tenant_id, **hint
            ) from None
        except (jwt.InvalidTokenError, ValueError):
            raise TokenRejectedError("bad signature", tenant_id=tenant_id, **hint) from None
        roles_claim = claims.get("roles") or []
        roles = parse_roles(roles_claim if isinstance(roles_claim, list) else [])
        return VerifiedToken(
            claims=claims,
            issuer=issuer,
            tenant_id=tenant_id,
            subject=str(claims.get("oid") or claims["sub"]),
            roles=roles,
        )
