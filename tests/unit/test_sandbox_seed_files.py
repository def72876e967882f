"""The sandbox connectors learn whose mailbox it is from the ``executive:`` block alone, with
the answer the full, validated seed gives; anything unusual falls back to that full read."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from integrations.base import ConnectorContext
from integrations.sandbox import EMAIL_SPEC
from integrations.sandbox.seed import load_mailbox_seed
from integrations.sandbox.seed_files import default_seed_dir, seed_executive_address

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "sandbox"

_MINIMAL = """\
# a comment
anchor_week: 2026-11-23
{executive}
internal_domains: [example.org]
messages: []
"""


def _seed(tmp_path: Path, executive: str) -> Path:
    (tmp_path / "mailbox.yaml").write_text(_MINIMAL.format(executive=executive), "utf-8")
    return tmp_path


def test_the_shipped_seed_gives_the_validated_address() -> None:
    assert seed_executive_address(SHIPPED) == load_mailbox_seed(SHIPPED).executive.address
    assert default_seed_dir().resolve() == SHIPPED.resolve()


@pytest.mark.parametrize(
    "executive",
    [
        "executive:\n  address: ada@example.org\n  name: Ada\n  timezone: UTC",
        "executive:\n  # who\n  name: Ada\n\n  address: 'ada@example.org'\n  timezone: UTC",
        "executive: {address: ada@example.org, name: Ada, timezone: UTC}",
    ],
)
def test_block_forms_read_like_the_whole_file(tmp_path: Path, executive: str) -> None:
    folder = _seed(tmp_path, executive)
    assert seed_executive_address(folder) == "ada@example.org"
    assert load_mailbox_seed(folder).executive.address == "ada@example.org"


@pytest.mark.parametrize(
    "executive",
    [
        '"executive":\n  address: ada@example.org\n  name: Ada\n  timezone: UTC',
        "executive:\n  address: [ada@example.org]\n  name: Ada\n  timezone: UTC",
        "executive: ada@example.org",
        "executive:\n  address: ada@example.org\n  name: Ada\n  timezone: UTC\n"
        "executive:\n  address: bob@example.org\n  name: Bob\n  timezone: UTC",
        "executive:\n  address: 'ada@example.org\n  name: Ada",
    ],
)
def test_anything_unusual_is_left_to_the_full_read(tmp_path: Path, executive: str) -> None:
    assert seed_executive_address(_seed(tmp_path, executive)) is None


async def test_the_connector_takes_the_address_without_importing_the_seeder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "seed"
    shutil.copytree(SHIPPED, folder)
    monkeypatch.delitem(sys.modules, "integrations.sandbox.seed", raising=False)
    context = ConnectorContext(tenant_id="default", instance_name="mail", session_factory=object())
    connector = await EMAIL_SPEC.factory(
        EMAIL_SPEC.validate_config({"seed_dir": str(folder)}), context
    )
    assert "integrations.sandbox.seed" not in sys.modules
    expected = load_mailbox_seed(folder).executive.address.lower()
    assert connector.mailbox == expected  # type: ignore[attr-defined]


async def test_a_block_it_cannot_read_is_validated_in_full(tmp_path: Path) -> None:
    folder = _seed(
        tmp_path, "executive:\n  address: [not, a, string]\n  name: Ada\n  timezone: UTC"
    )
    context = ConnectorContext(tenant_id="default", instance_name="mail", session_factory=object())
    with pytest.raises(ValidationError):
        await EMAIL_SPEC.factory(EMAIL_SPEC.validate_config({"seed_dir": str(folder)}), context)
