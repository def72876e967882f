"""Names a package exports, loaded with their module on first use (PEP 562).

For packages whose ``__init__`` re-exported heavy modules that the service's start-up does
not need (see tests/unit/test_startup_imports.py): ``from package import Name`` still works,
and type checkers see the real imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, module_of: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<module_of[name]>`` when ``name`` is
    first looked up, and keeps it on the package so that later lookups do not come back."""

    def __getattr__(name: str) -> Any:  # noqa: N807 (the name PEP 562 looks up)
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
