"""Identifiers."""

from __future__ import annotations

import uuid


def new_id() -> str:
    """A new random identifier (UUID4, 32 hex digits)."""
    return uuid.uuid4().hex
