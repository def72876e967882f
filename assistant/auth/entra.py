"""Microsoft Entra ID through msal's ConfidentialClientApplication.

Web sign-in (authorization code flow with PKCE; msal checks state and nonce, and the ID
token's signature is verified here with the same validator as bearer tokens), and tokens for
connectors: client credentials (application permissions) and on-behalf-of (acting as the
signed-in executive). msal's token cache is persisted per tenant, encrypted with AES-GCM
under a sub-key of ``secret_key`` and bound to the tenant.

msal is synchronous (requests): its calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from cryptography.exceptions import InvalidTag
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.auth.crypto import SecretBox
from assistant.auth.errors import EntraTokenError, EntraUnreachableError
from assistant.auth.models import MsalTokenCache
from assistant.auth.tenants import TenantDirectory

if TYPE_CHECKING:
    # msal and requests load in Entra mode only (~0.5 s that local mode does not pay).
    import msal
    import requests
from assistant.core.clock import utcnow
from assistant.core.errors import ConfigurationError
from assistant.core.settings import Settings

log = structlog.stdlib.get_logger(__name__)

T = TypeVar("T")

#: Where finish_sign_in puts msal's home account id of the signed-in person.
ACCOUNT_KEY = "home_account_id"


class _TenantApp:
    def __init__(
        self, app: msal.ConfidentialClientApplication, cache: msal.SerializableTokenCache
    ) -> None:
        self.app = app
        self.cache = cache
        self.loaded_at: datetime | None = None
        self.lock = asyncio.Lock()


class EntraClient:
    """One msal application per directory (tid), created on first use."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        directory: TenantDirectory,
    ) -> None:
        entra = settings.auth.entra
        if not entra.client_id or entra.client_secret is None:
            raise ConfigurationError("entra mode needs auth.entra.client_id and client_secret")
        self._settings = settings
        self._client_id = entra.client_id
        self._sessions = sessions
        self._directory = directory
        self._box = SecretBox(settings.secret_key, "msal-token-cache")
        self._apps: dict[str, _TenantApp] = {}
        self._create_lock = asyncio.Lock()

    @property
    def client_id(self) -> str:
        return self._client_id

    def authority(self, tid: str) -> str:
        return f"{self._settings.auth.entra.authority_host.rstrip('/')}/{tid}"

    def login_cache_key(self) -> str:
        entra = self._settings.auth.entra
        return entra.login_tenant or self._settings.auth.default_tenant

    def _login_tid(self) -> str:
        entra = self._settings.auth.entra
        return entra.login_tenant or self._directory.tid_of(self._settings.auth.default_tenant)

    def _build(
        self, tid: str, cache: msal.SerializableTokenCache
    ) -> msal.ConfidentialClientApplication:
        import msal

        entra = self._settings.auth.entra
        assert entra.client_secret is not None
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=entra.client_secret.get_secret_value(),
            authority=self.authority(tid),
            token_cache=cache,
            http_client=self._http_client(),
            instance_discovery=entra.instance_discovery,
        )

    def _http_client(self) -> requests.Session:
        """requests, as msal would build it, but with our CA bundle passed per request: a
        session-wide ``verify`` loses to REQUESTS_CA_BUNDLE from the environment."""
        import requests
        import requests.adapters

        http = requests.Session()
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        http.mount("https://", adapter)
        http.mount("http://", adapter)
        options: dict[str, Any] = {"timeout": self._settings.auth.http_timeout_s}
        if self._settings.auth.ca_bundle is not None:
            options["verify"] = str(self._settings.auth.ca_bundle)
        http.request = functools.partial(http.request, **options)  # type: ignore[method-assign]
        return http

    async def _app(self, cache_key: str, tid: str) -> _TenantApp:
        async with self._create_lock:
            tenant_app = self._apps.get(cache_key)
            if tenant_app is None:
                import msal

                cache = msal.SerializableTokenCache()
                try:
                    # The constructor fetches the authority's OpenID configuration.
                    app = await asyncio.to_thread(self._build, tid, cache)
                except ValueError as exc:
                    log.error("auth.entra.authority_failed", tid=tid, error=type(exc).__name__)
                    raise EntraTokenError(
                        "the Entra authority cannot be reached or is unknown"
                    ) from None
                tenant_app = self._apps[cache_key] = _TenantApp(app, cache)
            return tenant_app

    async def _load(self, cache_key: str, tenant_app: _TenantApp) -> None:
        async with self._sessions() as session:
            row = await session.get(MsalTokenCache, cache_key)
            if row is None or row.updated_at == tenant_app.loaded_at:
                return
            try:
                tenant_app.cache.deserialize(self._box.open(row.ciphertext, cache_key).decode())
            except InvalidTag:
                log.warning("auth.entra.cache_unreadable", tenant=cache_key)
                return
            tenant_app.loaded_at = row.updated_at

    async def _save(self, cache_key: str, tenant_app: _TenantApp) -> None:
        if not tenant_app.cache.has_state_changed:
            return
        sealed = self._box.seal(tenant_app.cache.serialize().encode(), cache_key)
        now = utcnow()
        async with self._sessions() as session:
            row = await session.get(MsalTokenCache, cache_key)
            if row is None:
                session.add(MsalTokenCache(tenant_id=cache_key, ciphertext=sealed, updated_at=now))
            else:
                row.ciphertext = sealed
                row.updated_at = now
            await session.commit()
        tenant_app.cache.has_state_changed = False
        tenant_app.loaded_at = now

    async def _call(
        self, cache_key: str, tid: str, call: Callable[[msal.ConfidentialClientApplication], T]
    ) -> T:
        tenant_app = await self._app(cache_key, tid)
        async with tenant_app.lock:
            await self._load(cache_key, tenant_app)
            result = await asyncio.to_thread(call, tenant_app.app)
            await self._save(cache_key, tenant_app)
            return result

    # ------------------------------------------------------------------ web sign-in

    async def begin_sign_in(self, redirect_uri: str) -> dict[str, Any]:
        """msal's auth code flow (state, nonce, PKCE verifier); keep it until the callback."""
        scopes = list(self._settings.auth.entra.scopes)

        def initiate(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
            # "query", not "form_post": the state cookie is SameSite=Lax, which a cross-site
            # POST would not carry. The code is single-use and useless without the PKCE
            # verifier, which never leaves the server-sealed cookie.
            flow: dict[str, Any] = app.initiate_auth_code_flow(
                scopes, redirect_uri=redirect_uri, response_mode="query"
            )
            return flow

        return await self._call(self.login_cache_key(), self._login_tid(), initiate)

    async def finish_sign_in(
        self, flow: dict[str, Any], auth_response: dict[str, str]
    ) -> dict[str, Any]:
        """Redeem the code; msal checks state and nonce. Raises on any mismatch or error."""

        def redeem(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
            result: dict[str, Any] = app.acquire_token_by_auth_code_flow(flow, auth_response)
            oid = (result.get("id_token_claims") or {}).get("oid")
            if "error" not in result and oid:
                # The account whose refresh token later confirms the session's roles.
                for account in app.get_accounts():
                    if account.get("local_account_id") == oid:
                        result[ACCOUNT_KEY] = account["home_account_id"]
                        break
            return result

        try:
            result = await self._call(self.login_cache_key(), self._login_tid(), redeem)
        except (ValueError, RuntimeError) as exc:  # state or nonce mismatch
            raise EntraTokenError(
                "the sign-in response does not match its request", reason=type(exc).__name__
            ) from None
        if "error" in result or "id_token" not in result:
            raise EntraTokenError(
                "Entra refused the sign-in", reason=str(result.get("error", "no id_token"))
            )
        return result

    async def refresh_session(self, account_id: str) -> dict[str, Any]:
        """Ask Entra again for the signed-in ``account_id``: msal redeems the refresh token
        kept in the encrypted cache (force_refresh, so never a cached answer) and returns
        Entra's fresh ID token. Raises EntraTokenError when Entra refuses (account disabled,
        sign-in revoked, consent withdrawn) or no refresh token is left."""
        scopes = list(self._settings.auth.entra.scopes)

        def refresh(app: msal.ConfidentialClientApplication) -> dict[str, Any] | None:
            account = next(
                (a for a in app.get_accounts() if a.get("home_account_id") == account_id), None
            )
            if account is None:
                return None
            result: dict[str, Any] | None = app.acquire_token_silent_with_error(
                scopes, account, force_refresh=True
            )
            return result

        try:
            result = await self._call(self.login_cache_key(), self._login_tid(), refresh)
        except (OSError, ValueError) as exc:  # requests' transport errors are OSErrors
            log.warning("auth.entra.refresh_unreachable", error=type(exc).__name__)
            raise EntraUnreachableError("Entra cannot be reached to recheck the session") from None
        if result is None:
            raise EntraTokenError("no refresh token for this session", reason="no_account")
        if "error" in result or "id_token" not in result:
            # error codes are safe to log; descriptions may echo request details
            log.info("auth.entra.refresh_refused", error=result.get("error"))
            raise EntraTokenError(
                "Entra refused to renew the session",
                reason=str(result.get("error", "no id_token")),
            )
        return result

    async def forget_account(self, account_id: str) -> None:
        """Drop a signed-out person's tokens (refresh token included) from msal's cache."""

        def forget(app: msal.ConfidentialClientApplication) -> None:
            for account in app.get_accounts():
                if account.get("home_account_id") == account_id:
                    app.remove_account(account)

        await self._call(self.login_cache_key(), self._login_tid(), forget)

    # ------------------------------------------------------------------ connectors

    async def acquire_for_client(self, tenant_id: str, scopes: list[str]) -> str:
        """An app-only token of ``tenant_id``'s directory (application permissions)."""
        tid = self._directory.tid_of(tenant_id)

        def acquire(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
            result: dict[str, Any] = app.acquire_token_for_client(scopes=scopes)
            return result

        return self._token(await self._call(tenant_id, tid, acquire), "client credentials")

    async def acquire_on_behalf_of(
        self, tenant_id: str, user_assertion: str, scopes: list[str]
    ) -> str:
        """A token for a downstream API acting as the user whose token is ``user_assertion``."""
        tid = self._directory.tid_of(tenant_id)

        def acquire(app: msal.ConfidentialClientApplication) -> dict[str, Any]:
            result: dict[str, Any] = app.acquire_token_on_behalf_of(
                user_assertion=user_assertion, scopes=scopes
            )
            return result

        return self._token(await self._call(tenant_id, tid, acquire), "on-behalf-of")

    @staticmethod
    def _token(result: dict[str, Any], flow: str) -> str:
        token = result.get("access_token")
        if not isinstance(token, str):
            # error codes are safe to log; descriptions may echo request details
            log.warning("auth.entra.token_failed", flow=flow, error=result.get("error"))
            raise EntraTokenError(
                f"Entra refused the {flow} token request",
                reason=str(result.get("error", "unknown")),
            )
        return token
