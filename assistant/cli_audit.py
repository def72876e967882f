"""`assistant audit ...`: verify the hash chains, export events, manage checkpoints."""

from __future__ import annotations

import asyncio
import csv
import getpass
import sys
from collections.abc import Coroutine
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console

from assistant.cli_support import settings_or_exit
from assistant.core.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from governance.audit_models import AuditEvent

T = TypeVar("T")

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _engine(settings: Settings) -> AsyncEngine:
    from assistant.core.db import create_engine
    from governance.checkpoints import configure

    configure(settings)
    return create_engine(settings.database_url)


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"not an ISO-8601 date or time: {value!r}", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit_app.command("verify")
def verify(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="Trusted checkpoint key (PEM, public or private). Default: the configured "
            "audit.checkpoint_key_file."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes for long chains on SQLite (default: one per core)."),
    ] = None,
    anchor_file: Annotated[
        Path | None,
        typer.Option(
            help="Compare with this anchor file (a copy an auditor keeps) instead of the "
            "configured audit.anchor."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Recompute every chain and compare it with the anchor; exit 0 when intact, 1 when
    tampered (first bad seq and the reason printed), 2 when the anchor cannot be read."""
    from governance.anchor import AnchorError, AnchorSink, FileAnchor, anchor_from_settings
    from governance.audit_verify import VerifyReport, verify_all
    from governance.checkpoints import load_public_key

    settings = settings_or_exit()
    key = load_public_key(public_key or settings.audit_key_file)
    if public_key is not None and key is None:
        err_console.print(f"[red]no such key file[/red]: {public_key}")
        raise typer.Exit(2)
    if anchor_file is not None and not anchor_file.is_file():
        err_console.print(f"[red]no such anchor file[/red]: {anchor_file}")
        raise typer.Exit(2)
    anchor: AnchorSink | None = (
        FileAnchor(anchor_file) if anchor_file else anchor_from_settings(settings)
    )

    async def go() -> list[VerifyReport]:
        from assistant.core.db import create_session_factory

        engine = _engine(settings)
        try:
            async with create_session_factory(engine)() as session:
                return await verify_all(
                    session,
                    public_keys=[key] if key else [],
                    tenants=[tenant] if tenant else None,
                    workers=workers,
                    anchor=anchor,
                    checkpoint_every_events=settings.audit.checkpoint_every_events,
                )
        finally:
            await engine.dispose()

    try:
        reports = _run(go())
    except AnchorError as exc:
        err_console.print(f"[red]cannot read the anchor[/red]: {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            orjson.dumps([r.to_dict() for r in reports], option=orjson.OPT_INDENT_2).decode()
        )
    elif not reports:
        console.print("no audit chains to verify")
    for report in reports if not as_json else ():
        since = report.unanchored_since
        anchored = (
            f"; anchored up to seq {report.anchored_seq} in {report.anchor}, unanchored tail "
            f"{report.unanchored_events} event(s)"
            + (f" since {since:%Y-%m-%d %H:%M:%S}Z" if since else "")
            + (
                f"; anchor started {report.anchor_started_at:%Y-%m-%d %H:%M:%S}Z"
                f" ({report.checkpoints_before_anchor} older checkpoint(s) not in it)"
                if report.anchor_started_at
                else ""
            )
            if report.anchor
            else "; no anchor compared"
        )
        for warning in report.warnings:
            err_console.print(f"[yellow]tenant {report.tenant_id}: {warning}[/yellow]")
        if report.ok:
            console.print(
                f"tenant {report.tenant_id}: OK, {report.events} events, "
                f"{report.checkpoints} signed checkpoints{anchored}"
            )
            continue
        first = report.first_problem
        assert first is not None
        console.print(
            f"[red]tenant {report.tenant_id}: TAMPERED[/red] first bad seq "
            f"{first.seq}: {first.kind.value}: {first.detail}"
        )
        for problem in sorted(report.problems, key=lambda p: p.seq)[1:20]:
            console.print(f"  seq {problem.seq}: {problem.kind.value}: {problem.detail}")
        hidden = max(0, len(report.problems) - 20) + report.problems_omitted
        if hidden:
            console.print(f"  ... and {hidden} more")
    if key is None and any(r.checkpoints for r in reports):
        err_console.print(
            "[yellow]no checkpoint key found: signatures could not be checked[/yellow]"
        )
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _csv_columns() -> tuple[str, ...]:
    from governance.audit_query import EXPORT_COLUMNS

    return ("tenant_id", *EXPORT_COLUMNS)


def _record(event: AuditEvent) -> dict[str, Any]:
    from governance.audit_query import export_row

    return {"tenant_id": event.tenant_id, **export_row(event)}


@audit_app.command("export")
def export(
    since: Annotated[
        str | None,
        typer.Option(help="Events that occurred at or after this ISO time (UTC if no offset)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Events that occurred before this ISO time (UTC if no offset)."),
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL
    ),
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Export events with their hashes (payloads as stored: redacted); the export is audited.

    JSONL keeps payload and roles as the canonical JSON text that was hashed, so an export
    of a whole chain can be re-verified offline.
    """
    from assistant.core.db import create_session_factory
    from assistant.core.principal import ActorType, Principal
    from governance.audit import AuditAction, AuditEventIn, record
    from governance.audit_query import AuditFilter, stream_events
    from governance.audit_verify import chain_tenants

    settings = settings_or_exit()
    where = AuditFilter(since=_parse_time(since, "--since"), until=_parse_time(until, "--until"))
    target: AbstractContextManager[IO[str]] = (
        output.open("w", encoding="utf-8", newline="") if output else nullcontext(sys.stdout)
    )

    async def go(stream: IO[str]) -> dict[str, int]:
        engine = _engine(settings)
        counts: dict[str, int] = {}
        writer = (
            csv.DictWriter(stream, fieldnames=_csv_columns()) if fmt is ExportFormat.CSV else None
        )
        if writer is not None:
            writer.writeheader()
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session:
                tenants = [tenant] if tenant else await chain_tenants(session)
                for name in tenants:
                    counts[name] = 0
                    async for event in stream_events(session, name, where):
                        row = _record(event)
                        if writer is not None:
                            writer.writerow(row)
                        else:
                            stream.write(orjson.dumps(row).decode() + "\n")
                        counts[name] += 1
            async with sessions() as session, session.begin():
                for name, count in counts.items():
                    actor = Principal(
                        user_id=f"cli:{getpass.getuser()}",
                        tenant_id=name,
                        actor_type=ActorType.SYSTEM,
                    )
                    await record(
                        session,
                        actor,
                        AuditEventIn(
                            action=AuditAction.AUDIT_EXPORTED,
                            resource_type="audit_log",
                            payload={
                                "since": since,
                                "until": until,
                                "format": fmt.value,
                                "events": count,
                                "output": str(output) if output else "stdout",
                            },
                        ),
                    )
            return counts
        finally:
            await engine.dispose()

    with target as stream:
        counts = _run(go(stream))
    err_console.print(f"exported {sum(counts.values())} events of {len(counts)} tenant(s)")


@audit_app.command("checkpoint")
def checkpoint(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: all).")] = None,
    due_only: Annotated[
        bool,
        typer.Option(
            "--due-only",
            help="Only chains whose last checkpoint is older than "
            "audit.checkpoint_every_seconds (what the background runner does).",
        ),
    ] = False,
) -> None:
    """Sign a checkpoint at the head of each chain that grew since its last one, and append
    to the anchor every checkpoint it lacks."""
    from assistant.core.db import create_session_factory
    from governance.aftercommit import drain_notifications
    from governance.audit_verify import chain_tenants
    from governance.checkpoints import (
        CheckpointConfig,
        checkpoint_due,
        create_checkpoint,
        publish_unanchored,
    )

    settings = settings_or_exit()
    config = CheckpointConfig.from_settings(settings)

    async def go() -> list[tuple[str, int]]:
        engine = _engine(settings)
        written: list[tuple[str, int]] = []
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session:
                tenants = [tenant] if tenant else await chain_tenants(session)
            for name in tenants:
                async with sessions() as session, session.begin():
                    if due_only and not await checkpoint_due(session, name, config):
                        continue
                    made = await create_checkpoint(session, name, config)
                    if made is not None:
                        written.append((name, made.seq))
            await drain_notifications()  # the anchor appends run after each commit
            await publish_unanchored(sessions, config)
            return written
        finally:
            await engine.dispose()

    written = _run(go())
    for name, seq in written:
        console.print(f"tenant {name}: checkpoint at seq {seq}")
    if not written:
        console.print("no chain needed a checkpoint")


@audit_app.command("public-key")
def public_key() -> None:
    """Print the checkpoint verification key (PEM) and its fingerprint, for auditors."""
    from governance.checkpoints import fingerprint, load_public_key, public_key_pem

    settings = settings_or_exit()
    key = load_public_key(settings.audit_key_file)
    if key is None:
        err_console.print(
            f"no checkpoint key at {settings.audit_key_file} (it is created "
            "with the first checkpoint)"
        )
        raise typer.Exit(1)
    typer.echo(public_key_pem(key), nl=False)
    err_console.print(f"fingerprint (sha256): {fingerprint(key)}")


anchor_app = typer.Typer(
    help="Start the anchor: a new deployment's (init) or a move to a new one (rotate).",
    no_args_is_help=True,
)
audit_app.add_typer(anchor_app, name="anchor")

ReasonOption = Annotated[
    str,
    typer.Option("--reason", help="Why (recorded in the anchor's epoch and the audit log).", min=1),
]


def _start_anchor(settings: Settings, reason: str, previous: Any) -> None:
    from assistant.core.db import create_session_factory
    from governance.aftercommit import drain_notifications
    from governance.anchor import AnchorError
    from governance.anchor_epochs import start_anchor
    from governance.checkpoints import CheckpointConfig, publish_unanchored

    config = CheckpointConfig.from_settings(settings)

    async def go() -> Any:
        engine = _engine(settings)
        try:
            sessions = create_session_factory(engine)
            started = await start_anchor(
                sessions,
                config,
                reason=reason,
                started_by=f"cli:{getpass.getuser()}",
                previous=previous,
            )
            await drain_notifications()  # the checkpoints' appends run after each commit
            await publish_unanchored(sessions, config)
            return started
        finally:
            await engine.dispose()

    try:
        started = _run(go())
    except AnchorError as exc:
        err_console.print(f"[red]the anchor was not started[/red]: {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"anchor epoch {started.epoch.seq} started in {started.document['anchor']} at "
        f"{started.document['started_at']}; {len(started.checkpoints)} chain(s) checkpointed "
        "at their heads"
    )


@anchor_app.command("init")
def anchor_init(reason: ReasonOption) -> None:
    """Start the configured anchor, which must be empty: a new deployment, or one whose
    checkpoints were never anchored. Refused when the anchor holds anything (use rotate).

    Checkpoints signed before this moment are not required in the anchor; from now on
    every one is, and a deleted or emptied anchor fails `assistant audit verify`."""
    settings = settings_or_exit()
    _start_anchor(settings, reason, None)


@anchor_app.command("rotate")
def anchor_rotate(
    previous_file: Annotated[
        Path,
        typer.Option(
            "--previous-file",
            help="The anchor file being replaced (its entries are verified against the "
            "database first, and its digest is recorded in the new anchor's epoch).",
        ),
    ],
    reason: ReasonOption,
) -> None:
    """Move to a new, empty anchor (configured as audit.anchor): refused unless every chain
    verifies clean against the previous anchor."""
    from governance.anchor import AnchorError, FileAnchor
    from governance.audit_verify import VerifyReport, verify_all
    from governance.checkpoints import load_public_key

    settings = settings_or_exit()
    if not previous_file.is_file():
        err_console.print(f"[red]no such anchor file[/red]: {previous_file}")
        raise typer.Exit(2)
    key = load_public_key(settings.audit_key_file)
    if key is None:
        err_console.print("[red]no checkpoint key: the previous anchor cannot be checked[/red]")
        raise typer.Exit(2)

    async def check() -> tuple[Any, list[VerifyReport]]:
        from assistant.core.db import create_session_factory

        snapshot = await FileAnchor(previous_file).snapshot()
        engine = _engine(settings)
        try:
            async with create_session_factory(engine)() as session:
                reports = await verify_all(session, public_keys=[key], anchor=snapshot)
            return snapshot, reports
        finally:
            await engine.dispose()

    try:
        previous, reports = _run(check())
    except AnchorError as exc:
        err_console.print(f"[red]cannot read the previous anchor[/red]: {exc}")
        raise typer.Exit(2) from None
    bad = [r for r in reports if not r.ok]
    if bad or previous.empty:
        for report in bad:
            first = report.first_problem
            detail = f"{first.kind.value}: {first.detail}" if first else "problems omitted"
            err_console.print(f"[red]tenant {report.tenant_id}[/red]: {detail}")
        err_console.print(
            "[red]not rotated[/red]: "
            + (
                "the previous anchor is empty"
                if previous.empty
                else "the database does not verify against the previous anchor"
            )
        )
        raise typer.Exit(1)
    _start_anchor(settings, reason, previous)
