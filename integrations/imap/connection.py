"""One authenticated IMAP connection over aioimaplib: TLS or STARTTLS, password or XOAUTH2.

aioimaplib speaks the protocol; this module adds what it lacks (STARTTLS, typed errors,
parsing of SELECT, SEARCH, FETCH, LIST and the UIDPLUS response codes) and serialises
commands on the connection.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import structlog
from aioimaplib import aioimaplib

from integrations.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorNotFoundError,
    FatalConnectorError,
    RetriableConnectorError,
)

log = structlog.stdlib.get_logger(__name__)

TokenProvider = Callable[[], Awaitable[str]]

_SELECT_CODES = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|HIGHESTMODSEQ) (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_RFC822_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]")
# aioimaplib strips the response name ("LIST", "STATUS", "SEARCH") from untagged lines.
_LIST = re.compile(rb'^\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.+)$')
_STATUS = re.compile(rb"^.*\(([A-Z0-9 ]*)\)\s*$")
_TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    TimeoutError,
    aioimaplib.Abort,
    aioimaplib.CommandTimeout,
    aioimaplib.IncompleteRead,
    ConnectionError,
)


def quote(value: str) -> str:
    """An IMAP quoted string (RFC 3501 section 9)."""
    return aioimaplib.quoted(value)


def unquote(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def decode_mailbox_name(name: str) -> str:
    """Display form of a modified UTF-7 mailbox name (RFC 3501 section 5.1.3)."""
    out: list[str] = []
    i = 0
    while i < len(name):
        if name[i] == "&":
            end = name.find("-", i)
            if end == -1:
                out.append(name[i:])
                break
            chunk = name[i + 1 : end]
            if not chunk:
                out.append("&")
            else:
                padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
                try:
                    out.append(base64.b64decode(padded).decode("utf-16-be"))
                except ValueError:
                    out.append(name[i : end + 1])
            i = end + 1
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def parse_uid_set(value: str) -> list[int]:
    """``1:3,7`` -> [1, 2, 3, 7]."""
    result: list[int] = []
    for part in value.split(","):
        if ":" in part:
            low, high = (int(x) for x in part.split(":", 1))
            result.extend(range(min(low, high), max(low, high) + 1))
        elif part:
            result.append(int(part))
    return result


def uid_set(uids: list[int] | set[int]) -> str:
    """[1, 2, 3, 7] -> ``1:3,7`` (IMAP sequence-set, compact)."""
    ordered = sorted(set(uids))
    if not ordered:
        return ""
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


@dataclass
class MailboxState:
    name: str
    uidvalidity: int
    uidnext: int | None
    highestmodseq: int | None
    exists: int


@dataclass
class FetchedMessage:
    uid: int
    flags: list[str]
    raw: bytes | None = None
    internaldate: datetime | None = None
    modseq: int | None = None
    size: int | None = None


@dataclass
class ListedMailbox:
    name: str
    attributes: set[str] = field(default_factory=set)
    delimiter: str | None = None


@dataclass(frozen=True)
class ImapEndpoint:
    host: str
    port: int
    security: str  # "tls" or "starttls"
    username: str
    password: str | None = None
    token_provider: TokenProvider | None = None
    ca_file: Path | None = None
    timeout_s: float = 30.0


def client_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifying TLS context; ``ca_file`` adds a private CA (tests, internal servers)."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class ImapConnection:
    """One logged-in IMAP session. Not shared between tasks without its lock."""

    def __init__(self, endpoint: ImapEndpoint, *, connector: str = "imap") -> None:
        self.endpoint = endpoint
        self.connector = connector
        self.client: Any = None
        self.selected: str | None = None
        self.lock = asyncio.Lock()
        self.commands = 0
        self._lost = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def alive(self) -> bool:
        return (
            self.client is not None
            and not self._lost
            and self.client.get_state() in ("AUTH", "SELECTED")
        )

    @property
    def lost(self) -> bool:
        """The server or the network closed the connection."""
        return self._lost

    @property
    def capabilities(self) -> set[str]:
        return set(self.client.protocol.capabilities) if self.client else set()

    def has(self, capability: str) -> bool:
        return capability.upper() in {c.upper() for c in self.capabilities}

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost = True

    async def connect(self) -> None:
        """Open, secure, authenticate; enable CONDSTORE where the server has it."""
        ep = self.endpoint
        context = client_ssl_context(ep.ca_file)
        self._lost = False
        self.selected = None
        try:
            if ep.security == "tls":
                self.client = aioimaplib.IMAP4_SSL(
                    ep.host, ep.port, ssl_context=context, timeout=ep.timeout_s
                )
                self.client.protocol.conn_lost_cb = self._on_lost
                await self.client.wait_hello_from_server()
            else:
                self.client = aioimaplib.IMAP4(
                    ep.host, ep.port, timeout=ep.timeout_s, conn_lost_cb=self._on_lost
                )
                await self.client.wait_hello_from_server()
                await self._starttls(context)
            await self._authenticate()
            if self.has("ENABLE") and self.has("CONDSTORE"):
                await self.client.enable("CONDSTORE")
        except ssl.SSLError as exc:
            await self.close()
            raise FatalConnectorError(
                f"IMAP TLS failed: {exc.reason}", connector=self.connector
            ) from None
        except ConnectorError:
            await self.close()
            raise
        except _TRANSIENT as exc:
            await self.close()
            raise RetriableConnectorError(
                f"IMAP connect failed ({type(exc).__name__})", connector=self.connector
            ) from None
        log.debug(
            "imap.connected",
            connector=self.connector,
            host=ep.host,
            condstore=self.has("CONDSTORE"),
        )

    async def _starttls(self, context: ssl.SSLContext) -> None:
        protocol = self.client.protocol
        if not self.has("STARTTLS"):
            raise FatalConnectorError(
                "the IMAP server does not offer STARTTLS", connector=self.connector
            )
        response = await asyncio.wait_for(
            protocol.execute(
                aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
            ),
            self.endpoint.timeout_s,
        )
        if response.result != "OK":
            raise FatalConnectorError("STARTTLS refused", connector=self.connector)
        loop = asyncio.get_running_loop()
        transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=self.endpoint.host
        )
        protocol.transport = transport
        await asyncio.wait_for(protocol.capability(), self.endpoint.timeout_s)  # RFC 3501 6.2.1

    async def _authenticate(self) -> None:
        ep = self.endpoint
        if ep.token_provider is not None:
            token = await ep.token_provider()
            response = await self.client.xoauth2(ep.username, token)
        else:
            response = await self.client.login(ep.username, ep.password or "")
        if response.result != "OK":
            raise ConnectorAuthError("IMAP authentication failed", connector=self.connector)
        # Servers announce more capabilities after login (CONDSTORE, MOVE, UIDPLUS...).
        await asyncio.wait_for(self.client.protocol.capability(), ep.timeout_s)

    async def close(self) -> None:
        client, self.client = self.client, None
        self.selected = None
        if client is None:
            return
        try:
            # LOGOUT would queue behind a pending IDLE: skip it then, and on dead links.
            if (
                client.get_state() in ("AUTH", "SELECTED")
                and not self._lost
                and not client.has_pending_idle()
            ):
                await asyncio.wait_for(client.logout(), 2)
        except Exception:  # closing is best effort
            log.debug("imap.logout_failed", connector=self.connector)
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()

    # ------------------------------------------------------------------ commands

    def _check(self, response: Any, what: str) -> Any:
        if response.result == "OK":
            return response
        text = b" ".join(bytes(x) for x in response.lines if isinstance(x, bytes | bytearray))
        detail = text.decode("utf-8", "replace")[:300]
        if b"NONEXISTENT" in text or b"doesn't exist" in text.lower():
            raise ConnectorNotFoundError(f"IMAP {what}: {detail}", connector=self.connector)
        raise FatalConnectorError(
            f"IMAP {what} answered {response.result}: {detail}", connector=self.connector
        )

    async def run(self, what: str, call: Awaitable[Any]) -> Any:
        """Await one aioimaplib call; transport trouble becomes a retriable error."""
        self.commands += 1
        try:
            response = await call
        except _TRANSIENT as exc:
            self._lost = True
            raise RetriableConnectorError(
                f"IMAP {what} failed ({type(exc).__name__})", connector=self.connector
            ) from None
        return self._check(response, what)

    async def select(self, mailbox: str, *, force: bool = True) -> MailboxState | None:
        """SELECT ``mailbox``; returns its state (None when already selected and not forced)."""
        if not force and self.selected == mailbox:
            return None
        self.selected = None
        response = await self.run("SELECT", self.client.select(quote(mailbox)))
        self.selected = mailbox
        codes: dict[bytes, int] = {}
        exists = 0
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            for name, value in _SELECT_CODES.findall(line):
                codes[name] = int(value)
            match = _EXISTS.match(line)
            if match:
                exists = int(match.group(1))
        if b"UIDVALIDITY" not in codes:
            raise FatalConnectorError(
                "the IMAP server sent no UIDVALIDITY", connector=self.connector
            )
        return MailboxState(
            name=mailbox,
            uidvalidity=codes[b"UIDVALIDITY"],
            uidnext=codes.get(b"UIDNEXT"),
            highestmodseq=codes.get(b"HIGHESTMODSEQ"),
            exists=exists,
        )

    async def uid_search(self, *criteria: str) -> list[int]:
        response = await self.run("SEARCH", self.client.uid_search(*criteria, charset=None))
        uids: list[int] = []
        for line in response.lines[:-1]:  # the last line is the tagged completion
            if isinstance(line, bytes):
                body = re.sub(rb"\(MODSEQ \d+\)", b"", line.removeprefix(b"SEARCH"))
                uids.extend(int(x) for x in body.split() if x.isdigit())
        return sorted(set(uids))

    async def uid_fetch(self, uids: str, items: str) -> list[FetchedMessage]:
        response = await self.run("FETCH", self.client.uid("fetch", uids, items))
        return parse_fetch(response.lines)

    async def uid_store(self, uids: str, action: str, flags: list[str]) -> None:
        await self.run("STORE", self.client.uid("store", uids, action, f"({' '.join(flags)})"))

    async def uid_expunge(self, uids: str) -> None:
        if self.has("UIDPLUS"):
            await self.run("EXPUNGE", self.client.uid("expunge", uids))
        else:  # without UIDPLUS, EXPUNGE removes every \Deleted message of the folder
            await self.run("EXPUNGE", self.client.expunge())

    async def uid_move(self, uid: int, target: str) -> int | None:
        """Move one message; its UID in ``target`` when the server says (COPYUID)."""
        if self.has("MOVE"):
            response = await self.run("MOVE", self.client.uid("move", str(uid), quote(target)))
        else:
            response = await self.run("COPY", self.client.uid("copy", str(uid), quote(target)))
            await self.uid_store(str(uid), "+FLAGS.SILENT", ["\\Deleted"])
            await self.uid_expunge(str(uid))
        for line in response.lines:
            if isinstance(line, bytes):
                match = _COPYUID.search(line)
                if match:
                    return parse_uid_set(match.group(3).decode())[0]
        return None

    async def append(
        self, mailbox: str, raw: bytes, flags: list[str], date: datetime | None = None
    ) -> tuple[int, int] | None:
        """APPEND; (uidvalidity, uid) of the new message when the server has UIDPLUS."""
        response = await self.run(
            "APPEND",
            self.client.append(
                raw,
                mailbox=quote(mailbox),
                flags=f"({' '.join(flags)})" if flags else None,
                date=date,
            ),
        )
        for line in response.lines:
            if isinstance(line, bytes):
                match = _APPENDUID.search(line)
                if match:
                    return int(match.group(1)), int(match.group(2))
        return None

    async def list_mailboxes(self) -> list[ListedMailbox]:
        response = await self.run("LIST", self.client.list('""', '"*"'))
        found: list[ListedMailbox] = []
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            match = _LIST.match(line)
            if match:
                delimiter = match.group(2)
                found.append(
                    ListedMailbox(
                        name=unquote(match.group(3)),
                        attributes={a.decode().lower() for a in match.group(1).split()},
                        delimiter=None if delimiter == b"NIL" else unquote(delimiter),
                    )
                )
        return found

    async def status(self, mailbox: str, items: str = "(MESSAGES UNSEEN)") -> dict[str, int]:
        response = await self.run("STATUS", self.client.status(quote(mailbox), items))
        for line in response.lines[:-1]:
            if isinstance(line, bytes):
                match = _STATUS.match(line)
                if match:
                    parts = match.group(1).split()
                    return {
                        parts[i].decode().lower(): int(parts[i + 1])
                        for i in range(0, len(parts) - 1, 2)
                        if parts[i + 1].isdigit()
                    }
        return {}

    async def noop(self) -> None:
        await self.run("NOOP", self.client.noop())


def parse_fetch(lines: list[Any]) -> list[FetchedMessage]:
    """Records of a FETCH response: metadata from the text lines, the body from the literal."""
    records: list[tuple[bytearray, bytes | None]] = []
    meta = bytearray()
    literal: bytes | None = None
    started = False
    for line in lines:
        if isinstance(line, bytes) and _FETCH_START.match(line):
            if started:
                records.append((meta, literal))
            meta, literal, started = bytearray(line), None, True
        elif not started:
            continue
        elif isinstance(line, bytearray):
            literal = bytes(line)
        elif isinstance(line, bytes):
            meta.extend(b" " + line)
    if started:
        records.append((meta, literal))
    fetched: list[FetchedMessage] = []
    for meta_bytes, raw in records:
        uid = _UID.search(meta_bytes)
        if uid is None:
            continue
        flags = _FLAGS.search(meta_bytes)
        modseq = _MODSEQ.search(meta_bytes)
        internal = _INTERNALDATE.search(meta_bytes)
        size = _RFC822_SIZE.search(meta_bytes)
        when: datetime | None = None
        if internal:
            try:
                when = parsedate_to_datetime(_internaldate_to_rfc2822(internal.group(1).decode()))
            except (TypeError, ValueError):
                when = None
        fetched.append(
            FetchedMessage(
                uid=int(uid.group(1)),
                flags=flags.group(1).decode("utf-8", "replace").split() if flags else [],
                raw=raw,
                internaldate=when,
                modseq=int(modseq.group(1)) if modseq else None,
                size=int(size.group(1)) if size else None,
            )
        )
    return fetched


def _internaldate_to_rfc2822(value: str) -> str:
    # "17-Jul-1996 02:44:25 -0700" -> "17 Jul 1996 02:44:25 -0700"
    return value.strip().replace("-", " ", 2)
