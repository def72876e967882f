"""`assistant demo` ends with the gate; `assistant gate report` on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASSISTANT = Path(sys.executable).parent / "assistant"
CRITERIA = [
    "volume",
    "triage_accuracy",
    "action_acceptance",
    "error_rate",
    "exception_rate",
    "cost_per_item",
    "monthly_run_rate",
    "roi",
    "owners_named",
    "rollback_drill",
    "audit_chain",
]
EXIT = {"GO": 0, "NO-GO": 1, "REVISE": 3}


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1", **extra)
    return env


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ASSISTANT), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _check_report(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    report = json.loads(result.stdout)
    assert result.returncode == EXIT[report["decision"]], result.stderr[-2000:]
    criteria = report["criteria"]
    assert [c["name"] for c in criteria] == CRITERIA
    for criterion in criteria:
        assert criterion["verdict"] in {"pass", "fail", "no_data"}
        assert "value" in criterion and "threshold" in criterion
    return report


def test_demo_ends_with_the_gate_and_the_report_reads_its_records(tmp_path: Path) -> None:
    env = _env(tmp_path)
    demo = _run("demo", env=env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    tail = demo.stdout[-6000:]
    assert "Decision gate over this sandbox run" in tail and "Gate answer:" in tail
    assert "Audit chain verified" in tail
    result = _run("gate", "report", "--format", "json", "--period", "1d", env=env)
    report = _check_report(result)
    by_name = {c["name"]: c for c in report["criteria"]}  # type: ignore[attr-defined]
    assert by_name["volume"]["value"] > 0  # the demo's triage and proposals
    assert by_name["audit_chain"]["verdict"] == "pass"
    assert by_name["rollback_drill"]["verdict"] == "fail"  # no drill in a fresh sandbox
    assert report["decision"] == "NO-GO"
    page = tmp_path / "gate.html"
    html = _run("gate", "report", "--format", "html", "--output", str(page), env=env)
    assert html.returncode == EXIT["NO-GO"] and page.read_text().count("<svg") == 3
    bad = _run("gate", "report", "--period", "soon", env=env)
    assert bad.returncode == 2 and "period" in bad.stderr
    check = _run("quality", "check", "--period", "1d", env=env)
    assert check.returncode == 0, check.stderr[-2000:]  # nothing auto-approved, no alert
    assert "sampled for spot checks" in check.stdout and "0 alert(s) open" in check.stdout


@pytest.mark.postgres
def test_gate_report_json_on_postgres(tmp_path: Path, postgres_database: str) -> None:
    env = _env(
        tmp_path,
        ASSISTANT_DATABASE__URL=postgres_database.replace(
            "postgresql://", "postgresql+asyncpg://", 1
        ),
    )
    assert _run("db", "upgrade", env=env).returncode == 0
    result = _run(
        "gate", "report", "--format", "json", "--tenant", f"gate-{uuid.uuid4().hex[:8]}", env=env
    )
    report = _check_report(result)
    assert report["decision"] == "NO-GO"  # nothing measured, no drill: never a GO
