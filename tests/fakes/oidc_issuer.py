"""A local Microsoft Entra ID (v2.0 endpoints) over real HTTPS, for msal and JWT validation.

It follows Entra's documented wire format and URL layout, per directory (tenant id):

- ``/{tid}/v2.0/.well-known/openid-configuration``: OpenID Provider metadata; issuer
  ``https://host/{tid}/v2.0``;
- ``/{tid}/discovery/v2.0/keys``: the JWKS (one key set for every directory, as Entra);
- ``/{tid}/oauth2/v2.0/authorize``: signs in :attr:`FakeEntra.sign_in_as` at once and
  redirects back with ``code`` and ``state`` (PKCE S256 and the nonce are remembered);
- ``/{tid}/oauth2/v2.0/token``: ``authorization_code`` (checks client secret, redirect URI and
  the PKCE verifier), ``client_credentials`` (scope ``<resource>/.default``; the app's
  application permissions become ``roles``) and the on-behalf-of grant
  (``urn:ietf:params:oauth:grant-type:jwt-bearer`` with ``requested_token_use=on_behalf_of``;
  the assertion must be a valid token of this issuer for the client) and ``refresh_token``
  (rotated on use; refused once the user is disabled or their sessions are revoked; the new
  ID token carries the user's current app roles).

Tokens are RS256 JWTs with Entra's v2 claims (``iss``, ``aud``, ``tid``, ``oid``, ``sub``,
``roles``, ``scp``, ``idtyp``, ``ver``). The server runs in a thread on 127.0.0.1, with a
certificate from a throwaway CA (trustme); clients trust :attr:`FakeEntra.ca_path`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GRAPH_RESOURCE = "https://graph.microsoft.com"
OBO_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class FakeUser:
    oid: str
    tid: str
    username: str
    name: str
    app_roles: list[str] = field(default_factory=list)
    #: ``accountEnabled``: a disabled account signs in no more and redeems no refresh token.
    enabled: bool = True


@dataclass
class FakeApp:
    client_id: str
    client_secret: str
    tid: str
    #: application permissions granted to the app (client credentials tokens' ``roles``)
    app_permissions: list[str] = field(default_factory=list)
    redirect_uris: list[str] = field(default_factory=list)


@dataclass
class _Key:
    kid: str
    private_key: rsa.RSAPrivateKey
    published: bool = True

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "n": data["n"], "e": data["e"]}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeEntra:
    def __init__(self, ca: trustme.CA, directory: Path) -> None:
        self.ca = ca
        self.ca_path = directory / "fake-entra-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        self._keys: list[_Key] = [self._new_key()]
        self.users: dict[str, FakeUser] = {}
        self.apps: dict[str, FakeApp] = {}
        self.sign_in_as: str | None = None
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh_tokens: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _new_key() -> _Key:
        return _Key(
            kid=uuid.uuid4().hex[:16],
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def issuer(self, tid: str) -> str:
        return f"{self.base_url}/{tid}/v2.0"

    def add_user(
        self,
        tid: str,
        username: str,
        name: str,
        app_roles: list[str] | None = None,
        oid: str | None = None,
    ) -> FakeUser:
        user = FakeUser(
            oid=oid or str(uuid.uuid4()),
            tid=tid,
            username=username,
            name=name,
            app_roles=list(app_roles or []),
        )
        self.users[user.oid] = user
        return user

    def register_app(
        self,
        tid: str,
        client_id: str | None = None,
        app_permissions: list[str] | None = None,
        redirect_uris: list[str] | None = None,
    ) -> FakeApp:
        app = FakeApp(
            client_id=client_id or str(uuid.uuid4()),
            client_secret=secrets.token_urlsafe(24),
            tid=tid,
            app_permissions=list(app_permissions or []),
            redirect_uris=list(redirect_uris or []),
        )
        self.apps[app.client_id] = app
        return app

    def revoke_sign_in_sessions(self, oid: str) -> None:
        """Graph's revokeSignInSessions: every refresh token of the user stops working."""
        for token in [t for t, e in self._refresh_tokens.items() if e["user"].oid == oid]:
            del self._refresh_tokens[token]

    def _refresh_token(self, user: FakeUser, client_id: str, scopes: list[str]) -> str:
        token = secrets.token_urlsafe(32)
        self._refresh_tokens[token] = {"user": user, "client_id": client_id, "scope": scopes}
        return token

    def _id_token(self, user: FakeUser, client_id: str, nonce: str | None, now: int) -> str:
        claims = {
            "iss": self.issuer(user.tid),
            "aud": client_id,
            "tid": user.tid,
            "oid": user.oid,
            "sub": f"sub-{user.oid}",
            "name": user.name,
            "preferred_username": user.username,
            "roles": list(user.app_roles),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "ver": "2.0",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self.token(claims)

    def rotate_keys(self, keep_old: bool = True) -> str:
        """A new signing key (published); the old ones stay published when ``keep_old``."""
        if not keep_old:
            for key in self._keys:
                key.published = False
        self._keys.append(self._new_key())
        return self._keys[-1].kid

    def unpublished_key(self) -> _Key:
        """A key that signs but never appears in the JWKS."""
        return _Key(kid="never-published", private_key=self._new_key().private_key, published=False)

    @property
    def signing_key(self) -> _Key:
        return self._keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self._keys if key.published]}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.signing_key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    # ------------------------------------------------------------------ tokens

    def token(
        self,
        claims: dict[str, Any],
        *,
        key: _Key | None = None,
        headers: dict[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        """Sign ``claims`` as this issuer would (tests also forge bad tokens with it)."""
        key = key or self.signing_key
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=algorithm,
            headers={"kid": key.kid, "typ": "JWT", **(headers or {})},
        )

    def user_token(
        self,
        user: FakeUser,
        audience: str,
        *,
        lifetime: int = 3600,
        scp: str = "access_as_user",
        **extra: Any,
    ) -> str:
        """An access token for ``user``, as the authorization code flow would give one."""
        now = int(time.time())
        claims = {
            "iss": self.issuer(user.tid),
            "aud": audience,
            "tid": user.tid,
            "oid": user.oid,
            "sub": f"sub-{user.oid}",
            "name": user.name,
            "preferred_username": user.username,
            "roles": user.app_roles,
            "scp": scp,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
            "azp": next(iter(self.apps), "unknown"),
        }
        claims.update(extra)
        return self.token(claims)

    def _verify_assertion(self, assertion: str, client_id: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(assertion)
        key = next(k for k in self._keys if k.kid == header.get("kid"))
        unverified = jwt.decode(assertion, options={"verify_signature": False})
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key.private_key.public_key(),
            algorithms=["RS256"],
            audience=[client_id, f"api://{client_id}"],
            issuer=self.issuer(unverified["tid"]),
        )
        return claims

    @staticmethod
    def _resource(scopes: list[str]) -> tuple[str, list[str]]:
        """The audience of a token for ``scopes`` and the permission names among them."""
        resource_scopes = [s for s in scopes if s not in OIDC_SCOPES]
        if not resource_scopes:
            return "00000003-0000-0000-c000-000000000000", []
        first = resource_scopes[0]
        if "://" in first:
            resource, _, _ = first.rpartition("/")
            names = [s.rpartition("/")[2] for s in resource_scopes]
        else:
            resource, names = GRAPH_RESOURCE, resource_scopes
        if resource.startswith("api://"):
            resource = resource.removeprefix("api://")  # v2 tokens: aud is the client id
        return resource, [n for n in names if n != ".default"]

    # ------------------------------------------------------------------ endpoints

    def _discovery(self, tid: str) -> dict[str, Any]:
        base = f"{self.base_url}/{tid}"
        return {
            "issuer": self.issuer(tid),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "tenant_region_scope": "EU",
        }

    def _authorize(self, tid: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        app = self.apps.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if app is None or (app.redirect_uris and redirect_uri not in app.redirect_uris):
            return 400, {}, b"unknown client or redirect_uri"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return 400, {}, b"PKCE required"
        user = self.users.get(self.sign_in_as or "")
        if user is None or not user.enabled:
            params = {"error": "access_denied", "state": query.get("state", "")}
        else:
            code = secrets.token_urlsafe(24)
            self._codes[code] = {
                "user": user,
                "client_id": app.client_id,
                "tid": tid,
                "redirect_uri": redirect_uri,
                "nonce": query.get("nonce"),
                "challenge": query["code_challenge"],
                "scope": query.get("scope", "").split(),
            }
            params = {
                "code": code,
                "state": query.get("state", ""),
                "session_state": uuid.uuid4().hex,
            }
            if query.get("client_info") == "1":
                params["client_info"] = self._client_info(user)
        return 302, {"Location": f"{redirect_uri}?{urlencode(params)}"}, b""

    @staticmethod
    def _client_info(user: FakeUser) -> str:
        return _b64url(json.dumps({"uid": user.oid, "utid": user.tid}).encode())

    def _error(self, error: str, description: str, status: int = 400) -> tuple[int, dict[str, Any]]:
        return status, {
            "error": error,
            "error_description": description,
            "error_codes": [70000],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": uuid.uuid4().hex,
            "correlation_id": str(uuid.uuid4()),
        }

    def _token_endpoint(
        self, tid: str, form: dict[str, str], basic: tuple[str, str] | None
    ) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(
            {k: v for k, v in form.items() if k in {"grant_type", "scope", "client_id"}}
        )
        client_id, client_secret = basic or (
            form.get("client_id", ""),
            form.get("client_secret", ""),
        )
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            return self._error("invalid_client", "AADSTS7000215: Invalid client secret.", 401)
        grant = form.get("grant_type")
        scopes = form.get("scope", "").split()
        now = int(time.time())
        if grant == "client_credentials":
            if len(scopes) != 1 or not scopes[0].endswith("/.default"):
                return self._error("invalid_scope", "AADSTS1002012: scope must be .default")
            resource = scopes[0].removesuffix("/.default").removeprefix("api://")
            claims = {
                "iss": self.issuer(tid),
                "aud": resource,
                "tid": tid,
                "oid": f"sp-{app.client_id}",
                "sub": f"sp-{app.client_id}",
                "azp": app.client_id,
                "roles": app.app_permissions,
                "idtyp": "app",
                "iat": now,
                "nbf": now,
                "exp": now + 3599,
                "ver": "2.0",
            }
            return 200, {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": self.token(claims),
            }
        if grant == "authorization_code":
            entry = self._codes.pop(form.get("code", ""), None)
            if entry is None or entry["client_id"] != client_id:
                return self._error("invalid_grant", "AADSTS70008: code expired or used")
            if entry["redirect_uri"] != form.get("redirect_uri"):
                return self._error("invalid_grant", "AADSTS50011: redirect_uri mismatch")
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != entry["challenge"]:
                return self._error("invalid_grant", "AADSTS501481: code_verifier mismatch")
            user: FakeUser = entry["user"]
            resource, names = self._resource(entry["scope"])
            access = self.user_token(user, resource, scp=" ".join(names) or "User.Read")
            return 200, {
                "token_type": "Bearer",
                "scope": " ".join(entry["scope"]),
                "expires_in": 3600,
                "ext_expires_in": 3600,
                "access_token": access,
                "refresh_token": self._refresh_token(user, client_id, entry["scope"]),
                "id_token": self._id_token(user, client_id, entry["nonce"], now),
                "client_info": self._client_info(user),
            }
        if grant == "refresh_token":
            # Entra rotates refresh tokens: the one redeemed is spent.
            entry = self._refresh_tokens.pop(form.get("refresh_token", ""), None)
            if entry is None or entry["client_id"] != client_id:
                return self._error(
                    "invalid_grant", "AADSTS700082: The refresh token has expired or is revoked."
                )
            user = entry["user"]
            if not user.enabled:
                return self._error("invalid_grant", "AADSTS50057: The user account is disabled.")
            requested = scopes or entry["scope"]
            resource, names = self._resource(requested)
            access = self.user_token(user, resource, scp=" ".join(names) or "User.Read")
            return 200, {
                "token_type": "Bearer",
                "scope": " ".join(requested),
                "expires_in": 3600,
                "ext_expires_in": 3600,
                "access_token": access,
                "refresh_token": self._refresh_token(user, client_id, requested),
                "id_token": self._id_token(user, client_id, None, now),
                "client_info": self._client_info(user),
            }
        if grant == OBO_GRANT:
            if form.get("requested_token_use") != "on_behalf_of":
                return self._error("invalid_request", "requested_token_use must be on_behalf_of")
            try:
                claims = self._verify_assertion(form.get("assertion", ""), client_id)
            except Exception as exc:
                return self._error(
                    "invalid_grant",
                    f"AADSTS50013: assertion failed signature validation ({type(exc).__name__})",
                )
            resource, names = self._resource(scopes)
            user = self.users[str(claims["oid"])]
            access = self.user_token(user, resource, scp=" ".join(names))
            return 200, {
                "token_type": "Bearer",
                "scope": " ".join(scopes),
                "expires_in": 3600,
                "ext_expires_in": 3600,
                "access_token": access,
                "refresh_token": secrets.token_urlsafe(32),
            }
        return self._error("unsupported_grant_type", f"AADSTS70003: {grant}")

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, data: dict[str, Any]) -> None:
                self._send(
                    status,
                    json.dumps(data).encode(),
                    {
                        "Content-Type": "application/json; charset=utf-8",
                        "Cache-Control": "no-store",
                    },
                )

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.requests.append(("GET", parts.path))
                segments = parts.path.strip("/").split("/")
                tid = segments[0] if segments else ""
                rest = "/".join(segments[1:])
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if rest == "v2.0/.well-known/openid-configuration":
                    self._json(200, fake._discovery(tid))
                elif rest == "discovery/v2.0/keys":
                    self._json(200, fake.jwks())
                elif rest == "oauth2/v2.0/authorize":
                    status, headers, body = fake._authorize(tid, query)
                    self._send(status, body, headers)
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                fake.requests.append(("POST", parts.path))
                segments = parts.path.strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = None
                authorization = self.headers.get("Authorization", "")
                if authorization.lower().startswith("basic "):
                    decoded = base64.b64decode(authorization[6:]).decode()
                    user, _, password = decoded.partition(":")
                    basic = (user, password)
                if "/".join(segments[1:]) == "oauth2/v2.0/token":
                    status, data = fake._token_endpoint(segments[0], form, basic)
                    self._json(status, data)
                else:
                    self._json(404, {"error": "not_found"})

        return Handler

    def start(self) -> None:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.base_url = f"https://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="fake-entra", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def fake_entra_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def fake_entra(fake_entra_ca: trustme.CA, tmp_path: Path) -> Iterator[FakeEntra]:
    """A running fake Entra ID over HTTPS; trust ``fake_entra.ca_path``."""
    fake = FakeEntra(fake_entra_ca, tmp_path)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
