"""Benchmarks of the governance layer, measured side by side in one run.

Audit append (``measure_audit_append``): the same events (a realistic governed-action
payload with a secret to redact) are written two ways into the same database:

- chained: ``governance.audit.record`` (chain-head lock, redaction, SHA-256 chain, the
  insert trigger's head check, a signed checkpoint every 1,000 events);
- plain: the same row, built by the same code (``governance.audit.event_row``: redaction,
  canonical JSON) and INSERTed into a copy of the events table with the same columns and
  indexes but no chain, no triggers, no lock.

Both write in transactions of 100 events (one commit each), alternating batch by batch, so
that load on the machine hits both alike. The ratio is chained time / plain time. A real
service mostly writes one to three events per request transaction; that case (one event
per transaction, where the lock's extra statements are not amortized) is printed too, for
information. Run on SQLite (a temporary file) and on PostgreSQL (a throwaway database on
ASSISTANT_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres).

Audit verify (``measure_audit_verify``): 1,000,000 chained events of one tenant are
generated directly (hashes precomputed, executemany through sqlite3, not via record()),
with a checkpoint every 1,000 events; then ``governance.audit_verify.verify_chain`` runs
over them, timed alone: first as deployed (a chain this long is split between worker
processes, one per core), then in one process. CPU seconds are printed beside the wall
time, since a shared machine's load moves the latter. Beside it, per CPU second: plain
SHA-256 (``hashlib``) over the same bytes, every event's canonical document already in
memory (the floor no verifier goes below); and the event loop's worst stall while verify
runs (worker processes, a thread, no verify). Side by side by the wall clock, in the same
run: verify with 1 and with 2 worker processes, and plain SHA-256 over the same bytes split
between 1 and 2 processes that start hashing together; ``uptime`` before and after, since
neighbours on a shared machine move every wall-clock figure.

Policy (``measure_policy``): decisions per second of the engine on
config/policies.example.yaml over ten inputs stopping at different rules (explanations
included); the target is 50,000/s.

Executor (``measure_executor``): executed actions per second on PostgreSQL with 1 and with
4 workers racing over the same 400 due actions (sandbox mailbox as the connector).

The last line is ``governance chain_vs_plain=<worse of the two backends>
verify_events_per_s=<n> policy_per_s=<n|n/a> executor_actions_per_s=1w:<n>,4w:<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Column, Index, MetaData, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncSession

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from assistant.core.clock import utcnow  # noqa: E402
from assistant.core.db import create_engine, create_session_factory, upgrade  # noqa: E402
from assistant.core.principal import Principal, Role  # noqa: E402
from governance.audit import (  # noqa: E402
    AuditAction,
    AuditEventIn,
    event_row,
    record,
    stamp,
)
from governance.audit_hash import (  # noqa: E402
    GENESIS_HASH,
    HASHED_FIELDS,
    hash_row,
)
from governance.audit_models import EVENTS  # noqa: E402
from governance.checkpoints import CheckpointConfig, signing_key  # noqa: E402

TARGET_POLICY_PER_S = 50_000
#: Executed sandbox actions per second and per worker.
TARGET_EXECUTOR_PER_WORKER_S = 200

PG_ADMIN_URL = os.environ.get(
    "ASSISTANT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# ----------------------------------------------------------------------- audit append


def _plain_table(metadata: MetaData) -> Table:
    """A copy of audit_events: same columns, keys and indexes; no triggers."""
    columns = [Column(c.name, c.type, nullable=c.nullable) for c in EVENTS.columns]
    table = Table(
        "bench_plain_events",
        metadata,
        *columns,
        PrimaryKeyConstraint("tenant_id", "seq", name="pk_bench_plain_events"),
        UniqueConstraint("event_id", name="uq_bench_plain_events_event_id"),
    )
    for index in EVENTS.indexes:
        Index(
            index.name.replace("audit_events", "bench_plain"),  # type: ignore[union-attr]
            *[table.c[c.name] for c in index.columns],
        )
    return table


def _events(count: int) -> list[AuditEventIn]:
    return [
        AuditEventIn(
            action=AuditAction.ACTION_APPROVED,
            resource_type="action",
            resource_id=uuid.uuid4().hex,
            connector="sandbox-mail",
            action_id=uuid.uuid4().hex,
            reason="approved by the delegate",
            idempotency_key=uuid.uuid4().hex,
            payload={
                "kind": "email.send",
                "arguments": {
                    "to": ["bob@example.com"],
                    "subject": f"Quarterly numbers {i}",
                    "body": "Hi Bob, please find the figures attached.",
                    "api_key": "sk-live-secret",
                },
                "policy": {"rule": "external-mail-needs-review", "version": 3},
            },
        )
        for i in range(count)
    ]


async def _append_rounds(url: str, rows: int, batch: int, key_dir: Path) -> dict[str, float]:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        metadata = MetaData()
        plain = _plain_table(metadata)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        sessions = create_session_factory(engine)
        actor = Principal(
            user_id="delegate@example.com",
            tenant_id="bench",
            roles=frozenset({Role.DELEGATE}),
            on_behalf_of="exec@example.com",
            source_ip="127.0.0.1",
        )
        config = CheckpointConfig(key_file=key_dir / "bench_ed25519.pem", every_events=1000)
        signing_key(config.key_file)  # created before timing starts
        events = _events(rows)
        plain_seq = 0

        async def chained(session: AsyncSession, chunk: list[AuditEventIn]) -> None:
            for event in chunk:
                await record(session, actor, event, checkpoints=config)

        async def plain_insert(session: AsyncSession, chunk: list[AuditEventIn]) -> None:
            nonlocal plain_seq
            for event in chunk:
                plain_seq += 1
                values = event_row(actor, event)
                stamp(values, utcnow())
                values.update(seq=plain_seq, prev_hash="", row_hash="")
                await session.execute(sa_insert(plain), values)

        async def timed(
            write: Callable[[AsyncSession, list[AuditEventIn]], Any], chunk: list[AuditEventIn]
        ) -> float:
            started = time.perf_counter()
            async with sessions() as session:
                await write(session, chunk)
                await session.commit()
            return time.perf_counter() - started

        # Warm-up (connections, statement caches), not timed.
        await timed(chained, _events(batch))
        await timed(plain_insert, _events(batch))
        totals = {"chained": 0.0, "plain": 0.0}
        for start in range(0, rows, batch):
            chunk = events[start : start + batch]
            totals["chained"] += await timed(chained, chunk)
            totals["plain"] += await timed(plain_insert, chunk)
        singles = {"chained": 0.0, "plain": 0.0}
        single_rows = max(rows // 10, 1)
        for event in _events(single_rows):
            singles["chained"] += await timed(chained, [event])
            singles["plain"] += await timed(plain_insert, [event])
        return {
            "chained_per_s": rows / totals["chained"],
            "plain_per_s": rows / totals["plain"],
            "ratio": totals["chained"] / totals["plain"],
            "single_ratio": singles["chained"] / singles["plain"],
            "single_chained_ms": singles["chained"] / single_rows * 1000,
            "single_plain_ms": singles["plain"] / single_rows * 1000,
        }
    finally:
        await engine.dispose()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def measure_audit_append(
    backend: str, rows: int = 5000, batch: int = 100
) -> dict[str, float]:
    """Chained vs plain append on ``backend`` ("sqlite" or "postgresql")."""
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            return await _append_rounds(
                f"sqlite+aiosqlite:///{tmp}/bench.db", rows, batch, Path(tmp)
            )
        name = f"bench_governance_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        try:
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
            return await _append_rounds(
                url.replace("postgresql://", "postgresql+asyncpg://", 1), rows, batch, Path(tmp)
            )
        finally:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------------- audit verify


def _generate_chain(path: Path, events: int, key_file: Path, every: int = 1000) -> None:
    """Write ``events`` chained events of tenant "bench" straight into the SQLite file."""
    from governance.checkpoints import checkpoint_message, fingerprint

    key = signing_key(key_file)
    key_fingerprint = fingerprint(key.public_key())
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    # Bulk load: the per-row head check of the insert trigger is skipped, the head set at
    # the end (the verifier does not rely on the trigger).
    connection.execute("DROP TRIGGER audit_events_chain")
    columns = (*HASHED_FIELDS, "row_hash")
    insert = (
        f"INSERT INTO audit_events ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    index = {name: i for i, name in enumerate(HASHED_FIELDS)}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    prev = GENESIS_HASH
    chunk: list[tuple[Any, ...]] = []
    checkpoints: list[tuple[Any, ...]] = []
    for seq in range(1, events + 1):
        stamp = (base + timedelta(milliseconds=seq)).strftime("%Y-%m-%d %H:%M:%S.%f")
        values: list[Any] = [None] * len(HASHED_FIELDS)
        values[index["action"]] = "action.approved"
        values[index["action_id"]] = f"{seq:032x}"
        values[index["actor_id"]] = "delegate@example.com"
        values[index["actor_type"]] = "user"
        values[index["connector"]] = "sandbox-mail"
        values[index["correlation_id"]] = f"c{seq:031x}"
        values[index["event_id"]] = uuid.UUID(int=seq).hex
        values[index["occurred_at"]] = stamp
        values[index["on_behalf_of"]] = "exec@example.com"
        values[index["outcome"]] = "success"
        values[index["payload"]] = (
            '{"arguments":{"api_key":"[REDACTED]","subject":"Numbers '
            f'{seq}","to":["bob@example.com"]}},"kind":"email.send"}}'
        )
        values[index["prev_hash"]] = prev
        values[index["reason"]] = "approved by the delegate"
        values[index["recorded_at"]] = stamp
        values[index["resource_id"]] = f"{seq:032x}"
        values[index["resource_type"]] = "action"
        values[index["roles"]] = '["delegate"]'
        values[index["schema_version"]] = 1
        values[index["seq"]] = seq
        values[index["source_ip"]] = "127.0.0.1"
        values[index["tenant_id"]] = "bench"
        prev = hash_row(values)
        chunk.append((*values, prev))
        if seq % every == 0:
            created = base + timedelta(milliseconds=seq)
            signature = key.sign(
                checkpoint_message("bench", seq, prev, created, key_fingerprint)
            ).hex()
            checkpoints.append(
                (
                    "bench",
                    seq,
                    prev,
                    created.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    signature,
                    key_fingerprint,
                )
            )
        if len(chunk) >= 50_000:
            connection.executemany(insert, chunk)
            chunk.clear()
    connection.executemany(insert, chunk)
    connection.executemany(
        "INSERT INTO audit_checkpoints (tenant_id, seq, row_hash, "
        "created_at, signature, key_fingerprint) VALUES (?, ?, ?, ?, ?, ?)",
        checkpoints,
    )
    connection.execute(
        "INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash) VALUES ('bench', ?, ?)",
        (events, prev),
    )
    connection.commit()
    connection.close()


def _cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the verify workers)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _plain_sha256(path: Path) -> float:
    """Events per CPU second of hashlib.sha256 alone over the very bytes verify hashes (each
    event's canonical document, read into memory first), in one process."""
    import hashlib

    from governance.audit_scan import sqlite_document_sql

    connection = sqlite3.connect(path)
    try:
        documents = [
            row[3] for row in connection.execute(sqlite_document_sql(), ("bench", 0, 2**62, 2**62))
        ]
    finally:
        connection.close()
    sha256 = hashlib.sha256
    started = time.process_time()
    for document in documents:
        sha256(document).hexdigest()
    # CPU time: on a shared machine the wall clock measures the neighbours.
    return len(documents) / (time.process_time() - started)


def _hash_range(path: str, after: int, upto: int, barrier: Any, results: Any) -> None:
    """One process of the wall-clock baseline: load its share of the documents, wait for
    the others, then hash them; report (start, end, CPU seconds, events)."""
    import hashlib

    from governance.audit_scan import sqlite_document_sql

    connection = sqlite3.connect(path)
    try:
        documents = [
            row[3]
            for row in connection.execute(sqlite_document_sql(), ("bench", after, upto, 2**62))
        ]
    finally:
        connection.close()
    sha256 = hashlib.sha256
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for document in documents:
        sha256(document).hexdigest()
    results.put((started, time.perf_counter(), time.process_time() - cpu, len(documents)))


def _plain_sha256_wall(path: Path, events: int, processes: int) -> float:
    """Events per second, by the wall clock, of plain SHA-256 over the same bytes verify
    hashes, split between ``processes`` processes that start hashing together (the
    documents already in memory): the floor beside verify's wall-clock figure."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no fork of this threaded process
    barrier = context.Barrier(processes)
    results = context.Queue()
    bounds = [events * i // processes for i in range(processes + 1)]
    workers = [
        context.Process(
            target=_hash_range, args=(str(path), bounds[i], bounds[i + 1], barrier, results)
        )
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    parts = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    wall = max(end for _, end, _, _ in parts) - min(start for start, _, _, _ in parts)
    return sum(count for *_, count in parts) / wall


async def _loop_stalls(engine: Any, public: Any) -> dict[str, float]:
    """The longest the event loop went unserved (a 5 ms ticker's worst lateness) while
    verify ran: hashing in worker processes, in a thread, and with no verify at all."""
    from governance.audit_verify import verify_chain

    async def worst_lateness(work: Any) -> float:
        worst = 0.0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal worst
            while not done.is_set():
                started = time.perf_counter()
                await asyncio.sleep(0.005)
                worst = max(worst, time.perf_counter() - started - 0.005)

        task = asyncio.create_task(ticker())
        try:
            await work()
        finally:
            done.set()
            await task
        return worst * 1000

    async def run(minimum: int) -> None:
        async with create_session_factory(engine)() as session:
            await verify_chain(session, "bench", public_keys=[public], parallel_min_events=minimum)

    return {
        "workers": await worst_lateness(lambda: run(0)),
        "thread": await worst_lateness(lambda: run(2**62)),
        "idle": await worst_lateness(lambda: asyncio.sleep(2)),
    }


async def measure_audit_verify(events: int = 1_000_000) -> dict[str, float]:
    """Events per second of verify_chain over a generated chain on SQLite."""
    from governance.audit_verify import PARALLEL_MIN_EVENTS, default_workers, verify_chain
    from governance.checkpoints import load_public_key

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "verify.db"
        key_file = Path(tmp) / "verify_ed25519.pem"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()
        started = time.perf_counter()
        _generate_chain(path, events, key_file)
        generated = time.perf_counter() - started
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            public = load_public_key(key_file)
            assert public is not None
            timings: dict[int, float] = {}
            cpu: dict[int, float] = {}
            for workers in dict.fromkeys((default_workers(), 2, 1)):
                async with create_session_factory(engine)() as session:
                    started, cpu_started = time.perf_counter(), _cpu_seconds()
                    report = await verify_chain(
                        session, "bench", public_keys=[public], workers=workers
                    )
                    timings[workers] = time.perf_counter() - started
                    cpu[workers] = _cpu_seconds() - cpu_started
                if not report.ok or report.events != events:
                    raise RuntimeError(f"verification failed on generated data: {report.to_dict()}")
            plain = _plain_sha256(path)
            plain_wall = {n: _plain_sha256_wall(path, events, n) for n in (1, 2)}
            lag = await _loop_stalls(engine, public)
        finally:
            await engine.dispose()
        workers = default_workers() if events >= PARALLEL_MIN_EVENTS else 1
        return {
            "plain_wall_1_per_s": plain_wall[1],
            "plain_wall_2_per_s": plain_wall[2],
            "verify_wall_2_per_s": events / timings[2],
            "verify_cpu_2_per_s": events / cpu[2],
            "plain_sha256_per_s": plain,
            "stall_workers_ms": lag["workers"],
            "stall_thread_ms": lag["thread"],
            "stall_idle_ms": lag["idle"],
            "events": events,
            "workers": workers,
            "seconds": timings[default_workers()],
            "events_per_s": events / timings[default_workers()],
            "sequential_seconds": timings[1],
            "sequential_events_per_s": events / timings[1],
            "sequential_events_per_cpu_s": events / cpu[1],
            "cpu_seconds": cpu[default_workers()],
            "events_per_cpu_s": events / cpu[default_workers()],
            "generate_seconds": generated,
            "checkpoints": report.checkpoints,
        }


# ----------------------------------------------------------------------------- policy


def _policy_inputs() -> list[Any]:
    from decimal import Decimal

    from governance.policy import Autonomy, PolicyInput

    day = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    night = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    inside = ("raj.patel@northwind.example", "marcus.chen@northwind.example")
    outside = ("greg.lawson@fabrikam.example",)
    many = tuple(f"p{i}@fabrikam.example" for i in range(25))
    base = {
        "tenant": "default",
        "actor": "pipeline",
        "on_behalf_of": "dana.whitfield@northwind.example",
    }
    cases: list[tuple[str, dict[str, Any]]] = [
        ("email.send", {"recipients": inside, "at": day}),
        ("email.send", {"recipients": outside, "at": day}),
        ("email.send", {"recipients": outside, "at": night}),
        ("email.send", {"recipients": many, "at": day}),
        ("email.draft.create", {"recipients": outside, "at": day}),
        ("calendar.event.create", {"recipients": inside, "at": day}),
        ("calendar.event.cancel", {"recipients": None, "at": day}),
        ("erp.po.approve", {"amount": Decimal("25000"), "at": day}),
        ("erp.po.approve", {"amount": Decimal("120"), "at": day}),
        ("shell.exec", {"at": day}),
    ]
    return [
        PolicyInput(
            kind=kind, capability=kind.split(".")[0], autonomy=Autonomy.AUTO, **base, **extra
        )
        for kind, extra in cases
    ]


def measure_policy(decisions: int = 200_000) -> float | None:
    """Policy decisions per second on config/policies.example.yaml (explanations included),
    over ten inputs that stop at different rules (first, middle, last, none)."""
    from governance.policy import load_policy

    policy = load_policy(REPO / "config" / "policies.example.yaml")
    inputs = _policy_inputs()
    for request in inputs:  # warm up (zone data, regex caches)
        policy.evaluate(request)
    rounds = max(1, decisions // len(inputs))
    started = time.perf_counter()
    for _ in range(rounds):
        for request in inputs:
            policy.evaluate(request)
    elapsed = time.perf_counter() - started
    rate = rounds * len(inputs) / elapsed
    print(
        f"policy: {rounds * len(inputs)} decisions over {len(policy.rule_ids)} rules in "
        f"{elapsed:.2f} s = {rate:,.0f} decisions/s (target {TARGET_POLICY_PER_S:,.0f})"
    )
    return rate


# --------------------------------------------------------------------------- executor

_EXECUTOR_POLICY = """
internal_domains: [northwind.example]
defaults: {autonomy: auto}
rules:
  - {id: drafts, when: {kinds: [email.draft.create]}, decision: allow}
"""


class _SandboxMail:
    """Each tenant's sandbox mailbox, as the executor's resolver."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.mailboxes: dict[str, Any] = {}

    def get(
        self,
        tenant_id: str,
        capability: Any,
        name: str | None = None,
        *,
        executive: str | None = None,
    ) -> Any:
        from integrations.sandbox.email import SandboxEmailConnector

        if tenant_id not in self.mailboxes:
            self.mailboxes[tenant_id] = SandboxEmailConnector(
                tenant_id=tenant_id, mailbox="dana@northwind.example", session_factory=self.sessions
            )
        return self.mailboxes[tenant_id]


async def measure_executor(workers: int, actions: int = 400, tenants: int = 1) -> float:
    """Executed actions per second on PostgreSQL: ``actions`` due email.draft.create
    actions (allowed, no hold window) spread over ``tenants``, run by ``workers``
    executors, each with its own connection pool, racing over the same rows (SKIP LOCKED).
    Per action: its share of a batch claim (one transaction and audit append for up to
    32), the sandbox's draft write (its own transaction), and its share of a group commit
    of successes (one transaction and audit append). Within one tenant, the audit chain's
    lock and the mailbox's change counter serialize those writes; per worker, at most
    ``connector_concurrency`` (2) drafts of a mailbox run at once."""
    from assistant.core.principal import system_principal
    from assistant.core.settings import GovernanceSettings
    from governance.executor import Executor
    from governance.policy import PolicyStore, parse_policy
    from governance.service import ActionService, Proposal

    name = f"bench_exec_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    url = f"{url}/{name}"
    engines = []
    try:
        engine = create_engine(url, pool_size=workers + 2)
        engines.append(engine)
        await upgrade(engine)
        sessions = create_session_factory(engine)
        settings = GovernanceSettings(runner="off")
        seeder = Executor(sessions, _SandboxMail(sessions), settings, worker_id="seed")
        service = ActionService(
            PolicyStore(policy=parse_policy(_EXECUTOR_POLICY)), seeder, settings
        )
        async with sessions() as session, session.begin():
            for i in range(actions):
                proposer = system_principal(f"bench-{i % tenants}", "pipeline")
                await service.propose(
                    session,
                    proposer,
                    Proposal(
                        kind="email.draft.create",
                        arguments={
                            "to": [{"address": "raj@northwind.example"}],
                            "subject": f"n{i}",
                            "body_text": "Benchmark.",
                        },
                    ),
                )
        # The sandbox creates a mailbox's change counter on its first write; two first
        # writes at once collide and one retries. Make the first writes untimed.
        from integrations.base import DraftRequest

        warm = _SandboxMail(sessions)
        for t in range(tenants):
            await warm.get(f"bench-{t}", None).create_draft(DraftRequest(body_text="warm"))
        runners = []
        for n in range(workers):
            worker_engine = create_engine(url, pool_size=2)
            engines.append(worker_engine)
            worker_sessions = create_session_factory(worker_engine)
            runners.append(
                Executor(
                    worker_sessions, _SandboxMail(worker_sessions), settings, worker_id=f"bench-{n}"
                )
            )
        started = time.perf_counter()
        done = await asyncio.gather(*(r.run_due(limit=actions) for r in runners))
        elapsed = time.perf_counter() - started
        from sqlalchemy import func, select

        from governance.audit_models import AuditEvent
        from governance.models import Action

        async with sessions() as session:
            states = dict(
                (
                    await session.execute(select(Action.state, func.count()).group_by(Action.state))
                ).all()
            )
            retries = (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action == "action.retry_scheduled")
                )
            ).scalar_one()
        assert states == {"succeeded": actions}, states
        rate = actions / elapsed
        print(
            f"  {workers} worker(s), {tenants} tenant(s): {actions} actions in "
            f"{elapsed:.2f} s = "
            f"{rate:.0f} actions/s (runs per worker: {', '.join(str(d) for d in done)}; "
            f"retries: {retries})"
        )
        return rate
    finally:
        for engine in engines:
            await engine.dispose()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------- main


