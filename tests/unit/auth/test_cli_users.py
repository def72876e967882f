"""`assistant users`, `assistant token` and `assistant apikeys` against a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.auth.runtime import AuthRuntime
from assistant.auth.tokens import VerifiedToken
from assistant.cli import app
from assistant.core.db import create_engine, create_session_factory
from assistant.core.principal import Role
from assistant.core.settings import Settings

runner = CliRunner()


async def _validate(settings: Settings, token: str) -> VerifiedToken:
    engine = create_engine(settings.database_url)
    try:
        runtime = AuthRuntime.build(settings, create_session_factory(engine))
        return await runtime.validator.validate(token)
    finally:
        await engine.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return tmp_path


def test_users_token_and_api_keys(cli_env: Path) -> None:
    result = runner.invoke(
        app,
        ["users", "add", "alice", "--role", "executive", "--password-stdin"],
        input="a long enough password\n",
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["users", "add", "alice", "--role", "admin"])
    assert result.exit_code == 1 and "already exists" in result.output
    result = runner.invoke(app, ["users", "role", "alice", "--add", "auditor"])
    assert result.exit_code == 0 and "auditor, executive" in result.output
    result = runner.invoke(app, ["users", "list"])
    assert result.exit_code == 0 and "alice" in result.output

    result = runner.invoke(app, ["token", "alice", "--ttl", "120"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    verified = asyncio.run(_validate(Settings(data_dir=cli_env), token))
    assert verified.tenant_id == "default"
    assert verified.roles == {Role.EXECUTIVE, Role.AUDITOR}
    assert verified.claims["exp"] - verified.claims["iat"] == 120
    assert runner.invoke(app, ["token", "nobody"]).exit_code == 1

    result = runner.invoke(app, ["apikeys", "create", "scraper", "--role", "auditor"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    prefix = key.split("_")[1]
    listed = runner.invoke(app, ["apikeys", "list"])
    assert prefix in listed.output and key not in listed.output
    assert runner.invoke(app, ["apikeys", "revoke", prefix]).exit_code == 0
    assert "revoked" in runner.invoke(app, ["apikeys", "list"]).output


def test_commands_refuse_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["users", "list"])
    assert result.exit_code == 2 and "db upgrade" in result.output
