"""`assistant gate report` and `assistant quality check`: the decision gate and monitoring.

``gate report`` exits 0 for GO, 1 for NO-GO, 3 for REVISE and 2 for a usage or
configuration error, so that a pipeline can act on the answer.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console

from assistant.cli_support import settings_or_exit
from assistant.core.errors import AssistantError
from assistant.core.settings import Settings

gate_app = typer.Typer(help="The go / no-go decision gate.", no_args_is_help=True)
quality_app = typer.Typer(
    help="Quality monitoring: spot checks and drift alerts.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    MD = "md"
    JSON = "json"
    HTML = "html"


async def render_gate(
    settings: Settings, *, tenant: str, period: str, output: OutputFormat
) -> tuple[str, int]:
    """The gate report of ``tenant`` as text in ``output``, and the exit code (audited)."""
    from assistant.core.clock import utcnow
    from assistant.core.db import create_engine, create_session_factory
    from assistant.core.principal import system_principal
    from assistant.quality.gate import gate_report
    from assistant.quality.period import parse_period
    from assistant.quality.render import to_html, to_markdown
    from governance.checkpoints import configure

    now = utcnow()
    window = parse_period(period, now)
    configure(settings)
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as session:
            report = await gate_report(
                session, settings, system_principal(tenant, "gate-cli"), window, now=now
            )
            await session.commit()
    finally:
        await engine.dispose()
    if output is OutputFormat.JSON:
        text = orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"
    elif output is OutputFormat.HTML:
        text = to_html(report)
    else:
        text = to_markdown(report)
    return text, report.exit_code


@gate_app.command("report")
def report(
    period: Annotated[str, typer.Option(help="Back from now: h, d or w, e.g. 30d.")] = "30d",
    output_format: Annotated[
        OutputFormat,
        typer.Option("--format", help="md, json or html (html has charts; self-contained)."),
    ] = OutputFormat.MD,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant (default: the sandbox tenant).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file instead of stdout."),
    ] = None,
) -> None:
    """Evaluate the gate: GO (exit 0), NO-GO (exit 1) or REVISE (exit 3), with every
    criterion's measured value, threshold and verdict."""
    settings = settings_or_exit()
    try:
        text, code = asyncio.run(
            render_gate(
                settings,
                tenant=tenant or settings.sandbox.tenant,
                period=period,
                output=output_format,
            )
        )
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(2) from None
    if output is not None:
        output.write_text(text, encoding="utf-8")
        err_console.print(f"gate report written to {output}")
    else:
        typer.echo(text, nl=False)
    raise typer.Exit(code)


@quality_app.command("check")
def check(
    period: Annotated[
        str, typer.Option(help="Sample auto-approved actions of this period, e.g. 30d.")
    ] = "30d",
    tenant: Annotated[
        str | None, typer.Option(help="Tenant (default: the sandbox tenant).")
    ] = None,
) -> None:
    """Sample auto-approved actions into the spot-check queue; raise or resolve drift
    alerts over the rolling window. Exits 1 while any alert is open."""
    settings = settings_or_exit()

    async def go() -> tuple[int, list[str], int]:
        from assistant.core.clock import utcnow
        from assistant.core.principal import system_principal
        from assistant.quality import monitor
        from assistant.quality.period import parse_period
        from assistant.services import Services
        from governance.aftercommit import drain_notifications
        from governance.checkpoints import configure
        from governance.owners import OwnerRouter

        now = utcnow()
        actor = system_principal(tenant or settings.sandbox.tenant, "quality-check")
        configure(settings)
        services = await Services.build(settings)
        try:
            router = OwnerRouter(services.sessions, settings, services.connectors)
            async with services.sessions() as session:
                sampled = await monitor.sample_spot_checks(
                    session, settings.quality, actor, parse_period(period, now), now=now
                )
                owner = await monitor.alert_owner(session, settings, actor.tenant_id)
                changes = await monitor.evaluate_alerts(
                    session, settings.quality, actor, now=now, owner=owner
                )
                for change in changes:
                    if change.change == "raised":
                        notice = monitor.alert_notice(change.alert, settings)
                        router.notify_after_commit(session, notice)
                still_open = await monitor.list_alerts(session, actor.tenant_id, status="open")
                await session.commit()
            await drain_notifications()  # the owners hear of raised alerts before we exit
        finally:
            await services.aclose()
        lines = [
            f"{c.change}: {c.alert.metric} {c.alert.kind} {c.alert.value:.3f} "
            f"(threshold {c.alert.threshold:.3f}, {c.alert.samples} samples; owner "
            f"{c.alert.routed_to or 'unassigned'})"
            for c in changes
        ]
        return len(sampled), lines, len(still_open)

    try:
        sampled, lines, still_open = asyncio.run(go())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(2) from None
    console.print(f"{sampled} action(s) sampled for spot checks")
    for line in lines:
        console.print(line, markup=False)
    console.print(f"{still_open} alert(s) open")
    if still_open:
        raise typer.Exit(1)
