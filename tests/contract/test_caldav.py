"""The calendar contract and the time-zone cases against a real Radicale server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest

from integrations import ical
from integrations.base import (
    Attendee,
    ConnectorStatus,
    EventRequest,
    EventUpdate,
    InviteResponse,
    ResponseStatus,
)
from integrations.caldav import CalDAVCalendarConfig, CalDAVCalendarConnector
from integrations.errors import ConnectorAuthError, FatalConnectorError
from integrations.registry import ConnectorRegistry
from tests.contract.calendar_contract import BASE, CalendarContract
from tests.contract.calendar_timezones import CalendarTimezoneCases
from tests.fixtures.radicale import RadicaleServer, make_calendar, radicale_server  # noqa: F401

OWNER = "exec@radicale.test"
COLLEAGUE = "colleague@radicale.test"


def _config(server: RadicaleServer, calendar: str, **extra: Any) -> CalDAVCalendarConfig:
    return CalDAVCalendarConfig.model_validate(
        {
            "url": server.url,
            "username": OWNER,
            "password": server.users[OWNER],
            "calendar_url": f"{OWNER}/{calendar}/",
            "timezone": "Europe/London",
            "people": {
                COLLEAGUE: {
                    "timezone": "America/New_York",
                    "working_hours": {"start": "08:00", "end": "16:00"},
                }
            },
            "calendar_url_template": "{url}/{address}/calendar/",
            **extra,
        }
    )


async def _put(server: RadicaleServer, user: str, url: str, text: str) -> None:
    async with httpx.AsyncClient(auth=(user, server.users[user]), timeout=10) as http:
        response = await http.put(
            url, content=text.encode(), headers={"Content-Type": "text/calendar; charset=utf-8"}
        )
    assert response.status_code in (201, 204), response.text


class _RadicaleFixtures:
    @pytest.fixture
    def calendar_name(self, radicale_server: RadicaleServer) -> str:
        """A fresh calendar collection of the owner for each test."""
        name = f"cal-{uuid.uuid4().hex[:10]}"
        make_calendar(
            radicale_server.calendar_url(OWNER, name), OWNER, radicale_server.users[OWNER]
        )
        return name

    @pytest.fixture
    async def calendar_connector(
        self,
        radicale_server: RadicaleServer,
        calendar_name: str,
    ) -> AsyncIterator[CalDAVCalendarConnector]:
        connector = CalDAVCalendarConnector(_config(radicale_server, calendar_name))
        yield connector
        await connector.aclose()

    @pytest.fixture
    def owner_calendar_url(
        self,
        radicale_server: RadicaleServer,
        calendar_name: str,
    ) -> str:
        return radicale_server.calendar_url(OWNER, calendar_name)

    @pytest.fixture
    def put_series(
        self,
        radicale_server: RadicaleServer,
        owner_calendar_url: str,
    ):  # type: ignore[no-untyped-def]
        async def put(text: str) -> None:
            uid = str(icalendar.Calendar.from_ical(text).walk("VEVENT")[0]["uid"])
            name = uuid.uuid5(uuid.NAMESPACE_URL, uid).hex
            await _put(radicale_server, OWNER, f"{owner_calendar_url}{name}.ics", text)

        return put


class TestCalDAVCalendar(_RadicaleFixtures, CalendarContract, CalendarTimezoneCases):
    @pytest.fixture
    def colleague(self) -> str:
        return COLLEAGUE

    @pytest.fixture
    def add_recurring_event(self, put_series):  # type: ignore[no-untyped-def]
        async def add(subject: str, start: datetime, rrule: str, exdates: list[datetime]) -> None:
            request = EventRequest(
                subject=subject,
                start=start,
                end=start + timedelta(minutes=30),
                timezone="America/New_York",
            )
            component = ical.build_vevent(
                request,
                uid=f"{uuid.uuid4().hex}@client",
                organizer=OWNER,
                rrule=rrule,
                exdates=exdates,
            )
            await put_series(ical.wrap_calendar(component).to_ical().decode())

        return add

    @pytest.fixture
    def add_invitation(
        self,
        radicale_server: RadicaleServer,
        owner_calendar_url: str,
        calendar_connector: CalDAVCalendarConnector,
    ):  # type: ignore[no-untyped-def]
        async def add(subject: str, start: datetime, end: datetime) -> str:
            # The organiser's copy in their calendar, and the copy delivered (iMIP or a
            # scheduling server) into the owner's calendar.
            request = EventRequest(
                subject=subject, start=start, end=end, attendees=[Attendee(address=OWNER)]
            )
            uid = f"{uuid.uuid4().hex}@colleague"
            text = (
                ical.wrap_calendar(ical.build_vevent(request, uid=uid, organizer=COLLEAGUE))
                .to_ical()
                .decode()
            )
            await _put(
                radicale_server,
                COLLEAGUE,
                f"{radicale_server.calendar_url(COLLEAGUE)}{uid}.ics",
                text,
            )
            await _put(radicale_server, OWNER, f"{owner_calendar_url}{uid}.ics", text)
            listed = await calendar_connector.list_events(start, end)
            return next(e.id for e in listed if e.uid == uid)

        return add


class TestCalDAVSpecifics(_RadicaleFixtures):
    async def test_registered_as_entry_point(self) -> None:
        spec = ConnectorRegistry.discover().get("caldav.calendar")
        assert spec.kind == "caldav"

    async def test_sync_token_reports_changes_and_removals(
        self,
        calendar_connector: CalDAVCalendarConnector,
        radicale_server: RadicaleServer,
        owner_calendar_url: str,
    ) -> None:
        first = await calendar_connector.sync_calendar()
        assert first.full and first.changed == [] and first.token
        created = await calendar_connector.create_event(
            EventRequest(subject="Synced", start=BASE, end=BASE + timedelta(hours=1))
        )
        # Someone else's client adds an event; the next sync brings only that one.
        request = EventRequest(
            subject="From another client",
            start=BASE + timedelta(hours=2),
            end=BASE + timedelta(hours=3),
        )
        text = (
            ical.wrap_calendar(ical.build_vevent(request, uid="other@client", organizer=OWNER))
            .to_ical()
            .decode()
        )
        await _put(radicale_server, OWNER, f"{owner_calendar_url}other.ics", text)
        changes = await calendar_connector.sync_calendar()
        assert not changes.full and changes.changed == [f"{OWNER}/other.ics"]
        assert changes.token != first.token
        async with httpx.AsyncClient(auth=(OWNER, radicale_server.users[OWNER])) as http:
            assert (await http.delete(f"{owner_calendar_url}other.ics")).status_code in (200, 204)
        changes = await calendar_connector.sync_calendar()
        assert changes.removed == [f"{OWNER}/other.ics"] and changes.changed == []
        assert (await calendar_connector.sync_calendar()).changed == []
        listed = await calendar_connector.list_events(BASE, BASE + timedelta(hours=4))
        assert [e.id for e in listed] == [created.id]

    async def test_expired_sync_token_falls_back_to_a_full_sync(
        self, calendar_connector: CalDAVCalendarConnector
    ) -> None:
        await calendar_connector.create_event(
            EventRequest(subject="Kept", start=BASE, end=BASE + timedelta(hours=1))
        )
        await calendar_connector.sync_calendar()
        for mirror in calendar_connector._mirrors.values():  # as if the server forgot it
            mirror.token = "http://radicale.org/ns/sync/" + "0" * 64
        changes = await calendar_connector.sync_calendar()
        assert changes.full
        assert [
            e.subject for e in await calendar_connector.list_events(BASE, BASE + timedelta(hours=1))
        ] == ["Kept"]

    async def test_free_busy_computed_from_colleague_events(
        self,
        calendar_connector: CalDAVCalendarConnector,
        radicale_server: RadicaleServer,
    ) -> None:
        start = BASE + timedelta(days=40)
        uid = f"{uuid.uuid4().hex}@colleague"
        busy = EventRequest(subject="Colleague busy", start=start, end=start + timedelta(hours=1))
        free = EventRequest(
            subject="Colleague free",
            start=start + timedelta(hours=2),
            end=start + timedelta(hours=3),
            show_as="free",
        )
        for request, name in ((busy, uid), (free, "free-" + uid)):
            await _put(
                radicale_server,
                COLLEAGUE,
                f"{radicale_server.calendar_url(COLLEAGUE)}{name}.ics",
                ical.wrap_calendar(ical.build_vevent(request, uid=name, organizer=COLLEAGUE))
                .to_ical()
                .decode(),
            )
        [theirs, unknown] = await calendar_connector.get_free_busy(
            [COLLEAGUE.upper(), "nobody@radicale.test"],
            start - timedelta(hours=1),
            start + timedelta(hours=4),
        )
        assert theirs.person == COLLEAGUE and theirs.error is None
        assert [(b.start, b.end) for b in theirs.busy] == [(start, start + timedelta(hours=1))]
        assert theirs.timezone == "America/New_York"
        assert theirs.working_hours is not None and theirs.working_hours.start.hour == 8
        assert unknown.error == "unknown person" and unknown.busy == []

    async def test_declined_invitation_is_not_busy(
        self,
        calendar_connector: CalDAVCalendarConnector,
        radicale_server: RadicaleServer,
        owner_calendar_url: str,
    ) -> None:
        start = BASE + timedelta(days=41)
        request = EventRequest(
            subject="Skip it",
            start=start,
            end=start + timedelta(hours=1),
            attendees=[Attendee(address=OWNER)],
        )
        uid = f"{uuid.uuid4().hex}@colleague"
        await _put(
            radicale_server,
            OWNER,
            f"{owner_calendar_url}{uid}.ics",
            ical.wrap_calendar(ical.build_vevent(request, uid=uid, organizer=COLLEAGUE))
            .to_ical()
            .decode(),
        )
        [event] = await calendar_connector.list_events(start, start + timedelta(hours=1))
        with pytest.raises(FatalConnectorError):
            await calendar_connector.cancel_event(event.id)  # not the organiser
        answered = await calendar_connector.respond_to_invite(
            event.id, InviteResponse.DECLINE, "travelling"
        )
        assert [a.response for a in answered.attendees] == [ResponseStatus.DECLINED]
        [mine] = await calendar_connector.get_free_busy([OWNER], start, start + timedelta(hours=1))
        assert mine.busy == []

    async def test_one_occurrence_moved_then_cancelled(
        self, calendar_connector: CalDAVCalendarConnector, put_series: Any
    ) -> None:
        start = BASE + timedelta(days=50)
        request = EventRequest(
            subject="Standup",
            start=start,
            end=start + timedelta(minutes=15),
            timezone="Europe/London",
        )
        await put_series(
            ical.wrap_calendar(
                ical.build_vevent(
                    request,
                    uid=f"{uuid.uuid4().hex}@client",
                    organizer=OWNER,
                    rrule="FREQ=DAILY;COUNT=3",
                )
            )
            .to_ical()
            .decode()
        )
        window = (start - timedelta(hours=1), start + timedelta(days=3))
        first, second, third = await calendar_connector.list_events(*window)
        assert first.series_id and first.series_id == second.series_id
        moved = await calendar_connector.update_event(
            second.id,
            EventUpdate(
                subject="Standup (late)",
                start=second.start + timedelta(hours=3),
                end=second.start + timedelta(hours=3, minutes=15),
            ),
        )
        assert moved.start == second.start + timedelta(hours=3)
        assert moved.recurrence_id == second.start
        await calendar_connector.cancel_event(third.id)
        await calendar_connector.cancel_event(third.id)
        listed = await calendar_connector.list_events(*window)
        assert [(e.subject, e.start) for e in listed] == [
            ("Standup", first.start),
            ("Standup (late)", moved.start),
        ]
        await calendar_connector.cancel_event(moved.id)
        assert [e.subject for e in await calendar_connector.list_events(*window)] == ["Standup"]
        await calendar_connector.cancel_event(first.series_id)
        assert await calendar_connector.list_events(*window) == []

    async def test_update_keeps_the_zone_and_bumps_sequence(
        self, calendar_connector: CalDAVCalendarConnector
    ) -> None:
        start = BASE + timedelta(days=60)
        created = await calendar_connector.create_event(
            EventRequest(
                subject="Zoned",
                start=start,
                end=start + timedelta(hours=1),
                timezone="America/New_York",
                attendees=[Attendee(address=COLLEAGUE)],
            )
        )
        updated = await calendar_connector.update_event(
            created.id, EventUpdate(start=start + timedelta(days=1))
        )
        assert updated.timezone == "America/New_York"
        assert updated.end - updated.start == timedelta(hours=1)
        assert [a.address for a in updated.attendees] == [COLLEAGUE]
        changes = await calendar_connector.sync_calendar()
        assert changes.changed == []  # the connector's own write is already mirrored

    async def test_bad_password_is_typed_and_check_reports_down(
        self,
        radicale_server: RadicaleServer,
        calendar_name: str,
    ) -> None:
        connector = CalDAVCalendarConnector(
            _config(radicale_server, calendar_name, password="wrong")
        )
        try:
            health = await connector.check()
            assert health.status is ConnectorStatus.DOWN and "wrong" not in health.detail
            with pytest.raises(ConnectorAuthError) as caught:
                await connector.list_events(BASE, BASE + timedelta(hours=1))
            assert "wrong" not in str(caught.value)
        finally:
            await connector.aclose()

    async def test_discovers_the_owner_calendar(
        self,
        radicale_server: RadicaleServer,
    ) -> None:
        config = CalDAVCalendarConfig(
            url=radicale_server.url, username=COLLEAGUE, password=radicale_server.users[COLLEAGUE]
        )
        connector = CalDAVCalendarConnector(config)
        try:
            assert (await connector.check()).status is ConnectorStatus.OK
            when = datetime(2028, 1, 5, 10, tzinfo=UTC)
            created = await connector.create_event(
                EventRequest(
                    subject="Discovered",
                    start=when,
                    end=when + timedelta(minutes=10),
                    idempotency_key=uuid.uuid4().hex,
                )
            )
            assert created.calendar_id == COLLEAGUE
            assert created.id.startswith(f"{COLLEAGUE}/")
        finally:
            await connector.aclose()
