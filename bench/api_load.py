"""Benchmark: the governed HTTP path under load, side by side with a hello-world FastAPI.

For each backend (SQLite file, PostgreSQL) and for 1 and 2 server processes, one run:

- builds a deployment (migrations, an executive and her delegate, a delegation, ``--pending``
  pending actions proposed by the delegate) and mints bearer JWTs with the deployment's key;
- starts ``assistant serve --workers N`` as a separate process (governance runner off: the
  executor is bench/governance.py's business), and, for the baseline, a hello-world FastAPI
  app under the same uvicorn configuration (h11, N workers);
- loads each route from a second process on loopback (an asyncio client on keep-alive
  connections, httptools parsing the answers), ``--clients`` connections for ``--seconds``:

  hello       GET /hello of the hello-world app
  hello_page  GET /page of the hello-world app: a constant JSON body as large as a list page
              (measured from the service first), the floor of moving such a page through
              uvicorn, loopback and the client when the app does nothing to make it
  rows_floor  GET /rows of the hello-world app: the list's SELECT of 50 pending rows on the
              deployment's own database (its columns, index and order), the rows made
              dicts and written by orjson, and nothing else (no authentication, governance,
              cursor or middleware): the least a page of these rows costs on this stack
  healthz     GET /healthz
  list        GET /api/v1/review?limit=50 as the executive (bearer JWT)
  propose     POST /api/v1/actions as her delegate (external mail: held for review)
  approve     POST /api/v1/review/{id}/approve as the executive, each id once

Printed per row: requests/s, p50 and p99 latency, errors (non-2xx or a broken connection),
and the load average, since the machine may be shared. Every figure of a table is measured
in the same run, so the ratios hold even when the absolute numbers do not.

    .venv/bin/python -m bench.api_load [--seconds 5] [--clients 64] [--no-postgres]
        [--routes propose,approve]

``ASSISTANT_BENCH_POOL_SIZE=N`` serves with ``database.pool_size=N`` (to compare pool sizes).
``--routes`` loads only the named routes (while working on one); the targets that need a
route left out print as n/a.

The last line is machine-readable:
``api_load list_vs_hello=<hello req/s / list req/s, SQLite, 1 process> propose_per_s=<best
PostgreSQL propose req/s> executor_per_s=<executed sandbox actions/s, one worker, PostgreSQL
(bench/governance.py's measure_executor)>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DANA = "dana.whitfield@northwind.example"
SAM = "sam.okafor@northwind.example"
PG_ADMIN_URL = os.environ.get(
    "ASSISTANT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TARGET_LIST_VS_HELLO = 4.0
TARGET_PROPOSE_PER_S = 400.0
TARGET_LIST_P99_MS = 250.0
ROUTES = ("hello", "healthz", "list", "propose", "approve")


# ------------------------------------------------------------------------- the deployment


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    env: dict[str, str]
    dana_token: str
    sam_token: str
    #: The database's address for a plain driver: a SQLite file's path, or a PostgreSQL DSN.
    database: str = ""
    cleanup: Any = None


def _environment(folder: Path, database_url: str | None, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ASSISTANT_") or key.startswith("ASSISTANT_BENCH_")
    }
    env.update(
        {
            "ASSISTANT_DATA_DIR": str(folder),
            "ASSISTANT_SANDBOX__SEED_DIR": str(REPO / "config" / "sandbox"),
            "ASSISTANT_GOVERNANCE__RUNNER": "off",
            "ASSISTANT_LOG__LEVEL": "WARNING",
            "ASSISTANT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PYTHONPATH": str(REPO),
        }
    )
    if database_url:
        env["ASSISTANT_DATABASE__URL"] = database_url
    if os.environ.get("ASSISTANT_BENCH_POOL_SIZE"):
        # database.pool_size of the served app, to compare pool sizes (default: the setting's).
        env["ASSISTANT_DATABASE__POOL_SIZE"] = os.environ["ASSISTANT_BENCH_POOL_SIZE"]
    return env


async def _pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def prepare(folder: Path, backend: str, port: int, pending: int) -> Deployment:
    """Migrate, add the people and ``pending`` actions waiting for review; mint tokens."""
    from assistant.auth import users
    from assistant.auth.runtime import AuthRuntime
    from assistant.core.db import create_engine, upgrade
    from assistant.core.principal import Principal, Role
    from assistant.core.settings import Settings
    from assistant.governance_app import build_governance
    from assistant.services import Services

    database_url = None
    cleanup = None
    if backend == "postgresql":
        name = f"bench_api_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        database_url = f"{base}/{name}"

        async def drop() -> None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        cleanup = drop
    env = _environment(folder, database_url, port)
    previous = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("ASSISTANT_")})
    try:
        settings = Settings()
    finally:
        os.environ.clear()
        os.environ.update(previous)
    engine = create_engine(settings.migration_database_url)
    await upgrade(engine)
    await engine.dispose()
    services = await Services.build(settings)
    operator = Principal(user_id="bench", tenant_id="default", roles=frozenset({Role.ADMIN}))
    try:
        async with services.sessions() as session:
            dana = await users.create_user(
                session,
                operator,
                tenant_id="default",
                username="dana",
                roles=[Role.EXECUTIVE],
                email=DANA,
                user_id=DANA,
            )
            sam = await users.create_user(
                session,
                operator,
                tenant_id="default",
                username="sam",
                roles=[Role.DELEGATE],
                email=SAM,
                user_id=SAM,
            )
            dana_principal = Principal(
                user_id=DANA, tenant_id="default", roles=frozenset({Role.EXECUTIVE})
            )
            await users.grant_delegation(session, dana_principal, executive=dana, delegate=sam)
            await session.commit()
        governance = build_governance(services, mode="off")
        sam_principal = Principal(
            user_id=SAM, tenant_id="default", roles=frozenset({Role.DELEGATE}), on_behalf_of=DANA
        )
        for start in range(0, pending, 200):
            async with services.sessions() as session:
                for i in range(start, min(pending, start + 200)):
                    await governance.actions.propose(session, sam_principal, _proposal(i))
                await session.commit()
        auth = AuthRuntime.build(settings, services.sessions)
        dana_token = auth.mint(DANA, "default", [Role.EXECUTIVE], ttl_s=3600)
        sam_token = auth.mint(SAM, "default", [Role.DELEGATE], ttl_s=3600)
    finally:
        await services.aclose()
    return Deployment(
        env=env,
        dana_token=dana_token,
        sam_token=sam_token,
        database=_driver_address(settings.database_url),
        cleanup=cleanup,
    )


def _driver_address(url: str) -> str:
    """SQLAlchemy's ``url`` as sqlite3 (a file's path) or asyncpg (a DSN) takes it."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ""
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def floor_query(backend: str) -> tuple[str, list[str]]:
    """The review list's SELECT for the hello app's /rows, with its values written in: the
    listing's columns (JSON as its stored text), Dana's pending actions by the queue's
    index, newest first, 50 of them; and the names of the JSON columns."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql, sqlite

    from assistant.api.actions import ACTION_COLUMNS
    from assistant.core.db import StoredJSON
    from governance.models import Action

    statement = (
        select(*ACTION_COLUMNS)
        .where(
            Action.tenant_id == "default",
            Action.state == "pending_review",
            Action.on_behalf_of == DANA,
        )
        .order_by(Action.created_at.desc(), Action.id.desc())
        .limit(50)
    )
    dialect = postgresql.dialect() if backend == "postgresql" else sqlite.dialect()
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    json_columns = [column.name for column in ACTION_COLUMNS if isinstance(column.type, StoredJSON)]
    return sql, json_columns


def _proposal(i: int) -> Any:
    from governance.service import Proposal

    return Proposal(kind="email.send", arguments=_mail(i), on_behalf_of=DANA)


def _mail(i: int) -> dict[str, Any]:
    return {
        "to": [{"address": f"partner{i % 17}@fabrikam.example"}],
        "subject": f"Quarterly figures, region {i % 7} ({i})",
        "body_text": "Thank you for the figures; we will confirm by Friday. " * 4,
    }


async def pending_ids(deployment: Deployment) -> list[str]:
    """The ids of the actions waiting for review, oldest first (what approve works on)."""
    from sqlalchemy import select

    from assistant.core.db import create_engine, create_session_factory
    from governance.models import Action

    url = deployment.env.get("ASSISTANT_DATABASE__URL") or (
        f"sqlite+aiosqlite:///{Path(deployment.env['ASSISTANT_DATA_DIR']) / 'assistant.db'}"
    )
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            rows = await session.execute(
                select(Action.id)
                .where(Action.state == "pending_review")
                .order_by(Action.created_at.desc(), Action.id.desc())
            )
            return [str(r[0]) for r in rows]
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------- servers


def _wait_ready(port: int, path: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server on port {port} did not answer {path} in {timeout} s")


@asynccontextmanager
async def in_process_deployment(
    folder: Path, backend: str, pending: int, **settings: str
) -> AsyncIterator[Deployment]:
    """A deployment (:func:`prepare`) whose settings are this process's environment while it
    is in use (an app built here reads them), ``settings`` added as ASSISTANT_ variables;
    the environment is restored and the deployment dropped afterwards."""
    deployment = await prepare(folder, backend, free_port(), pending)
    previous = dict(os.environ)
    os.environ.update({k: v for k, v in deployment.env.items() if k.startswith("ASSISTANT_")})
    os.environ.update(settings)
    try:
        yield deployment
    finally:
        os.environ.clear()
        os.environ.update(previous)
        if deployment.cleanup is not None:
            await deployment.cleanup()


def _fetch(port: int, scenario: Scenario) -> bytes:
    """One answer of ``scenario`` (a GET), its body."""
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{scenario.paths[0]}", headers=scenario.headers
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: bytes = answer.read()
    return body


def start_service(deployment: Deployment, port: int, workers: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "assistant.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, env=deployment.env, start_new_session=True)
    _wait_ready(port, "/healthz", process, 90)
    return process


def start_hello(
    port: int, workers: int, page_bytes: int = 0, rows: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A hello-world FastAPI app under the uvicorn configuration `assistant serve` uses;
    ``rows``: its /rows route's environment (:func:`rows_environment`)."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.api_load:hello_app",
        "--factory",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--http",
        "h11",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), PAGE_BYTES_ENV: str(page_bytes), **(rows or {})}
    process = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True)
    _wait_ready(port, "/hello", process, 60)
    return process


#: The hello app's /page answers this many bytes (bench_backend sets it to a real list
#: page's size before starting the app).
PAGE_BYTES_ENV = "ASSISTANT_BENCH_PAGE_BYTES"
#: The hello app's /rows: the database (a SQLite file or a PostgreSQL DSN), the SELECT and
#: its JSON columns (comma-separated).
ROWS_DATABASE_ENV = "ASSISTANT_BENCH_ROWS_DATABASE"
ROWS_SQL_ENV = "ASSISTANT_BENCH_ROWS_SQL"
ROWS_JSON_ENV = "ASSISTANT_BENCH_ROWS_JSON"


def rows_environment(deployment: Deployment, backend: str) -> dict[str, str]:
    sql, json_columns = floor_query(backend)
    return {
        ROWS_DATABASE_ENV: deployment.database,
        ROWS_SQL_ENV: sql,
        ROWS_JSON_ENV: ",".join(json_columns),
    }


def hello_app() -> Any:
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()
    # A constant JSON body as large as the review list's page: what moving that page through
    # uvicorn, loopback and the load client costs when the app does nothing to make it.
    size = int(os.environ.get(PAGE_BYTES_ENV) or 0)
    item = b'{"id":"' + b"x" * 32 + b'","text":"' + b"y" * 2000 + b'"}'
    count = max(1, size // (len(item) + 1))
    page = b"[" + b",".join([item] * count) + b"]"
    page = page[:-1] + b" " * max(0, size - len(page)) + b"]"

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/page")
    async def hello_page() -> Response:
        return Response(page, media_type="application/json")

    database = os.environ.get(ROWS_DATABASE_ENV, "")
    if database:
        app.get("/rows")(_rows_route(database, os.environ[ROWS_SQL_ENV], os.environ[ROWS_JSON_ENV]))
    return app


def _rows_route(database: str, sql: str, json_names: str) -> Any:
    """The hello app's /rows (see the module's docstring): the least work that answers the
    list's rows, on the driver the service uses for such a read (sqlite3 on the event loop's
    thread, an asyncpg pool), written as json_page writes them."""
    import orjson
    from fastapi.responses import Response

    json_columns = set(json_names.split(","))

    def page(names: list[str], rows: list[Any]) -> Response:
        columns: list[Any] = list(zip(*rows, strict=True))
        for i, name in enumerate(names):
            if name in json_columns:
                columns[i] = [None if v is None else orjson.Fragment(v) for v in columns[i]]
        items = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        return Response(orjson.dumps(items, option=orjson.OPT_UTC_Z), media_type="application/json")

    if not database.startswith("postgresql"):
        import sqlite3

        connection = sqlite3.connect(
            f"file:{database}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        names = [d[0] for d in connection.execute(sql).description]

        async def sqlite_rows() -> Response:
            return page(names, connection.execute(sql).fetchall())

        return sqlite_rows

    import asyncpg

    pools: list[Any] = []

    async def postgres_rows() -> Response:
        if not pools:
            pools.append(await asyncpg.create_pool(database, min_size=1, max_size=10))
        async with pools[0].acquire() as connection:
            records = await connection.fetch(sql)
        return page(list(records[0].keys()) if records else [], records)

    return postgres_rows


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# ------------------------------------------------------------------------ the load


@dataclass
class Scenario:
    """One route under load: requests are built from ``paths`` (one each, round robin when
    ``unique`` is false) and ``body``, a JSON template where ``{i}`` is the request number."""

    name: str
    method: str
    paths: list[str]
    headers: dict[str, str]
    body: str | None = None
    unique: bool = False


def _request(scenario: Scenario, i: int, port: int) -> bytes | None:
    if scenario.unique:
        if i >= len(scenario.paths):
            return None
        path = scenario.paths[i]
    else:
        path = scenario.paths[i % len(scenario.paths)]
    body = scenario.body.replace("{i}", str(i)).encode() if scenario.body is not None else b""
    lines = [f"{scenario.method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in scenario.headers.items()]
    if scenario.method != "GET":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _client(
    scenario: Scenario, port: int, counter: list[int], until: float, out: dict[str, Any]
) -> None:
    import httptools

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = False
    keep_alive = True

    class Handler:
        def on_headers_complete(self) -> None:
            # Asked here: once the message is complete, httptools answers False whatever
            # the response said, and every request paid for a new connection.
            nonlocal keep_alive
            keep_alive = parser.should_keep_alive()

        def on_message_complete(self) -> None:
            nonlocal done
            done = True

    try:
        while time.perf_counter() < until:
            i = counter[0]
            counter[0] += 1
            request = _request(scenario, i, port)
            if request is None:
                return
            parser = httptools.HttpResponseParser(Handler())
            done = False
            started = time.perf_counter()
            writer.write(request)
            while not done:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("closed")
                parser.feed_data(chunk)
            out["latencies"].append(time.perf_counter() - started)
            status = parser.get_status_code()
            if status >= 400:
                out["errors"] += 1
                out["statuses"][status] = out["statuses"].get(status, 0) + 1
            if not keep_alive:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except (ConnectionError, OSError):
        out["errors"] += 1
    finally:
        writer.close()


async def _load(scenario: Scenario, port: int, clients: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "errors": 0, "statuses": {}}
    counter = [0]
    # A short warm-up, not counted, with as many clients as the measured run: the server's
    # caches fill and its database pool grows to the size this load needs (with fewer
    # clients, the measured run's first requests waited for the pool to open connections,
    # a start-up cost that p99 under steady load is not about).
    warm: dict[str, Any] = {"latencies": [], "errors": 0, "statuses": {}}
    warm_scenario = scenario if not scenario.unique else None
    if warm_scenario is not None:
        until = time.perf_counter() + min(1.0, seconds / 5)
        await asyncio.gather(*(_client(scenario, port, [0], until, warm) for _ in range(clients)))
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_client(scenario, port, counter, until, out) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies = sorted(out["latencies"])
    count = len(latencies)
    p99 = latencies[min(count - 1, int(count * 0.99))] if latencies else float("nan")
    return {
        "requests": count,
        "rps": count / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * p99,
        "errors": out["errors"],
        "statuses": out["statuses"],
        "warm_requests": len(warm["latencies"]),
    }


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (Linux)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    tree = {pid}
    grew = True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grew = True
    return sum(times.get(p, 0.0) for p in tree)


def run_load(
    scenario: Scenario, port: int, clients: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    """Load ``scenario`` from a second process (this one builds, that one only loads).

    Besides the client's view, the server processes' CPU time per request (warm-up
    included on both sides of the division): on a shared machine wall-clock rates follow
    the neighbours' load, CPU per request much less."""
    cpu_before = _tree_cpu_seconds(server_pid)
    spec = json.dumps(
        {
            "scenario": scenario.__dict__,
            "port": port,
            "clients": clients,
            "seconds": seconds,
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "bench.api_load", "--loader"],
        input=spec.encode(),
        capture_output=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=seconds + 120,
    )
    loaded: dict[str, Any] = json.loads(result.stdout)
    served = loaded["requests"] + loaded["warm_requests"]
    loaded["cpu_ms"] = 1000 * (_tree_cpu_seconds(server_pid) - cpu_before) / max(served, 1)
    return loaded


