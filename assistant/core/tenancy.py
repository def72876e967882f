"""Tenant names, and the ones no tenant may take.

Chains and records that belong to no tenant live under names starting with ``_``: the
system chain (failed authentication, whose claimed tenant is only data) and the anchor's
epoch entries. A tenant named like them could read or write those records as its own, so
every path that names a tenant (settings, users, API keys, token ``tid``, sign-in form)
refuses the prefix.
"""

from __future__ import annotations

from assistant.core.errors import ValidationFailedError

#: Prefix of names reserved for chains that belong to no tenant.
RESERVED_PREFIX = "_"
#: The chain of events no tenant has vouched for (failed authentication).
SYSTEM_CHAIN = "_system"
#: The name under which the anchor holds its epoch entries (see governance.anchor).
ANCHOR_EPOCHS = "_anchor"
#: Longest tenant name (the tenant_id columns' width).
MAX_TENANT_CHARS = 64


def tenant_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a tenant, or None when it can."""
    if not name or not name.strip():
        return "a tenant name is required"
    if len(name) > MAX_TENANT_CHARS:
        return f"a tenant name has {MAX_TENANT_CHARS} characters at most"
    if name.startswith(RESERVED_PREFIX):
        return (
            f"tenant names starting with {RESERVED_PREFIX!r} are reserved "
            f"({SYSTEM_CHAIN} is the system chain)"
        )
    if name != name.strip():
        return "a tenant name cannot start or end with whitespace"
    return None


def is_reserved_tenant(name: str) -> bool:
    return name.startswith(RESERVED_PREFIX)


def check_tenant_name(name: str) -> str:
    """``name`` when it may name a tenant; else :class:`ValidationFailedError` (422)."""
    problem = tenant_name_problem(name)
    if problem is not None:
        raise ValidationFailedError(problem)
    return name
