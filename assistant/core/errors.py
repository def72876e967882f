"""Typed errors. The API answers each with ``{"error": ClassName, "detail": ...}``."""

from __future__ import annotations

from typing import Any


class AssistantError(Exception):
    """Base of every error the service reports on purpose."""

    status_code: int = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": type(self).__name__, "detail": self.detail}
        body.update(self.extra)
        return body


class ConfigurationError(AssistantError):
    """Settings or a configuration file are invalid; ``problems`` lists every one of them."""

    status_code = 500

    def __init__(self, detail: str, problems: list[str] | None = None) -> None:
        super().__init__(detail, problems=problems or [detail])
        self.problems = problems or [detail]


class NotFoundError(AssistantError):
    status_code = 404


class ConflictError(AssistantError):
    status_code = 409


class ValidationFailedError(AssistantError):
    """Input is well formed but breaks a business rule."""

    status_code = 422


class AuthenticationError(AssistantError):
    status_code = 401


class PermissionDeniedError(AssistantError):
    status_code = 403


class ServiceUnavailableError(AssistantError):
    status_code = 503


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached (or dropped the connection): retry later."""

    def __init__(self, detail: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(detail)
        self.retry_after = 5
