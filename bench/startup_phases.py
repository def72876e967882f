"""Where `assistant serve`'s start-up CPU goes: its phases, in CPU seconds.

Each round is a fresh interpreter that does what ``assistant serve`` does before its first
request (collector paused as the console script pauses it): import the libraries, the CLI,
the app, build it, run its lifespan's start on the embedded default (a migrated SQLite
database in a temporary data dir). Inside the app's import, the time FastAPI spends building
routes, pydantic building model classes and SQLAlchemy mapping ORM classes is counted too
(outermost calls only). Medians of ``--rounds`` rounds; the instrumentation adds a little.

    python -m bench.startup_phases [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_ROUND = r"""
import asyncio, gc, json, time
from assistant.core.startup import pause_collector
pause_collector()
clock = time.process_time
phases, inside = [], {"FastAPI route building": 0.0, "pydantic model classes": 0.0,
                      "SQLAlchemy ORM classes": 0.0}
depth = dict.fromkeys(inside, 0)

def counted(name, function):
    def wrapper(*args, **kwargs):
        if depth[name]:
            return function(*args, **kwargs)
        depth[name] += 1
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            inside[name] += clock() - started
            depth[name] -= 1
    return wrapper

started = clock()
import fastapi, pydantic_settings, rich.console, sqlalchemy.ext.asyncio, sqlalchemy.orm
import structlog, typer, uvicorn
phases.append(("libraries (fastapi, uvicorn, sqlalchemy, pydantic-settings, typer, rich, "
               "structlog)", clock() - started))
import fastapi.routing
import pydantic._internal._model_construction as construction
import sqlalchemy.orm.decl_api as declarative
fastapi.routing.APIRoute.__init__ = counted("FastAPI route building",
                                            fastapi.routing.APIRoute.__init__)
construction.ModelMetaclass.__new__ = counted("pydantic model classes",
                                              construction.ModelMetaclass.__new__)
subclass_hook = declarative.DeclarativeBase.__dict__["__init_subclass__"].__func__
declarative.DeclarativeBase.__init_subclass__ = classmethod(
    counted("SQLAlchemy ORM classes", lambda cls, **kw: subclass_hook(cls, **kw)))
started = clock()
import assistant.cli
phases.append(("import assistant.cli (the CLI's command modules)", clock() - started))
from assistant.core.settings import get_settings
settings = get_settings()
started = clock()
import assistant.app
phases.append(("import assistant.app (routers, pages, models)", clock() - started))
started = clock()
app = assistant.app.create_app(settings)
phases.append(("create_app", clock() - started))

async def lifespan():
    started = clock()
    async with app.router.lifespan_context(app):
        phases.append(("lifespan start (services, database checks, connectors, runner)",
                       clock() - started))

asyncio.run(lifespan())
print(json.dumps({"phases": phases, "inside": inside, "total": clock()}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["PYTHONPATH"] = str(REPO)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as data_dir:
        env["ASSISTANT_DATA_DIR"] = data_dir
        subprocess.run(
            [sys.executable, "-m", "assistant", "db", "upgrade"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        for _ in range(args.rounds + 1):  # the first one seeds the sandbox: not counted
            result = subprocess.run(
                [sys.executable, "-c", _ROUND],
                env=env,
                cwd=REPO,
                check=True,
                capture_output=True,
                text=True,
            )
            rounds.append(json.loads(result.stdout.strip().splitlines()[-1]))
    rounds = rounds[1:]
    print(f"{'cpu s':>6}  phase (median of {args.rounds})")
    for index, (name, _) in enumerate(rounds[0]["phases"]):
        print(f"{statistics.median(r['phases'][index][1] for r in rounds):6.3f}  {name}")
    for name in rounds[0]["inside"]:
        print(f"{statistics.median(r['inside'][name] for r in rounds):6.3f}    of which {name}")
    print(f"{statistics.median(r['total'] for r in rounds):6.3f}  total, interpreter included")
    print(f"cores={os.cpu_count()} load_1min={os.getloadavg()[0]:.1f} rounds={args.rounds}")


if __name__ == "__main__":
    main()
