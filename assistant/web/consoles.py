"""What the admin and auditor rooms share: the tenant-wide permission check (these rooms
serve no executive) and the live health of connector instances."""

from __future__ import annotations

from assistant.auth.permissions import Permission
from assistant.connectors import live_health, live_healths
from assistant.core.errors import PermissionDeniedError
from assistant.web.pages import PREFIX, Page

#: The page and the admin API ask connectors the same way (assistant.connectors).
__all__ = ["console_home", "live_health", "live_healths", "require_tenant"]


async def require_tenant(page: Page, permission: Permission) -> None:
    """Go on only when the person holds ``permission`` in her tenant (403, audited)."""
    if not page.can(permission):
        if page.services.auth is not None:
            await page.services.auth.audit_access_denied(
                page.request, page.person, [permission.value]
            )
        raise PermissionDeniedError("you may not do this")


def console_home(page: Page) -> str | None:
    """Where an admin or an auditor who serves no executive lands after sign-in."""
    if page.can(Permission.CONNECTORS_MANAGE):
        return f"{PREFIX}/admin/connectors"
    if page.can(Permission.AUDIT_READ):
        return f"{PREFIX}/audit"
    return None
