"""Connector errors: retriable (429, 5xx, timeouts), fatal, and authentication."""

from __future__ import annotations

from assistant.core.errors import AssistantError


class ConnectorError(AssistantError):
    """Something went wrong talking to an external system."""

    status_code = 502

    def __init__(self, detail: str, *, connector: str | None = None, **extra: object) -> None:
        super().__init__(detail, **({"connector": connector} if connector else {}), **extra)
        self.connector = connector


class RetriableConnectorError(ConnectorError):
    """A transient failure; try again after ``retry_after`` seconds when the peer said so."""

    status_code = 503

    def __init__(
        self, detail: str, *, connector: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail, connector=connector)
        self.retry_after = retry_after


class FatalConnectorError(ConnectorError):
    """A failure that retrying cannot fix (bad request, missing resource, conflict)."""


class ConnectorAuthError(FatalConnectorError):
    """The connector's credentials were refused or have expired."""

    status_code = 502


class ConnectorNotFoundError(FatalConnectorError):
    """The remote object does not exist (any more)."""

    status_code = 404


class ConnectorConflictError(FatalConnectorError):
    """The remote object changed under us (etag mismatch) or already exists."""

    status_code = 409


class UnknownConnectorError(AssistantError):
    """No connector is registered under that slug."""

    status_code = 404


class ConnectorUnavailableError(AssistantError):
    """The connector is registered but failed to load or to configure."""

    status_code = 503


class CursorExpiredError(FatalConnectorError):
    """The stored sync cursor is no longer valid (Graph 410, UIDVALIDITY change): resync."""

    status_code = 410


class MalformedContentError(FatalConnectorError):
    """One object from the peer (a message, a calendar object) cannot be read safely: too
    deep, too many parts, or broken beyond repair. The rest of its page is still read; this
    one is skipped and reported."""

    status_code = 422
