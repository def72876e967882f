"""Workers that heal, on PostgreSQL: a database outage (a cut TCP proxy, not a stopped
server), a worker killed with jobs in ``doing``, and ``serve`` executing on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import Role
from assistant.core.settings import Settings
from governance.models import Action
from governance.runner import ProcrastinateRunner, procrastinate_conninfo
from governance.state import ActionState
from tests.conftest import SEED_DIR
from tests.fakes.serving import free_port
from tests.fixtures.auth import as_role
from tests.fixtures.governance import COLLEAGUE, EXECUTIVE, TEST_POLICY, Clock, build_harness
from tests.fixtures.postgres import ADMIN_URL, _admin, async_url, require_or_skip
from tests.fixtures.tcp_proxy import TcpProxy

S = ActionState
REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


def draft_args(i: int) -> dict[str, Any]:
    return {"to": [{"address": COLLEAGUE}], "subject": f"Note {i}", "body_text": "Hello."}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A database of this module's own (procrastinate adds tables of its own to it)."""
    name = f"assistant_heal_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        require_or_skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    yield async_url(ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_sessions(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(pg_url)
    await upgrade(engine)
    async with engine.begin() as connection:
        await connection.exec_driver_sql(
            "TRUNCATE governed_actions, sandbox_messages, sandbox_mailbox_state, "
            "sandbox_tombstones, governance_workers CASCADE"
        )
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy.to_url(pg_url)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def state_of(sessions: async_sessionmaker[AsyncSession], action_id: str) -> str:
    async with sessions() as session:
        action = await session.get(Action, action_id)
        assert action is not None
        return action.state


async def wait_for_state(
    sessions: async_sessionmaker[AsyncSession], action_id: str, state: S, seconds: float
) -> str:
    for _ in range(int(seconds * 10)):
        current = await state_of(sessions, action_id)
        if current == state:
            return current
        await asyncio.sleep(0.1)
    return await state_of(sessions, action_id)


async def test_a_worker_survives_a_database_outage_and_resumes(
    pg_url: str, pg_sessions: async_sessionmaker[AsyncSession], proxy: TcpProxy
) -> None:
    clock = Clock(utcnow())
    # The worker reaches the database only through the proxy; the test's own side does not.
    worker_engine = create_engine(proxy.url(pg_url))
    worker = build_harness(create_session_factory(worker_engine), clock, worker_id="survivor")
    runner = ProcrastinateRunner(
        procrastinate_conninfo(proxy.url(pg_url)),
        worker.executor,
        work=True,
        concurrency=2,
        tick_cron="0 0 1 1 *",
        poll_interval=0.2,
    )
    deferrer = ProcrastinateRunner(procrastinate_conninfo(pg_url), None, work=False)
    proposer = build_harness(pg_sessions, clock)
    proposer.executor.notify = deferrer.notify
    await deferrer.start()
    await runner.start()
    try:
        first = await proposer.propose("email.draft.create", draft_args(1))
        assert await wait_for_state(pg_sessions, first.id, S.SUCCEEDED, 30) == S.SUCCEEDED

        await proxy.cut()
        await asyncio.sleep(6)  # longer than the 5 s that used to stop workers for good
        await proxy.restore()

        second = await proposer.propose("email.draft.create", draft_args(2))
        assert await wait_for_state(pg_sessions, second.id, S.SUCCEEDED, 60) == S.SUCCEEDED
    finally:
        await runner.stop()
        await deferrer.stop()
        await worker_engine.dispose()


