"""How much a reviewer changed a proposal: a normalized edit distance between two argument sets.

The arguments are flattened to one ``path: value`` line per leaf (sorted), so that a
changed recipient and a rewritten paragraph both count, by the characters changed. The
distance is ``1 - similarity`` of :class:`difflib.SequenceMatcher`: 0.0 means unchanged,
1.0 entirely rewritten.
"""

from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any


def flatten(value: Any, path: str = "") -> list[str]:
    """One ``path: value`` line per leaf of ``value``, sorted by path."""
    if isinstance(value, dict):
        lines: list[str] = []
        for key in sorted(value, key=str):
            lines.extend(flatten(value[key], f"{path}/{key}"))
        return lines
    if isinstance(value, list):
        return [
            line for index, item in enumerate(value) for line in flatten(item, f"{path}/{index}")
        ]
    return [f"{path or '/'}: {'' if value is None else value}"]


def normalized_edit_distance(before: Any, after: Any) -> float:
    """0.0 (same) to 1.0 (nothing in common), rounded to four places."""
    old = "\n".join(flatten(before))
    new = "\n".join(flatten(after))
    if old == new:
        return 0.0
    # autojunk off: drafts repeat common characters, which must not be ignored as junk.
    similarity = SequenceMatcher(None, old, new, autojunk=False).ratio()
    return round(1.0 - similarity, 4)
