"""Where a proposal's CPU goes: POST /api/v1/actions in process, under cProfile.

Builds bench/api_load.py's deployment (PostgreSQL unless ``--sqlite``), then sends
``--requests`` proposals as the delegate through the whole app (authentication, the route,
the service, the commit) from ``--clients`` concurrent callers on an in-process ASGI
transport (no HTTP server: its parsing is not what this measures), and prints the
functions with the most own time and the most cumulative time.

    .venv/bin/python -m bench.propose_profile [--requests 2000] [--clients 64] [--sqlite]
        [--top 25] [--no-profile] [--pool-size N]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.api_load import DANA, _mail, in_process_deployment  # noqa: E402


def postgres_cpu_seconds() -> float:
    """CPU seconds used so far by the machine's PostgreSQL processes (every user's)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            if not fields[0].endswith("(postgres"):
                continue
            values = fields[1].split()
            # utime, stime, and the children's that ended (a closed connection's backend)
            total += sum(int(value) for value in values[11:15])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total / os.sysconf("SC_CLK_TCK")


async def run(
    requests: int, clients: int, backend: str, top: int, profile: bool, pool_size: int | None
) -> None:
    import httpx
    import structlog

    from assistant.app import create_app
    from assistant.core.settings import Settings
    from assistant.services import Services

    with tempfile.TemporaryDirectory() as folder:
        pool = {} if pool_size is None else {"ASSISTANT_DATABASE__POOL_SIZE": str(pool_size)}
        async with in_process_deployment(Path(folder), backend, 0, **pool) as deployment:
            settings = Settings()
            services = await Services.build(settings)
            app = create_app(settings, services)
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
            headers = {
                "Authorization": f"Bearer {deployment.sam_token}",
                "X-On-Behalf-Of": DANA,
                "Content-Type": "application/json",
            }
            transport = httpx.ASGITransport(app=app)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
            ):
                counter = iter(range(requests + clients))

                async def caller() -> int:
                    errors = 0
                    for i in counter:
                        if i >= requests:
                            break
                        body = {"kind": "email.send", "arguments": _mail(100_000 + i)}
                        answer = await client.post(
                            "/api/v1/actions", content=json.dumps(body), headers=headers
                        )
                        errors += answer.status_code != 201
                    return errors

                await client.post(  # warm up (imports, caches)
                    "/api/v1/actions",
                    content=json.dumps({"kind": "email.send", "arguments": _mail(99_999)}),
                    headers=headers,
                )
                profiler = cProfile.Profile()
                started, cpu = time.perf_counter(), time.process_time()
                pg_cpu = postgres_cpu_seconds()
                if profile:
                    profiler.enable()
                errors = sum(await asyncio.gather(*(caller() for _ in range(clients))))
                profiler.disable()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                pg_cpu = postgres_cpu_seconds() - pg_cpu
                committer = getattr(getattr(app.state, "governance", None), "proposals", None)
                if committer is not None:
                    print(
                        f"group commit: {committer.stored} proposals in {committer.batches} "
                        "transactions"
                    )
            await services.aclose()
    print(
        f"{backend}: {requests} proposals, {clients} callers, {errors} errors: "
        f"{requests / wall:.0f}/s in process, CPU {cpu / requests * 1000:.2f} ms per proposal"
        + (" (under cProfile, which adds to it)" if profile else "")
        + " (the test client's share included); "
        f"PostgreSQL's processes {pg_cpu / requests * 1000:.2f} ms per proposal"
        + (" (other users of the server included)" if backend == "postgresql" else "")
    )
    if not profile:
        return
    for order, restriction in (("tottime", ()), ("cumulative", ("assistant|governance",))):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(*restriction, top)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"--- top {top} by {order}" + (" (the project's functions)" if restriction else ""))
        print("\n".join(lines[start : start + top + 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL.")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-profile", action="store_true", help="Only the rate and CPU per proposal."
    )
    parser.add_argument(
        "--pool-size", type=int, help="database.pool_size of the app (default: the setting's)."
    )
    args = parser.parse_args()
    backend = "sqlite" if args.sqlite else "postgresql"
    asyncio.run(
        run(args.requests, args.clients, backend, args.top, not args.no_profile, args.pool_size)
    )


if __name__ == "__main__":
    main()