def loader_main() -> None:
    spec = json.loads(sys.stdin.read())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    scenario = Scenario(**spec["scenario"])
    result = asyncio.run(_load(scenario, spec["port"], spec["clients"], spec["seconds"]))
    print(json.dumps(result))


# ---------------------------------------------------------------------------- the run


def _scenarios(deployment: Deployment, ids: list[str], propose_offset: int) -> list[Scenario]:
    dana = {"Authorization": f"Bearer {deployment.dana_token}"}
    sam = {"Authorization": f"Bearer {deployment.sam_token}", "X-On-Behalf-Of": DANA}
    body = json.dumps({"kind": "email.send", "arguments": _mail(0)}).replace(
        "(0)", f"({propose_offset}-{{i}})"
    )
    return [
        Scenario("healthz", "GET", ["/healthz"], {}),
        Scenario("list", "GET", ["/api/v1/review?limit=50"], dana),
        Scenario("propose", "POST", ["/api/v1/actions"], sam, body=body),
        Scenario(
            "approve", "POST", [f"/api/v1/review/{i}/approve" for i in ids], dana, unique=True
        ),
    ]


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(name: str, result: dict[str, Any]) -> str:
    statuses = ",".join(f"{k}x{v}" for k, v in sorted(result["statuses"].items()))
    return (
        f"  {name:<9} {result['rps']:>9.0f} {result['p50_ms']:>9.1f} {result['p99_ms']:>9.1f} "
        f"{result['errors']:>7} {result['requests']:>9} {result['cpu_ms']:>9.2f}  {statuses}"
    )


