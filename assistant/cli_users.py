"""`assistant users`, `assistant token` and `assistant apikeys`: local users, their roles,
short-lived tokens from the local issuer, and service accounts' API keys."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.cli_support import settings_or_exit
from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings

T = TypeVar("T")

users_app = typer.Typer(help="Local users and their roles.", no_args_is_help=True)
apikeys_app = typer.Typer(help="API keys of service accounts.", no_args_is_help=True)

console = Console()
err_console = Console(stderr=True)


def _tenant_allowed(value: str | None) -> str | None:
    """Reserved names (the system chain's) are refused before anything is opened."""
    from assistant.core.tenancy import tenant_name_problem

    problem = tenant_name_problem(value) if value is not None else None
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


TenantOption = Annotated[
    str | None,
    typer.Option(
        "--tenant", help="Tenant (default: auth.default_tenant).", callback=_tenant_allowed
    ),
]
RolesOption = Annotated[list[Role], typer.Option("--role", help="A role; repeat for several.")]


def _cli_actor(tenant_id: str) -> Principal:
    """The operator at the console, as recorded in audit rows."""
    return Principal(
        user_id=f"cli:{getpass.getuser()}", tenant_id=tenant_id, roles=frozenset({Role.ADMIN})
    )


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from assistant.core.db import (
        create_engine,
        create_session_factory,
        current_revision,
        head_revision,
    )

    async def go() -> T:
        engine = create_engine(settings.database_url)
        try:
            if await current_revision(engine) != head_revision(settings.database_url):
                err_console.print(
                    "[red]the database is not at the latest migration[/red]: "
                    "run `assistant db upgrade` first"
                )
                raise typer.Exit(2)
            async with create_session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except AssistantError as exc:
        err_console.print(f"[red]{type(exc).__name__}[/red]: {exc.detail}")
        raise typer.Exit(1) from None


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        err_console.print("[red]no password on standard input[/red]")
        raise typer.Exit(2)
    return password


# ---------------------------------------------------------------------------- users


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (unique in the tenant).")],
    role: RolesOption,
    tenant: TenantOption = None,
    display_name: Annotated[str | None, typer.Option(help="Full name.")] = None,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read a password for web sign-in from standard input."
        ),
    ] = False,
) -> None:
    """Add a user with one or more roles (executive, delegate, admin, auditor)."""
    from assistant.auth import users

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant
    password = _read_password(password_stdin)

    async def work(session: AsyncSession) -> str:
        user = await users.create_user(
            session,
            _cli_actor(tenant_id),
            tenant_id=tenant_id,
            username=name,
            roles=role,
            password=password,
            display_name=display_name,
            email=email,
        )
        return user.id

    user_id = _in_transaction(settings, work)
    console.print(
        f"user {name} ({user_id}) added to tenant {tenant_id} with roles "
        f"{', '.join(sorted(r.value for r in role)) or '(none)'}"
    )


@users_app.command("list")
def users_list(tenant: TenantOption = None) -> None:
    """List the tenant's users and their roles."""
    from assistant.auth import users

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant

    async def work(session: AsyncSession) -> list[tuple[str, str, str, str, str]]:
        roles = await users.roles_by_user(session, tenant_id)
        return [
            (
                u.username,
                u.id,
                ", ".join(sorted(r.value for r in roles.get(u.id, ()))),
                u.source,
                "disabled" if u.disabled else ("locked" if users.is_locked(u) else "active"),
            )
            for u in await users.list_users(session, tenant_id)
        ]

    table = Table(title=f"users of {tenant_id}")
    for column in ("name", "id", "roles", "source", "status"):
        table.add_column(column)
    for row in _in_transaction(settings, work):
        table.add_row(*row)
    console.print(table)


@users_app.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="User name.")],
    add: Annotated[list[Role] | None, typer.Option("--add", help="Role to grant.")] = None,
    remove: Annotated[
        list[Role] | None, typer.Option("--remove", help="Role to take away.")
    ] = None,
    tenant: TenantOption = None,
) -> None:
    """Grant or take away roles."""
    from assistant.auth import users

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant

    async def work(session: AsyncSession) -> frozenset[Role]:
        user = await users.find_user(session, tenant_id, name)
        if user is None:
            err_console.print(f"[red]no user {name!r} in tenant {tenant_id}[/red]")
            raise typer.Exit(1)
        current = await users.roles_of(session, tenant_id, user.id)
        wanted = (current | set(add or ())) - set(remove or ())
        return await users.set_roles(session, _cli_actor(tenant_id), user, wanted)

    roles = _in_transaction(settings, work)
    console.print(f"{name}: {', '.join(sorted(r.value for r in roles)) or '(no roles)'}")


