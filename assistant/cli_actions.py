"""`assistant actions ...`, `assistant killswitch ...` and `assistant worker`."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli_support import settings_or_exit
from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings

T = TypeVar("T")

actions_app = typer.Typer(
    help="Governed actions: list, inspect, decide, undo, roll back.", no_args_is_help=True
)
killswitch_app = typer.Typer(
    help="Stop (and resume) the execution of actions.", no_args_is_help=True
)

console = Console()
err_console = Console(stderr=True)

TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant (default: the sandbox tenant of the settings)."),
]
AsOpt = Annotated[str | None, typer.Option("--as", help="Who decides (user id).")]
RoleOpt = Annotated[
    list[Role] | None,
    typer.Option("--role", help="Roles of that user (repeatable; default: admin)."),
]
ForOpt = Annotated[str | None, typer.Option("--for", help="The executive a delegate acts for.")]


def _principal(
    settings: Settings,
    tenant: str | None,
    user: str | None,
    roles: list[Role] | None,
    on_behalf_of: str | None = None,
) -> Principal:
    return Principal(
        user_id=user or f"cli:{getpass.getuser()}",
        tenant_id=tenant or settings.sandbox.tenant,
        roles=frozenset(roles or [Role.ADMIN]),
        on_behalf_of=on_behalf_of,
    )


@contextlib.asynccontextmanager
async def _runtime(settings: Settings) -> AsyncIterator[Any]:
    from assistant.governance_app import RunnerMode, build_governance, runner_mode
    from assistant.services import Services
    from governance.runner import drain_notifications

    services = await Services.build(settings)
    # The CLI only defers jobs (PostgreSQL); it never runs the in-process loop itself.
    mode: RunnerMode = "procrastinate" if runner_mode(services) == "procrastinate" else "off"
    runtime = build_governance(services, mode=mode)
    try:
        await runtime.start()
        yield runtime
        await drain_notifications()
    finally:
        await runtime.stop()
        await services.aclose()


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    async def go() -> T:
        async with _runtime(settings) as runtime:
            return await work(runtime)

    try:
        return asyncio.run(go())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(1) from None


async def _in_transaction(runtime: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    async with runtime.services.sessions() as session, session.begin():
        return await work(session)


def _describe(action: Any) -> dict[str, Any]:
    columns = (
        "id",
        "kind",
        "state",
        "version",
        "risk",
        "on_behalf_of",
        "actor_id",
        "correlation_id",
        "autonomy",
        "decision",
        "policy_rule_id",
        "policy_version",
        "decision_reason",
        "explanation",
        "approvals_required",
        "approver_roles",
        "review_expires_at",
        "not_before",
        "attempts",
        "external_ids",
        "result",
        "last_error",
        "compensation_result",
        "arguments",
        "created_at",
        "updated_at",
    )
    return {c: getattr(action, c) for c in columns}


# ---------------------------------------------------------------------------- actions


@actions_app.command("list")
def actions_list(
    tenant: TenantOpt = None,
    state: Annotated[list[str] | None, typer.Option(help="Filter by state (repeatable).")] = None,
    kind: Annotated[str | None, typer.Option(help="Filter by kind ('*' wildcard).")] = None,
    correlation: Annotated[str | None, typer.Option(help="Correlation id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
) -> None:
    """List actions, newest first."""
    from governance.state import ActionState

    settings = settings_or_exit()
    principal = _principal(settings, tenant, None, [Role.AUDITOR])
    states = [ActionState(s) for s in state or []]

    async def work(runtime: Any) -> list[Any]:
        return await _in_transaction(
            runtime,
            lambda session: runtime.actions.list(
                session,
                principal,
                states=states,
                kind=kind,
                correlation_id=correlation,
                limit=limit,
            ),
        )

    rows = _run(settings, work)
    table = Table(title=f"actions of tenant {principal.tenant_id}")
    for column in ("id", "kind", "state", "for", "rule", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.id,
            row.kind,
            row.state,
            row.on_behalf_of or "",
            row.policy_rule_id or "",
            row.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@actions_app.command("show")
def actions_show(
    action_id: str,
    tenant: TenantOpt = None,
    preview: Annotated[bool, typer.Option(help="Render the preview (reads the mailbox).")] = False,
) -> None:
    """One action as JSON: arguments, policy decision and explanation, execution."""
    settings = settings_or_exit()
    principal = _principal(settings, tenant, None, [Role.AUDITOR])

    async def work(runtime: Any) -> dict[str, Any]:
        async def read(session: Any) -> dict[str, Any]:
            action = await runtime.actions.get(session, principal, action_id)
            shown = _describe(action)
            if preview:
                shown["preview"] = await runtime.review.preview(session, action)
            return shown

        return await _in_transaction(runtime, read)

    console.print_json(json.dumps(_run(settings, work), default=str))


@actions_app.command("approve")
def actions_approve(
    action_id: str,
    tenant: TenantOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    acting_for: ForOpt = None,
    comment: Annotated[str | None, typer.Option(help="Comment.")] = None,
) -> None:
    """Approve a pending action (as --as with --role, for --for)."""
    settings = settings_or_exit()
    principal = _principal(settings, tenant, user, role, acting_for)

    async def work(runtime: Any) -> Any:
        return await _in_transaction(
            runtime, lambda session: runtime.review.approve(session, principal, action_id, comment)
        )

    action = _run(settings, work)
    console.print(f"{action.id}: {action.state}")


@actions_app.command("reject")
def actions_reject(
    action_id: str,
    reason: Annotated[str, typer.Option(help="Why (required).")],
    tenant: TenantOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    acting_for: ForOpt = None,
) -> None:
    """Reject a pending action with a reason."""
    settings = settings_or_exit()
    principal = _principal(settings, tenant, user, role, acting_for)

    async def work(runtime: Any) -> Any:
        return await _in_transaction(
            runtime, lambda session: runtime.review.reject(session, principal, action_id, reason)
        )

    action = _run(settings, work)
    console.print(f"{action.id}: {action.state}")


@actions_app.command("undo")
def actions_undo(
    action_id: str,
    tenant: TenantOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    acting_for: ForOpt = None,
) -> None:
    """Cancel an action inside its hold window (or still in review)."""
    settings = settings_or_exit()
    principal = _principal(settings, tenant, user, role, acting_for)

    async def work(runtime: Any) -> Any:
        return await _in_transaction(
            runtime,
            lambda session: runtime.actions.undo(
                session, principal, action_id, "undone from the command line"
            ),
        )

    action = _run(settings, work)
    console.print(f"{action.id}: {action.state}")


@actions_app.command("rollback")
def actions_rollback(
    action_id: Annotated[str | None, typer.Argument(help="Action to compensate.")] = None,
    correlation: Annotated[
        str | None,
        typer.Option(help="Roll back every action of this correlation id, newest first."),
    ] = None,
    tenant: TenantOpt = None,
    user: AsOpt = None,
    role: RoleOpt = None,
    acting_for: ForOpt = None,
) -> None:
    """Compensate one executed action, or a whole correlation id in reverse order."""
    if bool(action_id) == bool(correlation):
        err_console.print("give an action id or --correlation (one of them)")
        raise typer.Exit(2)
    settings = settings_or_exit()
    principal = _principal(settings, tenant, user, role, acting_for)

    async def work(runtime: Any) -> list[Any]:
        if correlation:
            return list(await runtime.compensation.rollback_correlation(principal, correlation))
        return [await runtime.compensation.rollback(principal, action_id)]

    outcomes = _run(settings, work)
    failed = False
    for outcome in outcomes:
        mark = "[green]ok[/green]" if outcome.ok else "[red]failed[/red]"
        failed = failed or not outcome.ok
        console.print(
            f"{mark} {outcome.action_id} {outcome.kind}: {outcome.state} ({outcome.detail})"
        )
    if failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- kill switch


def _switch(enabled: bool, tenant: str | None, connector: str | None, reason: str | None) -> None:
    from governance.killswitch import set_switch

    settings = settings_or_exit()
    principal = _principal(settings, tenant, None, [Role.ADMIN])

    async def work(runtime: Any) -> Any:
        return await _in_transaction(
            runtime,
            lambda session: set_switch(
                session,
                principal,
                enabled=enabled,
                now=utcnow(),
                tenant_id=tenant,
                connector=connector,
                reason=reason,
            ),
        )

    _run(settings, work)
    scope = (
        " ".join(
            filter(
                None,
                [
                    f"tenant={tenant}" if tenant else None,
                    f"connector={connector}" if connector else None,
                ],
            )
        )
        or "global"
    )
    console.print(f"kill switch {'ON' if enabled else 'off'} ({scope})")


@killswitch_app.command("on")
def killswitch_on(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    connector: Annotated[
        str | None, typer.Option(help="Only this connector (instance name or capability).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Stop execution (actions wait in SCHEDULED; nothing is lost)."""
    _switch(True, tenant, connector, reason)


