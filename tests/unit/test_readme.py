"""The README's configuration table is the one generated from the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.core.settings_doc import settings_reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_documents_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block, "README lost its settings markers"
    assert block.group(1).strip() == settings_reference_markdown().strip(), (
        "README configuration table is stale: regenerate it with `assistant config reference`"
    )


def test_readme_has_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text
