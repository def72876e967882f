"""Workers for real: a process killed mid-execution, two workers racing on PostgreSQL,
and the procrastinate runner."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import system_principal
from governance.actions import ExecutionResult
from governance.audit_models import AuditEvent
from governance.models import Action
from governance.runner import ProcrastinateRunner, procrastinate_conninfo
from governance.service import Proposal
from governance.state import ActionState, execution_key, transition
from integrations.base import DraftRequest
from integrations.sandbox.models import SandboxMessage
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    TENANT,
    Clock,
    SandboxResolver,
    build_harness,
    copy_template,
    seeded_template,
)
from tests.fixtures.postgres import ADMIN_URL, _admin, async_url, require_or_skip

__all__ = ["seeded_template"]  # fixture

S = ActionState
REPO_ROOT = Path(__file__).resolve().parents[2]


def draft_args(i: int) -> dict[str, Any]:
    return {"to": [{"address": COLLEAGUE}], "subject": f"Note {i}", "body_text": "Hello."}


async def effects(sessions: async_sessionmaker[AsyncSession], action_id: str) -> int:
    async with sessions() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(SandboxMessage)
                    .where(SandboxMessage.idempotency_key == execution_key(action_id))
                )
            ).scalar_one()
        )


async def executions(sessions: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent.action_id, func.count())
                .where(AuditEvent.action == "action.executing")
                .group_by(AuditEvent.action_id)
            )
        ).all()
    return {str(a): int(n) for a, n in rows}


# --------------------------------------------------------------------------- crash


async def test_worker_killed_mid_execution_completes_exactly_once(
    seeded_template: Path, tmp_path: Path
) -> None:
    url = copy_template(seeded_template, tmp_path)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    try:
        clock = Clock(utcnow())
        harness = build_harness(sessions, clock)
        action = await harness.propose("email.draft.create", draft_args(1))
        assert action.state == S.SCHEDULED

        marker = tmp_path / "effect-done"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.governance_worker",
            url,
            str(marker),
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        try:
            for _ in range(600):  # the worker writes the marker after the external effect
                if marker.exists() or process.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            assert marker.exists(), "the worker never reached the effect"
            os.kill(process.pid, signal.SIGKILL)
            assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        killed = await harness.load(action.id)
        assert killed.state == S.EXECUTING and killed.claimed_by == "doomed-worker"
        assert await effects(sessions, action.id) == 1  # the effect happened, unrecorded

        # A restarted worker recovers the action once the dead worker's lease is over.
        assert await harness.executor.run_due() == 0
        clock.now = killed.lease_expires_at + timedelta(seconds=1)
        assert await harness.executor.run_due() == 1
        done = await harness.load(action.id)
        assert done.state == S.SUCCEEDED and done.attempts == 2
        assert done.external_ids["draft_id"] == marker.read_text()
        assert await effects(sessions, action.id) == 1  # the same draft, not a second one
        assert await harness.audit_count(action.id) == done.version
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A database of this module's own (procrastinate adds tables of its own to it)."""
    name = f"assistant_gov_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        require_or_skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    yield async_url(url)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(pg_url, pool_size=10)
    await upgrade(engine)
    async with engine.begin() as connection:  # each test starts from empty tables
        await connection.exec_driver_sql(
            "TRUNCATE governed_actions, sandbox_messages, sandbox_mailbox_state, "
            "sandbox_tombstones CASCADE"
        )
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.mark.postgres
async def test_two_workers_racing_execute_each_action_exactly_once(
    pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = Clock(utcnow())
    harness = build_harness(pg_sessions, clock)
    ids = []
    async with pg_sessions() as session, session.begin():
        proposer = system_principal(TENANT, "pipeline")
        for i in range(200):
            action = await harness.actions.propose(
                session,
                proposer,
                Proposal(
                    kind="email.draft.create", arguments=draft_args(i), on_behalf_of=EXECUTIVE
                ),
            )
            ids.append(action.id)

    # The sandbox creates its mailbox's change counter on first write, and two first
    # writes at once collide (a retry would follow): make that first write here.
    await harness.resolver.email.create_draft(DraftRequest(body_text="warm-up"))

    engines = [create_engine(pg_url, pool_size=4) for _ in range(2)]
    try:
        workers = [
            build_harness(create_session_factory(e), clock, worker_id=f"racer-{n}")
            for n, e in enumerate(engines)
        ]
        done = await asyncio.gather(*(w.executor.run_due(limit=1000) for w in workers))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(done) == 200
    async with pg_sessions() as session:
        states = dict(
            (await session.execute(select(Action.state, func.count()).group_by(Action.state))).all()
        )
        claimed_by = dict(
            (
                await session.execute(
                    select(AuditEvent.actor_id, func.count())
                    .where(AuditEvent.action == "action.succeeded")
                    .group_by(AuditEvent.actor_id)
                )
            ).all()
        )
    assert states == {S.SUCCEEDED.value: 200}
    runs = await executions(pg_sessions)
    assert runs == {action_id: 1 for action_id in ids}
    for action_id in ids:
        assert await effects(pg_sessions, action_id) == 1
    assert sum(claimed_by.values()) == 200


@pytest.mark.postgres
async def test_a_group_commit_records_each_success_by_its_own_compare_and_set(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Successes share one transaction (one UPDATE ... FROM VALUES, one audit append), yet
    each is a compare-and-set of its own: one whose lease was recovered meanwhile is left
    alone, the others are recorded, each with its one event."""
    clock = Clock(utcnow())
    harness = build_harness(pg_sessions, clock, connector_concurrency=3)
    for i in range(3):
        await harness.propose("email.draft.create", draft_args(i))
    _, claimed = await harness.executor._claim_batch(3)
    assert len(claimed) == 3
    lost = claimed[1]
    async with pg_sessions() as session, session.begin():  # another worker recovered it
        row = await session.get(Action, lost.id)
        assert row is not None
        await transition(
            session,
            row,
            S.SCHEDULED,
            actor=system_principal(TENANT, "executor:other"),
            now=clock.now,
            values={"claimed_by": None, "lease_expires_at": None},
        )
    loop = asyncio.get_running_loop()
    outcomes = [
        (
            action,
            ExecutionResult(external_ids={"draft_id": f"d{i}"}, result={"n": i}),
            loop.create_future(),
        )
        for i, action in enumerate(claimed)
    ]
    assert await harness.executor._record_successes(outcomes) == [True, False, True]
    for i, action in enumerate(claimed):
        stored = await harness.load(action.id)
        assert await harness.audit_count(action.id) == stored.version
        if action is lost:
            assert stored.state == S.SCHEDULED
            continue
        assert stored.state == S.SUCCEEDED and action.state == S.SUCCEEDED
        assert stored.version == action.version and stored.claimed_by is None
        assert stored.external_ids == {"draft_id": f"d{i}"} and stored.result == {"n": i}


@pytest.mark.postgres
async def test_the_sandbox_mailbox_writes_a_key_once_on_postgresql(
    pg_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The draft and the mailbox's change counter move in one statement on PostgreSQL; a
    second write of the same idempotency key answers the first draft and moves nothing."""
    mailbox = SandboxResolver(pg_sessions).email
    first = await mailbox.create_draft(DraftRequest(body_text="one", idempotency_key="k-1"))
    again = await mailbox.create_draft(DraftRequest(body_text="two", idempotency_key="k-1"))
    other = await mailbox.create_draft(DraftRequest(body_text="three"))
    assert again.id == first.id and again.text == "one" and other.id != first.id
    async with pg_sessions() as session:
        rows = (
            await session.execute(
                select(SandboxMessage.id, SandboxMessage.change_seq).order_by(
                    SandboxMessage.change_seq
                )
            )
        ).all()
        counter = (
            await session.execute(text("SELECT change_seq FROM sandbox_mailbox_state"))
        ).scalar_one()
    assert [tuple(r) for r in rows] == [(first.id, 1), (other.id, 2)]
    assert counter == 2


@pytest.mark.postgres
async def test_procrastinate_runner_runs_deferred_jobs_once(
    pg_url: str, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = Clock(utcnow())
    harness = build_harness(pg_sessions, clock)
    runner = ProcrastinateRunner(
        procrastinate_conninfo(pg_url),
        harness.executor,
        work=True,
        concurrency=2,
        tick_cron="0 0 1 1 *",
        poll_interval=0.2,
    )
    harness.executor.notify = runner.notify
    await runner.start()
    try:
        action = await harness.propose("email.draft.create", draft_args(1))
        # A duplicate delivery of the same job: the row's compare-and-set makes it a no-op.
        await runner.notify(action.id, utcnow())
        await runner.notify(action.id, utcnow())
        for _ in range(400):
            if (await harness.load(action.id)).state == S.SUCCEEDED:
                break
            await asyncio.sleep(0.05)
        for _ in range(200):  # and let the duplicate jobs finish too
            async with pg_sessions() as session:
                pending = (
                    await session.execute(
                        text(
                            "SELECT count(*) FROM procrastinate_jobs "
                            "WHERE status IN ('todo', 'doing')"
                        )
                    )
                ).scalar_one()
            if pending == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED
    assert await effects(pg_sessions, action.id) == 1
    assert (await executions(pg_sessions))[action.id] == 1
