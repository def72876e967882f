"""Start-up time of ``assistant serve``: from process start to the first 200 on /healthz.

Measured side by side in one run, rounds interleaved so that load on the machine hits every
candidate alike:

- ``hello``: uvicorn serving a one-route FastAPI app, the floor of any FastAPI service here;
- ``serve``: ``assistant serve`` of this tree on the embedded default (a migrated SQLite
  database in a temporary data dir, the sandbox connectors, no LLM);
- ``baseline`` (with ``--baseline-tree PATH``): the same command from another checkout of the
  project (an earlier commit, e.g. ``git worktree add --detach /tmp/base a5ce6b4``), run with
  the same interpreter and packages, so the only difference is the code.

Each candidate gets its own data dir, migrated before timing (``assistant db upgrade`` is
not part of serve), and its tree's bytecode compiled first, as an install does (pip compiles
what it installs; the Docker image ships bytecode). ``--no-compile`` leaves the bytecode as
found: in a tree without any, under ``PYTHONDONTWRITEBYTECODE=1``, every start compiles the
project's sources again (the condition of the figures measured before this option).
Each tree is started through its own ``assistant`` console script, the entry point that
``[project.scripts]`` in its pyproject.toml names. The median of ``--rounds`` starts is
reported with the spread; CPU seconds of each start are printed too, since wall time moves
with the machine's load.

Last line: ``startup serve_s=<median> hello_s=<median> serve_vs_hello=<ratio>
[baseline_s=<median> speedup=<baseline/serve>]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

_HELLO = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

# What the generated `assistant` console script does, for the entry point "module:function".
_CONSOLE_SCRIPT = (
    "import sys; from importlib import import_module; sys.argv[0] = 'assistant'; "
    "sys.exit(getattr(import_module({module!r}), {function!r})())"
)


def console_script(tree: Path) -> str:
    """The code of ``tree``'s `assistant` console script."""
    project = tomllib.loads((tree / "pyproject.toml").read_text())
    module, _, function = project["project"]["scripts"]["assistant"].partition(":")
    return _CONSOLE_SCRIPT.format(module=module, function=function)


@dataclass
class Candidate:
    name: str
    tree: Path | None  # None: the hello-world app
    data_dir: Path | None = None
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
        if self.tree is not None:
            env["PYTHONPATH"] = str(self.tree)
            env["ASSISTANT_DATA_DIR"] = str(self.data_dir)
        return env

    def command(self, port: int) -> list[str]:
        if self.tree is None:
            return [sys.executable, "-c", _HELLO, str(port)]
        return [sys.executable, "-c", console_script(self.tree), "serve", "--port", str(port)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(candidate: Candidate, scratch: Path, *, compile_bytecode: bool) -> None:
    if candidate.tree is None:
        return
    candidate.data_dir = scratch / candidate.name
    candidate.data_dir.mkdir()
    if compile_bytecode:
        packages = [
            str(candidate.tree / name) for name in ("assistant", "governance", "integrations")
        ]
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", *packages], check=True, capture_output=True
        )
    subprocess.run(
        [sys.executable, "-c", console_script(candidate.tree), "db", "upgrade"],
        cwd=candidate.tree,
        env=candidate.env(),
        check=True,
        capture_output=True,
        timeout=300,
    )


def start_once(candidate: Candidate, scratch: Path, timeout_s: float) -> None:
    port = free_port()
    log_path = scratch / f"{candidate.name}.log"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            candidate.command(port),
            cwd=candidate.tree or REPO,
            env=candidate.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(timeout=1.0) as client:
            while True:
                try:
                    if client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.perf_counter() - started > timeout_s:
                    raise SystemExit(
                        f"{candidate.name} did not answer /healthz (exit {process.poll()}):\n"
                        + log_path.read_text(errors="replace")[-2000:]
                    )
                time.sleep(0.01)
        candidate.wall_s.append(time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the whole start (shutdown included, which is short): user + system seconds.
    candidate.cpu_s.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-tree", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="Leave the trees' bytecode as found (without any, starts compile sources).",
    )
    args = parser.parse_args()

    candidates = [Candidate("hello", None), Candidate("serve", REPO)]
    if args.baseline_tree is not None:
        candidates.append(Candidate("baseline", args.baseline_tree.resolve()))
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        scratch = Path(tmp)
        for candidate in candidates:
            prepare(candidate, scratch, compile_bytecode=not args.no_compile)
        for candidate in candidates:  # one unmeasured start each: the OS's file cache warm
            start_once(candidate, scratch, args.timeout)
            candidate.wall_s.clear()
            candidate.cpu_s.clear()
        for _ in range(args.rounds):
            for candidate in candidates:
                start_once(candidate, scratch, args.timeout)

    print(f"{'candidate':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'cpu s':>7}")
    medians = {}
    for candidate in candidates:
        medians[candidate.name] = statistics.median(candidate.wall_s)
        print(
            f"{candidate.name:<10} {medians[candidate.name]:>9.2f} {min(candidate.wall_s):>7.2f}"
            f" {max(candidate.wall_s):>7.2f} {statistics.median(candidate.cpu_s):>7.2f}"
        )
    line = (
        f"startup serve_s={medians['serve']:.2f} hello_s={medians['hello']:.2f} "
        f"serve_vs_hello={medians['serve'] / medians['hello']:.2f}"
    )
    if "baseline" in medians:
        line += (
            f" baseline_s={medians['baseline']:.2f}"
            f" speedup={medians['baseline'] / medians['serve']:.2f}"
        )
    print(
        f"cores={os.cpu_count()} load_1min={os.getloadavg()[0]:.1f} rounds={args.rounds}"
        f" bytecode={'as found' if args.no_compile else 'compiled'}"
    )
    print(line)


if __name__ == "__main__":
    main()
