"""The calendar capability contract: every CalendarConnector must pass these tests.

A subclass provides:
- ``calendar_connector``: a connector whose owner can write to their own calendar;
- ``colleague``: the address of another person whose free/busy the connector can read;
- ``add_recurring_event``: async ``(subject, start, rrule, exdates) -> None`` that writes a
  recurring series to the owner's calendar as the real system would;
- ``add_invitation``: async ``(subject, start, end) -> event_id`` that makes an invitation
  from someone else to the owner appear on the owner's calendar.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.base import (
    Attendee,
    CalendarConnector,
    EventRequest,
    EventUpdate,
    InviteResponse,
    ResponseStatus,
)
from integrations.errors import ConnectorNotFoundError, FatalConnectorError

#: Far enough from the seeded weeks to be empty, on a Wednesday.
BASE = datetime(2027, 3, 3, 15, 0, tzinfo=UTC)
AddRecurring = Callable[[str, datetime, str, list[datetime]], Awaitable[Any]]
AddInvitation = Callable[[str, datetime, datetime], Awaitable[str]]


def _request(subject: str, start: datetime, minutes: int = 30, **extra: Any) -> EventRequest:
    return EventRequest(
        subject=subject, start=start, end=start + timedelta(minutes=minutes), **extra
    )


class CalendarContract:
    async def test_is_a_calendar_connector(self, calendar_connector: CalendarConnector) -> None:
        assert isinstance(calendar_connector, CalendarConnector)
        assert (await calendar_connector.check()).status.value == "ok"
        owners = {c.owner for c in await calendar_connector.list_calendars()}
        assert calendar_connector.owner in owners

    async def test_create_get_list_round_trip(
        self, calendar_connector: CalendarConnector, colleague: str
    ) -> None:
        start = BASE + timedelta(days=1)
        created = await calendar_connector.create_event(
            _request(
                "Contract sync",
                start,
                45,
                timezone="Europe/London",
                attendees=[Attendee(address=colleague)],
                location="Room 4",
                idempotency_key=uuid.uuid4().hex,
            )
        )
        assert created.start == start and created.end == start + timedelta(minutes=45)
        fetched = await calendar_connector.get_event(created.id)
        assert fetched.subject == "Contract sync"
        assert colleague in {a.address for a in fetched.attendees}
        listed = await calendar_connector.list_events(
            start - timedelta(hours=1), start + timedelta(hours=2)
        )
        assert created.id in {e.id for e in listed}
        before = await calendar_connector.list_events(
            start - timedelta(hours=3), start - timedelta(hours=1)
        )
        assert created.id not in {e.id for e in before}

    async def test_wall_time_in_the_request_zone(
        self, calendar_connector: CalendarConnector
    ) -> None:
        from zoneinfo import ZoneInfo

        local = datetime(2027, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Singapore"))
        created = await calendar_connector.create_event(
            _request("Singapore morning", local, timezone="Asia/Singapore")
        )
        assert created.start == datetime(2027, 3, 10, 2, 0, tzinfo=UTC)

    async def test_idempotency_key_creates_once(
        self, calendar_connector: CalendarConnector
    ) -> None:
        start = BASE + timedelta(days=2)
        request = _request("Once only", start, idempotency_key=uuid.uuid4().hex)
        first = await calendar_connector.create_event(request)
        second = await calendar_connector.create_event(request)
        assert first.id == second.id
        listed = await calendar_connector.list_events(start, start + timedelta(hours=1))
        assert [e.subject for e in listed].count("Once only") == 1

    async def test_update_changes_time_and_subject(
        self, calendar_connector: CalendarConnector
    ) -> None:
        start = BASE + timedelta(days=3)
        created = await calendar_connector.create_event(_request("Movable", start))
        later = start + timedelta(hours=2)
        updated = await calendar_connector.update_event(
            created.id, EventUpdate(subject="Moved", start=later, end=later + timedelta(minutes=30))
        )
        assert updated.subject == "Moved" and updated.start == later
        fetched = await calendar_connector.get_event(created.id)
        assert fetched.start == later

    async def test_cancel_twice_and_gone_from_listing(
        self, calendar_connector: CalendarConnector
    ) -> None:
        start = BASE + timedelta(days=6)
        created = await calendar_connector.create_event(_request("Cancel me", start))
        await calendar_connector.cancel_event(created.id, "no longer needed")
        await calendar_connector.cancel_event(created.id)
        listed = await calendar_connector.list_events(
            start - timedelta(hours=1), start + timedelta(hours=1)
        )
        assert all(e.id != created.id or e.is_cancelled for e in listed)

    async def test_end_before_start_is_refused(self, calendar_connector: CalendarConnector) -> None:
        with pytest.raises((FatalConnectorError, ValidationError)):
            await calendar_connector.create_event(
                EventRequest(subject="Backwards", start=BASE, end=BASE - timedelta(minutes=5))
            )

    async def test_missing_event_is_typed(self, calendar_connector: CalendarConnector) -> None:
        with pytest.raises(ConnectorNotFoundError):
            await calendar_connector.get_event("does-not-exist-" + uuid.uuid4().hex)

    async def test_free_busy_reflects_events(
        self, calendar_connector: CalendarConnector, colleague: str
    ) -> None:
        start = BASE + timedelta(days=8)
        await calendar_connector.create_event(_request("Busy block", start, 60))
        [mine, theirs] = await calendar_connector.get_free_busy(
            [calendar_connector.owner, colleague],
            start - timedelta(hours=2),
            start + timedelta(hours=3),
        )
        assert mine.person == calendar_connector.owner
        assert theirs.person == colleague.lower()
        assert any(b.start <= start and b.end >= start + timedelta(minutes=60) for b in mine.busy)
        assert mine.working_hours is not None

    async def test_recurrence_is_expanded(
        self, calendar_connector: CalendarConnector, add_recurring_event: AddRecurring
    ) -> None:
        start = BASE + timedelta(days=14)
        await add_recurring_event(
            "Weekly contract", start, "FREQ=WEEKLY;COUNT=4", [start + timedelta(weeks=1)]
        )
        listed = await calendar_connector.list_events(
            start - timedelta(hours=1), start + timedelta(weeks=5)
        )
        occurrences = [e for e in listed if e.subject == "Weekly contract"]
        assert [e.start for e in occurrences] == [
            start,
            start + timedelta(weeks=2),
            start + timedelta(weeks=3),
        ]
        assert len({e.id for e in occurrences}) == 3

    async def test_respond_to_invitation(
        self, calendar_connector: CalendarConnector, add_invitation: AddInvitation
    ) -> None:
        start = BASE + timedelta(days=20)
        event_id = await add_invitation("Invitation", start, start + timedelta(minutes=30))
        answered = await calendar_connector.respond_to_invite(event_id, InviteResponse.ACCEPT)
        me = [a for a in answered.attendees if a.address == calendar_connector.owner]
        assert me and me[0].response is ResponseStatus.ACCEPTED