@killswitch_app.command("off")
def killswitch_off(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    connector: Annotated[str | None, typer.Option(help="Only this connector.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Resume execution."""
    _switch(False, tenant, connector, reason)


@killswitch_app.command("status")
def killswitch_status() -> None:
    """Every kill switch and whether it is on."""
    from governance.killswitch import list_switches

    settings = settings_or_exit()

    async def work(runtime: Any) -> list[Any]:
        async with runtime.services.sessions() as session:
            return await list_switches(session)

    table = Table(title="kill switches")
    for column in ("tenant", "connector", "state", "by", "reason", "since"):
        table.add_column(column)
    for row in _run(settings, work):
        table.add_row(
            row.tenant_id or "*",
            row.connector or "*",
            "ON" if row.enabled else "off",
            row.set_by,
            row.reason or "",
            row.updated_at.isoformat(timespec="seconds"),
        )
    console.print(table)


# ---------------------------------------------------------------------------- worker


def worker(
    backend: Annotated[
        Literal["auto", "inprocess", "procrastinate"],
        typer.Option(help="auto: procrastinate on PostgreSQL, the in-process loop otherwise."),
    ] = "auto",
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once.")] = None,
) -> None:
    """Run due actions, retries, lease recovery and review expiry until stopped."""
    from assistant.governance_app import build_governance, runner_mode
    from assistant.services import Services

    settings = settings_or_exit()

    async def go() -> None:
        services = await Services.build(settings)
        mode = runner_mode(services) if backend == "auto" else backend
        if mode == "off":
            mode = "inprocess"
        runtime = build_governance(services, mode=mode, work=True, concurrency=concurrency)
        runtime.policy.current()  # fail fast on a broken policy file
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await runtime.start()
            console.print(f"worker {runtime.executor.worker_id} running ({mode}); Ctrl-C to stop")
            await stop.wait()
        finally:
            await runtime.stop()
            await services.aclose()

    asyncio.run(go())
