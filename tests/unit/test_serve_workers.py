"""`assistant serve --workers N`: argument validation and what uvicorn is asked to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> list[dict[str, Any]]:
    """uvicorn.run, recorded instead of serving."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(data_dir))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    return calls


@pytest.mark.parametrize("value", ["0", "-1", "65", "two", "1.5", ""])
def test_workers_outside_1_to_64_or_not_a_number_are_refused(
    started: list[dict[str, Any]], value: str
) -> None:
    from assistant.cli import app

    result = CliRunner().invoke(app, ["serve", "--workers", value])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output
    assert started == []  # nothing was started


def test_workers_start_a_factory_in_each_process(started: list[dict[str, Any]]) -> None:
    from assistant.cli import app

    result = CliRunner().invoke(app, ["serve", "--workers", "3", "--port", "8123"])
    assert result.exit_code == 0, result.output
    (call,) = started
    # An import string and a factory: each worker builds its own app after the fork.
    assert call["app"] == "assistant.app:create_app" and call["factory"] is True
    assert call["workers"] == 3 and call["port"] == 8123
    assert call["http"] == "h11"  # the header cap stays on in every worker


def test_the_default_comes_from_the_settings(
    started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import app

    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    monkeypatch.setenv("ASSISTANT_SERVER__WORKERS", "2")
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    monkeypatch.setenv("ASSISTANT_SERVER__WORKERS", "0")
    refused = CliRunner().invoke(app, ["serve"])
    assert refused.exit_code == 2 and "server.workers" in refused.output
    assert [call["workers"] for call in started] == [1, 2]
