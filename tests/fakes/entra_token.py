"""Entra ID's app-only token endpoint (client credentials), as the Microsoft emulators serve it.

msal asks ``/{tenant}/v2.0/.well-known/openid-configuration`` for the endpoints, then POSTs
``grant_type=client_credentials`` with the client id, secret and scope to
``/{tenant}/oauth2/v2.0/token``. Wrong credentials answer 401 ``invalid_client``, another
grant 400 ``unsupported_grant_type``, a scope the API does not accept 400 ``invalid_scope``
(the documented error shapes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class TokenIssuer(Protocol):
    """What the token endpoint needs from an emulator."""

    tenant_id: str
    client_id: str
    client_secret: str
    token_requests: int

    def issue_token(self) -> str: ...


def add_token_endpoint(
    app: FastAPI,
    issuer: TokenIssuer,
    *,
    authority_root: Callable[[], str],
    required_scope: str | None = None,
) -> None:
    """Add discovery and the token endpoint to ``app``; ``authority_root()`` is the URL
    the tenant paths hang under (known only once the server is listening)."""

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def discovery(tenant: str) -> dict[str, Any]:
        base = f"{authority_root()}/{tenant}"
        return {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        issuer.token_requests += 1
        if (
            tenant != issuer.tenant_id
            or form.get("client_id") != issuer.client_id
            or form.get("client_secret") != issuer.client_secret
        ):
            return JSONResponse(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
                status_code=401,
            )
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if required_scope is not None and required_scope not in form.get("scope", "").split():
            return JSONResponse(
                {
                    "error": "invalid_scope",
                    "error_description": "AADSTS70011: The provided scope is not valid.",
                },
                status_code=400,
            )
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": issuer.issue_token(),
            }
        )
