"""SMTP submission over TLS (implicit or STARTTLS) with password or XOAUTH2, via aiosmtplib."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import aiosmtplib
import structlog

from integrations.errors import (
    ConnectorAuthError,
    FatalConnectorError,
    RetriableConnectorError,
)
from integrations.imap.connection import client_ssl_context

log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int
    security: str  # "tls" (implicit, 465) or "starttls" (submission, 587)
    username: str
    password: str | None = None
    token_provider: Callable[[], Awaitable[str]] | None = None
    ca_file: Path | None = None
    timeout_s: float = 30.0


async def submit(
    endpoint: SmtpEndpoint,
    message: MimeMessage,
    *,
    sender: str,
    recipients: Sequence[str],
    connector: str = "imap",
) -> list[str]:
    """Submit ``message``; returns the recipients the server refused (when not all were)."""
    if not recipients:
        raise FatalConnectorError("the message has no recipients", connector=connector)
    smtp = aiosmtplib.SMTP(
        hostname=endpoint.host,
        port=endpoint.port,
        timeout=endpoint.timeout_s,
        use_tls=endpoint.security == "tls",
        start_tls=endpoint.security == "starttls",
        tls_context=client_ssl_context(endpoint.ca_file),
    )
    try:
        await smtp.connect()
        if endpoint.token_provider is not None:
            await smtp.auth_xoauth2(endpoint.username, await endpoint.token_provider())
        else:
            await smtp.login(endpoint.username, endpoint.password or "")
        refused, _ = await smtp.send_message(message, sender=sender, recipients=list(recipients))
    except aiosmtplib.SMTPAuthenticationError:
        raise ConnectorAuthError("SMTP authentication failed", connector=connector) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise FatalConnectorError(
            f"SMTP refused every recipient ({len(exc.recipients)})", connector=connector
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        error = RetriableConnectorError if 400 <= exc.code < 500 else FatalConnectorError
        raise error(f"SMTP answered {exc.code}", connector=connector) from None
    except (
        aiosmtplib.SMTPConnectError,
        aiosmtplib.SMTPTimeoutError,
        aiosmtplib.SMTPServerDisconnected,
        OSError,
    ) as exc:
        raise RetriableConnectorError(
            f"SMTP failed ({type(exc).__name__})", connector=connector
        ) from None
    finally:
        if smtp.is_connected:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()
    rejected = sorted(refused)
    if rejected:
        log.warning("imap.smtp_partially_refused", connector=connector, refused=len(rejected))
    return rejected