def _uptime() -> str:
    """`uptime`'s line: on a shared machine, the load beside each figure."""
    import subprocess

    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=5000, help="events per append run")
    parser.add_argument("--batch", type=int, default=100, help="events per transaction")
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument(
        "--only",
        choices=["append", "verify", "policy", "executor"],
        action="append",
        help="run only these measurements (repeatable)",
    )
    args = parser.parse_args(argv)
    # Checkpoint log lines would time the terminal, not the code.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    only = set(args.only or ["append", "verify", "policy", "executor"])
    chain_text = verify_text = policy_text = executor_text = "n/a"

    if "append" in only:
        ratios: list[float] = []
        print(
            f"audit append: {args.rows} events per backend, transactions of {args.batch}, "
            "chained (record) vs plain INSERT of the same rows, alternating batches"
        )
        for backend in ("sqlite", *(() if args.no_postgres else ("postgresql",))):
            result = asyncio.run(measure_audit_append(backend, args.rows, args.batch))
            ratios.append(result["ratio"])
            print(
                f"  {backend:<10} chained {result['chained_per_s']:7.0f} ev/s  plain "
                f"{result['plain_per_s']:7.0f} ev/s  ratio {result['ratio']:.2f}x  "
                f"(one event per transaction: {result['single_chained_ms']:.2f} ms vs "
                f"{result['single_plain_ms']:.2f} ms, {result['single_ratio']:.2f}x)"
            )
        chain_text = f"{max(ratios):.2f}"

    if "verify" in only:
        uptime_before = _uptime()
        verify = asyncio.run(measure_audit_verify(args.verify_events))
        print(
            f"audit verify: {verify['events']:.0f} events, {verify['checkpoints']:.0f} "
            f"checkpoints on SQLite (generated in {verify['generate_seconds']:.1f} s)"
        )
        print(
            f"  {verify['workers']:.0f} worker processes: {verify['seconds']:.2f} s = "
            f"{verify['events_per_s']:.0f} events/s ({verify['cpu_seconds']:.1f} CPU s in "
            "all processes); one process: "
            f"{verify['sequential_seconds']:.2f} s = "
            f"{verify['sequential_events_per_s']:.0f} events/s "
            f"({verify['sequential_events_per_cpu_s']:.0f} events per CPU second); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        cores = min(os.cpu_count() or 1, verify["workers"])
        print(
            f"  per CPU second: verify {verify['events_per_cpu_s']:.0f} events (all processes, "
            f"parents included), plain SHA-256 over the same bytes (documents in memory) "
            f"{verify['plain_sha256_per_s']:.0f} events; verify / plain = "
            f"{verify['events_per_cpu_s'] / verify['plain_sha256_per_s']:.2f}; "
            f"on {cores:.0f} idle cores verify would do ~{verify['events_per_cpu_s'] * cores:.0f}"
            " events/s"
        )
        print(
            "  wall clock, side by side in this run (events/s): plain SHA-256 over the same "
            f"bytes: 1 process {verify['plain_wall_1_per_s']:.0f}, 2 processes "
            f"{verify['plain_wall_2_per_s']:.0f}; verify: 1 process "
            f"{verify['sequential_events_per_s']:.0f}, 2 processes "
            f"{verify['verify_wall_2_per_s']:.0f}; verify / plain: 1 process "
            f"{verify['sequential_events_per_s'] / verify['plain_wall_1_per_s']:.2f}, "
            f"2 processes {verify['verify_wall_2_per_s'] / verify['plain_wall_2_per_s']:.2f}"
        )
        print(
            f"  per CPU second: verify 1 process {verify['sequential_events_per_cpu_s']:.0f}, "
            f"2 processes {verify['verify_cpu_2_per_s']:.0f} events"
        )
        print(f"  uptime before: {uptime_before}")
        print(f"  uptime after:  {_uptime()}")
        print(
            "  event loop's worst stall while verify runs: worker processes "
            f"{verify['stall_workers_ms']:.1f} ms, thread {verify['stall_thread_ms']:.1f} ms "
            f"(no verify: {verify['stall_idle_ms']:.1f} ms)"
        )
        verify_text = f"{verify['events_per_s']:.0f}"

    if "policy" in only:
        policy = measure_policy()
        policy_text = "n/a" if policy is None else f"{policy:.0f}"
        if policy is not None:
            print(
                f"  policy >= {TARGET_POLICY_PER_S:,}/s "
                f"{'met' if policy >= TARGET_POLICY_PER_S else 'NOT met'} ({policy:,.0f})"
            )

    if "executor" in only and not args.no_postgres:
        print("executor on PostgreSQL: due actions run through the sandbox mailbox")
        rates = {workers: asyncio.run(measure_executor(workers)) for workers in (1, 4)}
        spread = asyncio.run(measure_executor(4, tenants=4))
        executor_text = ",".join(f"{w}w:{r:.0f}" for w, r in rates.items()) + f",4w4t:{spread:.0f}"
        per_worker = rates[1]
        print(
            f"  executor >= {TARGET_EXECUTOR_PER_WORKER_S}/s per worker "
            f"{'met' if per_worker >= TARGET_EXECUTOR_PER_WORKER_S else 'NOT met'} "
            f"({per_worker:.0f}, one worker)"
        )

    print(
        f"governance chain_vs_plain={chain_text} verify_events_per_s={verify_text} "
        f"policy_per_s={policy_text} executor_actions_per_s={executor_text}"
    )


if __name__ == "__main__":
    main()
