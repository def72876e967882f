"""Connector discovery through the entry-point group ``assistant.connectors``.

A connector that fails to import is recorded as broken and logged; it never stops the
others from loading (Dispatch's import-time crash is the anti-example).

Discovery reads the entry points; a connector's module is imported when its slug is first
looked up (``get``, ``build``: the configured and stored instances, at start) or when the
registry is listed (``specs``, ``broken``, ``with_capability``: the admin API and pages).
A service whose instances use two of the eight connectors does not import the other six
at start-up, and a broken one is still reported, by the lookup or listing that loads it.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import structlog

from integrations.base import Capability, ConnectorContext, ConnectorSpec
from integrations.errors import ConnectorUnavailableError, UnknownConnectorError

ENTRY_POINT_GROUP = "assistant.connectors"

log = structlog.stdlib.get_logger(__name__)


class ConnectorRegistry:
    """Specs by slug, and the slugs that failed to load with the reason."""

    def __init__(self) -> None:
        self._specs: dict[str, ConnectorSpec] = {}
        self._broken: dict[str, str] = {}
        self._unloaded: dict[str, EntryPoint] = {}  # discovered, module not imported yet

    @classmethod
    def discover(cls, eps: Iterable[EntryPoint] | None = None) -> ConnectorRegistry:
        """Every entry point of the group, each loaded on first lookup; failures isolated."""
        registry = cls()
        for ep in eps if eps is not None else entry_points(group=ENTRY_POINT_GROUP):
            registry._unloaded[ep.name] = ep
        return registry

    @property
    def specs(self) -> dict[str, ConnectorSpec]:
        """Every connector that loads, by slug (loads those not loaded yet)."""
        self._load_all()
        return self._specs

    @property
    def broken(self) -> dict[str, str]:
        """Every connector that failed to load, with the reason (loads all first)."""
        self._load_all()
        return self._broken

    def register(self, spec: ConnectorSpec) -> None:
        self._unloaded.pop(spec.slug, None)
        self._specs[spec.slug] = spec
        self._broken.pop(spec.slug, None)

    def _load_all(self) -> None:
        for slug in list(self._unloaded):
            self._load(slug)

    def _load(self, slug: str) -> None:
        ep = self._unloaded.pop(slug, None)
        if ep is None:
            return
        try:
            spec = ep.load()
            if not isinstance(spec, ConnectorSpec):
                raise TypeError(f"{ep.value} is not a ConnectorSpec")
            if spec.slug != ep.name:
                raise ValueError(f"entry point {ep.name!r} names spec {spec.slug!r}")
        except Exception as exc:  # a broken plugin must not break the others
            self._broken[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("connector.load_failed", slug=ep.name, error=self._broken[ep.name])
            return
        self.register(spec)

    def get(self, slug: str) -> ConnectorSpec:
        """The spec for ``slug``; a typed error when it is unknown or broken."""
        self._load(slug)
        if slug in self._specs:
            return self._specs[slug]
        if slug in self._broken:
            raise ConnectorUnavailableError(
                f"connector {slug!r} failed to load", slug=slug, reason=self._broken[slug]
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
