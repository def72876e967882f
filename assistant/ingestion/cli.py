"""`assistant mail ...`: run mail ingestion by hand (sync) or as a worker (watch)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.table import Table

from integrations.base import Capability

log = structlog.stdlib.get_logger(__name__)

mail_app = typer.Typer(
    help="Mail ingestion: sync mailboxes into the triage queue.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


def email_targets(services: Any, tenant: str | None, name: str | None) -> list[Any]:
    """Working email connector instances, optionally one tenant's or one by name."""
    from assistant.ingestion.service import IngestionTarget

    return [
        IngestionTarget(tenant_id=i.tenant_id, name=i.name, connector=i.connector)
        for i in services.connectors.instances.values()
        if Capability.EMAIL in i.capabilities
        and i.connector is not None
        and (tenant is None or i.tenant_id == tenant)
        and (name is None or i.name == name)
    ]


class _SlowIngestor:
    """Wraps a connector so that pages are spaced out (gentle on rate-limited servers)."""

    def __init__(self, connector: Any, delay_s: float) -> None:
        self._connector = connector
        self._delay_s = delay_s

    def __getattr__(self, item: str) -> Any:
        return getattr(self._connector, item)

    async def sync(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self._delay_s)
        return await self._connector.sync(*args, **kwargs)


@mail_app.command("sync")
def sync(
    connector: Annotated[
        str | None,
        typer.Option("--connector", help="Only this connector instance (default: every mailbox)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    page_size: Annotated[int, typer.Option(min=1, max=1000, help="Messages per page.")] = 100,
    baseline: Annotated[
        bool,
        typer.Option(help="On a mailbox's first sync, record what is there without queueing it."),
    ] = False,
    page_delay: Annotated[
        float, typer.Option(min=0, help="Seconds to wait between pages (throttle).")
    ] = 0.0,
) -> None:
    """Sync mailboxes from their stored cursors and queue new mail for triage."""
    from assistant.cli_support import settings_or_exit
    from assistant.ingestion.service import MailIngestor
    from assistant.services import Services

    settings = settings_or_exit()

    async def go() -> list[Any]:
        services = await Services.build(settings)
        try:
            targets = email_targets(services, tenant, connector)
            if not targets:
                return []
            ingestor = MailIngestor(
                services.sessions, page_size=page_size, initial="baseline" if baseline else "queue"
            )
            reports = []
            for target in targets:
                if page_delay:
                    target.connector = _SlowIngestor(target.connector, page_delay)
                reports.extend(await ingestor.sync_target(target))
            return reports
        finally:
            await services.aclose()

    reports = asyncio.run(go())
    if not reports:
        err_console.print(
            "[red]no working email connector[/red]" + (f" named {connector!r}" if connector else "")
        )
        raise typer.Exit(2)
    table = Table(title="mail sync")
    for column in (
        "connector",
        "folder",
        "pages",
        "fetched",
        "queued",
        "duplicates",
        "removed",
        "resync",
        "seconds",
        "error",
    ):
        table.add_column(column)
    for r in reports:
        table.add_row(
            r.connector,
            r.folder,
            str(r.pages),
            str(r.fetched),
            str(r.queued),
            str(r.duplicates),
            str(r.removed),
            "yes" if r.full_resync else "",
            f"{r.seconds:.2f}",
            r.error or "",
        )
    console.print(table)
    if any(r.error for r in reports):
        raise typer.Exit(1)


@mail_app.command("watch")
def watch(
    connector: Annotated[str | None, typer.Option("--connector")] = None,
    tenant: Annotated[str | None, typer.Option()] = None,
    poll_interval: Annotated[float, typer.Option(min=1, help="Polling fallback (s).")] = 300.0,
) -> None:
    """Run ingestion continuously: IMAP IDLE, Graph notifications, polling as the fallback."""
    from assistant.cli_support import settings_or_exit
    from assistant.ingestion.service import MailIngestor
    from assistant.ingestion.worker import run_worker
    from assistant.services import Services

    settings = settings_or_exit()

    async def go() -> None:
        services = await Services.build(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            targets = email_targets(services, tenant, connector)
            await run_worker(
                MailIngestor(services.sessions),
                services.sessions,
                targets,
                stop,
                poll_interval_s=poll_interval,
            )
        finally:
            await services.aclose()

    asyncio.run(go())
