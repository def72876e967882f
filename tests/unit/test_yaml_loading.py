"""The libyaml loader reads every YAML file the service ships exactly as PyYAML's pure-Python
safe loader does, and refuses what the safe loader refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.core.yaml_loading import SAFE_LOADER, safe_load

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    path
    for folder in ("config", "assistant", "governance", "integrations")
    for path in (ROOT / folder).rglob("*.y*ml")
)


def test_libyaml_is_in_use() -> None:
    # The venv's PyYAML has libyaml; without it the speed-up would silently be gone.
    assert SAFE_LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_files_load_the_same(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert safe_load(text) == yaml.safe_load(text)


def test_tags_and_scalars_read_like_the_safe_loader() -> None:
    text = "a: 2026-12-03\nb: 1_000\nc: on\nd: 0o17\ne: !!binary aGk=\nf: [1.5, ~, .inf]\n"
    assert safe_load(text) == yaml.safe_load(text)


def test_refuses_python_objects_and_bad_syntax() -> None:
    with pytest.raises(yaml.YAMLError):
        safe_load("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError):
        safe_load("a: [1, 2\n")
