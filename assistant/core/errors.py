"""Typed errors. The API answers each with ``{"error": ClassName, "detail": ...}``."""

from __future__ import annotations

from typing import Any


class AssistantError(Exception):
    """Base of every error the service reports on purpose."""

    status_code: int = 400
    #: A refusal of governance (ownership, separation of duties, autonomy): the API writes
    #: a ``governance.refused`` audit event for it, in a transaction of its own.
    audit_refusal: bool = False

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


class OwnershipError(PermissionDeniedError):
    """The data or action belongs to an executive the caller does not act for."""

    audit_refusal = True


class SeparationOfDutiesError(PermissionDeniedError):
    """A person would approve their own request, count twice, or grant themselves roles."""

    audit_refusal = True


class AutonomyRaiseError(ConflictError):
    """A proposal asked for more autonomy than the stored level and the policy give."""

    audit_refusal = True


class NoConnectorForExecutiveError(ConflictError):
    """No connector of the capability serves the action's executive."""

    audit_refusal = True


class SecretRequiredError(ConflictError):
    """A connector's destination changed without its secret being entered again."""

    audit_refusal = True


class DuplicateApprovalError(ConflictError):
    """The same person approves twice (with another credential or again): four-eyes
    counts people."""

    audit_refusal = True


class AnchorUnavailableError(ServiceUnavailableError):
    """The audit anchor outside the database cannot be read: the chain is not verified."""

    def __init__(
        self, detail: str = "the audit anchor cannot be read; the chain is not verified"
    ) -> None:
        super().__init__(detail)
        self.retry_after = 30


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached (or dropped the connection): retry later."""

    def __init__(self, detail: str = "the database is unavailable; retry shortly") -> None:
        super().__init__(detail)
        self.retry_after = 5
