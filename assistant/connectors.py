"""Connector instances of a deployment: built per tenant from settings, checked for /readyz."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.settings import ConnectorInstanceSettings
from integrations.base import Capability, ConnectorContext, ConnectorHealth, ConnectorStatus
from integrations.errors import UnknownConnectorError
from integrations.registry import ConnectorRegistry

log = structlog.stdlib.get_logger(__name__)


@dataclass
class ConnectorInstance:
    name: str
    slug: str
    tenant_id: str
    capabilities: frozenset[Capability] = frozenset()
    connector: Any = None
    health: ConnectorHealth = field(
        default_factory=lambda: ConnectorHealth(status=ConnectorStatus.DOWN, detail="not built")
    )
    problems: list[str] = field(default_factory=list)
    #: User ids of the executives this instance serves (settings and stored bindings).
    executives: tuple[str, ...] = ()

    @property
    def address(self) -> str | None:
        """The mailbox or calendar address the connector reads, when it has one."""
        value = getattr(self.connector, "mailbox", None) or getattr(self.connector, "owner", None)
        return value.lower() if isinstance(value, str) else None

    def serves(self, executive: str) -> bool:
        """Bound instances serve exactly their executives. An unbound one serves the
        executive whose id is its own address (how the embedded default and the pipeline
        name the sandbox's executive), or, having no address (an ERP company), every
        executive of its tenant."""
        if self.executives:
            return executive in self.executives
        address = self.address
        return address is None or address == executive.lower()

    def primary_executive(self) -> str | None:
        """Whom the pipeline files this mailbox's proposals under: the first executive
        bound, else the instance's own address."""
        return self.executives[0] if self.executives else self.address

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slug": self.slug,
            "tenant": self.tenant_id,
            "executives": list(self.executives),
            "capabilities": sorted(c.value for c in self.capabilities),
            "status": self.health.status.value,
            "detail": self.health.detail,
            "problems": self.problems,
        }


#: A health check slower than this reports the connector down: a page or a list must not hang.
HEALTH_TIMEOUT_S = 5.0


async def live_health(instance: ConnectorInstance | None) -> ConnectorHealth:
    """Ask the connector now, rather than trusting what it said when it was built (one
    answer for the admin's page and the admin API)."""
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


async def live_healths(instances: list[ConnectorInstance | None]) -> list[ConnectorHealth]:
    return list(await asyncio.gather(*(live_health(i) for i in instances)))


def config_problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()]


