"""The `assistant` command line."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, MutableMapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.main
from pydantic import ValidationError
from rich.console import Console
from typer.core import TyperGroup
from typer.models import TyperInfo

from assistant import __version__
from assistant.cli_support import settings_or_exit
from assistant.core.errors import ConfigurationError
from assistant.core.settings import Settings, load_settings
from assistant.core.startup import resume_collector

T = TypeVar("T")
#: Upper bound of `serve --workers` (and of server.workers).
MAX_SERVE_WORKERS = 64

#: The sub-command groups (db, users, actions, audit, ...), by name, in the order added.
_GROUPS: dict[str, TyperInfo] = {}


class _GroupsOnDemand(MutableMapping[str, Any]):
    """The root command's sub-commands, where a group becomes a click command when first
    looked up: a command converts one group (``serve``: none of their ~90 commands), help
    and completion list them all. Typer's own order is kept: commands, then groups."""

    def __init__(self, commands: MutableMapping[str, Any], root: typer.Typer) -> None:
        self._converted = dict(commands)
        self._root = root
        self._order = [*commands, *(name for name in _GROUPS if name not in commands)]

    def __getitem__(self, name: str) -> Any:
        if name not in self._converted:
            info = _GROUPS[name]  # KeyError: no such command
            self._converted[name] = typer.main.get_group_from_info(
                info,
                pretty_exceptions_short=self._root.pretty_exceptions_short,
                suggest_commands=self._root.suggest_commands,
                rich_markup_mode=self._root.rich_markup_mode,
            )
        return self._converted[name]

    def __setitem__(self, name: str, command: Any) -> None:
        if name not in self._order:
            self._order.append(name)
        self._converted[name] = command

    def __delitem__(self, name: str) -> None:
        self._order.remove(name)
        self._converted.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._order)


class _RootGroup(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _GroupsOnDemand(self.commands, app)


app = typer.Typer(
    name="assistant",
    help="Executive Assistant: a governed AI assistant.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_RootGroup,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The embedded sandbox mailbox and calendars.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")

from assistant.cli_users import register as _register_user_commands  # noqa: E402

_register_user_commands(app)

from assistant.cli_actions import actions_app, killswitch_app  # noqa: E402
from assistant.cli_actions import worker as _worker_command  # noqa: E402

app.add_typer(actions_app, name="actions")
app.add_typer(killswitch_app, name="killswitch")
app.command("worker")(_worker_command)

from assistant.cli_audit import audit_app  # noqa: E402

app.add_typer(audit_app, name="audit")

from assistant.ingestion.cli import mail_app  # noqa: E402

app.add_typer(mail_app, name="mail")

from assistant.cli_triage import eval_app, triage_app  # noqa: E402

app.add_typer(triage_app, name="triage")
app.add_typer(eval_app, name="eval")

from assistant.cli_schedule import schedule_app  # noqa: E402

app.add_typer(schedule_app, name="schedule")

from assistant.cli_erp import erp_app  # noqa: E402

app.add_typer(erp_app, name="erp")

from assistant.cli_gate import gate_app, quality_app  # noqa: E402

app.add_typer(gate_app, name="gate")
app.add_typer(quality_app, name="quality")

from assistant.cli_chat import ask as _ask_command  # noqa: E402
from assistant.cli_production import register as _register_production_commands  # noqa: E402

app.command("ask")(_ask_command)

_register_production_commands(app, config_app)

# Every group is added above: from here on they are converted on demand (_GroupsOnDemand).
_GROUPS.update((str(info.name), info) for info in app.registered_groups)
app.registered_groups = []

console = Console()
err_console = Console(stderr=True)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _version(value: bool) -> None:
    if value:
        console.print(f"assistant {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Executive Assistant."""
    # `serve` resumes garbage collection once its app has started (assistant.app); every
    # other command as it begins.
    if ctx.invoked_subcommand != "serve":
        resume_collector()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=MAX_SERVE_WORKERS,
            help="Server processes sharing the port (default: server.workers). "
            "Each builds its own app, pools and caches; see the README's scaling section.",
        ),
    ] = None,
) -> None:
    """Run the HTTP service."""
    import uvicorn

    from governance.owners import check_production_owners

    settings = settings_or_exit()
    try:
        _run(check_production_owners(settings))
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error[/red]: {exc.detail}")
        for problem in exc.problems:
            err_console.print(f"  - {problem}")
        raise typer.Exit(2) from None
    processes = workers or settings.server.workers
    if processes > 1 and settings.governance.runner == "inprocess":
        # Each process would run its own loop: still correct (claims are compare-and-set on
        # the row's version) but N loops poll for one queue's work.
        console.print(
            f"note: governance.runner=inprocess runs the executor in each of the {processes} "
            "processes; claims are compare-and-set, so each action still runs once"
        )
    uvicorn.run(
        # An import string and a factory: with several workers each process builds its own
        # app (and settings, pools, caches) after the fork, from the same environment.
        "assistant.app:create_app",
        factory=True,
        workers=processes,
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_config=None,
        proxy_headers=True,
        # h11 caps the request line plus headers it buffers (httptools has no such cap).
        http="h11",
        h11_max_incomplete_event_size=settings.server.max_header_bytes,
        # No route speaks WebSocket: uvicorn need not load a WebSocket implementation.
        ws="none",
    )


