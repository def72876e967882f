"""`assistant config check` lists every error of a broken file and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.cli import app

runner = CliRunner()


def test_config_check_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output


def test_config_check_lists_all_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "server:\n  port: -1\n"
        "connectors:\n"
        "  - {name: a, slug: nosuch.connector}\n"
        "  - {name: b, slug: sandbox.email, config: {mailbox: 42, colour: blue}}\n"
    )
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(broken))
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 2
    assert "server.port" in result.output

    broken.write_text(
        "connectors:\n"
        "  - {name: a, slug: nosuch.connector}\n"
        "  - {name: b, slug: sandbox.email, config: {mailbox: 42, colour: blue}}\n"
        "  - {name: b, slug: sandbox.calendar}\n"
    )
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 2
    output = result.output
    assert "nosuch.connector" in output
    assert "config.mailbox" in output and "config.colour" in output
    assert "duplicate name" in output
    assert "4 configuration error(s)" in output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("assistant ")
