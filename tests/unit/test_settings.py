"""Settings: env over YAML over defaults; production refuses insecure defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.core.errors import ConfigurationError
from assistant.core.settings import INSECURE_SECRET, Environment, load_settings


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assistant.yaml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.environment is Environment.DEVELOPMENT
    assert settings.data_dir == Path(".assistant")
    expected = tmp_path / ".assistant" / "assistant.db"
    assert settings.database_url == f"sqlite+aiosqlite:///{expected}"
    assert [c.slug for c in settings.connectors] == ["sandbox.email", "sandbox.calendar"]


def test_env_over_yaml_over_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _yaml(tmp_path, "server:\n  port: 9001\n  host: 0.0.0.0\nlog:\n  level: debug\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(config))
    monkeypatch.setenv("ASSISTANT_SERVER__PORT", "9002")
    settings = load_settings()
    assert settings.server.port == 9002  # env wins over YAML
    assert settings.server.host == "0.0.0.0"  # YAML wins over the default
    assert settings.log.level == "DEBUG"
    assert settings.llm.provider.value == "none"  # default kept


def test_production_refuses_insecure_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSISTANT_DEBUG", "true")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    problems = caught.value.problems
    assert any(p.startswith("secret_key") for p in problems)
    assert any(p.startswith("debug") for p in problems)
    assert INSECURE_SECRET not in caught.value.detail


def test_production_with_real_secret_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSISTANT_SECRET_KEY", "x" * 48)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASSISTANT_AUDIT__CHECKPOINT_KEY_FILE", str(tmp_path / "keys/a.pem"))
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__FILE", str(tmp_path / "anchor/a.jsonl"))
    assert load_settings().is_production


def test_production_keeps_the_audit_key_and_anchor_away_from_the_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASSISTANT_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSISTANT_SECRET_KEY", "x" * 48)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    problems = caught.value.problems
    assert any(p.startswith("audit.checkpoint_key_file: lies in data_dir") for p in problems)
    assert any(p.startswith("audit.anchor.file: lies in data_dir") for p in problems)
    monkeypatch.setenv("ASSISTANT_AUDIT__CHECKPOINT_KEY_FILE", str(tmp_path / "keys/a.pem"))
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__KIND", "none")
    with pytest.raises(ConfigurationError, match="audit.anchor.kind: none"):
        load_settings()
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__KIND", "http")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert any("audit.anchor.url is required" in p for p in caught.value.problems)
    monkeypatch.setenv("ASSISTANT_AUDIT__ANCHOR__URL", "https://witness.example")
    assert load_settings().audit.anchor.kind == "http"


def test_every_error_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _yaml(tmp_path, "server:\n  port: 70000\nlog:\n  level: LOUD\nnot_a_setting: 1\n")
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    joined = "\n".join(caught.value.problems)
    assert "server.port" in joined and "log.level" in joined and "not_a_setting" in joined


def test_missing_and_invalid_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigurationError, match="no such file"):
        load_settings()
    monkeypatch.setenv("ASSISTANT_CONFIG_FILE", str(_yaml(tmp_path, "server: [unclosed\n")))
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_settings()