async def test_jobs_left_doing_by_a_killed_worker_are_put_back(
    pg_url: str, pg_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = Clock(utcnow())
    deferrer = ProcrastinateRunner(procrastinate_conninfo(pg_url), None, work=False)
    await deferrer.start()
    proposer = build_harness(pg_sessions, clock)
    proposer.executor.notify = deferrer.notify
    marker = tmp_path / "effect-made"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.procrastinate_worker",
        pg_url,
        str(marker),
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        action = await proposer.propose("email.draft.create", draft_args(1))
        for _ in range(300):
            if marker.exists() or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert marker.exists(), "the worker never reached the effect"
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()

        async def doing() -> int:
            async with pg_sessions() as session:
                return int(
                    (
                        await session.execute(
                            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")
                        )
                    ).scalar_one()
                )

        assert await doing() == 1
        rescuer = ProcrastinateRunner(
            procrastinate_conninfo(pg_url), None, work=False, stalled_after_seconds=1
        )
        await rescuer.start()
        try:
            await asyncio.sleep(1.5)  # the killed worker's last heartbeat ages past 1 s
            assert await rescuer.retry_stalled_jobs() == 1
        finally:
            await rescuer.stop()
        assert await doing() == 0
        assert await state_of(pg_sessions, action.id) == S.EXECUTING  # its lease decides
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await deferrer.stop()


@pytest.fixture
def pg_settings(pg_url: str, tmp_path: Path) -> Settings:
    policy = tmp_path / "policies.yaml"
    policy.write_text(TEST_POLICY)
    return Settings(
        data_dir=tmp_path,
        database={"url": pg_url},
        sandbox={"seed_dir": SEED_DIR},
        governance={"policy_file": policy, "heartbeat_seconds": 0.5, "poll_interval_seconds": 0.2},
    )


async def test_serve_executes_actions_on_postgresql_and_readyz_sees_its_worker(
    pg_settings: Settings, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    from asgi_lifespan import LifespanManager

    from assistant.app import create_app

    app = create_app(pg_settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            http.app = app  # type: ignore[attr-defined]
            as_role(http, Role.EXECUTIVE, user_id=EXECUTIVE)
            created = await http.post(
                "/api/v1/actions", json={"kind": "email.draft.create", "arguments": draft_args(1)}
            )
            assert created.status_code == 201, created.text
            action_id = created.json()["id"]
            assert await wait_for_state(pg_sessions, action_id, S.SUCCEEDED, 30) == S.SUCCEEDED
            ready = (await http.get("/readyz")).json()
    assert ready["checks"]["workers"]["status"] == "ok"
    assert ready["checks"]["workers"]["runners"] == ["procrastinate"]


async def test_without_a_worker_readyz_says_so(
    pg_settings: Settings, pg_sessions: async_sessionmaker[AsyncSession]
) -> None:
    from asgi_lifespan import LifespanManager

    from assistant.app import create_app

    settings = pg_settings.model_copy(
        update={"governance": pg_settings.governance.model_copy(update={"embedded_worker": False})}
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            answer = await http.get("/readyz")
    body = answer.json()
    assert answer.status_code == 200
    assert body["checks"]["workers"]["status"] == "missing"
    assert body["status"] == "degraded"


async def test_reads_during_an_outage_answer_503_and_keep_the_connection(
    pg_url: str,
    pg_settings: Settings,
    pg_sessions: async_sessionmaker[AsyncSession],
    proxy: TcpProxy,
) -> None:
    import uvicorn

    from assistant.app import create_app

    settings = pg_settings.model_copy(
        update={
            "database": pg_settings.database.model_copy(update={"url": proxy.url(pg_url)}),
            "governance": pg_settings.governance.model_copy(update={"runner": "off"}),
        }
    )
    app = create_app(settings)
    # A real server in this event loop (the proxy and the app's database pool share it).
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "the server did not start"
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            http.app = app  # type: ignore[attr-defined]
            as_role(http, Role.EXECUTIVE, user_id=EXECUTIVE)
            assert (await http.get("/api/v1/actions")).status_code == 200
            await proxy.cut()
            down = await http.get("/api/v1/actions")
            again = await http.get("/api/v1/actions")
            await proxy.restore()
            back = await http.get("/api/v1/actions")
            ports = {
                r.extensions["network_stream"].get_extra_info("client_addr")
                for r in (down, again, back)
            }
    finally:
        server.should_exit = True
        await serving
    assert down.status_code == 503, down.text
    assert down.json()["error"] == "DatabaseUnavailableError"
    assert down.headers["retry-after"]
    assert again.status_code == 503
    assert back.status_code == 200
    assert len(ports) == 1, "a 503 closed the keep-alive connection"
