"""Errors of authentication. Their messages never hold a credential."""

from __future__ import annotations

from assistant.core.errors import AssistantError, AuthenticationError


class TokenRejectedError(AuthenticationError):
    """A bearer token or API key that does not authenticate; ``reason`` is a short code for
    the audit row (never the token)."""

    def __init__(
        self,
        reason: str,
        detail: str | None = None,
        *,
        tenant_id: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(detail or f"invalid credentials: {reason}")
        self.reason = reason
        self.tenant_id = tenant_id
        self.subject = subject


class RateLimitedError(AssistantError):
    """Too many failed attempts from one source; retry after ``retry_after`` seconds."""

    status_code = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class EntraTokenError(AssistantError):
    """Entra did not give a token (sign-in or a connector's); ``reason`` is its error code."""

    status_code = 502

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason


class EntraUnreachableError(AssistantError):
    """Entra could not be asked (network, TLS, its outage): nothing was confirmed."""

    status_code = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = 30
