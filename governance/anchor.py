"""Anchors: signed checkpoints copied outside the database, where the service can only append.

A checkpoint in ``audit_checkpoints`` proves nothing to someone who can delete it and
rewrite the chain behind it. Every checkpoint is therefore also appended to an anchor sink
the database's attacker cannot rewrite (CloudTrail's digest files, a transparency log's
witnesses): :mod:`governance.audit_verify` compares the database with it.

Sinks (:class:`AnchorSink`):

* :class:`FileAnchor` - a local JSON-lines file, opened ``O_APPEND`` for every write, so
  the service's writes can only add lines. Making the file itself append-only for every
  process (``chattr +a``, which needs ``CAP_LINUX_IMMUTABLE``) is the operator's step: the
  service never runs with that capability, so it can neither set nor clear the flag.
* :class:`HttpWitnessAnchor` - a witness server that keeps entries append-only (object
  storage with WORM retention behind a small gateway, a syslog collector, a transparency
  log witness). Protocol: ``POST {url}/v1/checkpoints`` with one entry (201 new, 200
  already held, 409 a different entry for the same tenant and seq), ``GET
  {url}/v1/checkpoints?after=N&limit=M`` (``{"entries": [...], "next": N | null}``) and
  ``GET {url}/v1/heads`` (``{"heads": {tenant: seq}}``); ``Authorization: Bearer`` when a
  token is configured.

Entries carry the checkpoint's own Ed25519 signature, so an entry appended by anyone without
the signing key is reported, never trusted.

Epochs: an anchor starts with an *epoch entry* (tenant :data:`EPOCH_TENANT`, seq = the
epoch's number, row_hash = SHA-256 of the epoch's document, signed like a checkpoint),
written by ``assistant audit anchor init`` (a new deployment, or one that had no anchor)
or ``assistant audit anchor rotate`` (a move to a new anchor). From the epoch's signed time
on, the anchor must hold every checkpoint the database holds: a checkpoint missing from it
means the anchor was deleted, emptied, truncated or replaced, and verification fails.
Checkpoints older than the epoch predate this anchor and are only counted. The epoch
entry needs the signing key, so whoever can only rewrite the file cannot make a new one.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from assistant.core.tenancy import ANCHOR_EPOCHS
from governance.audit_hash import iso_utc

if TYPE_CHECKING:
    import httpx

    from assistant.core.settings import Settings

log = structlog.stdlib.get_logger(__name__)

#: Version tag of an anchor line; bump when its fields change.
ENTRY_VERSION = 1
#: The tenant name of epoch entries (reserved: no tenant can be named so).
EPOCH_TENANT = ANCHOR_EPOCHS


class AnchorError(Exception):
    """The anchor could not be written or read."""


@dataclass(frozen=True, slots=True)
class AnchorEntry:
    """One signed checkpoint as the anchor holds it (the same fields the signature covers)."""

    tenant_id: str
    seq: int
    row_hash: str
    created_at: datetime
    key_fingerprint: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {
            "v": ENTRY_VERSION,
            "tenant_id": self.tenant_id,
            "seq": self.seq,
            "row_hash": self.row_hash,
            "created_at": iso_utc(self.created_at),
            "key_fingerprint": self.key_fingerprint,
            "signature": self.signature,
        }

    def to_line(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def from_json(cls, data: Any) -> AnchorEntry:
        """Parse one entry; ValueError when it is not a well-formed version-1 entry."""
        if not isinstance(data, dict) or data.get("v") != ENTRY_VERSION:
            raise ValueError("not a version-1 anchor entry")
        try:
            seq = data["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValueError("seq must be a positive integer")
            created = datetime.fromisoformat(str(data["created_at"]))
            if created.tzinfo is None:
                raise ValueError("created_at must carry an offset")
            text_fields = ("tenant_id", "row_hash", "key_fingerprint", "signature")
            if not all(isinstance(data[name], str) for name in text_fields):
                raise ValueError("tenant_id, row_hash, key_fingerprint, signature: strings")
            return cls(
                tenant_id=data["tenant_id"],
                seq=seq,
                row_hash=data["row_hash"],
                created_at=created,
                key_fingerprint=data["key_fingerprint"],
                signature=data["signature"],
            )
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]}") from None


@dataclass
class AnchorSnapshot:
    """Everything an anchor held when read: entries by tenant and seq, and unreadable lines."""

    source: str
    entries: list[AnchorEntry] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Holds no readable entry at all (no file, an emptied one, or only garbage)."""
        return not self.entries

    def epochs(self) -> list[AnchorEntry]:
        """The epoch entries, in the order they were appended (signatures unchecked)."""
        return [entry for entry in self.entries if entry.tenant_id == EPOCH_TENANT]

    def by_tenant(self) -> dict[str, dict[int, list[AnchorEntry]]]:
        """Distinct checkpoint entries per tenant and seq, in the order they were appended
        (epoch entries left out: see :meth:`epochs`)."""
        grouped: dict[str, dict[int, list[AnchorEntry]]] = {}
        for entry in self.entries:
            if entry.tenant_id == EPOCH_TENANT:
                continue
            held = grouped.setdefault(entry.tenant_id, {}).setdefault(entry.seq, [])
            if entry not in held:  # the same checkpoint appended twice is harmless
                held.append(entry)
        return grouped


