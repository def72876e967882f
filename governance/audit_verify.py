"""Verification of the audit chains: recompute every hash, check links, seqs and checkpoints,
and compare the database with the anchor kept outside it.

Streams each chain in keyset batches (memory stays flat however long the chain is) and
reports every problem found, the first bad seq foremost. Long chains are split into seq
ranges scanned by worker processes (SQLite files and PostgreSQL), one per core; shorter ones
are hashed in a thread. Either way the event loop stays free to serve requests.

What it proves: no event up to the chain head read at the start was edited, removed or
reordered; every checkpoint carries a valid signature of a trusted key over the hash of the
event at its seq; and, against the anchor (:mod:`governance.anchor`), that every anchored
checkpoint is still in the database unaltered, that the event at each anchored seq is the
one anchored (a chain rewritten with recomputed hashes, forged inserts, reordering) and that
the chain does not end before the last anchored seq (truncation); and the reverse, that the
anchor still holds every checkpoint the database signed since the anchor's epoch began
(:mod:`governance.anchor_epochs`): an anchor deleted, emptied, truncated or replaced fails
verification, except for checkpoints younger than the grace that anchoring takes. What it
cannot prove: the events after the last anchored checkpoint (the unanchored tail, reported
with its size and age) could have been cut or rewritten by someone who also rewrote the
chain head, and whoever holds the signing key as well as the anchor can forge anything.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text, union
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.clock import utcnow
from governance.anchor import AnchorEntry, AnchorSink, AnchorSnapshot
from governance.audit_hash import GENESIS_HASH
from governance.audit_models import AuditChainHead, AuditCheckpoint, AuditEvent
from governance.audit_scan import (
    POSTGRES_DSN_ENV,
    ROW_COLUMNS,
    Problem,
    ProblemKind,
    RangeScan,
    scan_from_json,
)
from governance.checkpoints import fingerprint, signature_valid

__all__ = ["Problem", "ProblemKind", "VerifyReport", "chain_tenants", "verify_all", "verify_chain"]

#: Chains at least this long are scanned by worker processes (SQLite files, PostgreSQL):
#: a thread sharing the GIL with the event loop (and the database driver's thread) stalls
#: the loop for as long as it hashes, so threads only take chains hashed in a few tens of ms.
PARALLEL_MIN_EVENTS = 5_000
#: Rows hashed per step of an in-process scan (each step runs in a thread).
_THREAD_BATCH = 2_000
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
#: A checkpoint younger than this may be missing from the anchor without failing: its
#: append runs after its commit, and the runner's sweep retries a failed one every minute.
ANCHOR_GRACE = timedelta(minutes=5)


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
    #: What the anchor says; None when no anchor was compared.
    anchor: str | None = None
    anchored_checkpoints: int = 0
    anchored_seq: int = 0
    unanchored_events: int = 0
    unanchored_since: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    workers: int = 0
    #: When the anchor's epoch began (None: no epoch entry, so it must hold every checkpoint).
    anchor_started_at: datetime | None = None
    #: Checkpoints signed before the anchor's epoch (history it does not cover).
    checkpoints_before_anchor: int = 0

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
            "anchor": self.anchor,
            "anchored_checkpoints": self.anchored_checkpoints,
            "anchored_seq": self.anchored_seq,
            "unanchored_events": self.unanchored_events,
            "unanchored_since": (
                self.unanchored_since.isoformat() if self.unanchored_since else None
            ),
            "warnings": list(self.warnings),
            "workers": self.workers,
            "anchor_started_at": (
                self.anchor_started_at.isoformat() if self.anchor_started_at else None
            ),
            "checkpoints_before_anchor": self.checkpoints_before_anchor,
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


def _scan_target(session: AsyncSession) -> tuple[str, dict[str, str]] | None:
    """Where a worker process can read the chain: (argument, extra environment), or None
    (an in-memory SQLite database only this process sees)."""
    bind = session.get_bind()
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or "mode=memory" in str(url):
            return None
        return url.database, {}
    if backend == "postgresql":
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return "postgres", {POSTGRES_DSN_ENV: plain}
    return None


async def _scan_in_process(
    session: AsyncSession, tenant_id: str, upto: int, batch_size: int, scan: RangeScan
) -> None:
    after = 0
    step = min(batch_size, _THREAD_BATCH)
    while True:
        rows = (
            await session.execute(
                _ROWS, {"tenant": tenant_id, "after": after, "upto": upto, "limit": step}
            )
        ).all()
        if not rows:
            return
        # Hashing holds the CPU: in a thread, the event loop keeps serving meanwhile.
        await asyncio.to_thread(scan.feed, rows)
        after = scan.last_seq


async def _scan_range_process(
    target: tuple[str, dict[str, str]],
    tenant_id: str,
    after: int,
    upto: int,
    batch_size: int,
    limit: int,
) -> RangeScan:
    # A fresh interpreter that imports only the scanner: no fork of this (threaded)
    # process, and none of the application's imports.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    env.update(target[1])
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "governance.audit_scan",
        target[0],
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
        # The last line names the exception; never the whole trace (it may quote the DSN).
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError("audit scan worker failed: " + last[0][:300])
    return scan_from_json(out.decode(), limit)


async def _scan_parallel(
    target: tuple[str, dict[str, str]],
    tenant_id: str,
    upto: int,
    batch_size: int,
    workers: int,
    scan: RangeScan,
) -> None:
    bounds = [upto * i // workers for i in range(workers + 1)]
    parts = await asyncio.gather(
        *(
            _scan_range_process(target, tenant_id, bounds[i], bounds[i + 1], batch_size, scan.limit)
            for i in range(workers)
        )
    )
    for part in parts:
        scan.absorb(part)


#: Anchored entries of one tenant: seq -> the distinct entries the anchor holds for it.
TenantAnchor = dict[int, list[AnchorEntry]]


async def verify_chain(
    session: AsyncSession,
    tenant_id: str,
    *,
    public_keys: Iterable[Ed25519PublicKey] = (),
    anchor: TenantAnchor | None = None,
    anchor_source: str | None = None,
    anchor_started_at: datetime | None = None,
    anchor_empty: bool = False,
    now: datetime | None = None,
    grace: timedelta = ANCHOR_GRACE,
    checkpoint_every_events: int = 0,
    batch_size: int = 10_000,
    max_problems: int = 100,
    workers: int | None = None,
    parallel_min_events: int = PARALLEL_MIN_EVENTS,
) -> VerifyReport:
    """Verify ``tenant_id``'s chain; ``public_keys`` are the trusted checkpoint keys.

    Only reads, and sees committed data. Events appended while it runs (after the chain
    head was read) are left for the next run, so a live system verifies without false
    alarms. ``anchor`` holds the tenant's anchored checkpoints, read *before* this call (so
    that every anchored checkpoint had committed); None compares with no anchor. ``workers``
    (default: one per core, at most 4) applies to chains of at least
    ``parallel_min_events`` events in a SQLite file or on PostgreSQL. ``anchor_started_at``
    is the anchor's epoch (its valid epoch entries' earliest time), ``anchor_empty`` says the
    anchor held nothing at all, ``now`` is when it was read: a checkpoint of the database
    the anchor lacks fails unless it predates the epoch or is younger than ``grace``.
    ``checkpoint_every_events`` (the deployment's N; 0: unchecked): a chain that runs N
    events or more past its last checkpoint lost checkpoints, since every N-th event is
    checkpointed in its own transaction.
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
    target = _scan_target(session)
    if target is not None and upto >= parallel_min_events:
        # Even with one core, a worker process keeps the hashing off the event loop.
        report.workers = max(workers, 1)
        await _scan_parallel(target, tenant_id, upto, batch_size, report.workers, scan)
    else:
        await _scan_in_process(session, tenant_id, upto, batch_size, scan)
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
    if anchor is not None:
        report.anchor = anchor_source or "anchor"
        report.anchor_started_at = anchor_started_at
        await _compare_with_anchor(
            session,
            tenant_id,
            upto,
            anchor,
            trusted,
            scan,
            report,
            _AnchorTerms(anchor_started_at, anchor_empty, now or utcnow(), grace),
        )
    if checkpoint_every_events > 0:
        await _check_checkpoint_cadence(
            session, tenant_id, upto, checkpoint_every_events, scan, report
        )
    report.problems, report.problems_omitted = scan.problems, scan.omitted
    return report


async def _check_checkpoint_cadence(
    session: AsyncSession,
    tenant_id: str,
    head_seq: int,
    every: int,
    scan: RangeScan,
    report: VerifyReport,
) -> None:
    """Whoever deletes the checkpoints (and the anchor's copies) to rewrite a chain leaves
    a chain longer than N events past its last checkpoint, which the service never does."""
    stored = await session.scalar(
        select(AuditCheckpoint.seq)
        .where(AuditCheckpoint.tenant_id == tenant_id, AuditCheckpoint.seq <= head_seq)
        .order_by(AuditCheckpoint.seq.desc())
        .limit(1)
    )
    last = max(int(stored or 0), report.anchored_seq if report.anchored_seq <= head_seq else 0)
    if head_seq - last >= every:
        scan.add(
            last + every,
            ProblemKind.CHECKPOINT_OVERDUE,
            f"{head_seq - last} events follow the last checkpoint (seq {last}), but one is "
            f"signed every {every} events: checkpoints were removed (unless "
            "audit.checkpoint_every_events was just lowered or switched on; `assistant audit "
            "checkpoint` signs the heads)",
        )


@dataclass(frozen=True)
class _AnchorTerms:
    """What the anchor as a whole says, beside a tenant's entries."""

    started_at: datetime | None
    empty: bool
    read_at: datetime
    grace: timedelta


async def _compare_with_anchor(
    session: AsyncSession,
    tenant_id: str,
    head_seq: int,
    anchor: TenantAnchor,
    trusted: dict[str, Ed25519PublicKey],
    scan: RangeScan,
    report: VerifyReport,
    terms: _AnchorTerms,
) -> None:
    """The database against the checkpoints anchored outside it."""
    valid: dict[int, AnchorEntry] = {}

    def check_entries() -> None:
        for seq in sorted(anchor):
            entries = anchor[seq]
            if len(entries) > 1:
                scan.add(
                    seq,
                    ProblemKind.ANCHOR_CONFLICT,
                    f"the anchor holds {len(entries)} different checkpoints for seq {seq}: "
                    "the chain was forked (for instance restored from a backup and rewritten)",
                )
            for entry in entries:
                key = trusted.get(entry.key_fingerprint)
                if key is None or not signature_valid(entry, key):
                    scan.add(
                        seq,
                        ProblemKind.ANCHOR_ENTRY_INVALID,
                        "an anchored checkpoint is not signed by a trusted key"
                        if key is None
                        else "an anchored checkpoint's signature does not verify",
                    )
                elif seq not in valid:
                    valid[seq] = entry

    await asyncio.to_thread(check_entries)
    report.anchored_checkpoints = len(valid)
    report.anchored_seq = max(valid, default=0)

    stored = {
        int(row.seq): row
        for row in await session.execute(
            select(*_CHECKPOINT_COLUMNS).where(AuditCheckpoint.tenant_id == tenant_id)
        )
    }
    by_signature = {entry.signature: seq for seq, entry in valid.items()}
    for seq, entry in valid.items():
        row = stored.get(seq)
        if row is None:
            scan.add(
                seq,
                ProblemKind.CHECKPOINT_MISSING,
                f"the anchored checkpoint at seq {seq} is missing from the database",
            )
        elif (row.row_hash, row.signature, row.key_fingerprint) != (
            entry.row_hash,
            entry.signature,
            entry.key_fingerprint,
        ) or row.created_at != entry.created_at:
            other = by_signature.get(row.signature)
            if other is not None and other != seq:
                scan.add(
                    seq,
                    ProblemKind.CHECKPOINT_REORDERED,
                    f"the database's checkpoint at seq {seq} is the one anchored at seq {other}",
                )
            else:
                scan.add(
                    seq,
                    ProblemKind.CHECKPOINT_ALTERED,
                    f"the database's checkpoint at seq {seq} differs from the anchored one",
                )
    await _check_anchor_holds_checkpoints(
        [row for seq, row in sorted(stored.items()) if seq not in valid and seq <= head_seq],
        trusted,
        scan,
        report,
        terms,
    )

    if report.anchored_seq > head_seq:
        scan.add(
            head_seq + 1,
            ProblemKind.HEAD_BEHIND_ANCHOR,
            f"the database's chain ends at seq {head_seq} but the anchor holds a checkpoint "
            f"at seq {report.anchored_seq}: events {head_seq + 1}..{report.anchored_seq} "
            "were cut off",
        )
    anchored_seqs = [seq for seq in sorted(valid) if seq <= head_seq]
    for start in range(0, len(anchored_seqs), 500):
        chunk = anchored_seqs[start : start + 500]
        rows = await session.execute(
            select(AuditEvent.seq, AuditEvent.row_hash).where(
                AuditEvent.tenant_id == tenant_id, AuditEvent.seq.in_(chunk)
            )
        )
        found = {int(seq): str(row_hash) for seq, row_hash in rows}
        for seq in chunk:
            actual = found.get(seq)
            if actual != valid[seq].row_hash:
                scan.add(
                    seq,
                    ProblemKind.ANCHORED_EVENT_MISMATCH,
                    f"the event at seq {seq} is missing, but the anchor holds it"
                    if actual is None
                    else f"the event at seq {seq} is not the one anchored (anchored hash "
                    f"{valid[seq].row_hash[:16]}..., database {actual[:16]}...): the chain "
                    "was rewritten",
                )
    report.unanchored_events = max(0, head_seq - report.anchored_seq)
    if report.unanchored_events:
        report.unanchored_since = await session.scalar(
            select(AuditEvent.recorded_at).where(
                AuditEvent.tenant_id == tenant_id, AuditEvent.seq == report.anchored_seq + 1
            )
        )


async def _check_anchor_holds_checkpoints(
    missing: list[Any],
    trusted: dict[str, Ed25519PublicKey],
    scan: RangeScan,
    report: VerifyReport,
    terms: _AnchorTerms,
) -> None:
    """The reverse direction: every checkpoint of the database since the anchor's epoch
    must be in the anchor. ``missing``: the database's checkpoints the anchor lacks."""
    in_flight: list[int] = []
    lost: list[Any] = []
    deadline = terms.read_at - terms.grace
    for row in missing:
        if terms.started_at is not None and row.created_at < terms.started_at:
            report.checkpoints_before_anchor += 1
            continue
        key = trusted.get(row.key_fingerprint)
        if key is None or not await asyncio.to_thread(signature_valid, row, key):
            continue  # reported by the signature check; no anchor would hold a forgery
        if row.created_at >= deadline:
            in_flight.append(int(row.seq))
        else:
            lost.append(row)
    if in_flight:
        report.warnings.append(
            f"{len(in_flight)} checkpoint(s) of the database are not in the anchor yet "
            f"(first at seq {in_flight[0]}, signed less than {terms.grace} ago); the runner "
            "appends them"
        )
    if not lost:
        return
    first = lost[0]
    if terms.empty:
        scan.add(
            int(first.seq),
            ProblemKind.ANCHOR_MISSING,
            f"the anchor ({report.anchor}) holds nothing, but the database holds "
            f"{len(lost)} signed checkpoint(s) of this chain (seq {first.seq}.."
            f"{lost[-1].seq}): the anchor was deleted, emptied or replaced (or nothing "
            f"could be appended to it for more than {terms.grace}). A new "
            "deployment or a deliberate move to a new anchor starts it with `assistant "
            "audit anchor init` or `assistant audit anchor rotate`",
        )
        return
    for row in lost:
        scan.add(
            int(row.seq),
            ProblemKind.CHECKPOINT_UNANCHORED,
            f"the database's checkpoint at seq {row.seq}, signed "
            f"{row.created_at:%Y-%m-%d %H:%M:%S}Z, is not in the anchor: the anchor was "
            f"truncated or replaced, or appending to it has failed for more than "
            f"{terms.grace} (`assistant audit checkpoint` appends what it lacks)",
        )


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

        def check(rows: Sequence[Any] = batch) -> None:
            for checkpoint in rows:
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

        await asyncio.to_thread(check)  # signatures cost ~0.1 ms each: not on the loop
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
    anchor: AnchorSink | AnchorSnapshot | None = None,
    checkpoint_every_events: int = 0,
) -> list[VerifyReport]:
    """Verify the given tenants' chains, or every chain in the database and in the anchor.

    The anchor is read first: whatever it holds had committed before the database is read.
    Lines of the anchor that cannot be read are reported on every tenant's report.
    """
    keys = list(public_keys)
    snapshot = (
        await anchor.snapshot()
        if anchor is not None and not isinstance(anchor, AnchorSnapshot)
        else anchor
    )
    read_at = utcnow()
    grouped = snapshot.by_tenant() if snapshot is not None else {}
    started_at, epoch_warnings = (
        await asyncio.to_thread(_epoch_start, snapshot, {fingerprint(k): k for k in keys})
        if snapshot is not None
        else (None, [])
    )
    if tenants is not None:
        names = list(tenants)
    else:
        names = sorted({*await chain_tenants(session), *grouped})
    reports = []
    for tenant in names:
        report = await verify_chain(
            session,
            tenant,
            public_keys=keys,
            anchor=grouped.get(tenant, {}) if snapshot is not None else None,
            anchor_source=snapshot.source if snapshot is not None else None,
            anchor_started_at=started_at,
            anchor_empty=snapshot is not None and snapshot.empty,
            now=read_at,
            checkpoint_every_events=checkpoint_every_events,
            workers=workers,
        )
        report.warnings.extend(epoch_warnings)
        if snapshot is not None and snapshot.malformed:
            report.warnings.append(
                f"{len(snapshot.malformed)} unreadable anchor entr(ies): "
                + "; ".join(snapshot.malformed[:3])
            )
        reports.append(report)
    return reports