def bench_backend(
    backend: str, workers: int, args: argparse.Namespace, folder: Path
) -> dict[str, dict[str, Any]]:
    port = free_port()
    results: dict[str, dict[str, Any]] = {}
    page_bytes = 0
    deployment = asyncio.run(prepare(folder, backend, port, args.pending))
    try:
        if "hello" in args.routes:
            if "list" in args.routes:
                # The size of a real page, for the hello app's /page (the service is stopped
                # again: the hello app is loaded alone, as each route is).
                server = start_service(deployment, port, workers)
                try:
                    page_bytes = len(_fetch(port, _scenarios(deployment, [], 0)[1]))
                finally:
                    stop(server)
            hello_port = free_port()
            rows = rows_environment(deployment, backend) if "list" in args.routes else None
            hello = start_hello(hello_port, workers, page_bytes, rows)
            try:
                for name, path in (
                    ("hello", "/hello"),
                    ("hello_page", "/page"),
                    ("rows_floor", "/rows"),
                ):
                    if name != "hello" and "list" not in args.routes:
                        continue
                    results[name] = run_load(
                        Scenario(name, "GET", [path], {}),
                        hello_port,
                        args.clients,
                        args.seconds,
                        hello.pid,
                    )
            finally:
                stop(hello)
        server = start_service(deployment, port, workers)
        try:
            for scenario in _scenarios(deployment, [], 0)[:3]:
                if scenario.name in args.routes:
                    results[scenario.name] = run_load(
                        scenario, port, args.clients, args.seconds, server.pid
                    )
            if "approve" in args.routes:
                ids = asyncio.run(pending_ids(deployment))
                approve = _scenarios(deployment, ids, 0)[3]
                results["approve"] = run_load(approve, port, args.clients, args.seconds, server.pid)
        finally:
            stop(server)
    finally:
        if deployment.cleanup is not None:
            asyncio.run(deployment.cleanup())
    print(
        f"{backend}, {workers} process{'es' if workers > 1 else ''}, {args.clients} clients, "
        f"{args.seconds:.0f} s per route (load average {_loadavg()})"
    )
    print(
        f"  {'route':<9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7} {'requests':>9} "
        f"{'CPU ms/req':>9}"
    )
    for name, result in results.items():
        print(_row(name, result))
    if "hello" in results and "list" in results:
        ratio = results["hello"]["rps"] / max(results["list"]["rps"], 1e-9)
        cpu_ratio = results["list"]["cpu_ms"] / max(results["hello"]["cpu_ms"], 1e-9)
        print(
            f"  hello / list req/s = {ratio:.2f} (target <= {TARGET_LIST_VS_HELLO:.0f}); "
            f"list / hello server CPU per request = {cpu_ratio:.2f}"
        )
        if "hello_page" in results:
            floor = results["hello"]["rps"] / max(results["hello_page"]["rps"], 1e-9)
            print(
                f"  hello / hello_page req/s = {floor:.2f}: the floor of a page this size "
                f"({page_bytes:,} bytes, a constant from the hello app), so list / hello_page "
                f"= {results['hello_page']['rps'] / max(results['list']['rps'], 1e-9):.2f} "
                "is the app's own share"
            )
        if "rows_floor" in results:
            floor = results["hello"]["rps"] / max(results["rows_floor"]["rps"], 1e-9)
            added = results["rows_floor"]["rps"] / max(results["list"]["rps"], 1e-9)
            print(
                f"  hello / rows_floor req/s = {floor:.2f}: the floor of this page's rows on "
                "this stack (the list's SELECT, dicts, orjson; nothing else), so list / "
                f"rows_floor = {added:.2f} is what authentication, governance, the cursor "
                "and the middleware add"
            )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="Load per route.")
    parser.add_argument("--clients", type=int, default=64, help="Concurrent connections.")
    parser.add_argument("--pending", type=int, default=2000, help="Actions waiting for review.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only.")
    parser.add_argument(
        "--no-executor", action="store_true", help="Skip the executor's measurement."
    )
    parser.add_argument(
        "--routes",
        default=",".join(ROUTES),
        help=f"Comma-separated routes to load (default: all of {','.join(ROUTES)}).",
    )
    parser.add_argument("--loader", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loader:
        loader_main()
        return
    args.routes = {r.strip() for r in args.routes.split(",") if r.strip()}
    if not args.routes or not args.routes <= set(ROUTES):
        parser.error(f"--routes takes names among {','.join(ROUTES)}")
    # A log line per proposed or executed action (preparing the deployment, the executor's
    # run) would time the terminal, not the code, and bury the tables.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    table: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    print(f"api_load: {os.cpu_count()} cores, load average {_loadavg()}")
    for backend in backends:
        for workers in args.workers:
            folder = Path(tempfile.mkdtemp(prefix=f"api-load-{backend}-"))
            try:
                table[(backend, workers)] = bench_backend(backend, workers, args, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    first = table[("sqlite", args.workers[0])]
    nan = float("nan")
    list_vs_hello = (
        first["hello"]["rps"] / max(first["list"]["rps"], 1e-9)
        if "hello" in first and "list" in first
        else nan
    )
    worst_list_p99 = max((r["list"]["p99_ms"] for r in table.values() if "list" in r), default=nan)
    proposing = {key: r["propose"]["rps"] for key, r in table.items() if "propose" in r}
    pg = [rps for (backend, _), rps in proposing.items() if backend == "postgresql"]
    propose = max(pg or list(proposing.values()) or [nan])
    errors = sum(r["errors"] for results in table.values() for r in results.values())

    def verdict(value: float, ok: bool, digits: int) -> str:
        """met / NOT met (value), or n/a for a route left out (--routes)."""
        return "n/a" if value != value else f"{'met' if ok else 'NOT met'} ({value:.{digits}f})"

    print(
        f"targets: list within {TARGET_LIST_VS_HELLO:.0f}x of hello "
        f"{verdict(list_vs_hello, list_vs_hello <= TARGET_LIST_VS_HELLO, 2)}; "
        f"list p99 <= {TARGET_LIST_P99_MS:.0f} ms "
        f"{verdict(worst_list_p99, worst_list_p99 <= TARGET_LIST_P99_MS, 0)}; "
        f"propose >= {TARGET_PROPOSE_PER_S:.0f}/s{' on PostgreSQL' if pg else ''} "
        f"{verdict(propose, propose >= TARGET_PROPOSE_PER_S, 0)}; "
        f"errors {errors}"
    )
    executor_text = "n/a"
    if not args.no_postgres and not args.no_executor:
        # The executor's figure, from bench/governance.py's measurement (one worker,
        # PostgreSQL, sandbox mailbox): the rate of the governed path's last step.
        from bench.governance import TARGET_EXECUTOR_PER_WORKER_S, measure_executor

        print("executor on PostgreSQL (bench/governance.py's measurement, one worker):")
        executor = asyncio.run(measure_executor(1))
        executor_text = f"{executor:.0f}"
        print(
            f"  executor >= {TARGET_EXECUTOR_PER_WORKER_S}/s per worker "
            f"{'met' if executor >= TARGET_EXECUTOR_PER_WORKER_S else 'NOT met'} ({executor:.0f})"
        )
    print(f"load average at the end: {_loadavg()}")
    print(
        f"api_load list_vs_hello={list_vs_hello:.2f} propose_per_s={propose:.0f} "
        f"executor_per_s={executor_text}"
    )


if __name__ == "__main__":
    main()
