"""`assistant serve` on the embedded default must not pay for what it does not use.

openai with langchain_core (~2 s of imports), msal with requests (Entra mode only) and
caldav with niquests (a CalDAV connector only) and alembic (migrations and the readiness
check) once made up most of the service's start-up;
they load on first use. A fresh interpreter shows what importing the CLI and the app pulls in.
"""

from __future__ import annotations

import json
import subprocess
import sys

DEFERRED = (
    "openai",
    "langchain_core",
    "langchain_openai",
    "langsmith",
    "msal",
    "caldav",
    "alembic",
)


def test_the_cli_and_the_app_load_without_the_heavy_optional_clients() -> None:
    probe = (
        "import json, sys\n"
        "import assistant.cli, assistant.app\n"
        "from integrations.registry import ConnectorRegistry\n"
        "registry = ConnectorRegistry.discover()\n"
        "print(json.dumps({'loaded': sorted({m.split('.')[0] for m in sys.modules}),"
        " 'broken': registry.broken}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["broken"] == {}
    assert [name for name in DEFERRED if name in report["loaded"]] == []