def _epoch_start(
    snapshot: AnchorSnapshot, trusted: dict[str, Ed25519PublicKey]
) -> tuple[datetime | None, list[str]]:
    """When the anchor's epoch began (its earliest validly signed epoch entry), and what
    to say of epoch entries no trusted key signed (ignored: they could only excuse)."""
    started: datetime | None = None
    invalid = 0
    for entry in snapshot.epochs():
        key = trusted.get(entry.key_fingerprint)
        if key is None or not signature_valid(entry, key):
            invalid += 1
        elif started is None or entry.created_at < started:
            started = entry.created_at
    warnings = (
        [f"{invalid} epoch entr(ies) of the anchor are not signed by a trusted key: ignored"]
        if invalid
        else []
    )
    return started, warnings


async def verify_tenant(
    session: AsyncSession,
    tenant_id: str,
    *,
    public_keys: Sequence[Ed25519PublicKey] = (),
    anchor: AnchorSink | AnchorSnapshot | None = None,
    checkpoint_every_events: int = 0,
) -> VerifyReport:
    """One tenant against the anchor (what the API and the gate run)."""
    (report,) = await verify_all(
        session,
        public_keys=public_keys,
        tenants=[tenant_id],
        anchor=anchor,
        checkpoint_every_events=checkpoint_every_events,
    )
    return report
