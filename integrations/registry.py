"""Connector discovery through the entry-point group ``assistant.connectors``.

A connector that fails to import is recorded as broken and logged; it never stops the
others from loading (Dispatch's import-time crash is the anti-example).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import structlog

from integrations.base import Capability, ConnectorContext, ConnectorSpec
from integrations.errors import ConnectorUnavailableError, UnknownConnectorError

ENTRY_POINT_GROUP = "assistant.connectors"

log = structlog.stdlib.get_logger(__name__)


@dataclass
class ConnectorRegistry:
    """Specs by slug, and the slugs that failed to load with the reason."""

    specs: dict[str, ConnectorSpec] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    @classmethod
    def discover(cls, eps: Iterable[EntryPoint] | None = None) -> ConnectorRegistry:
        """Load every entry point of the group; isolate failures."""
        registry = cls()
        for ep in eps if eps is not None else entry_points(group=ENTRY_POINT_GROUP):
            try:
                spec = ep.load()
                if not isinstance(spec, ConnectorSpec):
                    raise TypeError(f"{ep.value} is not a ConnectorSpec")
                if spec.slug != ep.name:
                    raise ValueError(f"entry point {ep.name!r} names spec {spec.slug!r}")
            except Exception as exc:  # a broken plugin must not break the others
                registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                log.error("connector.load_failed", slug=ep.name, error=registry.broken[ep.name])
                continue
            registry.register(spec)
        return registry

    def register(self, spec: ConnectorSpec) -> None:
        self.specs[spec.slug] = spec
        self.broken.pop(spec.slug, None)

    def get(self, slug: str) -> ConnectorSpec:
        """The spec for ``slug``; a typed error when it is unknown or broken."""
        if slug in self.specs:
            return self.specs[slug]
        if slug in self.broken:
            raise ConnectorUnavailableError(
                f"connector {slug!r} failed to load", slug=slug, reason=self.broken[slug]
            )
        raise UnknownConnectorError(
            f"no connector registered as {slug!r}", slug=slug, known=sorted(self.specs)
        )

    def with_capability(self, capability: Capability) -> list[ConnectorSpec]:
        return [s for s in self.specs.values() if capability in s.capabilities]

    async def build(self, slug: str, raw_config: dict[str, Any], context: ConnectorContext) -> Any:
        """Validate ``raw_config`` and build a new instance for ``context.tenant_id``."""
        spec = self.get(slug)
        config = spec.validate_config(raw_config)
        return await spec.factory(config, context)
