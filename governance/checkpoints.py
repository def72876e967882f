"""Signed checkpoints of the audit chains (Ed25519, key in a file outside the database).

A checkpoint signs ``(tenant, seq, row_hash at seq, created_at, key fingerprint)`` and, once
its transaction commits, is appended to the anchor (:mod:`governance.anchor`), outside the
database. Whoever can rewrite the database but neither read the key file nor rewrite the
anchor cannot rewrite history up to the last anchored checkpoint without the verifier
noticing. Checkpoints are written every N events by :func:`governance.audit.record` and, for
quiet chains, every T seconds by :func:`run_due_checkpoints` (the background runner), which
also appends any checkpoint whose anchoring failed: the unanchored tail stays below N events
or T seconds plus the runner's interval.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.errors import ConfigurationError
from governance.aftercommit import after_commit
from governance.anchor import AnchorEntry, AnchorError, AnchorSink, anchor_from_settings
from governance.audit_chain import lock_head
from governance.audit_hash import canonical_json, iso_utc
from governance.audit_models import CHECKPOINTS, AuditChainHead, AuditCheckpoint, AuditEvent

if TYPE_CHECKING:
    from assistant.core.settings import Settings

log = structlog.stdlib.get_logger(__name__)

_SIGNING_PURPOSE = "assistant.audit.checkpoint.v1"


@dataclass(frozen=True)
class CheckpointConfig:
    """Where the signing key lives and how often checkpoints are written."""

    key_file: Path
    every_events: int = 100
    every_seconds: int = 60
    anchor: AnchorSink | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckpointConfig:
        return cls(
            key_file=settings.audit_key_file,
            every_events=settings.audit.checkpoint_every_events,
            every_seconds=settings.audit.checkpoint_every_seconds,
            anchor=anchor_from_settings(settings),
        )


_configured: CheckpointConfig | None = None


def configure(config: CheckpointConfig | Settings | None, *, load_key: bool = False) -> None:
    """Set the process-wide checkpoint configuration (the app and the CLI do at start).

    ``load_key`` loads (or creates) the signing key now, so that a broken key file stops
    the service at start rather than failing every N-th audited request.
    """
    global _configured
    if config is None or isinstance(config, CheckpointConfig):
        _configured = config
    else:
        _configured = CheckpointConfig.from_settings(config)
    if (
        load_key
        and _configured is not None
        and (_configured.every_events > 0 or _configured.every_seconds > 0)
    ):
        signing_key(_configured.key_file)


def current_config() -> CheckpointConfig:
    """The configured checkpoint settings, else those of the process-wide settings."""
    if _configured is not None:
        return _configured
    from assistant.core.settings import get_settings

    return CheckpointConfig.from_settings(get_settings())


# ------------------------------------------------------------------------------- keys

_key_lock = threading.Lock()
_key_cache: dict[Path, tuple[float, Ed25519PrivateKey]] = {}


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written to a private temporary file, then linked into place: another process never
    # sees a half-written key, and of two racing processes the first one's key wins.
    fd, tmp_name = tempfile.mkstemp(prefix=".audit-key-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
            log.info("audit.checkpoint_key.created", path=str(path))
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The checkpoint signing key at ``path``, generated (mode 0600) when missing."""
    path = path.expanduser().resolve()
    with _key_lock:
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            if not create:
                raise
            _write_new_key(path)
            mtime = path.stat().st_mtime
        cached = _key_cache.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("audit.checkpoint_key.permissions", path=str(path), mode=oct(mode))
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigurationError(
                f"audit checkpoint key {path} is not a PEM private key",
                problems=[f"audit.checkpoint_key_file: {exc}"],
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"audit checkpoint key {path} is not an Ed25519 key")
        _key_cache[path] = (mtime, key)
        return key


def load_public_key(path: Path) -> Ed25519PublicKey | None:
    """The verifying key from a private or public PEM file; None when the file is missing."""
    path = path.expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if b"PRIVATE KEY" in data:
        return signing_key(path, create=False).public_key()
    public = serialization.load_pem_public_key(data)
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigurationError(f"{path} is not an Ed25519 public key")
    return public


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256(raw).hexdigest()


