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


def test_a_connector_loads_when_first_looked_up_and_listing_loads_the_rest() -> None:
    from structlog.testing import capture_logs

    registry = ConnectorRegistry.discover(
        [
            _ep("sandbox.email", "integrations.sandbox:EMAIL_SPEC"),
            _ep("broken.import", "integrations.no_such_module:SPEC"),
        ]
    )
    with capture_logs() as looked_up:
        assert registry.get("sandbox.email").slug == "sandbox.email"
    # Looking up one connector did not import the others (nor find that one is broken).
    assert [e for e in looked_up if e["event"] == "connector.load_failed"] == []
    with capture_logs() as listed:
        assert set(registry.specs) == {"sandbox.email"}
    assert [e["slug"] for e in listed if e["event"] == "connector.load_failed"] == ["broken.import"]
    assert set(registry.broken) == {"broken.import"}


def test_a_broken_connector_is_reported_by_its_lookup_before_any_listing() -> None:
    registry = ConnectorRegistry.discover([_ep("broken.import", "integrations.no_such_module:X")])
    with pytest.raises(ConnectorUnavailableError):
        registry.get("broken.import")
    with pytest.raises(UnknownConnectorError):
        registry.get("nosuch.thing")
