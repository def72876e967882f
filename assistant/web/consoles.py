"""What the admin and auditor rooms share: the tenant-wide permission check (these rooms
serve no executive) and the live health of connector instances."""

from __future__ import annotations

import asyncio

from assistant.auth.permissions import Permission
from assistant.connectors import ConnectorInstance
from assistant.core.errors import PermissionDeniedError
from assistant.web.pages import PREFIX, Page
from integrations.base import ConnectorHealth, ConnectorStatus

#: A health check slower than this reports the connector down: the page must not hang.
HEALTH_TIMEOUT_S = 5.0


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


async def live_health(instance: ConnectorInstance | None) -> ConnectorHealth:
    """Ask the connector now, rather than trusting what it said when it was built."""
    if instance is None:
        return ConnectorHealth(status=ConnectorStatus.DOWN, detail="disabled")
    if instance.connector is None:
        return instance.health
    try:
        health = await asyncio.wait_for(instance.connector.check(), HEALTH_TIMEOUT_S)
    except TimeoutError:
        return ConnectorHealth(status=ConnectorStatus.DOWN, detail="no answer in time")
    except Exception as exc:  # a check that raises is a connector that is down
        return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
    if not isinstance(health, ConnectorHealth):
        return ConnectorHealth(status=ConnectorStatus.BROKEN, detail="check answered nonsense")
    return health


async def live_healths(
    instances: list[ConnectorInstance | None],
) -> list[ConnectorHealth]:
    return list(await asyncio.gather(*(live_health(i) for i in instances)))
