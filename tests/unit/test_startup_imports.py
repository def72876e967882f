"""`assistant serve` on the embedded default must not pay for what it does not use.

openai with langchain_core (~2 s of imports), msal with requests (Entra mode only) and
caldav with niquests (a CalDAV connector only) and alembic (migrations and the readiness
check) once made up most of the service's start-up; they load on first use, as do the chat
agent with its tools and model client (the first turn), the triage rules with the Public
Suffix List (the first triage), the IMAP/SMTP clients (the first IMAP instance) and, on
SQLite, SQLAlchemy's PostgreSQL dialect with its drivers' modules, and icalendar with
recurring-ical-events (the first calendar read or write), httpx (the first outbound HTTP
client: a Graph, Tryton or Business Central instance, an HTTP witness, a webhook, an external
token issuer), the web app's rooms (the first request under /app) and Jinja2 (the first page
or error page), PyJWT (the first token checked or signed), html2text (the first HTML
body) and argon2 (the first password). A fresh
interpreter shows what importing the CLI and the app, and discovering the connectors, pulls in.

The console script also pauses garbage collection while the process starts (see
assistant.core.startup); the collector must run again before the service answers anything.
"""

from __future__ import annotations
import __future__

import gc
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assistant.core import startup

DEFERRED = (
    "openai",
    "langchain_core",
    "langchain_openai",
    "langsmith",
    "msal",
    "caldav",
    "alembic",
    "publicsuffixlist",
    "aioimaplib",
    "aiosmtplib",
    "assistant.agent.agent",
    "assistant.agent.tools",
    "assistant.llm.client",
    "assistant.drafting.drafter",
    "assistant.triage.cascade",
    "assistant.triage.rules",
    "assistant.triage.lookalike",
    "integrations.imap.email",
    "sqlalchemy.dialects.postgresql",
    "icalendar",
    "recurring_ical_events",
    "httpx",
    "nh3",
    "jinja2",
    "assistant.web.inbox",
    "assistant.web.review",
    "assistant.web.meetings",
    "assistant.web.history",
    "assistant.web.live",
    "assistant.web.chat",
    "assistant.web.admin",
    "assistant.web.people",
    "assistant.web.auditor",
    "jwt",
    "html2text",
    "argon2",
)


def _probe_report(probe: str, timeout_s: float = 120) -> Any:
    """The JSON that ``probe`` prints last, run in a fresh interpreter (what it imports is
    then only what the probe's own imports pull in)."""
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout_s, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_cli_and_the_app_load_without_the_heavy_optional_clients(tmp_path: Path) -> None:
    probe = (
        "import json, sys\n"
        "import assistant.cli, assistant.app\n"
        "from integrations.registry import ConnectorRegistry\n"
        "registry = ConnectorRegistry.discover()\n"
        # What the lifespan builds for authentication (local mode: the issuer, its key set).
        "from assistant.auth.runtime import AuthRuntime\n"
        "from assistant.core.settings import Settings\n"
        f"AuthRuntime.build(Settings(data_dir={str(tmp_path)!r}), None)\n"
        "print(json.dumps({'loaded': sorted(sys.modules), 'broken': registry.broken}))\n"
    )
    report = _probe_report(probe)
    assert report["broken"] == {}
    loaded = set(report["loaded"])
    packages = {name.split(".")[0] for name in loaded}
    assert [name for name in DEFERRED if name in loaded or name in packages] == []


def test_serve_imports_only_the_connectors_its_instances_use(tmp_path: Path) -> None:
    # The embedded default's instances are sandbox ones: the lifespan looks up their slugs
    # only, and the other connectors' modules load when the registry is listed.
    probe = (
        "import json, sys\n"
        "from integrations.registry import ConnectorRegistry\n"
        "registry = ConnectorRegistry.discover()\n"
        "registry.get('sandbox.email'), registry.get('sandbox.calendar')\n"
        "before = sorted(sys.modules)\n"
        "listed = sorted(registry.specs)\n"
        "print(json.dumps({'before': before, 'after': sorted(sys.modules), 'listed': listed}))\n"
    )
    report = _probe_report(probe)
    others = ["integrations.imap", "integrations.msgraph", "integrations.caldav"]
    others += ["integrations.tryton", "integrations.businesscentral"]
    assert [name for name in others if name in report["before"]] == []
    assert [name for name in others if name not in report["after"]] == []
    assert {"imap.email", "caldav.calendar", "businesscentral.erp"} <= set(report["listed"])