# ---------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(target: Annotated[str, typer.Argument(help="Revision.")] = "head") -> None:
    """Apply migrations up to TARGET (default: head)."""
    from assistant.core.db import create_engine, current_revision, upgrade

    settings = settings_or_exit()

    async def go() -> str | None:
        engine = create_engine(settings.migration_database_url)
        try:
            await upgrade(engine, target)
            if engine.dialect.name == "postgresql":
                await _apply_job_schema(settings.migration_database_url)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"database at revision {_run(go())}")


async def _apply_job_schema(url: str) -> None:
    # procrastinate's tables, created by the owner too: the service role cannot create tables.
    from governance.runner import ProcrastinateRunner, procrastinate_conninfo

    runner = ProcrastinateRunner(procrastinate_conninfo(url), None)
    await runner.app.open_async()
    try:
        await runner.ensure_schema()
    finally:
        await runner.app.close_async()


@db_app.command("downgrade")
def db_downgrade(target: Annotated[str, typer.Argument(help="Revision or 'base'.")]) -> None:
    """Revert migrations down to TARGET."""
    from assistant.core.db import create_engine, current_revision, downgrade

    settings = settings_or_exit()

    async def go() -> str | None:
        engine = create_engine(settings.migration_database_url)
        try:
            await downgrade(engine, target)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    console.print(f"database at revision {_run(go())}")


@db_app.command("current")
def db_current() -> None:
    """Print the current and head revisions; exit 1 when behind."""
    from assistant.core.db import create_engine, current_revision, head_revision

    settings = settings_or_exit()

    async def go() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    current, head = _run(go()), head_revision(settings.database_url)
    console.print(f"current: {current}\nhead:    {head}")
    if current != head:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- config


def collect_config_problems(settings: Settings) -> list[str]:
    """Every problem of the deployment's configuration, not just the first."""
    from integrations.registry import ConnectorRegistry

    problems: list[str] = []
    registry = ConnectorRegistry.discover()
    names: set[tuple[str, str]] = set()
    for index, item in enumerate(settings.connectors):
        where = f"connectors[{index}] ({item.name})"
        if (item.tenant, item.name) in names:
            problems.append(f"{where}: duplicate name in tenant {item.tenant!r}")
        names.add((item.tenant, item.name))
        try:
            spec = registry.get(item.slug)
        except Exception as exc:
            problems.append(f"{where}: {exc}")
            continue
        try:
            spec.validate_config(item.config)
        except ValidationError as exc:
            for error in exc.errors():
                loc = ".".join(str(p) for p in error["loc"]) or "(root)"
                problems.append(f"{where}.config.{loc}: {error['msg']}")
    return problems


async def _production_owner_problems(settings: Settings) -> list[str]:
    """What production start would refuse for lack of owners (stored owners included)."""
    from assistant.core.db import create_engine, create_session_factory
    from governance.owners import owner_problems

    engine = create_engine(settings.database_url)
    try:
        return await owner_problems(create_session_factory(engine), settings)
    except Exception as exc:  # an unreachable or unmigrated database is a finding, not a crash
        return [f"owners: not checked, the database could not be read ({type(exc).__name__})"]
    finally:
        await engine.dispose()


def _database_exists(settings: Settings) -> bool:
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    return not url.drivername.startswith("sqlite") or Path(url.database or "").is_file()


async def _stored_connector_problems(settings: Settings) -> list[str]:
    """Connector instances kept in the database (the admin API's), validated like those from
    settings. A database not created or not migrated yet has none; in production a database
    that cannot be read is a problem."""
    from assistant.connector_store import stored_connector_problems
    from assistant.core.db import create_engine, create_session_factory
    from integrations.registry import ConnectorRegistry

    engine = create_engine(settings.database_url)
    try:
        return await stored_connector_problems(
            create_session_factory(engine), ConnectorRegistry.discover(), settings.secret_key
        )
    except Exception as exc:  # unreachable or unmigrated: a finding in production only
        if settings.is_production:
            why = type(exc).__name__
            return [f"stored connectors: not checked, the database could not be read ({why})"]
        return []
    finally:
        await engine.dispose()


