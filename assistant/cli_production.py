"""`assistant owners|autonomy|drill ...`, `assistant config versions|record|set-llm` and
`assistant rollback config`: production readiness from the command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from assistant.cli_actions import AsOpt, TenantOpt, _principal
from assistant.cli_support import settings_or_exit
from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, Role
from assistant.core.settings import OwnerSettings, Settings
from governance.policy import Autonomy

T = TypeVar("T")

owners_app = typer.Typer(
    help="Owners of the deployment, connectors, policy and exceptions.", no_args_is_help=True
)
autonomy_app = typer.Typer(
    help="Autonomy levels per executive and action kind.", no_args_is_help=True
)
drill_app = typer.Typer(help="Drills that prove the rollback plan works.", no_args_is_help=True)
rollback_app = typer.Typer(help="Restore earlier versions.", no_args_is_help=True)

console = Console()
err_console = Console(stderr=True)

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept with the change).")]


def _run(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Build the services, run ``work(services)``, close; errors exit 1 with the detail."""
    from assistant.services import Services
    from governance.aftercommit import drain_notifications

    async def go() -> T:
        services = await Services.build(settings)
        try:
            result = await work(services)
            await drain_notifications()  # owner notifications queued after commit
            return result
        finally:
            await services.aclose()

    try:
        return asyncio.run(go())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        for problem in getattr(exc, "problems", None) or []:
            err_console.print(f"  - {problem}")
        raise typer.Exit(1) from None


def _admin(settings: Settings, tenant: str | None, user: str | None) -> Principal:
    return _principal(settings, tenant, user, [Role.ADMIN])


# ---------------------------------------------------------------------------- owners


@owners_app.command("show")
def owners_show(tenant: TenantOpt = None) -> None:
    """Everything that needs an owner, its owner, and what is missing."""
    from governance.owners import masked_contact, owner_entries

    settings = settings_or_exit()
    actor = _admin(settings, tenant, None)

    async def work(services: Any) -> list[Any]:
        async with services.sessions() as session:
            return await owner_entries(session, services.settings, actor.tenant_id)

    table = Table(title=f"owners of tenant {actor.tenant_id}")
    for column in ("what", "person", "role", "contact", "source"):
        table.add_column(column)
    missing = 0
    for entry in _run(settings, work):
        owner = entry.owner
        missing += owner is None
        table.add_row(
            entry.label,
            owner.person if owner else "[red]MISSING[/red]",
            owner.role if owner else "",
            masked_contact(owner.contact) if owner else "",
            entry.source,
        )
    console.print(table)
    if missing:
        raise typer.Exit(1)


