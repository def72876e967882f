"""Starting an anchor: the signed epoch entry of a new deployment or of a move to a new anchor.

An anchor that holds nothing while the database holds checkpoints is what an attacker who
deleted it leaves behind, so verification fails on it (see :mod:`governance.audit_verify`).
A genuinely new anchor is started on purpose instead, by ``assistant audit anchor init``
(the first anchor of a deployment, or one that had none) or ``assistant audit anchor
rotate`` (a move to a new, empty anchor after the database verified clean against the old
one): both write an epoch entry signed with the checkpoint key, record
``audit.anchor.started`` in the system chain, and checkpoint every chain at its head so
that the history so far is anchored from the first minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.principal import ActorType, Principal
from assistant.core.tenancy import SYSTEM_CHAIN
from governance.anchor import EPOCH_TENANT, AnchorEntry, AnchorError, AnchorSnapshot
from governance.audit import AuditAction, AuditEventIn, record
from governance.audit_hash import canonical_json, iso_utc
from governance.audit_models import AuditChainHead
from governance.checkpoints import (
    CheckpointConfig,
    checkpoint_message,
    create_checkpoint,
    fingerprint,
    signing_key,
)

log = structlog.stdlib.get_logger(__name__)

_EPOCH_PURPOSE = "assistant.audit.anchor_epoch.v1"


def snapshot_digest(snapshot: AnchorSnapshot) -> str:
    """SHA-256 over an anchor's entries as canonical lines, in order: names the old anchor
    in the new one's epoch document (an auditor recomputes it from their copy)."""
    digest = sha256()
    for entry in snapshot.entries:
        digest.update(entry.to_line())
    return digest.hexdigest()


@dataclass(frozen=True)
class StartedAnchor:
    epoch: AnchorEntry
    document: dict[str, Any]
    checkpoints: list[tuple[str, int]]


async def start_anchor(
    sessions: async_sessionmaker[AsyncSession],
    config: CheckpointConfig,
    *,
    reason: str,
    started_by: str,
    previous: AnchorSnapshot | None = None,
) -> StartedAnchor:
    """Write the epoch entry to the configured (empty) anchor, audit it, checkpoint every
    chain at its head. ``previous``: the anchor this one replaces (rotation), already
    verified against the database by the caller. Raises :class:`AnchorError` when no anchor
    is configured or the anchor already holds entries (an anchor is started once)."""
    anchor = config.anchor
    if anchor is None:
        raise AnchorError("no anchor is configured (audit.anchor.kind is none)")
    if not reason.strip():
        raise AnchorError("starting an anchor needs a reason")
    held = await anchor.snapshot()
    if not held.empty:
        raise AnchorError(
            f"{anchor.description} already holds {len(held.entries)} entries: an anchor is "
            "started once; to move to another, configure a new, empty one and rotate"
        )
    epoch_number = 1 + max((e.seq for e in previous.epochs()), default=0) if previous else 1
    created_at = utcnow()
    document: dict[str, Any] = {
        "purpose": _EPOCH_PURPOSE,
        "epoch": epoch_number,
        "started_at": iso_utc(created_at),
        "started_by": started_by,
        "reason": reason.strip()[:500],
        "anchor": anchor.description,
        "previous": None
        if previous is None
        else {
            "anchor": previous.source,
            "entries": len(previous.entries),
            "digest": snapshot_digest(previous),
        },
    }
    key = signing_key(config.key_file)
    key_fingerprint = fingerprint(key.public_key())
    row_hash = sha256(canonical_json(document)).hexdigest()
    signature = key.sign(
        checkpoint_message(EPOCH_TENANT, epoch_number, row_hash, created_at, key_fingerprint)
    ).hex()
    entry = AnchorEntry(
        EPOCH_TENANT, epoch_number, row_hash, created_at, key_fingerprint, signature
    )
    await anchor.append([entry])
    log.warning(
        "audit.anchor.started",
        anchor=anchor.description,
        epoch=epoch_number,
        started_by=started_by,
        previous=document["previous"],
    )
    actor = Principal(user_id=started_by, tenant_id=SYSTEM_CHAIN, actor_type=ActorType.SYSTEM)
    async with sessions() as session, session.begin():
        await record(
            session,
            actor,
            AuditEventIn(
                action=AuditAction.AUDIT_ANCHOR_STARTED,
                resource_type="audit_anchor",
                reason=document["reason"],
                payload={"document": document, "document_sha256": row_hash},
            ),
            checkpoints=config,
        )
    async with sessions() as session:
        tenants = list(await session.scalars(select(AuditChainHead.tenant_id)))
    written = []
    for tenant_id in sorted(tenants):
        async with sessions() as session, session.begin():
            made = await create_checkpoint(session, tenant_id, config)
            if made is not None:
                written.append((tenant_id, made.seq))
    return StartedAnchor(entry, document, written)