class AnchorSink(Protocol):
    """Where signed checkpoints are appended, outside the database."""

    description: str

    async def append(self, entries: Sequence[AnchorEntry]) -> None:
        """Append ``entries``; raise :class:`AnchorError` when they are not stored."""
        ...

    async def snapshot(self) -> AnchorSnapshot:
        """Read everything the anchor holds."""
        ...

    async def heads(self) -> dict[str, int]:
        """The highest anchored seq of each tenant."""
        ...


# ---------------------------------------------------------------------------- local file


class FileAnchor:
    """A JSON-lines file the service only ever opens with ``O_APPEND``."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        self.description = f"file {self.path}"

    def _append(self, entries: Sequence[AnchorEntry]) -> None:
        data = b"".join(entry.to_line() for entry in entries)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            # Whole lines from concurrent processes never interleave: one write under the lock.
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    async def append(self, entries: Sequence[AnchorEntry]) -> None:
        if not entries:
            return
        try:
            await asyncio.to_thread(self._append, entries)
        except OSError as exc:
            raise AnchorError(f"cannot append to {self.path}: {exc.strerror}") from exc

    def _read(self) -> AnchorSnapshot:
        snapshot = AnchorSnapshot(source=self.description)
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return snapshot
        with handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    snapshot.entries.append(AnchorEntry.from_json(orjson.loads(line)))
                except (orjson.JSONDecodeError, ValueError) as exc:
                    snapshot.malformed.append(f"line {number}: {exc}")
        return snapshot

    async def snapshot(self) -> AnchorSnapshot:
        try:
            return await asyncio.to_thread(self._read)
        except OSError as exc:
            raise AnchorError(f"cannot read {self.path}: {exc.strerror}") from exc

    async def heads(self) -> dict[str, int]:
        heads: dict[str, int] = {}
        for entry in (await self.snapshot()).entries:
            heads[entry.tenant_id] = max(heads.get(entry.tenant_id, 0), entry.seq)
        return heads


# -------------------------------------------------------------------------- HTTP witness


class _RetriableError(AnchorError):
    pass


class HttpWitnessAnchor:
    """A witness server over HTTP (see the module's docstring for the protocol)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # httpx loads with the first HTTP witness, not with every process that audits.
        import httpx

        self.url = url.rstrip("/")
        parsed = httpx.URL(self.url)
        # Only scheme and host in messages: a path may hold a token.
        self.description = f"witness {parsed.scheme}://{parsed.host}"
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout_s
        self._attempts = attempts
        self._transport = transport

    def _client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            timeout=self._timeout, headers=self._headers, transport=self._transport
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        async def once() -> httpx.Response:
            try:
                async with self._client() as client:
                    response = await client.request(method, self.url + path, **kwargs)
            except httpx.TransportError as exc:
                raise _RetriableError(f"{self.description}: {type(exc).__name__}") from None
            if response.status_code == 429 or response.status_code >= 500:
                raise _RetriableError(f"{self.description} answered {response.status_code}")
            return response

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(lambda exc: isinstance(exc, _RetriableError)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await once()
        raise AnchorError(f"{self.description}: no attempt made")  # pragma: no cover

    async def append(self, entries: Sequence[AnchorEntry]) -> None:
        for entry in entries:
            response = await self._call("POST", "/v1/checkpoints", json=entry.to_json())
            if response.status_code == 409:
                raise AnchorError(
                    f"{self.description} holds a different checkpoint for tenant "
                    f"{entry.tenant_id} seq {entry.seq}"
                )
            if response.status_code not in (200, 201):
                raise AnchorError(f"{self.description} answered {response.status_code}")

    async def snapshot(self) -> AnchorSnapshot:
        snapshot = AnchorSnapshot(source=self.description)
        after: int | None = 0
        while after is not None:
            response = await self._call(
                "GET", "/v1/checkpoints", params={"after": after, "limit": 1000}
            )
            if response.status_code != 200:
                raise AnchorError(f"{self.description} answered {response.status_code}")
            try:
                body = response.json()
                items, after = body["entries"], body["next"]
            except (ValueError, KeyError, TypeError):
                raise AnchorError(f"{self.description} answered a malformed page") from None
            for position, item in enumerate(items):
                try:
                    snapshot.entries.append(AnchorEntry.from_json(item))
                except ValueError as exc:
                    snapshot.malformed.append(f"entry {position} of a page: {exc}")
        return snapshot

    async def heads(self) -> dict[str, int]:
        response = await self._call("GET", "/v1/heads")
        if response.status_code != 200:
            raise AnchorError(f"{self.description} answered {response.status_code}")
        try:
            return {str(k): int(v) for k, v in response.json()["heads"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise AnchorError(f"{self.description} answered malformed heads") from None


def anchor_from_settings(settings: Settings) -> AnchorSink | None:
    """The configured sink; None when anchoring is switched off (``audit.anchor.kind=none``)."""
    anchor = settings.audit.anchor
    if anchor.kind == "none":
        return None
    if anchor.kind == "http":
        assert anchor.url is not None  # the settings' validator requires it
        token = anchor.token.get_secret_value() if anchor.token else None
        return HttpWitnessAnchor(anchor.url, token=token, timeout_s=anchor.timeout_s)
    return FileAnchor(settings.audit_anchor_file)
