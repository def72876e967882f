"""Scanning runs of audit events: hashes, links, seq continuity.

Light on imports on purpose: ``python -m governance.audit_scan`` runs :func:`scan_sqlite_range`
in worker processes when a long chain in a SQLite file is verified in parallel, and starts
in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from hashlib import sha256 as _sha256
from pathlib import Path
from typing import Any
from urllib.parse import quote

from governance.audit_hash import HASHED_FIELDS, hash_row

#: Columns a scan reads, in this order: the hashed fields, then the stored row_hash.
ROW_COLUMNS: tuple[str, ...] = (*HASHED_FIELDS, "row_hash")
_SEQ = HASHED_FIELDS.index("seq")
_PREV = HASHED_FIELDS.index("prev_hash")
_ROW_HASH = len(HASHED_FIELDS)


class ProblemKind(StrEnum):
    SEQ_GAP = "seq_gap"  # an event is missing (deleted) or seqs do not start at 1
    HASH_MISMATCH = "hash_mismatch"  # an event's content no longer matches its row_hash
    CHAIN_BROKEN = "chain_broken"  # prev_hash is not the previous event's row_hash
    CHECKPOINT_BAD_SIGNATURE = "checkpoint_bad_signature"
    CHECKPOINT_UNKNOWN_KEY = "checkpoint_unknown_key"  # signed by a key that is not trusted
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # signed hash differs from the event's
    CHECKPOINT_BEYOND_TAIL = "checkpoint_beyond_tail"  # the checkpointed event is gone
    TRUNCATED_TAIL = "truncated_tail"  # the chain head knows of events that are gone
    HEAD_MISMATCH = "head_mismatch"  # the chain head disagrees with the last event
    # the database against the anchor (governance.anchor), outside the database
    CHECKPOINT_MISSING = "checkpoint_missing"  # anchored, but gone from the database
    CHECKPOINT_ALTERED = "checkpoint_altered"  # the database's differs from the anchored one
    CHECKPOINT_REORDERED = "checkpoint_reordered"  # holds the anchored one of another seq
    ANCHORED_EVENT_MISMATCH = "anchored_event_mismatch"  # the event is not the one anchored
    HEAD_BEHIND_ANCHOR = "head_behind_anchor"  # the chain ends before the last anchored seq
    ANCHOR_CONFLICT = "anchor_conflict"  # the anchor holds two checkpoints for one seq
    ANCHOR_ENTRY_INVALID = "anchor_entry_invalid"  # an anchored entry no trusted key signed
    ANCHOR_MISSING = "anchor_missing"  # the anchor holds nothing, the database checkpoints
    CHECKPOINT_UNANCHORED = "checkpoint_unanchored"  # in the database, lost from the anchor
    CHECKPOINT_OVERDUE = "checkpoint_overdue"  # N events past the last checkpoint: removed


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind.value, "detail": self.detail}


@dataclass
class RangeScan:
    """Running state over consecutive events of one chain.

    With ``expected``/``prev_hash`` unset, the first event's own position is taken as given
    (a worker's range: the caller checks the seam with :meth:`absorb`).
    """

    expected: int | None = None
    prev_hash: str | None = None
    limit: int = 100
    first_seq: int | None = None
    first_prev: str | None = None
    count: int = 0
    problems: list[Problem] = field(default_factory=list)
    omitted: int = 0

    def add(self, seq: int, kind: ProblemKind, detail: str) -> None:
        if len(self.problems) < self.limit:
            self.problems.append(Problem(seq, kind, detail))
        else:
            self.omitted += 1

    def feed(self, rows: Sequence[Sequence[Any]]) -> None:
        """Check ``rows`` (in :data:`ROW_COLUMNS` order, ascending seq)."""
        expected, prev_hash = self.expected, self.prev_hash
        for row in rows:
            seq = row[_SEQ]
            stored = row[_ROW_HASH]
            if expected is None:
                self.first_seq, self.first_prev = seq, row[_PREV]
            elif seq != expected:
                self.add(expected, ProblemKind.SEQ_GAP, f"events {expected}..{seq - 1} are missing")
            elif row[_PREV] != prev_hash:
                self.add(
                    seq,
                    ProblemKind.CHAIN_BROKEN,
                    "prev_hash does not match the previous event's row_hash",
                )
            if hash_row(row) != stored:
                self.add(
                    seq,
                    ProblemKind.HASH_MISMATCH,
                    "the event's content does not match its row_hash",
                )
            expected, prev_hash = seq + 1, stored
        self.expected, self.prev_hash = expected, prev_hash
        self.count += len(rows)

    def feed_documents(
        self,
        rows: Sequence[Sequence[Any]],
        exact_rows: Callable[[list[int]], Sequence[Sequence[Any]]],
    ) -> None:
        """Check rows of ``(seq, prev_hash, row_hash, document bytes)``, where the database
        built the hashed document (see :func:`sqlite_document_sql`). A row whose document does not
        hash to its row_hash is hashed again the exact way, from ``exact_rows(seqs)``: only
        that decides a mismatch, so the database's JSON encoder is never trusted alone."""
        expected, prev_hash = self.expected, self.prev_hash
        recheck: list[int] = []
        for seq, prev, stored, document in rows:
            if expected is None:
                self.first_seq, self.first_prev = seq, prev
            elif seq != expected:
                self.add(expected, ProblemKind.SEQ_GAP, f"events {expected}..{seq - 1} are missing")
            elif prev != prev_hash:
                self.add(
                    seq,
                    ProblemKind.CHAIN_BROKEN,
                    "prev_hash does not match the previous event's row_hash",
                )
            if _sha256(document).hexdigest() != stored:
                recheck.append(seq)
            expected, prev_hash = seq + 1, stored
        if recheck:
            for row in exact_rows(recheck):
                if hash_row(row) != row[_ROW_HASH]:
                    self.add(
                        row[_SEQ],
                        ProblemKind.HASH_MISMATCH,
                        "the event's content does not match its row_hash",
                    )
        self.expected, self.prev_hash = expected, prev_hash
        self.count += len(rows)

    @property
    def last_seq(self) -> int:
        return (self.expected or 1) - 1

    def absorb(self, part: RangeScan) -> None:
        """Append the scan of the next range, checking the seam between the two."""
        if part.count == 0:
            return
        assert part.first_seq is not None
        if self.expected is not None:
            if part.first_seq != self.expected:
                self.add(
                    self.expected,
                    ProblemKind.SEQ_GAP,
                    f"events {self.expected}..{part.first_seq - 1} are missing",
                )
            elif part.first_prev != self.prev_hash:
                self.add(
                    part.first_seq,
                    ProblemKind.CHAIN_BROKEN,
                    "prev_hash does not match the previous event's row_hash",
                )
        for problem in part.problems:
            self.add(problem.seq, problem.kind, problem.detail)
        self.omitted += part.omitted
        self.count += part.count
        self.expected, self.prev_hash = part.expected, part.prev_hash


def sqlite_range_query(columns: Iterable[str] = ROW_COLUMNS) -> str:
    return (
        f"SELECT {', '.join(columns)} FROM audit_events WHERE tenant_id = ? "  # noqa: S608
        "AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    )


def sqlite_document_sql() -> str:
    """SQL that builds each event's hashed document in SQLite (``json_object``, keys in
    the canonical order, timestamps in the canonical form).

    Building the document inside SQLite saves creating 23 Python objects per row, which is
    most of a scan's time. The bytes match the canonical encoding for what the service
    writes; where they do not (an unusual payload, a hand-written row), the row is hashed
    again the exact way (:meth:`RangeScan.feed_documents`). A match is sound because both
    are JSON encodings: equal bytes decode to equal values.
    """
    fields = []
    for name in HASHED_FIELDS:
        if name in ("occurred_at", "recorded_at"):
            value = f"substr({name}, 1, 10) || 'T' || substr({name}, 12) || '+00:00'"
        elif name in ("payload", "roles"):
            value = f"json({name})"
        else:
            value = name
        fields.append(f"'{name}', {value}")
    return (
        # As a BLOB: the document's UTF-8 bytes reach hashlib without a str in between.
        f"SELECT seq, prev_hash, row_hash, CAST(json_object({', '.join(fields)}) AS BLOB) "  # noqa: S608
        "FROM audit_events WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    )


def scan_sqlite_range(
    path: str,
    tenant_id: str,
    after: int,
    upto: int,
    batch_size: int = 10_000,
    limit: int = 100,
    *,
    documents_in_sql: bool = True,
) -> RangeScan:
    """Scan events ``after < seq <= upto`` of a SQLite file, read-only (worker process)."""
    scan = RangeScan(limit=limit)
    connection = sqlite3.connect(f"file:{quote(str(Path(path)))}?mode=ro", uri=True)
    exact = sqlite_range_query()
    by_seq = (
        f"SELECT {', '.join(ROW_COLUMNS)} FROM audit_events "  # noqa: S608
        "WHERE tenant_id = ? AND seq = ?"
    )

    def exact_rows(seqs: list[int]) -> list[Any]:
        return [connection.execute(by_seq, (tenant_id, seq)).fetchone() for seq in seqs]

    fast = sqlite_document_sql() if documents_in_sql else None
    try:
        while True:
            params = (tenant_id, after, upto, batch_size)
            if fast is not None:
                try:
                    documents = connection.execute(fast, params).fetchall()
                except sqlite3.Error:
                    # A value SQLite's JSON functions refuse (malformed JSON, a BLOB): this
                    # batch the exact way.
                    documents = None
                if documents is not None:
                    if not documents:
                        return scan
                    scan.feed_documents(documents, exact_rows)
                    after = documents[-1][0]
                    continue
            rows = connection.execute(exact, params).fetchall()
            if not rows:
                return scan
            scan.feed(rows)
            after = rows[-1][_SEQ]
    finally:
        connection.close()


#: Environment variable that hands a worker the PostgreSQL connection string (never argv:
#: other users of the machine can read a process's arguments).
POSTGRES_DSN_ENV = "ASSISTANT_AUDIT_SCAN_DSN"


def postgres_document_sql() -> str:
    """SQL that builds each event's hashed document in PostgreSQL (the keys in canonical
    order, strings through ``to_json``, timestamps in UTC with microseconds). Like
    :func:`sqlite_document_sql`, only ever trusted on a match."""
    parts = []
    for name in HASHED_FIELDS:
        if name in ("occurred_at", "recorded_at"):
            value = (
                f"to_json(to_char({name} AT TIME ZONE 'UTC', "
                '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'))::text'
            )
        elif name in ("payload", "roles"):
            value = name
        elif name in ("seq", "schema_version"):
            value = f"{name}::text"
        else:
            value = f"coalesce(to_json({name})::text, 'null')"
        parts.append(f"'\"{name}\":' || {value}")
    document = " || ',' || ".join(parts)
    return (
        f"SELECT seq, prev_hash, row_hash, '{{' || {document} || '}}' "  # noqa: S608
        "FROM audit_events WHERE tenant_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
    )


def scan_postgres_range(
    dsn: str,
    tenant_id: str,
    after: int,
    upto: int,
    batch_size: int = 10_000,
    limit: int = 100,
    *,
    documents_in_sql: bool = True,
) -> RangeScan:
    """Scan events ``after < seq <= upto`` on PostgreSQL in a read-only transaction."""
    import psycopg

    scan = RangeScan(limit=limit)
    exact = (
        f"SELECT {', '.join(ROW_COLUMNS)} FROM audit_events WHERE tenant_id = %s "  # noqa: S608
        "AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
    )
    by_seq = (
        f"SELECT {', '.join(ROW_COLUMNS)} FROM audit_events "  # noqa: S608
        "WHERE tenant_id = %s AND seq = ANY(%s) ORDER BY seq"
    )
    fast = postgres_document_sql() if documents_in_sql else None
    with psycopg.connect(dsn) as connection:
        connection.read_only = True
        with connection.cursor() as cursor:

            def exact_rows(seqs: list[int]) -> list[Any]:
                return cursor.execute(by_seq, (tenant_id, seqs)).fetchall()

            while True:
                params = (tenant_id, after, upto, batch_size)
                if fast is not None:
                    documents = cursor.execute(fast, params).fetchall()
                    if not documents:
                        return scan
                    scan.feed_documents(
                        [
                            (seq, prev, stored, text.encode())
                            for seq, prev, stored, text in documents
                        ],
                        exact_rows,
                    )
                    after = documents[-1][0]
                    continue
                rows = cursor.execute(exact, params).fetchall()
                if not rows:
                    return scan
                scan.feed(rows)
                after = rows[-1][_SEQ]


def scan_to_json(scan: RangeScan) -> str:
    return json.dumps(
        {
            "first_seq": scan.first_seq,
            "first_prev": scan.first_prev,
            "expected": scan.expected,
            "prev_hash": scan.prev_hash,
            "count": scan.count,
            "omitted": scan.omitted,
            "problems": [[p.seq, p.kind.value, p.detail] for p in scan.problems],
        }
    )


def scan_from_json(text: str, limit: int) -> RangeScan:
    data = json.loads(text)
    return RangeScan(
        expected=data["expected"],
        prev_hash=data["prev_hash"],
        limit=limit,
        first_seq=data["first_seq"],
        first_prev=data["first_prev"],
        count=data["count"],
        omitted=data["omitted"],
        problems=[
            Problem(seq, ProblemKind(kind), detail) for seq, kind, detail in data["problems"]
        ],
    )


def main(argv: list[str]) -> None:
    """``python -m governance.audit_scan PATH|postgres TENANT AFTER UPTO BATCH LIMIT``: JSON
    out. ``postgres`` reads the connection string from :data:`POSTGRES_DSN_ENV`."""
    path, tenant_id, after, upto, batch_size, limit = argv
    bounds = (int(after), int(upto), int(batch_size), int(limit))
    if path == "postgres":
        scan = scan_postgres_range(os.environ[POSTGRES_DSN_ENV], tenant_id, *bounds)
    else:
        scan = scan_sqlite_range(path, tenant_id, *bounds)
    sys.stdout.write(scan_to_json(scan))


if __name__ == "__main__":
    main(sys.argv[1:])
