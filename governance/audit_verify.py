"""Verification of the audit chains: recompute every hash, check links, seqs and checkpoints.

Streams each chain in keyset batches (memory stays flat however long the chain is) and
reports every problem found, the first bad seq foremost. Long chains in a SQLite file are
split into seq ranges scanned by worker processes, one per core.

What it proves: no event up to the chain head read at the start was edited, removed or
reordered; every checkpoint carries a valid signature of a trusted key over the hash of the
event at its seq; nothing was cut off the tail behind the chain head's back. What it cannot
prove alone: a tail cut after the last checkpoint by someone who also rewrote the chain
head; the ``audit.checkpoint.created`` log lines and exports anchor the chain outside the
database for that.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text, union
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from governance.audit_hash import GENESIS_HASH
from governance.audit_models import AuditChainHead, AuditCheckpoint, AuditEvent
from governance.audit_scan import (
    ROW_COLUMNS,
    Problem,
    ProblemKind,
    RangeScan,
    scan_from_json,
)
from governance.checkpoints import fingerprint, signature_valid

__all__ = ["Problem", "ProblemKind", "VerifyReport", "chain_tenants", "verify_all", "verify_chain"]

#: Chains at least this long in a SQLite file are scanned by worker processes.
PARALLEL_MIN_EVENTS = 200_000
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class VerifyReport:
    """The outcome of verifying one tenant's chain."""

    tenant_id: str
    events: int = 0
    last_seq: int = 0
    head_seq: int | None = None
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_omitted: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not self.problems_omitted

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None

    @property
    def first_bad_seq(self) -> int | None:
        first = self.first_problem
        return first.seq if first else None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {
            "tenant_id": self.tenant_id,
            "ok": self.ok,
            "events": self.events,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "checkpoints": self.checkpoints,
            "first_bad_seq": first.seq if first else None,
            "first_problem": first.kind.value if first else None,
            "problems": [p.to_dict() for p in sorted(self.problems, key=lambda p: p.seq)],
            "problems_omitted": self.problems_omitted,
        }


_ROWS = text(
    f"SELECT {', '.join(ROW_COLUMNS)} FROM audit_events WHERE tenant_id = :tenant "  # noqa: S608
    "AND seq > :after AND seq <= :upto ORDER BY seq LIMIT :limit"
)
_CHECKPOINT_MISMATCHES = text(
    "SELECT c.seq, e.row_hash FROM audit_checkpoints c LEFT JOIN audit_events e "
    "ON e.tenant_id = c.tenant_id AND e.seq = c.seq WHERE c.tenant_id = :tenant "
    "AND c.seq <= :upto AND (e.row_hash IS NULL OR e.row_hash <> c.row_hash) ORDER BY c.seq"
)
# A checkpoint commits together with, or after, the event it signs: one past the head read
# at the start must have its event by now.
_CHECKPOINTS_BEYOND = text(
    "SELECT c.seq FROM audit_checkpoints c WHERE c.tenant_id = :tenant AND c.seq > :upto "
    "AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.tenant_id = c.tenant_id "
    "AND e.seq = c.seq) ORDER BY c.seq"
)
_CHECKPOINT_COLUMNS = (
    AuditCheckpoint.tenant_id,
    AuditCheckpoint.seq,
    AuditCheckpoint.row_hash,
    AuditCheckpoint.created_at,
    AuditCheckpoint.signature,
    AuditCheckpoint.key_fingerprint,
)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _sqlite_file(session: AsyncSession) -> str | None:
    bind = session.get_bind()
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if "mode=memory" in str(url):
        return None
    return url.database


async def _scan_sequential(
    session: AsyncSession, tenant_id: str, upto: int, batch_size: int, scan: RangeScan
) -> None:
    after = 0
    while True:
        rows = (
            await session.execute(
                _ROWS, {"tenant": tenant_id, "after": after, "upto": upto, "limit": batch_size}
            )
        ).all()
        if not rows:
            return
        scan.feed(rows)
        after = scan.last_seq


async def _scan_range_process(
    path: str, tenant_id: str, after: int, upto: int, batch_size: int, limit: int
) -> RangeScan:
    # A fresh interpreter that imports only the scanner: no fork of this (threaded)
    # process, and none of the application's imports.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "governance.audit_scan",
        path,
        tenant_id,
        str(after),
        str(upto),
        str(batch_size),
        str(limit),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            "audit scan worker failed: " + err.decode(errors="replace").strip()[-500:]
        )
    return scan_from_json(out.decode(), limit)


