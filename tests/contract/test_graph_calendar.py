"""The calendar contract and Graph specifics against the Graph calendar emulator (real HTTP)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta

import pytest

from integrations import ical
from integrations.base import (
    Attendee,
    ConnectorContext,
    ConnectorStatus,
    EventRequest,
    EventUpdate,
    InviteResponse,
    ResponseStatus,
    ShowAs,
)
from integrations.errors import ConnectorAuthError, FatalConnectorError
from integrations.msgraph.auth import static_token_provider
from integrations.msgraph.calendar import (
    GraphCalendarConfig,
    GraphCalendarConnector,
    graph_datetime,
    parse_graph_datetime,
)
from integrations.msgraph.client import GraphClient
from integrations.registry import ConnectorRegistry
from tests.contract.calendar_contract import BASE, CalendarContract
from tests.contract.calendar_timezones import CalendarTimezoneCases
from tests.fakes.graph_calendar import GraphCalendarEmulator

OWNER = "exec@contoso.test"
COLLEAGUE = "colleague@contoso.test"
APP_TOKEN = "app-token-" + uuid.uuid4().hex
DELEGATED_TOKEN = "delegated-token-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def graph_server() -> Iterator[GraphCalendarEmulator]:
    emulator = GraphCalendarEmulator(page_size=10)
    with emulator.serve():
        yield emulator


@pytest.fixture
def graph(graph_server: GraphCalendarEmulator) -> GraphCalendarEmulator:
    graph_server.reset()
    graph_server.add_token(APP_TOKEN, "app")
    graph_server.add_token(DELEGATED_TOKEN, "delegated")
    graph_server.add_mailbox(OWNER, "Executive", timezone="GMT Standard Time")
    graph_server.add_mailbox(
        COLLEAGUE,
        "Colleague",
        timezone="Eastern Standard Time",
        working_start=time(8, 30),
        working_end=time(16, 30),
    )
    return graph_server


def _connector(
    graph: GraphCalendarEmulator, token: str = APP_TOKEN, mailbox: str = OWNER
) -> GraphCalendarConnector:
    client = GraphClient(
        static_token_provider(token),
        base_url=graph.base_url,
        connector="msgraph-calendar",
        max_retry_wait_s=2,
    )
    return GraphCalendarConnector(client, mailbox=mailbox)


class _GraphFixtures:
    @pytest.fixture
    async def calendar_connector(
        self, graph: GraphCalendarEmulator
    ) -> AsyncIterator[GraphCalendarConnector]:
        connector = _connector(graph)
        yield connector
        await connector.aclose()

    @pytest.fixture
    def put_series(self, graph: GraphCalendarEmulator):  # type: ignore[no-untyped-def]
        async def put(text: str) -> None:
            graph.put_ical(OWNER, text)

        return put


class TestGraphCalendar(_GraphFixtures, CalendarContract, CalendarTimezoneCases):
    @pytest.fixture
    def colleague(self) -> str:
        return COLLEAGUE

    @pytest.fixture
    def add_recurring_event(self, graph: GraphCalendarEmulator):  # type: ignore[no-untyped-def]
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
            graph.put_ical(OWNER, ical.wrap_calendar(component).to_ical().decode())

        return add

    @pytest.fixture
    def add_invitation(
        self,
        graph: GraphCalendarEmulator,  # type: ignore[no-untyped-def]
        calendar_connector: GraphCalendarConnector,
    ):
        async def add(subject: str, start: datetime, end: datetime) -> str:
            # The colleague sends a meeting request; Exchange puts it on the owner's calendar.
            organizer = _connector(graph, mailbox=COLLEAGUE)
            try:
                sent = await organizer.create_event(
                    EventRequest(
                        subject=subject, start=start, end=end, attendees=[Attendee(address=OWNER)]
                    )
                )
            finally:
                await organizer.aclose()
            listed = await calendar_connector.list_events(start, end)
            return next(e.id for e in listed if e.uid == sent.uid)

        return add


class TestGraphSpecifics(_GraphFixtures):
    async def test_registered_and_built_from_config(self, graph: GraphCalendarEmulator) -> None:
        spec = ConnectorRegistry.discover().get("msgraph.calendar")
        config = spec.validate_config(
            {
                "mailbox": OWNER,
                "auth": "token",
                "access_token": APP_TOKEN,
                "base_url": graph.base_url,
            }
        )
        connector = await spec.factory(
            config, ConnectorContext(tenant_id="t", instance_name="m365")
        )
        try:
            assert (await connector.check()).status is ConnectorStatus.OK
        finally:
            await connector.aclose()

    def test_config_reports_missing_credentials(self) -> None:
        with pytest.raises(ValueError, match="tenant_id, client_id, client_secret"):
            GraphCalendarConfig(mailbox=OWNER)

    def test_date_time_time_zone_round_trip(self) -> None:
        from zoneinfo import ZoneInfo

        moment = datetime(2027, 7, 1, 16, 0, tzinfo=UTC)
        out = graph_datetime(moment, "America/Los_Angeles")
        assert out == {"dateTime": "2027-07-01T09:00:00", "timeZone": "Pacific Standard Time"}
        assert parse_graph_datetime(out) == moment
        assert (
            parse_graph_datetime(
                {"dateTime": "2027-07-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"}
            )
            == moment
        )
        ambiguous = datetime(2027, 11, 7, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))
        assert graph_datetime(ambiguous, "America/New_York")["timeZone"] == "UTC"

    async def test_throttling_honours_retry_after(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        await calendar_connector.create_event(
            EventRequest(subject="After the storm", start=BASE, end=BASE + timedelta(hours=1))
        )
        graph.throttle(2, retry_after=1)
        listed = await calendar_connector.list_events(BASE, BASE + timedelta(hours=1))
        assert [e.subject for e in listed] == ["After the storm"]
        assert graph.throttled == 2

    async def test_bad_token_is_an_auth_error(self, graph: GraphCalendarEmulator) -> None:
        connector = _connector(graph, token="not-a-token")  # noqa: S106
        try:
            health = await connector.check()
            assert health.status is ConnectorStatus.DOWN
            assert "InvalidAuthenticationToken" in health.detail
            with pytest.raises(ConnectorAuthError):
                await connector.list_events(BASE, BASE + timedelta(hours=1))
        finally:
            await connector.aclose()

    async def test_calendar_view_follows_next_link(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        for n in range(23):
            start = BASE + timedelta(hours=n)
            await calendar_connector.create_event(
                EventRequest(
                    subject=f"Slot {n:02d}", start=start, end=start + timedelta(minutes=30)
                )
            )
        listed = await calendar_connector.list_events(BASE, BASE + timedelta(days=1))
        assert [e.subject for e in listed] == [f"Slot {n:02d}" for n in range(23)]
        views = [p for m, p in graph.requests if p.endswith("/calendarView")]
        assert len(views) == 3  # pages of 10, 10 and 3

    async def test_windows_zones_and_mailbox_settings(
        self, calendar_connector: GraphCalendarConnector
    ) -> None:
        zone, hours = await calendar_connector.mailbox_settings(COLLEAGUE)
        assert zone == "America/New_York"
        assert (hours.start, hours.end, hours.days) == (time(8, 30), time(16, 30), [0, 1, 2, 3, 4])
        [calendar] = await calendar_connector.list_calendars()
        assert calendar.timezone == "Europe/London" and calendar.id == OWNER
        created = await calendar_connector.create_event(
            EventRequest(
                subject="Zoned",
                start=BASE,
                end=BASE + timedelta(hours=1),
                timezone="America/New_York",
            )
        )
        assert created.timezone == "America/New_York"  # from "Eastern Standard Time"

    async def test_get_schedule_for_several_people(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        start = BASE + timedelta(days=30)
        colleague = _connector(graph, mailbox=COLLEAGUE)
        try:
            await colleague.create_event(
                EventRequest(subject="Busy", start=start, end=start + timedelta(hours=1))
            )
            await colleague.create_event(
                EventRequest(
                    subject="Free",
                    start=start + timedelta(hours=2),
                    end=start + timedelta(hours=3),
                    show_as=ShowAs.FREE,
                )
            )
            await colleague.create_event(
                EventRequest(
                    subject="Away",
                    start=start + timedelta(hours=4),
                    end=start + timedelta(hours=5),
                    show_as=ShowAs.OOF,
                )
            )
        finally:
            await colleague.aclose()
        [theirs, unknown, mine] = await calendar_connector.get_free_busy(
            [COLLEAGUE, "ghost@contoso.test", OWNER],
            start - timedelta(hours=1),
            start + timedelta(hours=6),
        )
        assert [(b.start, b.end, b.show_as) for b in theirs.busy] == [
            (start, start + timedelta(hours=1), ShowAs.BUSY),
            (start + timedelta(hours=4), start + timedelta(hours=5), ShowAs.OOF),
        ]
        assert theirs.timezone == "America/New_York"
        assert theirs.working_hours is not None and theirs.working_hours.start == time(8, 30)
        assert unknown.error == "ErrorMailRecipientNotFound"
        assert mine.busy == [] and mine.timezone == "Europe/London"

    async def test_find_meeting_times_needs_a_delegated_token(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        day = datetime(2027, 3, 9, tzinfo=UTC)  # a Tuesday; London is on UTC in March
        colleague = _connector(graph, mailbox=COLLEAGUE)
        try:
            await colleague.create_event(
                EventRequest(
                    subject="Blocked", start=day.replace(hour=14), end=day.replace(hour=15)
                )
            )
        finally:
            await colleague.aclose()
        window = (day.replace(hour=13), day.replace(hour=16))
        with pytest.raises(ConnectorAuthError):
            await calendar_connector.find_meeting_times([COLLEAGUE], *window, timedelta(hours=1))
        delegated = _connector(graph, token=DELEGATED_TOKEN)
        try:
            found = await delegated.find_meeting_times([COLLEAGUE], *window, timedelta(hours=1))
        finally:
            await delegated.aclose()
        starts = [s.start for s in found.suggestions]
        assert day.replace(hour=13) in starts and day.replace(hour=15) in starts
        assert all(not (day.replace(hour=13) < s < day.replace(hour=15)) for s in starts)
        assert found.suggestions[0].attendee_availability == {COLLEAGUE: "free"}

    async def test_cancel_meeting_reaches_attendees(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        start = BASE + timedelta(days=31)
        created = await calendar_connector.create_event(
            EventRequest(
                subject="Board prep",
                start=start,
                end=start + timedelta(hours=1),
                attendees=[Attendee(address=COLLEAGUE)],
                idempotency_key=uuid.uuid4().hex,
            )
        )
        await calendar_connector.cancel_event(created.id, "moved to next week")
        assert [p for m, p in graph.requests if m == "POST" and p.endswith("/cancel")]
        window = (start, start + timedelta(hours=1))
        assert await calendar_connector.list_events(*window) == []
        [their_copy] = await calendar_connector.list_events(*window, calendar_id=COLLEAGUE)
        assert their_copy.is_cancelled and their_copy.id.startswith(f"{COLLEAGUE}/")
        fetched = await calendar_connector.get_event(their_copy.id)
        assert fetched.is_cancelled

    async def test_decline_and_non_organiser_writes(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        start = BASE + timedelta(days=32)
        organizer = _connector(graph, mailbox=COLLEAGUE)
        try:
            sent = await organizer.create_event(
                EventRequest(
                    subject="Optional sync",
                    start=start,
                    end=start + timedelta(hours=1),
                    attendees=[Attendee(address=OWNER)],
                )
            )
            [invite] = await calendar_connector.list_events(start, start + timedelta(hours=1))
            with pytest.raises(FatalConnectorError):
                await calendar_connector.update_event(invite.id, EventUpdate(subject="Mine now"))
            with pytest.raises(FatalConnectorError):
                await calendar_connector.cancel_event(invite.id)
            [before] = await calendar_connector.get_free_busy(
                [OWNER], start, start + timedelta(hours=1)
            )
            assert [b.show_as for b in before.busy] == [ShowAs.TENTATIVE]  # unanswered
            answered = await calendar_connector.respond_to_invite(
                invite.id, InviteResponse.DECLINE, "on leave"
            )
            assert [a.response for a in answered.attendees] == [ResponseStatus.DECLINED]
            organizer_view = await organizer.get_event(sent.id)
            assert [a.response for a in organizer_view.attendees] == [ResponseStatus.DECLINED]
            [after] = await calendar_connector.get_free_busy(
                [OWNER], start, start + timedelta(hours=1)
            )
            assert after.busy == []
        finally:
            await organizer.aclose()

    async def test_occurrence_update_and_cancel(
        self, graph: GraphCalendarEmulator, calendar_connector: GraphCalendarConnector
    ) -> None:
        start = BASE + timedelta(days=33)
        request = EventRequest(
            subject="Daily",
            start=start,
            end=start + timedelta(minutes=15),
            timezone="Europe/London",
        )
        graph.put_ical(
            OWNER,
            ical.wrap_calendar(
                ical.build_vevent(
                    request,
                    uid=f"{uuid.uuid4().hex}@client",
                    organizer=OWNER,
                    rrule="FREQ=DAILY;COUNT=3",
                )
            )
            .to_ical()
            .decode(),
        )
        window = (start - timedelta(hours=1), start + timedelta(days=3))
        first, second, third = await calendar_connector.list_events(*window)
        assert first.series_id == second.series_id and first.recurrence_id == first.start
        moved = await calendar_connector.update_event(
            second.id, EventUpdate(start=second.start + timedelta(hours=2))
        )
        assert moved.start == second.start + timedelta(hours=2)
        assert moved.recurrence_id == second.start
        assert moved.end - moved.start == timedelta(minutes=15)
        await calendar_connector.cancel_event(third.id)
        listed = await calendar_connector.list_events(*window)
        assert [(e.subject, e.start) for e in listed] == [
            ("Daily", first.start),
            ("Daily", moved.start),
        ]
