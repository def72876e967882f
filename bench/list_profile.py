"""Where the review list's CPU goes: GET /api/v1/review?limit=50 in process, one at a time.

Builds bench/api_load.py's deployment (``--pending`` actions waiting for review; SQLite
unless ``--postgres``), then calls the app's ASGI interface directly as the executive with
her bearer JWT (no HTTP server, no client library: neither is what this measures),
``--requests`` times in a row, and prints the CPU time per request; with ``--profile``,
under cProfile, the functions with the most own and cumulative time.

    .venv/bin/python -m bench.list_profile [--requests 3000] [--postgres] [--profile]
        [--path '/api/v1/review?limit=50'] [--top 30]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.api_load import in_process_deployment  # noqa: E402


async def run(args: argparse.Namespace) -> None:
    import structlog

    from assistant.app import create_app
    from assistant.core.settings import Settings
    from assistant.services import Services

    backend = "postgresql" if args.postgres else "sqlite"
    path, _, query = args.path.partition("?")
    with tempfile.TemporaryDirectory() as folder:
        async with in_process_deployment(Path(folder), backend, args.pending) as deployment:
            settings = Settings()
            services = await Services.build(settings)
            app = create_app(settings, services)
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
            headers = [
                (b"host", b"127.0.0.1"),
                (b"authorization", f"Bearer {deployment.dana_token}".encode()),
            ]
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            async with app.router.lifespan_context(app) as state:

                async def call() -> tuple[int, bytes]:
                    sent.clear()
                    scope = {
                        "type": "http",
                        "asgi": {"version": "3.0"},
                        "http_version": "1.1",
                        "method": "GET",
                        "scheme": "http",
                        "path": path,
                        "raw_path": path.encode(),
                        "query_string": query.encode(),
                        "root_path": "",
                        "headers": headers,
                        "client": ("127.0.0.1", 40000),
                        "server": ("127.0.0.1", 8000),
                        "state": dict(state or {}),
                    }
                    await app(scope, receive, send)
                    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

                for _ in range(200):  # warm up (imports, caches, prepared statements)
                    status, body = await call()
                digest = hashlib.sha256(body).hexdigest()[:16]
                print(f"{backend}: {args.path}: {status}, {len(body)} bytes (sha256 {digest}...)")
                profiler = cProfile.Profile()
                started, cpu = time.perf_counter(), time.process_time()
                if args.profile:
                    profiler.enable()
                for _ in range(args.requests):
                    await call()
                profiler.disable()
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            await services.aclose()
    print(
        f"{args.requests} requests one at a time: CPU {cpu / args.requests * 1000:.3f} ms and "
        f"wall {wall / args.requests * 1000:.3f} ms per request"
        + (" (under cProfile, which adds to it)" if args.profile else "")
        + f"; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if not args.profile:
        return
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
        lines = out.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"--- top {args.top} by {order}")
        print("\n".join(lines[start : start + args.top + 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--pending", type=int, default=2000, help="Actions waiting for review.")
    parser.add_argument("--path", default="/api/v1/review?limit=50")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite.")
    parser.add_argument("--profile", action="store_true", help="Under cProfile.")
    parser.add_argument("--top", type=int, default=30)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
