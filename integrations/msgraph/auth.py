"""Tokens for Microsoft Graph.

Every Graph client takes a ``TokenProvider``: any async callable returning a bearer token.
:class:`ClientCredentialsTokenProvider` is the app-only flow (msal client credentials);
the on-behalf-of provider of the auth layer plugs in the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from integrations.base import ConnectorContext
from integrations.errors import (
    ConnectorAuthError,
    ConnectorUnavailableError,
    RetriableConnectorError,
)

log = structlog.stdlib.get_logger(__name__)

TokenProvider = Callable[[], Awaitable[str]]
"""An async callable that returns a valid bearer token (cached and refreshed by itself)."""

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"

# msal error codes after which retrying with the same credentials is pointless.
_FATAL_CODES = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_grant",
        "invalid_scope",
        "invalid_request",
        "unsupported_grant_type",
    }
)


class ClientCredentialsTokenProvider:
    """App-only tokens from msal's ``ConfidentialClientApplication`` (client credentials).

    msal keeps the token in its in-memory cache and only calls the token endpoint when it
    is close to expiry; the blocking call runs in a worker thread. ``http_client`` is a
    ``requests.Session``-like object (tests pass one that trusts a local CA).
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr | str,
        authority_host: str = DEFAULT_AUTHORITY_HOST,
        scopes: Sequence[str] = (GRAPH_DEFAULT_SCOPE,),
        http_client: Any = None,
        connector: str = "msgraph",
    ) -> None:
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._scopes = list(scopes)
        self._http_client = http_client
        self._connector = connector
        self._app: Any = None
        self._lock = asyncio.Lock()

    def _build_app(self) -> Any:
        import msal

        kwargs: dict[str, Any] = {}
        if self._http_client is not None:
            kwargs["http_client"] = self._http_client
        is_public_cloud = self._authority.startswith(DEFAULT_AUTHORITY_HOST)
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._secret.get_secret_value(),
            authority=self._authority,
            instance_discovery=is_public_cloud,
            **kwargs,
        )

    def _acquire(self) -> dict[str, Any]:
        if self._app is None:
            self._app = self._build_app()
        result: dict[str, Any] = self._app.acquire_token_for_client(scopes=self._scopes)
        return result

    async def __call__(self) -> str:
        async with self._lock:  # one token request at a time; the rest hit msal's cache
            try:
                result = await asyncio.to_thread(self._acquire)
            except ValueError as exc:  # msal: authority discovery failed
                raise ConnectorAuthError(
                    f"token authority unusable: {exc}", connector=self._connector
                ) from None
            except OSError as exc:
                raise RetriableConnectorError(
                    f"token endpoint unreachable: {type(exc).__name__}", connector=self._connector
                ) from None
        token = result.get("access_token")
        if token:
            return str(token)
        code = str(result.get("error", "unknown_error"))
        log.warning(
            "msgraph.token_failed", connector=self._connector, error=code, tenant=self._tenant_id
        )
        if code in _FATAL_CODES:
            raise ConnectorAuthError(f"token request refused: {code}", connector=self._connector)
        raise RetriableConnectorError(f"token request failed: {code}", connector=self._connector)


def requests_session_trusting(ca_file: str) -> Any:
    """A ``requests.Session`` for msal that trusts ``ca_file`` (a private or test CA).

    requests lets ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` override a session's ``verify``;
    this session keeps the CA it was given.
    """
    import requests

    class _PinnedSession(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> Any:
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            merged["verify"] = self.verify
            return merged

    session = _PinnedSession()
    session.verify = ca_file
    return session


def static_token_provider(token: SecretStr | str) -> TokenProvider:
    """A provider that always returns the same token (pre-issued tokens, scripts)."""
    value = token.get_secret_value() if isinstance(token, SecretStr) else token

    async def provide() -> str:
        return value

    return provide


class EntraAuthConfig(BaseModel):
    """How a Microsoft connector (Graph, Business Central) gets its tokens.

    The connector config models extend it, so the fields, their validation and the
    token provider they lead to are the same for every Microsoft connector.
    """

    model_config = ConfigDict(extra="forbid")

    auth: Literal["client_credentials", "token", "context"] = Field(
        default="client_credentials",
        title="Authentication",
        description="client_credentials: app-only (msal); token: a pre-issued token; "
        "context: a token provider the application injects (on-behalf-of, delegated).",
    )
    tenant_id: str | None = Field(default=None, title="Tenant id")
    client_id: str | None = Field(default=None, title="Client (application) id")
    client_secret: SecretStr | None = Field(default=None, title="Client secret")
    access_token: SecretStr | None = Field(default=None, title="Access token")
    authority_host: str = Field(default=DEFAULT_AUTHORITY_HOST, title="Authority host")
    timeout_s: float = Field(default=30.0, gt=0, le=600, title="Request timeout (s)")
    max_attempts: int = Field(default=5, ge=1, le=20, title="Attempts per request")

    @model_validator(mode="after")
    def _credentials(self) -> EntraAuthConfig:
        missing: list[str] = []
        if self.auth == "client_credentials":
            missing = [
                name
                for name in ("tenant_id", "client_id", "client_secret")
                if getattr(self, name) is None
            ]
        elif self.auth == "token" and self.access_token is None:
            missing = ["access_token"]
        if missing:
            raise ValueError(f"auth={self.auth} needs {', '.join(missing)}")
        return self


def token_provider_for(
    config: EntraAuthConfig,
    context: ConnectorContext,
    *,
    context_key: str,
    scopes: Sequence[str] = (GRAPH_DEFAULT_SCOPE,),
    ca_file: str | None = None,
) -> TokenProvider:
    """The token provider a connector's ``auth`` setting names.

    ``context``: a provider injected by the host under ``context_key`` (on-behalf-of);
    ``token``: a pre-issued token; ``client_credentials``: msal app-only tokens.
    """
    if config.auth == "context":
        provider = context.extras.get(context_key)
        if provider is None:
            raise ConnectorUnavailableError(
                f"auth=context needs a token provider injected as {context_key}"
            )
        return provider
    if config.auth == "token":
        assert config.access_token is not None  # checked by the config model
        return static_token_provider(config.access_token)
    assert config.tenant_id and config.client_id and config.client_secret
    return ClientCredentialsTokenProvider(
        tenant_id=config.tenant_id,
        client_id=config.client_id,
        client_secret=config.client_secret,
        authority_host=config.authority_host,
        scopes=scopes,
        http_client=requests_session_trusting(ca_file) if ca_file else None,
        connector=context.instance_name,
    )
