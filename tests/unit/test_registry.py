"""Entry-point discovery: real entry points, a broken one isolated, an unknown slug."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from integrations.base import Capability, ConnectorContext
from integrations.errors import ConnectorUnavailableError, UnknownConnectorError
from integrations.registry import ENTRY_POINT_GROUP, ConnectorRegistry


def _ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_installed_entry_points_load() -> None:
    registry = ConnectorRegistry.discover()
    assert {"sandbox.email", "sandbox.calendar"} <= set(registry.specs)
    assert registry.get("sandbox.email").capabilities == frozenset({Capability.EMAIL})
    assert registry.with_capability(Capability.CALENDAR)


def test_broken_connector_is_isolated() -> None:
    registry = ConnectorRegistry.discover(
        [
            _ep("sandbox.email", "integrations.sandbox:EMAIL_SPEC"),
            _ep("broken.import", "integrations.no_such_module:SPEC"),
            _ep("broken.type", "integrations.base:Capability"),
            _ep("wrong.name", "integrations.sandbox:CALENDAR_SPEC"),
        ]
    )
    assert set(registry.specs) == {"sandbox.email"}
    assert set(registry.broken) == {"broken.import", "broken.type", "wrong.name"}
    assert "ModuleNotFoundError" in registry.broken["broken.import"]
    with pytest.raises(ConnectorUnavailableError) as caught:
        registry.get("broken.import")
    assert caught.value.to_body()["error"] == "ConnectorUnavailableError"


def test_unknown_slug_is_typed() -> None:
    registry = ConnectorRegistry.discover()
    with pytest.raises(UnknownConnectorError) as caught:
        registry.get("nosuch.thing")
    assert "sandbox.email" in caught.value.to_body()["known"]


async def test_build_validates_config_all_at_once() -> None:
    from pydantic import ValidationError

    registry = ConnectorRegistry.discover()
    with pytest.raises(ValidationError) as caught:
        await registry.build(
            "sandbox.email",
            {"mailbox": 1, "extra": True},
            ConnectorContext(tenant_id="t", instance_name="x"),
        )
    assert caught.value.error_count() == 2
