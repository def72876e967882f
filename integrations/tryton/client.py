"""A small Tryton JSON-RPC client over httpx.

Tryton's JSON-RPC: ``POST /<database>/`` with ``{"method", "params", "id"}``. Login is
``common.db.login(login, {"password": ...}, language)`` and answers ``[user_id, session]``;
later calls carry ``Authorization: Session base64(login:user_id:session)``. Model methods
are ``model.<model>.<method>`` with the method's arguments followed by the context;
wizards are ``wizard.<name>.create|execute|delete``. Values that JSON lacks travel as
``{"__class__": "Decimal"|"date"|"datetime", ...}``.

Errors come back in two ways: HTTP statuses (401 expired session, 403 method not exposed,
429 login rate limit, 5xx) and, with status 200, an ``error`` member: ``["UserError",
[message, description, domain]]``, ``["ConcurrencyException", message]`` (the record's
``_timestamp`` changed), ``["UserWarning", ...]`` or ``[text, traceback]`` for a crash.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from integrations.errors import (
    ConnectorAuthError,
    ConnectorConflictError,
    ConnectorError,
    ConnectorNotFoundError,
    FatalConnectorError,
    RetriableConnectorError,
)

if TYPE_CHECKING:
    import httpx

log = structlog.stdlib.get_logger(__name__)

_RETRIABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def encode(value: Any) -> Any:
    """Python values -> Tryton's JSON (Decimal, date and datetime as tagged objects)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """Tryton's JSON -> Python values."""
    if isinstance(value, dict):
        kind = value.get("__class__")
        if kind == "Decimal":
            return Decimal(value["decimal"])
        if kind == "date":
            return date(value["year"], value["month"], value["day"])
        if kind == "datetime":
            return datetime(
                value["year"],
                value["month"],
                value["day"],
                value["hour"],
                value["minute"],
                value["second"],
                value.get("microsecond", 0),
            )
        if kind == "bytes":
            return base64.decodebytes(value["base64"].encode())
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class TrytonUserError(FatalConnectorError):
    """Tryton refused the call for a business reason (a UserError: state, rule, access)."""

    status_code = 409


def map_rpc_error(error: Any, *, method: str, connector: str) -> ConnectorError:
    """The typed error for a JSON-RPC ``error`` member."""
    kind = error[0] if isinstance(error, list | tuple) and error else str(error)
    args = error[1] if isinstance(error, list | tuple) and len(error) > 1 else None
    if kind == "ConcurrencyException":
        return ConnectorConflictError(
            f"Tryton {method}: the record changed meanwhile", connector=connector
        )
    if kind in ("UserError", "UserWarning"):
        parts = args if isinstance(args, list | tuple) else [args]
        text = " - ".join(str(p) for p in parts[:2] if p and not isinstance(p, list | dict))
        return TrytonUserError(f"Tryton {method}: {text[:300]}", connector=connector)
    # Anything else is a server-side crash (the server already retried lock errors): its
    # first element is the message. Retrying the same call would crash the same way.
    return FatalConnectorError(
        f"Tryton {method} failed on the server: {str(kind)[:200]}", connector=connector
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


class TrytonClient:
    """JSON-RPC calls to one Tryton database as one user, with a session kept and renewed.

    ``requests`` counts HTTP requests sent (retries and logins included).
    """

    def __init__(
        self,
        url: str,
        database: str,
        login: str,
        password: SecretStr | str,
        *,
        http_client: httpx.AsyncClient | None = None,
        connector: str = "tryton",
        language: str = "en",
        max_attempts: int = 4,
        timeout_s: float = 30.0,
        max_retry_wait_s: float = 60.0,
        owns_http: bool | None = None,
    ) -> None:
        self.url = f"{url.rstrip('/')}/{database}/"
        self.database = database
        self.login_name = login
        self._password = password if isinstance(password, SecretStr) else SecretStr(password)
        import httpx  # with the first Tryton client, not with connector discovery

        self._http = http_client or httpx.AsyncClient(timeout=timeout_s)
        # A client passed in is the caller's to close, unless it says otherwise.
        self._owns_http = http_client is None if owns_http is None else owns_http
        self.connector = connector
        self.language = language
        self._max_attempts = max_attempts
        self._max_retry_wait_s = max_retry_wait_s
        self._backoff = wait_exponential_jitter(multiplier=0.3, max=10.0)
        self._auth: str | None = None
        self._id = 0
        self.context: dict[str, Any] = {}
        self.requests = 0

    # ------------------------------------------------------------------ transport

    async def _post(self, method: str, params: Sequence[Any], *, authenticated: bool) -> Any:
        import httpx

        self._id += 1
        headers = {"Authorization": self._auth} if authenticated and self._auth else {}
        payload = {"method": method, "params": encode(list(params)), "id": self._id}
        self.requests += 1
        started = time.perf_counter()
        try:
            response = await self._http.post(self.url, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise RetriableConnectorError(
                f"Tryton {method} timed out ({type(exc).__name__})", connector=self.connector
            ) from None
        except httpx.TransportError as exc:
            raise RetriableConnectorError(
                f"Tryton {method} failed ({type(exc).__name__})", connector=self.connector
            ) from None
        status = response.status_code
        if status >= 400:
            log.info(
                "tryton.request_failed",
                connector=self.connector,
                method=method,
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            if status in _RETRIABLE_STATUS:
                raise RetriableConnectorError(
                    f"Tryton {method} answered {status}",
                    connector=self.connector,
                    retry_after=_retry_after(response),
                )
            if status == 401:
                raise _SessionExpiredError(
                    f"Tryton {method} answered 401", connector=self.connector
                )
            if status == 403:
                raise ConnectorAuthError(
                    f"Tryton {method} answered 403 (not allowed)", connector=self.connector
                )
            if status == 404:
                raise ConnectorNotFoundError(
                    f"Tryton database {self.database!r} not found", connector=self.connector
                )
            raise FatalConnectorError(
                f"Tryton {method} answered {status}", connector=self.connector
            )
        try:
            body = response.json()
        except ValueError:
            raise RetriableConnectorError(
                f"Tryton {method} answered non-JSON", connector=self.connector
            ) from None
        if body.get("error") is not None:
            raise map_rpc_error(body["error"], method=method, connector=self.connector)
        return decode(body.get("result"))

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, RetriableConnectorError) and error.retry_after is not None:
            return min(error.retry_after, self._max_retry_wait_s)
        return float(self._backoff(state))

    async def _with_retries(
        self, method: str, params: Sequence[Any], *, authenticated: bool
    ) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetriableConnectorError),
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(method, params, authenticated=authenticated)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ session

    async def login(self) -> None:
        """Open a session and load the user's preferences as the base context."""
        try:
            result = await self._with_retries(
                "common.db.login",
                [self.login_name, {"password": self._password.get_secret_value()}, self.language],
                authenticated=False,
            )
        except _SessionExpiredError:
            raise ConnectorAuthError("Tryton refused the login", connector=self.connector) from None
        if not isinstance(result, list) or len(result) < 2 or not result[0]:
            raise ConnectorAuthError("Tryton refused the login", connector=self.connector)
        user_id, session = result[0], result[1]
        token = base64.b64encode(f"{self.login_name}:{user_id}:{session}".encode()).decode()
        self._auth = f"Session {token}"
        preferences = await self._with_retries(
            "model.res.user.get_preferences", [True, {}], authenticated=True
        )
        self.context = {
            k: v
            for k, v in (preferences or {}).items()
            if k in {"company", "companies", "language", "employee", "employees", "company_filter"}
        }
        log.info("tryton.logged_in", connector=self.connector, database=self.database)

    async def call(self, name: str, *args: Any, context: Mapping[str, Any] | None = None) -> Any:
        """``model.X.method`` / ``wizard.X.execute`` with ``args`` then the context."""
        if self._auth is None:
            await self.login()
        full_context = {**self.context, **(context or {})}
        try:
            return await self._with_retries(name, [*args, full_context], authenticated=True)
        except _SessionExpiredError:
            await self.login()  # sessions expire; one fresh login, then the call again
            full_context = {**self.context, **(context or {})}
            try:
                return await self._with_retries(name, [*args, full_context], authenticated=True)
            except _SessionExpiredError:
                raise ConnectorAuthError(
                    "Tryton refused the session", connector=self.connector
                ) from None

    async def model(
        self, model: str, method: str, *args: Any, context: Mapping[str, Any] | None = None
    ) -> Any:
        return await self.call(f"model.{model}.{method}", *args, context=context)

    async def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: Sequence[str],
        *,
        offset: int = 0,
        limit: int | None = None,
        order: list[list[str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        result = await self.model(
            model, "search_read", domain, offset, limit, order, list(fields), context=context
        )
        return list(result or [])

    async def search_count(self, model: str, domain: list[Any]) -> int:
        return int(await self.model(model, "search_count", domain))

    async def run_wizard(
        self, name: str, state: str, data: dict[str, Any], *, model: str, ids: list[int]
    ) -> Any:
        """Create a wizard session, run ``state`` with the form ``data``, delete it."""
        context = {"active_model": model, "active_id": ids[0], "active_ids": ids}
        session_id, _start, _end = await self.call(f"wizard.{name}.create", context=context)
        try:
            return await self.call(
                f"wizard.{name}.execute", session_id, data, state, context=context
            )
        finally:
            await self.call(f"wizard.{name}.delete", session_id, context=context)

    async def server_version(self) -> str:
        """``common.server.version`` (answered without a session)."""
        root = self.url.rsplit("/", 2)[0] + "/"
        self.requests += 1
        response = await self._http.post(
            root, json={"method": "common.server.version", "params": [], "id": 0}
        )
        response.raise_for_status()
        return str(response.json().get("result"))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()


class _SessionExpiredError(ConnectorAuthError):
    """401 on a call: the session expired or was revoked (log in again once)."""
