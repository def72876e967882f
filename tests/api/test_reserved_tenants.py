"""The system chain's name (and every name starting with "_") can never name a tenant: not
in settings, users, API keys, tokens, the sign-in form, nor written into the tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from assistant.auth import apikeys, users
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.errors import ValidationFailedError
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from assistant.core.tenancy import SYSTEM_CHAIN
from governance.audit_models import AuditChainHead, AuditEvent
from tests.api.test_auth_users import sign_in

RESERVED = [SYSTEM_CHAIN, "_anchor", "_anything"]


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize(
    "settings",
    [
        lambda n: {"auth": {"default_tenant": n}},
        lambda n: {"auth": {"tenants": {n: {}}}},
        lambda n: {"sandbox": {"tenant": n}},
        lambda n: {"connectors": [{"name": "m", "slug": "sandbox.email", "tenant": n}]},
    ],
    ids=["default_tenant", "tenants", "sandbox", "connector"],
)
def test_settings_refuse_a_reserved_tenant(settings: Any, name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="reserved"):
        Settings(data_dir=tmp_path, **settings(name))


@pytest.mark.parametrize("name", RESERVED)
async def test_no_user_or_api_key_in_a_reserved_tenant(services: Any, name: str) -> None:
    operator = Principal(user_id="ops", tenant_id=name, roles=frozenset({Role.ADMIN}))
    async with services.sessions() as session:
        with pytest.raises(ValidationFailedError, match="reserved"):
            await users.create_user(
                session, operator, tenant_id=name, username="eve", roles=[Role.ADMIN]
            )
        with pytest.raises(ValidationFailedError, match="reserved"):
            await apikeys.create_api_key(
                session, operator, tenant_id=name, name="k", roles=[Role.ADMIN]
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'reserved.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sessions_on(db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_the_tables_refuse_a_reserved_tenant_on_any_path(sessions_on: Any) -> None:
    """Written past the service (a script, a restore): the database's triggers refuse it."""
    insert = text(
        "INSERT INTO auth_users (id, tenant_id, username, source, disabled, failed_logins, "
        "created_at, updated_at) VALUES (:id, :tenant, 'eve', 'local', false, 0, "
        "'2026-12-01 00:00:00.000000', '2026-12-01 00:00:00.000000')"
    )
    user_id = uuid.uuid4().hex
    insert = insert.bindparams(id=user_id)
    async with sessions_on() as session:
        with pytest.raises(DBAPIError, match="reserved"):
            await session.execute(insert, {"tenant": SYSTEM_CHAIN})
        await session.rollback()
        await session.execute(insert, {"tenant": "acme"})
        with pytest.raises(DBAPIError, match="reserved"):
            await session.execute(
                text("UPDATE auth_users SET tenant_id = :tenant WHERE id = :id"),
                {"tenant": SYSTEM_CHAIN, "id": user_id},
            )
        await session.rollback()


def test_the_cli_cannot_add_a_user_to_the_system_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(
        app, ["users", "add", "eve", "--role", "admin", "--tenant", SYSTEM_CHAIN]
    )
    assert result.exit_code != 0
    assert "reserved" in result.output + str(result.exception)


async def test_a_token_naming_the_system_chain_is_refused(
    client: httpx.AsyncClient, services: Any
) -> None:
    """Even a token of the local issuer itself (its real key) whose tid is "_system"."""
    token = services.auth.mint("eve", SYSTEM_CHAIN, [Role.ADMIN, Role.AUDITOR], username="eve")
    for path in ("/api/v1/me", "/api/v1/audit/events"):
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, response.text
    async with services.sessions() as session:
        rejected = list(
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == SYSTEM_CHAIN,
                    AuditEvent.action == "auth.token.rejected",
                )
            )
        )
    assert rejected and all(e.reason == "reserved tenant" for e in rejected)
    assert all(e.actor_id == "anonymous" for e in rejected)


async def test_the_sign_in_form_cannot_enter_the_system_chain(
    client: httpx.AsyncClient, services: Any
) -> None:
    for tenant in (SYSTEM_CHAIN, "_anchor"):
        response = await sign_in(client, "anonymous", "whatever-password", tenant=tenant)
        assert response.status_code == 401
        assert "ea_session" not in response.cookies
    async with services.sessions() as session:
        heads = set(await session.scalars(select(AuditChainHead.tenant_id)))
        failed = [
            e.payload["claimed_tenant"]
            for e in await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "auth.signin.failed")
            )
        ]
    assert heads <= {SYSTEM_CHAIN}  # recorded in the system chain, as claimed data only
    assert failed == [SYSTEM_CHAIN, "_anchor"]