@owners_app.command("set")
def owners_set(
    scope: Annotated[str, typer.Argument(help="deployment, exceptions, policy or connector.")],
    person: Annotated[str, typer.Option(help="The owner's name.")],
    role: Annotated[str, typer.Option(help="Their role.")],
    contact: Annotated[str, typer.Option(help="Email address or webhook URL.")],
    subject: Annotated[str, typer.Option(help="Connector instance (scope connector).")] = "",
    tenant: TenantOpt = None,
    user: AsOpt = None,
) -> None:
    """Name the owner of one scope (stored; takes precedence over the configured one)."""
    from pydantic import ValidationError

    from governance.owners import set_owner

    settings = settings_or_exit()
    actor = _admin(settings, tenant, user)
    try:
        owner = OwnerSettings(person=person, role=role, contact=contact)
    except ValidationError as exc:
        err_console.print(f"[red]invalid owner[/red]: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from None

    async def work(services: Any) -> None:
        async with services.sessions() as session, session.begin():
            await set_owner(session, actor, scope, subject, owner)

    _run(settings, work)
    console.print(f"owner of {scope}{':' + subject if subject else ''}: {person} ({role})")


# ---------------------------------------------------------------------------- autonomy


@autonomy_app.command("show")
def autonomy_show(
    executive: Annotated[str | None, typer.Argument(help="Only this executive.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Stored levels, and the bar a promotion must meet."""
    from governance.autonomy import grants

    settings = settings_or_exit()
    actor = _admin(settings, tenant, None)

    async def work(services: Any) -> list[Any]:
        async with services.sessions() as session:
            return await grants(session, actor.tenant_id, executive)

    table = Table(title=f"autonomy levels of tenant {actor.tenant_id}")
    for column in ("executive", "kind", "level", "set by", "when", "why"):
        table.add_column(column)
    for grant in _run(settings, work):
        table.add_row(
            grant.executive,
            grant.kind,
            grant.level,
            grant.set_by,
            grant.updated_at.isoformat(timespec="seconds"),
            grant.reason,
        )
    console.print(table)
    bar = settings.autonomy
    console.print(
        f"promotion bar: >= {bar.min_decisions} decisions in {bar.window_days} days, "
        f">= {bar.min_accepted_unedited:.0%} approved unedited"
    )


@autonomy_app.command("set")
def autonomy_set(
    executive: Annotated[
        str,
        typer.Argument(help="Executive: user name, user id or address, or * for everyone."),
    ],
    kind: Annotated[str, typer.Argument(help="Action kind or glob (email.*).")],
    level: Annotated[Autonomy, typer.Argument(help="shadow, suggest, auto_with_undo, auto.")],
    reason: ReasonOpt,
    tenant: TenantOpt = None,
    user: AsOpt = None,
) -> None:
    """Set a level: lowering is immediate, raising needs the measured record (exit 1 if not)."""
    from assistant.change_control import policy_path
    from governance import autonomy
    from governance.policy import load_policy

    settings = settings_or_exit()
    actor = _admin(settings, tenant, user)

    async def work(services: Any) -> Any:
        from assistant.auth.users import autonomy_executive

        default = load_policy(policy_path(services.settings)).default_autonomy
        async with services.sessions() as session:
            # a user name is stored as her id (what proposals look up); nobody: exit 1
            whose = await autonomy_executive(session, actor.tenant_id, executive)
        try:
            async with services.sessions() as session, session.begin():
                return await autonomy.set_level(
                    session,
                    actor,
                    executive=whose,
                    kind=kind,
                    level=level,
                    reason=reason,
                    bar=services.settings.autonomy,
                    default=default,
                )
        except autonomy.PromotionRefusedError as refused:
            async with services.sessions() as session, session.begin():
                await autonomy.audit_refusal(
                    session,
                    actor,
                    executive=whose,
                    kind=kind,
                    level=level,
                    reason=reason,
                    error=refused,
                )
            raise

    change = _run(settings, work)
    console.print(
        f"{change.grant.executive} {change.grant.kind}: {change.previous.value} -> "
        f"{change.level.value} ({change.direction})"
    )


@autonomy_app.command("compare-shadow")
def autonomy_compare_shadow(
    days: Annotated[int, typer.Option(help="Shadow drafts of the last N days.")] = 30,
    tenant: TenantOpt = None,
) -> None:
    """Compare shadow-mode reply drafts with the replies people actually sent."""
    from datetime import timedelta

    from assistant.core.clock import utcnow
    from governance.autonomy import compare_shadow_drafts, shadow_summary

    settings = settings_or_exit()
    actor = _principal(settings, tenant, "shadow-compare", [Role.ADMIN])

    async def work(services: Any) -> tuple[int, list[dict[str, Any]]]:
        recorded = await compare_shadow_drafts(
            services.sessions, services.connectors, actor, since=utcnow() - timedelta(days=days)
        )
        async with services.sessions() as session:
            return recorded, await shadow_summary(session, actor.tenant_id)

    recorded, summary = _run(settings, work)
    console.print(f"{recorded} new comparison(s)")
    for row in summary:
        console.print(
            f"  {row['executive']} {row['kind']}: {row['agreed']} of "
            f"{row['comparisons']} agreed, mean edit distance "
            f"{row['mean_distance'] if row['mean_distance'] is not None else '-'}"
        )


# ---------------------------------------------------------------------------- drill


@drill_app.command("rollback")
def drill_rollback(
    tenant: TenantOpt = None,
    executive: Annotated[
        str | None,
        typer.Option(help="Whose sandbox (default: whom the sandbox mailbox serves)."),
    ] = None,
    user: AsOpt = None,
) -> None:
    """Execute and compensate each undoable kind on the sandbox; exit 1 when it fails."""
    from governance.drill import run_drill
    from governance.owners import OwnerRouter

    settings = settings_or_exit()
    actor = _admin(settings, tenant, user)

    async def work(services: Any) -> Any:
        connectors = services.connectors
        whose = executive or connectors.sandbox_executive(actor.tenant_id)
        return await run_drill(
            services.sessions,
            connectors,
            services.settings.governance,
            tenant_id=actor.tenant_id,
            executive=whose,
            started_by=actor.user_id,
            owners=OwnerRouter(services.sessions, services.settings, connectors),
        )

    drill = _run(settings, work)
    table = Table(title=f"rollback drill {drill.id}")
    for column in ("kind", "result", "detail"):
        table.add_column(column)
    for item in drill.results:
        verdict = {True: "[green]ok[/green]", False: "[red]FAILED[/red]", None: "-"}[item["ok"]]
        table.add_row(item["kind"], verdict, item.get("detail", ""))
    console.print(table)
    if not drill.passed:
        err_console.print(f"[red]rollback drill failed[/red]: {drill.summary}")
        raise typer.Exit(1)
    console.print(f"[green]rollback drill passed[/green]: {drill.summary}")


# ---------------------------------------------------------------------------- config


def config_versions(
    kind: Annotated[str | None, typer.Option(help="policy, prompts, llm or connector.")] = None,
    tenant: TenantOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List configuration versions, newest first."""
    from governance.config_versions import describe, list_versions

    settings = settings_or_exit()
    actor = _admin(settings, tenant, None)

    async def work(services: Any) -> list[dict[str, Any]]:
        async with services.sessions() as session:
            return [describe(v) for v in await list_versions(session, actor.tenant_id, kind=kind)]

    rows = _run(settings, work)
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title=f"configuration versions of tenant {actor.tenant_id}")
    for column in ("version", "id", "hash", "by", "when", "why"):
        table.add_column(column)
    for row in rows:
        why = row["reason"] + (
            f" (restores {row['restored_from']})" if row["restored_from"] else ""
        )
        table.add_row(
            row["ref"],
            row["id"],
            row["content_hash"][7:19],
            row["created_by"],
            row["created_at"][:19],
            why,
        )
    console.print(table)


def config_record(
    kind: Annotated[str, typer.Argument(help="policy or prompts: snapshot the files now.")],
    reason: ReasonOpt,
    user: AsOpt = None,
) -> None:
    """Record the current policy file or prompt files as a new version (if changed)."""
    from assistant.change_control import snapshot_policy, snapshot_prompts

    settings = settings_or_exit()
    actor = _admin(settings, settings.auth.default_tenant, user)
    if kind not in {"policy", "prompts"}:
        err_console.print(
            "kind must be policy or prompts (connectors and model settings "
            "are versioned when they change)"
        )
        raise typer.Exit(2)

    async def work(services: Any) -> Any:
        async with services.sessions() as session, session.begin():
            if kind == "policy":
                return await snapshot_policy(session, actor, services.settings, reason)
            return await snapshot_prompts(session, actor, reason)

    from governance.config_versions import ref

    version = _run(settings, work)
    console.print(f"{ref(version)} {version.content_hash}")


def config_set_llm(
    values: Annotated[
        list[str],
        typer.Argument(help="FIELD=VALUE (JSON values allowed), e.g. model=gpt-4o temperature=0.2"),
    ],
    reason: ReasonOpt,
    user: AsOpt = None,
) -> None:
    """Change model settings through the versioned override (applied at the next start)."""
    from assistant.change_control import set_llm_override
    from governance.config_versions import ref

    settings = settings_or_exit()
    actor = _admin(settings, settings.auth.default_tenant, user)
    parsed: dict[str, Any] = {}
    for item in values:
        field, sep, raw = item.partition("=")
        if not sep:
            err_console.print(f"not FIELD=VALUE: {item!r}")
            raise typer.Exit(2)
        try:
            parsed[field] = json.loads(raw)
        except json.JSONDecodeError:
            parsed[field] = raw

    async def work(services: Any) -> Any:
        async with services.sessions() as session, session.begin():
            return await set_llm_override(session, actor, services.settings, parsed, reason)

    version = _run(settings, work)
    console.print(f"{ref(version)} {version.content_hash}")


@rollback_app.command("config")
def rollback_config(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Version: its id or KIND[:SUBJECT]@NUMBER, e.g. policy@3 or connector:crm-mail@2.",
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (audited).")] = "rollback",
    tenant: TenantOpt = None,
    user: AsOpt = None,
) -> None:
    """Restore one earlier configuration version exactly, in one step (audited)."""
    from assistant.change_control import appliers
    from governance.config_versions import ref, rollback

    settings = settings_or_exit()
    actor = _admin(settings, tenant or settings.auth.default_tenant, user)

    async def work(services: Any) -> Any:
        async with services.sessions() as session, session.begin():
            return await rollback(
                session, actor, to, appliers=appliers(services.settings), reason=reason
            )

    version = _run(settings, work)
    when = "within a second" if version.kind == "policy" else "at its next start"
    console.print(
        f"restored {to} as {ref(version)} ({version.content_hash}); a running "
        f"service picks it up {when}"
    )


def register(app: typer.Typer, config_app: typer.Typer) -> None:
    """Add the commands to the `assistant` CLI."""
    app.add_typer(owners_app, name="owners")
    app.add_typer(autonomy_app, name="autonomy")
    app.add_typer(drill_app, name="drill")
    app.add_typer(rollback_app, name="rollback")
    config_app.command("versions")(config_versions)
    config_app.command("record")(config_record)
    config_app.command("set-llm")(config_set_llm)
