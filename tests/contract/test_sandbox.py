"""The email and calendar contracts, run against the sandbox connectors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.ids import new_id
from integrations import ical
from integrations.base import Attendee, EmailAddress, EmailMessage, EventRequest
from integrations.sandbox import SandboxCalendarConnector, SandboxEmailConnector
from integrations.sandbox.models import SandboxEvent
from integrations.sandbox.seed import load_mailbox_seed
from tests.conftest import SEED_DIR
from tests.contract.calendar_contract import CalendarContract
from tests.contract.email_contract import EmailContract

EXECUTIVE = load_mailbox_seed(SEED_DIR).executive.address.lower()


class TestSandboxEmail(EmailContract):
    @pytest.fixture
    def email_connector(self, seeded: async_sessionmaker[AsyncSession]) -> SandboxEmailConnector:
        return SandboxEmailConnector(tenant_id="default", mailbox=EXECUTIVE, session_factory=seeded)

    @pytest.fixture
    def deliver(self, email_connector: SandboxEmailConnector):  # type: ignore[no-untyped-def]
        async def deliver(subject: str, text: str, sender: str) -> None:
            await email_connector.deliver(
                EmailMessage(
                    id="new",
                    folder="inbox",
                    subject=subject,
                    text=text,
                    sender=EmailAddress(address=sender),
                    to=[EmailAddress(address=EXECUTIVE)],
                    message_id=f"<{uuid.uuid4().hex}@partner.example>",
                    date=datetime.now(UTC),
                )
            )

        return deliver


class TestSandboxCalendar(CalendarContract):
    @pytest.fixture
    def calendar_connector(
        self, seeded: async_sessionmaker[AsyncSession]
    ) -> SandboxCalendarConnector:
        return SandboxCalendarConnector(
            tenant_id="default", owner=EXECUTIVE, session_factory=seeded
        )

    @pytest.fixture
    async def colleague(self, calendar_connector: SandboxCalendarConnector) -> str:
        calendars = await calendar_connector.list_calendars()
        return next(c.owner for c in calendars if c.owner != EXECUTIVE)

    async def _insert(
        self,
        sessions: async_sessionmaker[AsyncSession],
        owner: str,
        request: EventRequest,
        rrule: str | None = None,
        exdates: list[datetime] | None = None,
    ) -> str:
        uid = f"{uuid.uuid4().hex}@test"
        component = ical.build_vevent(
            request, uid=uid, organizer=owner, rrule=rrule, exdates=exdates or []
        )
        row_id = new_id()
        async with sessions() as session, session.begin():
            session.add(
                SandboxEvent(
                    id=row_id,
                    tenant_id="default",
                    owner=owner,
                    uid=uid,
                    ical=ical.wrap_calendar(component).to_ical().decode(),
                    attendees=[a.address for a in request.attendees],
                    updated_at=datetime.now(UTC),
                )
            )
        return row_id

    @pytest.fixture
    def add_recurring_event(self, seeded: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
        async def add(subject: str, start: datetime, rrule: str, exdates: list[datetime]) -> None:
            request = EventRequest(
                subject=subject,
                start=start,
                end=start + timedelta(minutes=30),
                timezone="America/New_York",
            )
            await self._insert(seeded, EXECUTIVE, request, rrule, exdates)

        return add

    @pytest.fixture
    def add_invitation(self, seeded: async_sessionmaker[AsyncSession], colleague: str):  # type: ignore[no-untyped-def]
        async def add(subject: str, start: datetime, end: datetime) -> str:
            request = EventRequest(
                subject=subject, start=start, end=end, attendees=[Attendee(address=EXECUTIVE)]
            )
            return await self._insert(seeded, colleague, request)

        return add