#: Modules whose annotations FastAPI (endpoint and dependency signatures), pydantic (model
#: fields) or SQLAlchemy (``Mapped[...]`` columns) read while the service starts. Without
#: ``from __future__ import annotations`` the interpreter evaluates them once as it defines
#: each function and class; as strings, each was compiled and evaluated again by the library
#: (~2% of start-up's CPU for these modules).
EVALUATED_ANNOTATIONS = (
    "assistant.agent.models",
    "assistant.api.actions",
    "assistant.api.audit",
    "assistant.api.auth",
    "assistant.api.connectors",
    "assistant.api.deps",
    "assistant.api.erp",
    "assistant.api.errors",
    "assistant.api.gate",
    "assistant.api.health",
    "assistant.api.openapi",
    "assistant.api.pagination",
    "assistant.api.production",
    "assistant.api.review",
    "assistant.api.schedule",
    "assistant.api.schemas",
    "assistant.api.triage",
    "assistant.auth.models",
    "assistant.connector_models",
    "assistant.core.settings",
    "assistant.ingestion.models",
    "assistant.llm.models",
    "assistant.quality.models",
    "assistant.scheduling.models",
    "assistant.scheduling.service",
    "assistant.triage.models",
    "assistant.triage.store",
    "governance.actions",
    "governance.audit_models",
    "governance.erp_actions",
    "governance.models",
    "governance.policy",
    "governance.production_models",
    "governance.workers",
    "integrations.base",
    "integrations.sandbox.models",
)


@pytest.mark.parametrize("name", EVALUATED_ANNOTATIONS)
def test_start_up_modules_do_not_postpone_their_annotations(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__dict__.get("annotations") is not __future__.annotations


def test_models_no_route_uses_are_built_on_first_use() -> None:
    # The connector contract, the governed actions' arguments, triage results and
    # scheduling requests: defer_build, so a start builds only those the API's routes need.
    probe = (
        "import json\n"
        "import assistant.cli, assistant.app\n"
        "from assistant.app import create_app\n"
        "from assistant.core.settings import Settings\n"
        "from integrations.base import CalendarEvent, EmailAddress\n"
        "from governance.actions import EmailSendArgs\n"
        "from governance.erp_actions import VendorBillArgs\n"
        "from assistant.triage.models import TriageResult\n"
        "from assistant.scheduling.models import SchedulingRequest\n"
        f"create_app(Settings(data_dir={str(Path('/nonexistent'))!r}))\n"
        "deferred = [CalendarEvent, EmailAddress, EmailSendArgs, VendorBillArgs, TriageResult,\n"
        "            SchedulingRequest]\n"
        "before = [m.__name__ for m in deferred if m.__pydantic_complete__]\n"
        "address = EmailAddress.model_validate({'address': ' A@Example.com'})\n"
        "print(json.dumps({'built': before, 'after': EmailAddress.__pydantic_complete__,\n"
        "                  'address': address.address}))\n"
    )
    report = _probe_report(probe)
    assert report == {"built": [], "after": True, "address": "a@example.com"}


def test_the_lazy_package_exports_still_resolve() -> None:
    # What the deferred modules export is still importable from their packages.
    probe = (
        "from assistant.triage import RuleTriage, TriageCascade, Category\n"
        "from assistant.llm import LLMClient, LLMError, delimit\n"
        "from integrations.imap import ImapEmailConnector\n"
        "import assistant.triage as triage\n"
        "try:\n"
        "    triage.NoSuchName\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "ok"


def test_serve_collects_garbage_again_once_its_app_has_started(tmp_path: Path) -> None:
    # What `assistant serve` does: the console script pauses the collector, serve builds the
    # app, uvicorn runs its lifespan; requests come only after the lifespan's start.
    probe = f"""
import asyncio, gc, json
from assistant.core.startup import pause_collector
pause_collector()
from assistant.app import create_app
from assistant.core.db import create_engine, upgrade
from assistant.core.settings import Settings

async def main():
    settings = Settings(data_dir={str(tmp_path)!r})
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    await engine.dispose()
    app = create_app(settings)
    seen = {{"building": gc.isenabled()}}
    async with app.router.lifespan_context(app):
        seen["started"] = gc.isenabled()
        seen["frozen"] = gc.get_freeze_count()
    print(json.dumps(seen))

asyncio.run(main())
"""
    seen = _probe_report(probe, timeout_s=180)
    assert seen["building"] is False
    assert seen["started"] is True
    assert seen["frozen"] > 10_000  # start-up's objects: never walked again


@pytest.fixture
def paused_collector() -> Iterator[None]:
    startup.pause_collector()
    try:
        yield
    finally:
        # Undo what the command did to this test process: nothing stays frozen or off.
        startup.resume_collector()
        gc.unfreeze()
        gc.enable()


@pytest.mark.usefixtures("paused_collector")
def test_other_commands_collect_garbage_again_as_they_begin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.cli import app

    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    assert not gc.isenabled()
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert gc.isenabled() and not startup.collector_paused()
    assert gc.get_freeze_count() > 0


def test_resuming_is_a_no_op_unless_the_console_script_paused() -> None:
    frozen = gc.get_freeze_count()
    startup.resume_collector()
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