async def _scan_parallel(
    path: str, tenant_id: str, upto: int, batch_size: int, workers: int, scan: RangeScan
) -> None:
    bounds = [upto * i // workers for i in range(workers + 1)]
    parts = await asyncio.gather(
        *(
            _scan_range_process(path, tenant_id, bounds[i], bounds[i + 1], batch_size, scan.limit)
            for i in range(workers)
        )
    )
    for part in parts:
        scan.absorb(part)


async def verify_chain(
    session: AsyncSession,
    tenant_id: str,
    *,
    public_keys: Iterable[Ed25519PublicKey] = (),
    batch_size: int = 10_000,
    max_problems: int = 100,
    workers: int | None = None,
    parallel_min_events: int = PARALLEL_MIN_EVENTS,
) -> VerifyReport:
    """Verify ``tenant_id``'s chain; ``public_keys`` are the trusted checkpoint keys.

    Only reads, and sees committed data. Events appended while it runs (after the chain
    head was read) are left for the next run, so a live system verifies without false
    alarms. ``workers`` (default: one per core, at most 4) applies to SQLite files with at
    least ``parallel_min_events`` events.
    """
    report = VerifyReport(tenant_id)
    trusted = {fingerprint(key): key for key in public_keys}
    head = (
        await session.execute(
            select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(
                AuditChainHead.tenant_id == tenant_id
            )
        )
    ).first()
    if head is None:
        # No head: the events present are unaccounted for; verify what is there.
        upto = int(
            await session.scalar(
                select(AuditEvent.seq)
                .where(AuditEvent.tenant_id == tenant_id)
                .order_by(AuditEvent.seq.desc())
                .limit(1)
            )
            or 0
        )
    else:
        report.head_seq = upto = int(head[0])

    scan = RangeScan(expected=1, prev_hash=GENESIS_HASH, limit=max_problems)
    workers = default_workers() if workers is None else workers
    path = _sqlite_file(session)
    if path is not None and workers > 1 and upto >= parallel_min_events:
        await _scan_parallel(path, tenant_id, upto, batch_size, workers, scan)
    else:
        await _scan_sequential(session, tenant_id, upto, batch_size, scan)
    report.events, report.last_seq = scan.count, scan.last_seq
    last_seq, last_hash = scan.last_seq, scan.prev_hash

    if head is not None:
        if int(head[0]) > last_seq:
            scan.add(
                last_seq + 1,
                ProblemKind.TRUNCATED_TAIL,
                f"the chain head is at seq {head[0]} but the last event is {last_seq}: "
                f"events {last_seq + 1}..{head[0]} are gone",
            )
        elif last_seq and head[1] != last_hash:
            scan.add(
                last_seq,
                ProblemKind.HEAD_MISMATCH,
                "the chain head's hash differs from the last event's row_hash",
            )
    elif last_seq:
        scan.add(1, ProblemKind.HEAD_MISMATCH, "events exist but the chain head is missing")

    params = {"tenant": tenant_id, "upto": upto}
    for seq, row_hash in await session.execute(_CHECKPOINT_MISMATCHES, params):
        scan.add(
            int(seq),
            ProblemKind.CHECKPOINT_MISMATCH,
            "the checkpointed event is missing"
            if row_hash is None
            else "the checkpoint signed a different hash for this event",
        )
    for (seq,) in await session.execute(_CHECKPOINTS_BEYOND, params):
        scan.add(
            int(seq),
            ProblemKind.CHECKPOINT_BEYOND_TAIL,
            "a checkpoint signs an event that does not exist",
        )
    report.checkpoints = await _verify_signatures(session, tenant_id, upto, trusted, scan)
    report.problems, report.problems_omitted = scan.problems, scan.omitted
    return report


async def _verify_signatures(
    session: AsyncSession,
    tenant_id: str,
    upto: int,
    trusted: dict[str, Ed25519PublicKey],
    scan: RangeScan,
) -> int:
    count, after = 0, 0
    while True:
        batch = (
            await session.execute(
                select(*_CHECKPOINT_COLUMNS)
                .where(
                    AuditCheckpoint.tenant_id == tenant_id,
                    AuditCheckpoint.seq > after,
                    AuditCheckpoint.seq <= upto,
                )
                .order_by(AuditCheckpoint.seq)
                .limit(1000)
            )
        ).all()
        if not batch:
            return count
        for checkpoint in batch:
            key = trusted.get(checkpoint.key_fingerprint)
            if key is None:
                scan.add(
                    checkpoint.seq,
                    ProblemKind.CHECKPOINT_UNKNOWN_KEY,
                    f"signed by key {checkpoint.key_fingerprint[:16]}..., which is not "
                    "a trusted checkpoint key",
                )
            elif not signature_valid(checkpoint, key):
                scan.add(
                    checkpoint.seq,
                    ProblemKind.CHECKPOINT_BAD_SIGNATURE,
                    "the checkpoint's signature does not verify",
                )
        count += len(batch)
        after = int(batch[-1].seq)


async def chain_tenants(session: AsyncSession) -> list[str]:
    """Every tenant that has a chain head, events or checkpoints."""
    query = union(
        select(AuditChainHead.tenant_id),
        select(AuditEvent.tenant_id).distinct(),
        select(AuditCheckpoint.tenant_id).distinct(),
    )
    return sorted({str(tenant) for tenant in await session.scalars(query)})


async def verify_all(
    session: AsyncSession,
    *,
    public_keys: Iterable[Ed25519PublicKey] = (),
    tenants: Iterable[str] | None = None,
    workers: int | None = None,
) -> list[VerifyReport]:
    """Verify the given tenants' chains, or every chain in the database."""
    keys = list(public_keys)
    names = list(tenants) if tenants is not None else await chain_tenants(session)
    return [
        await verify_chain(session, tenant, public_keys=keys, workers=workers) for tenant in names
    ]