@config_app.command("check")
def config_check() -> None:
    """Validate settings, the YAML file and every connector's config; list all errors.

    In production it also lists every missing owner, as production start would."""
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        problems.extend(exc.problems)
    if settings is not None:
        problems.extend(collect_config_problems(settings))
        if _database_exists(settings):  # checking must not create an SQLite file
            problems.extend(asyncio.run(_stored_connector_problems(settings)))
        if settings.is_production:
            problems.extend(asyncio.run(_production_owner_problems(settings)))
    if problems:
        err_console.print(f"[red]{len(problems)} configuration error(s)[/red]")
        for problem in problems:
            err_console.print(f"  - {problem}")
        raise typer.Exit(2)
    assert settings is not None
    console.print(
        f"configuration OK ({settings.environment.value}, "
        f"{len(settings.connectors)} connector(s), database "
        f"{settings.database_url.split('://', 1)[0]})"
    )


@config_app.command("reference")
def config_reference(
    update: Annotated[
        Path | None,
        typer.Option(
            help="Rewrite the table between the settings markers of this file (the README)."
        ),
    ] = None,
) -> None:
    """Print every setting with its environment name and default (Markdown)."""
    import re

    from assistant.core.settings_doc import settings_reference_markdown

    table = settings_reference_markdown()
    if update is None:
        typer.echo(table)
        return
    text = update.read_text(encoding="utf-8")
    pattern = re.compile(r"(<!-- settings:begin -->\n).*?(\n<!-- settings:end -->)", re.S)
    if not pattern.search(text):
        err_console.print(f"no settings markers in {update}")
        raise typer.Exit(2)
    update.write_text(
        pattern.sub(lambda m: m.group(1) + table + m.group(2), text), encoding="utf-8"
    )
    console.print(f"updated the configuration table in {update}")


# ---------------------------------------------------------------------------- sandbox


async def _bind_sandbox_executive(session: Any, settings: Settings, name: str) -> str:
    from assistant.connector_store import bind_sandbox_executive
    from assistant.core.errors import AssistantError

    try:
        return await bind_sandbox_executive(session, settings, name)
    except AssistantError as exc:
        err_console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from exc


@sandbox_app.command("seed")
def sandbox_seed(
    reset: Annotated[bool, typer.Option(help="Replace existing sandbox data.")] = False,
    seed_dir: Annotated[Path | None, typer.Option(help="Folder of the seed files.")] = None,
    executive: Annotated[
        str | None,
        typer.Option(
            help="User name of the executive whose assistant the sandbox is: created with "
            "the executive role only if missing, and the sandbox mailbox and calendar are "
            "bound to her (she sees her inbox and review queue without being an admin)."
        ),
    ] = None,
) -> None:
    """Seed the sandbox mailbox and calendars with a working week (the current one)."""
    from assistant.core.db import create_engine, create_session_factory, upgrade
    from integrations.sandbox.seed import seed_sandbox

    settings = settings_or_exit()

    async def go() -> tuple[Any, str | None]:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            sessions = create_session_factory(engine)
            report = await seed_sandbox(
                sessions,
                tenant_id=settings.sandbox.tenant,
                seed_dir=seed_dir or settings.sandbox.seed_dir,
                reset=reset,
            )
            bound = None
            if executive is not None:
                async with sessions() as session:
                    bound = await _bind_sandbox_executive(session, settings, executive)
                    await session.commit()
            return report, bound
        finally:
            await engine.dispose()

    report, bound = _run(go())
    if bound is not None:
        console.print(f"sandbox mailbox and calendar bound to executive {executive} ({bound})")
    if report.skipped:
        console.print("sandbox already seeded (use --reset to start over)")
    else:
        console.print(
            f"sandbox seeded for the week of {report.week_of}: {report.messages} "
            f"messages, {report.people} people, {report.events} events"
        )


@app.command()
def demo(
    reset: Annotated[bool, typer.Option(help="Re-seed the sandbox first.")] = True,
) -> None:
    """One shot: seed the sandbox, run the inbox through the pipeline, print the result."""
    from assistant.demo import run_demo

    settings = settings_or_exit()
    _run(run_demo(settings, console, reset=reset))


if __name__ == "__main__":  # pragma: no cover
    app()
