"""CalDAV calendars (RFC 4791) through the ``caldav`` client: Radicale, Nextcloud, iCloud..."""

from __future__ import annotations

from integrations.base import Capability, ConnectorContext, ConnectorSpec
from integrations.caldav.calendar import (
    CalDAVCalendarConfig,
    CalDAVCalendarConnector,
    CalDAVPerson,
    CalendarChanges,
)


async def _build_calendar(config: CalDAVCalendarConfig, context: ConnectorContext) -> object:
    return CalDAVCalendarConnector(config, name=context.instance_name)


CALENDAR_SPEC = ConnectorSpec(
    slug="caldav.calendar",
    kind="caldav",
    title="CalDAV calendars",
    config_model=CalDAVCalendarConfig,
    capabilities=frozenset({Capability.CALENDAR}),
    factory=_build_calendar,
    description="Calendars on a CalDAV server; recurrences expanded locally, free/busy "
    "computed from colleagues' events, incremental sync by sync-token.",
)

__all__ = [
    "CALENDAR_SPEC",
    "CalDAVCalendarConfig",
    "CalDAVCalendarConnector",
    "CalDAVPerson",
    "CalendarChanges",
]
