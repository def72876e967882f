"""YAML read through libyaml's parser when PyYAML was built with it.

``yaml.safe_load`` parses in pure Python: the example policy alone took 8 ms of
`assistant serve`'s start, libyaml a tenth of that. ``CSafeLoader`` builds the same values
with the same safe constructor (tests/unit/test_yaml_loading.py compares them); only the
wording of a syntax error differs. PyYAML without libyaml falls back to ``SafeLoader``.
"""

from __future__ import annotations

from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """Like :func:`yaml.safe_load` (raises :class:`yaml.YAMLError` on bad input), faster."""
    return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)