def checkpoint_message(
    tenant_id: str, seq: int, row_hash: str, created_at: datetime, key_fingerprint: str
) -> bytes:
    """The bytes a checkpoint signs (canonical JSON, with a purpose tag)."""
    return canonical_json(
        {
            "purpose": _SIGNING_PURPOSE,
            "tenant_id": tenant_id,
            "seq": seq,
            "row_hash": row_hash,
            "created_at": iso_utc(created_at),
            "key_fingerprint": key_fingerprint,
        }
    )


class CheckpointLike(Protocol):
    @property
    def tenant_id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def row_hash(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def signature(self) -> str: ...
    @property
    def key_fingerprint(self) -> str: ...


def signature_valid(checkpoint: CheckpointLike, public_key: Ed25519PublicKey) -> bool:
    """Whether ``checkpoint`` (a row or an ``AuditCheckpoint``) is signed by ``public_key``."""
    message = checkpoint_message(
        checkpoint.tenant_id,
        checkpoint.seq,
        checkpoint.row_hash,
        checkpoint.created_at,
        checkpoint.key_fingerprint,
    )
    try:
        public_key.verify(bytes.fromhex(checkpoint.signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# ------------------------------------------------------------------------ writing


async def write_checkpoint(
    session: AsyncSession,
    tenant_id: str,
    seq: int,
    row_hash: str,
    config: CheckpointConfig | None = None,
) -> AuditCheckpoint:
    """Sign and insert a checkpoint of ``(seq, row_hash)``. The caller holds the chain lock."""
    config = config or current_config()
    key = signing_key(config.key_file)
    key_fingerprint = fingerprint(key.public_key())
    created_at = utcnow()
    signature = key.sign(
        checkpoint_message(tenant_id, seq, row_hash, created_at, key_fingerprint)
    ).hex()
    values = {
        "tenant_id": tenant_id,
        "seq": seq,
        "row_hash": row_hash,
        "created_at": created_at,
        "signature": signature,
        "key_fingerprint": key_fingerprint,
    }
    await session.execute(insert(CHECKPOINTS), values)
    # The hash anchors the chain in the logs too, outside the database.
    log.info(
        "audit.checkpoint.created",
        tenant=tenant_id,
        seq=seq,
        row_hash=row_hash,
        key_fingerprint=key_fingerprint,
    )
    anchor = config.anchor
    if anchor is not None:
        entry = AnchorEntry(tenant_id, seq, row_hash, created_at, key_fingerprint, signature)
        # Only a committed checkpoint is anchored: a rolled-back one would read as a fork.
        after_commit(session, lambda: _anchor_quietly(anchor, [entry]))
    return AuditCheckpoint(**values)


#: Per anchor, the (tenant, seq) this process knows it holds: the runner's sweep reads the
#: anchor only when the database has a checkpoint of ours not in here.
_known_anchored: weakref.WeakKeyDictionary[Any, set[tuple[str, int]]] = weakref.WeakKeyDictionary()


def _known(anchor: AnchorSink) -> set[tuple[str, int]]:
    return _known_anchored.setdefault(anchor, set())


async def _anchor_quietly(anchor: AnchorSink, entries: list[AnchorEntry]) -> None:
    try:
        await anchor.append(entries)
        _known(anchor).update((e.tenant_id, e.seq) for e in entries)
    except AnchorError as exc:
        # The runner's sweep (publish_unanchored) appends it later; verify shows the gap.
        log.error("audit.anchor.append_failed", anchor=anchor.description, error=str(exc))


#: How far back the background runner's sweep appends checkpoints the anchor lacks: an
#: anchor outage up to this long heals by itself. Older ones are not re-appended
#: automatically, so that a deleted or truncated anchor stays visible to verify; an
#: operator re-appends them deliberately with ``assistant audit checkpoint``.
SWEEP_HORIZON = timedelta(hours=1)


async def publish_unanchored(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig | None = None,
    *,
    horizon: timedelta | None = None,
) -> int:
    """Append to the anchor every checkpoint of ours it lacks (a crash or an outage between
    commit and append), signed no longer than ``horizon`` ago (None: all). Only
    checkpoints signed by this deployment's key are appended. Returns how many were."""
    config = config or current_config()
    anchor = config.anchor
    if anchor is None:
        return 0
    public_key = signing_key(config.key_file).public_key()
    ours = fingerprint(public_key)
    known = _known(anchor)
    recent = AuditCheckpoint.key_fingerprint == ours
    if horizon is not None:
        recent = recent & (AuditCheckpoint.created_at >= utcnow() - horizon)
    async with sessions() as session:
        stored = (
            await session.execute(
                select(AuditCheckpoint.tenant_id, AuditCheckpoint.seq).where(recent)
            )
        ).all()
        unknown = {(t, int(q)) for t, q in stored} - known
        if not unknown:
            return 0
        held = {(e.tenant_id, e.seq) for e in (await anchor.snapshot()).entries}
        known.update(held)
        appended = 0
        for tenant_id in sorted({tenant for tenant, seq in unknown - held}):
            rows = await session.scalars(
                select(AuditCheckpoint)
                .where(AuditCheckpoint.tenant_id == tenant_id, recent)
                .order_by(AuditCheckpoint.seq)
            )
            entries = [
                AnchorEntry(
                    row.tenant_id,
                    row.seq,
                    row.row_hash,
                    row.created_at,
                    row.key_fingerprint,
                    row.signature,
                )
                for row in rows
                if (row.tenant_id, row.seq) not in held and signature_valid(row, public_key)
            ]
            await anchor.append(entries)
            known.update((e.tenant_id, e.seq) for e in entries)
            appended += len(entries)
    if appended:
        log.info("audit.anchor.caught_up", anchor=anchor.description, entries=appended)
    return appended


async def _last_checkpoint_seq(session: AsyncSession, tenant_id: str) -> int:
    seq = await session.scalar(
        select(AuditCheckpoint.seq)
        .where(AuditCheckpoint.tenant_id == tenant_id)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    )
    return int(seq or 0)


async def create_checkpoint(
    session: AsyncSession, tenant_id: str, config: CheckpointConfig | None = None
) -> AuditCheckpoint | None:
    """Checkpoint ``tenant_id``'s chain at its head; None when empty or already anchored.

    Locks the chain for the rest of the caller's transaction; flushes, never commits.
    """
    last_seq, last_hash = await lock_head(session, tenant_id)
    if last_seq == 0 or await _last_checkpoint_seq(session, tenant_id) >= last_seq:
        return None
    return await write_checkpoint(session, tenant_id, last_seq, last_hash, config)


async def checkpoint_due(
    session: AsyncSession,
    tenant_id: str,
    config: CheckpointConfig | None = None,
    now: datetime | None = None,
) -> bool:
    """True when the oldest event not yet under a checkpoint is older than T seconds."""
    config = config or current_config()
    if config.every_seconds <= 0:
        return False
    head_seq = await session.scalar(
        select(AuditChainHead.last_seq).where(AuditChainHead.tenant_id == tenant_id)
    )
    anchored = await _last_checkpoint_seq(session, tenant_id)
    if not head_seq or head_seq <= anchored:
        return False
    first_unanchored = await session.scalar(
        select(AuditEvent.recorded_at).where(
            AuditEvent.tenant_id == tenant_id, AuditEvent.seq == anchored + 1
        )
    )
    if first_unanchored is None:  # the row is gone: let verification report it
        return False
    return (now or utcnow()) - first_unanchored >= timedelta(seconds=config.every_seconds)


async def run_due_checkpoints(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig | None = None
) -> int:
    """Checkpoint every chain that is due, one short transaction per tenant.

    For the background runner, every ``checkpoint_every_seconds`` or more often; then
    appends to the anchor what it lacks. Returns how many checkpoints were written.
    """
    config = config or current_config()
    async with sessions() as session:
        tenants = list(await session.scalars(select(AuditChainHead.tenant_id)))
    written = 0
    for tenant_id in tenants:
        async with sessions() as session, session.begin():
            if await checkpoint_due(session, tenant_id, config):
                written += await create_checkpoint(session, tenant_id, config) is not None
    try:
        await publish_unanchored(sessions, config, horizon=SWEEP_HORIZON)
    except AnchorError as exc:
        log.error("audit.anchor.catch_up_failed", error=str(exc))
    return written