class ConnectorManager:
    """Owns every connector instance of the process; one bad instance never stops the rest."""

    def __init__(
        self,
        registry: ConnectorRegistry,
        session_factory: async_sessionmaker[AsyncSession],
        instances: list[ConnectorInstanceSettings],
        *,
        extras: dict[str, Any] | None = None,
    ) -> None:
        self.registry = registry
        self._sessions = session_factory
        self._configured = instances
        self._extras = extras or {}
        self.instances: dict[tuple[str, str], ConnectorInstance] = {}

    async def start(self) -> None:
        for item in self._configured:
            instance = ConnectorInstance(
                name=item.name,
                slug=item.slug,
                tenant_id=item.tenant,
                executives=tuple(item.executives),
            )
            self.instances[(item.tenant, item.name)] = instance
            try:
                spec = self.registry.get(item.slug)
                instance.capabilities = spec.capabilities
                context = ConnectorContext(
                    tenant_id=item.tenant,
                    instance_name=item.name,
                    session_factory=self._sessions,
                    extras=self._extras,
                )
                instance.connector = await self.registry.build(item.slug, item.config, context)
                instance.health = ConnectorHealth(status=ConnectorStatus.OK, detail="built")
            except ValidationError as exc:
                instance.problems = config_problems(exc)
                instance.health = ConnectorHealth(
                    status=ConnectorStatus.BROKEN, detail="invalid configuration"
                )
            except Exception as exc:  # isolate: a broken instance is reported, not fatal
                instance.health = ConnectorHealth(
                    status=ConnectorStatus.BROKEN, detail=f"{type(exc).__name__}: {exc}"
                )
            if instance.health.status is ConnectorStatus.BROKEN:
                log.error(
                    "connector.instance_broken",
                    connector=item.name,
                    slug=item.slug,
                    tenant=item.tenant,
                    detail=instance.health.detail,
                    problems=instance.problems,
                )

    async def check_all(self, timeout_s: float = 3.0) -> list[dict[str, Any]]:
        async def check(instance: ConnectorInstance) -> None:
            if instance.connector is None:
                return
            try:
                instance.health = await asyncio.wait_for(instance.connector.check(), timeout_s)
            except TimeoutError:
                instance.health = ConnectorHealth(status=ConnectorStatus.DOWN, detail="timeout")
            except Exception as exc:  # one failing check must not fail the others
                instance.health = ConnectorHealth(
                    status=ConnectorStatus.DOWN, detail=type(exc).__name__
                )

        await asyncio.gather(*(check(i) for i in self.instances.values()))
        return [i.describe() for i in self.instances.values()]

    def get(
        self,
        tenant_id: str,
        capability: Capability,
        name: str | None = None,
        *,
        executive: str | None = None,
    ) -> Any:
        """The tenant's connector for ``capability`` (the named one, or the first working);
        with ``executive``, only one that serves her (never another executive's mailbox)."""
        for instance in self.instances.values():
            if instance.tenant_id != tenant_id or capability not in instance.capabilities:
                continue
            if name is not None and instance.name != name:
                continue
            if executive is not None and not instance.serves(executive):
                continue
            if instance.connector is not None:
                return instance.connector
        raise UnknownConnectorError(
            f"no working {capability.value} connector for tenant {tenant_id!r}"
            + (f" named {name!r}" if name else "")
            + (" serving that executive" if executive is not None else ""),
            capability=capability.value,
        )

    def sandbox_executive(self, tenant_id: str) -> str:
        """Whom the rollback drill acts for by default: the executive the tenant's first
        working mailbox serves (its first bound executive, else its own address)."""
        for instance in self.instances.values():
            if instance.tenant_id == tenant_id and Capability.EMAIL in instance.capabilities:
                whose = instance.primary_executive() if instance.connector else None
                if whose is not None:
                    return whose
        raise UnknownConnectorError(
            f"no working email connector for tenant {tenant_id!r}",
            capability=Capability.EMAIL.value,
        )

    def instances_for(
        self, tenant_id: str, executive: str, capability: Capability | None = None
    ) -> list[ConnectorInstance]:
        """The instances of the tenant that serve ``executive``."""
        return [
            i
            for i in self.instances.values()
            if i.tenant_id == tenant_id
            and i.serves(executive)
            and (capability is None or capability in i.capabilities)
        ]

    def mailboxes_of(self, tenant_id: str, executive: str) -> set[str]:
        """Addresses of the mailboxes that serve ``executive`` (her messages and triage)."""
        return {
            address
            for i in self.instances_for(tenant_id, executive, Capability.EMAIL)
            if (address := i.address) is not None
        }

    async def load_bindings(self) -> None:
        """Add the stored bindings (``connector_executives``) to the configured ones."""
        from sqlalchemy import select

        from assistant.connector_models import ConnectorExecutive

        configured = {(c.tenant, c.name): tuple(c.executives) for c in self._configured}
        try:
            async with self._sessions() as session:
                rows = list((await session.execute(select(ConnectorExecutive))).scalars())
        except Exception as exc:  # the table may not exist before `assistant db upgrade`
            log.warning("connector.bindings_unavailable", error=type(exc).__name__)
            return
        stored: dict[tuple[str, str], list[str]] = {}
        for row in sorted(rows, key=lambda r: r.bound_at):
            stored.setdefault((row.tenant_id, row.connector), []).append(row.executive_id)
        for key, instance in self.instances.items():
            merged = list(configured.get(key, ()))
            merged += [e for e in stored.get(key, []) if e not in merged]
            instance.executives = tuple(merged)

    async def aclose(self) -> None:
        for instance in self.instances.values():
            if instance.connector is not None:
                try:
                    await instance.connector.aclose()
                except Exception:  # closing must not hide the shutdown of the others
                    log.exception("connector.close_failed", connector=instance.name)
