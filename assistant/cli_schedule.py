"""`assistant schedule find ...`: rank meeting slots from the command line (the sandbox's
calendars by default)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from rich.console import Console
from rich.table import Table

from assistant.core.errors import AssistantError
from assistant.scheduling.service import ScheduleResult, constraints_from, find_meeting_slots

schedule_app = typer.Typer(
    help="Meeting scheduling: find slots that fit everyone.", no_args_is_help=True
)

console = Console()
err_console = Console(stderr=True)


def _instant(value: str | None, zone: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            "use an ISO date-time, e.g. 2026-11-26T14:00+00:00", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        if zone is None:
            raise typer.BadParameter("give an offset (…+01:00) or --tz", param_hint=option)
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise typer.BadParameter(f"unknown time zone {zone!r}", param_hint="--tz") from None
    return parsed.isoformat()


def _hhmm(value: datetime) -> str:
    return value.strftime("%a %d %b %H:%M")


def print_result(result: ScheduleResult, out: Console) -> None:
    """A table of slots with everyone's local times, or why there is none."""
    for warning in result.warnings:
        out.print(f"[yellow]warning[/yellow]: {warning}")
    if not result.feasible:
        out.print("[red]no slot fits[/red]")
        for reason in result.blocking:
            out.print(f"  blocking: {reason}")
        for relaxation in result.relaxations:
            first = relaxation.first_slot
            found = (
                f"first slot {first.start.isoformat()}" if first is not None else "does not help"
            )
            out.print(f"  relax: {relaxation.description}: {found}")
        return
    table = Table(title=f"Slots for {result.organizer} ({result.reference_timezone})")
    table.add_column("#", justify="right")
    table.add_column("UTC")
    people = [local.address for local in result.slots[0].local]
    for address in people:
        table.add_column(f"{address}\n{result.participant_timezones.get(address, '')}")
    table.add_column("tradeoffs")
    for index, slot in enumerate(result.slots, 1):
        local = {item.address: item for item in slot.local}
        cells = [
            f"{_hhmm(local[a].start)}-{local[a].end.strftime('%H:%M')}" if a in local else ""
            for a in people
        ]
        table.add_row(
            str(index),
            f"{_hhmm(slot.start)}-{slot.end.strftime('%H:%M')}",
            *cells,
            "; ".join(slot.tradeoffs) or "-",
        )
    out.print(table)


@schedule_app.command("find")
def find(
    with_: Annotated[list[str], typer.Option("--with", help="Required participant address.")] = [],  # noqa: B006  (typer reads the default)
    optional: Annotated[list[str], typer.Option(help="Optional participant address.")] = [],  # noqa: B006
    duration: Annotated[int, typer.Option(min=1, help="Minutes.")] = 30,
    from_: Annotated[str | None, typer.Option("--from", help="Window start (ISO).")] = None,
    to: Annotated[str | None, typer.Option(help="Window end (ISO).")] = None,
    days: Annotated[int, typer.Option(min=1, help="Window length without --to.")] = 5,
    tz: Annotated[str | None, typer.Option("--tz", help="Reference IANA zone.")] = None,
    buffer: Annotated[int, typer.Option(min=0, help="Free minutes before and after.")] = 0,
    max_results: Annotated[int, typer.Option("--max", min=1, help="Slots at most.")] = 5,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rank slots that fit the executive's calendar and every --with participant's."""
    from assistant.cli_support import settings_or_exit
    from assistant.services import Services
    from integrations.base import Capability

    if not with_ and not optional:
        raise typer.BadParameter("name at least one participant", param_hint="--with")
    # Log lines go to stderr: stdout carries only the table or the JSON.
    settings = settings_or_exit()
    tenant_id = tenant or settings.sandbox.tenant
    values: dict[str, Any] = {
        "participants": [{"address": a} for a in with_]
        + [{"address": a, "required": False} for a in optional],
        "duration_minutes": duration,
        "days": days,
        "timezone": tz,
        "window_start": _instant(from_, tz, "--from"),
        "window_end": _instant(to, tz, "--to"),
        "buffer_before": buffer,
        "buffer_after": buffer,
        "max_results": max_results,
    }

    async def go() -> ScheduleResult:
        services = await Services.build(settings)
        try:
            calendar = services.connectors.get(tenant_id, Capability.CALENDAR)
            return await find_meeting_slots(calendar, constraints_from(values))
        finally:
            await services.aclose()

    try:
        result = asyncio.run(go())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print_result(result, console)
    if not result.feasible:
        raise typer.Exit(1)