@users_app.command("password")
def users_password(
    name: Annotated[str, typer.Argument(help="User name.")],
    tenant: TenantOption = None,
) -> None:
    """Set a user's password, read from standard input (also clears a lockout)."""
    from assistant.auth import users

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant
    password = _read_password(True)
    assert password is not None

    async def work(session: AsyncSession) -> None:
        user = await users.find_user(session, tenant_id, name)
        if user is None:
            err_console.print(f"[red]no user {name!r} in tenant {tenant_id}[/red]")
            raise typer.Exit(1)
        await users.set_password(session, user, password)

    _in_transaction(settings, work)
    console.print(f"password of {name} set")


# ---------------------------------------------------------------------------- token


def token(
    name: Annotated[str, typer.Argument(help="User name.")],
    ttl: Annotated[
        int | None,
        typer.Option(
            "--ttl", help="Lifetime in seconds (default: auth.token_ttl_s).", min=60, max=86400
        ),
    ] = None,
    tenant: TenantOption = None,
) -> None:
    """Print a short-lived bearer token of the local issuer for a user (stdout only)."""
    from assistant.auth import users
    from assistant.auth.issuer import LocalIssuer
    from assistant.auth.keys import LocalKeyStore
    from assistant.auth.tenants import TenantDirectory

    settings = settings_or_exit()
    if settings.auth.mode != "local":
        err_console.print("[red]tokens are issued by Entra in entra mode[/red]")
        raise typer.Exit(2)
    tenant_id = tenant or settings.auth.default_tenant

    async def work(session: AsyncSession) -> str:
        user = await users.find_user(session, tenant_id, name)
        if user is None or user.disabled:
            err_console.print(f"[red]no active user {name!r} in tenant {tenant_id}[/red]")
            raise typer.Exit(1)
        roles = await users.roles_of(session, tenant_id, user.id)
        issuer = LocalIssuer(
            settings, LocalKeyStore.for_data_dir(settings.data_dir, settings.secret_key)
        )
        tid = TenantDirectory(settings, issuer.issuer).tid_of(tenant_id)
        return issuer.mint(
            user_id=user.id,
            tenant_id=tid,
            roles=roles,
            ttl_s=ttl,
            username=user.username,
            display_name=user.display_name,
        )

    typer.echo(_in_transaction(settings, work))
    err_console.print(
        f"valid for {timedelta(seconds=ttl or settings.auth.token_ttl_s)}; send "
        "it as `Authorization: Bearer <token>`"
    )


# ---------------------------------------------------------------------------- API keys


@apikeys_app.command("create")
def apikeys_create(
    name: Annotated[str, typer.Argument(help="What the key is for (e.g. prometheus).")],
    role: RolesOption,
    tenant: TenantOption = None,
    expires_in_days: Annotated[
        int | None,
        typer.Option(help="Expire after this many days (default: never).", min=1, max=3650),
    ] = None,
) -> None:
    """Create an API key; it is printed once (stdout) and stored only as a hash."""
    from assistant.auth import apikeys
    from assistant.core.clock import utcnow

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant
    expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None

    async def work(session: AsyncSession) -> tuple[str, str]:
        row, key = await apikeys.create_api_key(
            session,
            _cli_actor(tenant_id),
            tenant_id=tenant_id,
            name=name,
            roles=role,
            expires_at=expires,
        )
        return row.prefix, key

    prefix, key = _in_transaction(settings, work)
    typer.echo(key)
    err_console.print(
        f"API key {prefix} created; it is not shown again. Send it as "
        "`X-API-Key: <key>` or `Authorization: Bearer <key>`."
    )


@apikeys_app.command("list")
def apikeys_list(tenant: TenantOption = None) -> None:
    """List the tenant's API keys (prefixes only)."""
    from assistant.auth import apikeys

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant

    def when(value: object) -> str:
        return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"

    async def work(session: AsyncSession) -> list[tuple[str, ...]]:
        return [
            (
                row.prefix,
                row.name,
                ", ".join(row.roles),
                when(row.created_at),
                when(row.last_used_at),
                when(row.expires_at),
                "revoked" if row.revoked_at else "active",
            )
            for row in await apikeys.list_api_keys(session, tenant_id)
        ]

    table = Table(title=f"API keys of {tenant_id}")
    for column in ("prefix", "name", "roles", "created", "last used", "expires", "status"):
        table.add_column(column)
    for row in _in_transaction(settings, work):
        table.add_row(*row)
    console.print(table)


@apikeys_app.command("revoke")
def apikeys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (or id).")],
    tenant: TenantOption = None,
) -> None:
    """Revoke an API key: it stops working at once."""
    from assistant.auth import apikeys

    settings = settings_or_exit()
    tenant_id = tenant or settings.auth.default_tenant

    async def work(session: AsyncSession) -> None:
        row = await apikeys.find_api_key(session, tenant_id, prefix)
        await apikeys.revoke_api_key(session, _cli_actor(tenant_id), row)

    _in_transaction(settings, work)
    console.print(f"API key {prefix} revoked")


def register(app: typer.Typer) -> None:
    """Mount these commands on the main `assistant` command."""
    app.add_typer(users_app, name="users")
    app.add_typer(apikeys_app, name="apikeys")
    app.command("token")(token)
