"""Sandbox calendars: events stored as iCalendar, expanded by recurring-ical-events."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.ids import new_id
from integrations import ical
from integrations.base import (
    Attendee,
    BusyInterval,
    CalendarEvent,
    CalendarInfo,
    ConnectorHealth,
    ConnectorStatus,
    EventRequest,
    EventUpdate,
    FreeBusy,
    InviteResponse,
    ResponseStatus,
    ShowAs,
    WorkingHours,
)
from integrations.errors import (
    ConnectorNotFoundError,
    FatalConnectorError,
    MalformedContentError,
)
from integrations.sandbox.models import SandboxEvent, SandboxPerson

if TYPE_CHECKING:
    import icalendar

_INVITE_TO_PARTSTAT = {
    InviteResponse.ACCEPT: "ACCEPTED",
    InviteResponse.TENTATIVE: "TENTATIVE",
    InviteResponse.DECLINE: "DECLINED",
}


log = structlog.stdlib.get_logger(__name__)


def _occurrence_moment(stamp: str, event_id: str, connector: str) -> datetime:
    """The RECURRENCE-ID (UTC) an occurrence id ends with; an id that has none is unknown."""
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise ConnectorNotFoundError(f"no occurrence {event_id!r}", connector=connector) from None


def working_hours_from_row(person: SandboxPerson) -> WorkingHours:
    return WorkingHours.model_validate({**person.working_hours, "timezone": person.timezone})


def _vevent(row: SandboxEvent) -> icalendar.Event:
    import icalendar  # on first use, as in integrations.ical: not at discovery

    cal = icalendar.Calendar.from_ical(row.ical)
    component = next(iter(cal.walk("VEVENT")))
    assert isinstance(component, icalendar.Event)
    return component


def _as_text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SandboxCalendarConnector:
    """Calendars of the sandbox's people, kept in the application database."""

    def __init__(
        self,
        *,
        tenant_id: str,
        owner: str,
        session_factory: async_sessionmaker[AsyncSession],
        name: str = "sandbox-calendar",
    ) -> None:
        self.tenant_id = tenant_id
        self.owner = owner.lower()
        self.name = name
        self._sessions = session_factory

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            async with self._sessions() as session:
                await session.execute(select(func.count()).select_from(SandboxPerson))
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def list_calendars(self) -> list[CalendarInfo]:
        async with self._sessions() as session:
            people = (
                (
                    await session.execute(
                        select(SandboxPerson)
                        .where(SandboxPerson.tenant_id == self.tenant_id)
                        .order_by(SandboxPerson.address)
                    )
                )
                .scalars()
                .all()
            )
        return [
            CalendarInfo(
                id=p.address,
                name=p.name,
                owner=p.address,
                timezone=p.timezone,
                can_edit=p.address == self.owner,
            )
            for p in people
        ]

    async def _rows_for(self, session: AsyncSession, person: str) -> list[SandboxEvent]:
        rows = (
            (
                await session.execute(
                    select(SandboxEvent).where(
                        SandboxEvent.tenant_id == self.tenant_id, SandboxEvent.cancelled.is_(False)
                    )
                )
            )
            .scalars()
            .all()
        )
        # An invitation lands on every attendee's calendar, as Exchange and CalDAV deliver it.
        return [r for r in rows if r.owner == person or person in (r.attendees or [])]

    async def _expand(
        self,
        rows: Sequence[SandboxEvent],
        start: datetime,
        end: datetime,
        calendar_id: str,
        default_tz: str,
    ) -> list[CalendarEvent]:
        events: list[CalendarEvent] = []
        for row in rows:
            try:
                cal = ical.parse_calendar(row.ical)
                events.extend(
                    ical.event_from_component(
                        component,
                        calendar_id=calendar_id,
                        event_id=ical.occurrence_id(row.id, component),
                        default_tz=default_tz,
                        series_id=row.id if component.get("rrule") is not None else None,
                    )
                    for component in ical.expand(cal, start, end)
                )
            except Exception as exc:  # one malformed event must not hide everyone's others
                log.warning(
                    "connector.calendar.object_skipped",
                    connector=self.name,
                    calendar=calendar_id,
                    event_id=row.id,
                    error=type(exc).__name__,
                )
        events.sort(key=lambda e: (e.start, e.id))
        return events

    async def _person(self, session: AsyncSession, address: str) -> SandboxPerson | None:
        return await session.get(SandboxPerson, (self.tenant_id, address.lower()))

    async def list_events(
        self, start: datetime, end: datetime, *, calendar_id: str | None = None
    ) -> list[CalendarEvent]:
        calendar = (calendar_id or self.owner).lower()
        async with self._sessions() as session:
            person = await self._person(session, calendar)
            if person is None:
                raise ConnectorNotFoundError(f"no calendar {calendar!r}", connector=self.name)
            rows = await self._rows_for(session, calendar)
        return await self._expand(rows, start, end, calendar, person.timezone)

    async def get_event(self, event_id: str) -> CalendarEvent:
        base_id, _, occurrence = event_id.partition("::")
        async with self._sessions() as session:
            row = await session.get(SandboxEvent, base_id)
            if row is None or row.tenant_id != self.tenant_id:
                raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
        component = _vevent(row)
        try:
            if occurrence:
                moment = _occurrence_moment(occurrence, event_id, self.name)
                found = ical.find_occurrence(
                    ical.parse_calendar(row.ical), row.id, event_id, moment
                )
                if found is None:
                    raise ConnectorNotFoundError(f"no occurrence {event_id!r}", connector=self.name)
                event = ical.event_from_component(
                    found, calendar_id=row.owner, event_id=event_id, series_id=row.id
                )
            else:
                event = ical.event_from_component(component, calendar_id=row.owner, event_id=row.id)
        except ConnectorNotFoundError:
            raise
        except Exception as exc:  # a malformed event: a typed error, not a 500
            raise MalformedContentError(
                f"event {row.id!r} cannot be read ({type(exc).__name__})", connector=self.name
            ) from None
        return event.model_copy(update={"is_cancelled": row.cancelled or event.is_cancelled})

    async def get_free_busy(
        self, people: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusy]:
        results: list[FreeBusy] = []
        async with self._sessions() as session:
            for address in people:
                person = await self._person(session, address)
                if person is None:
                    results.append(FreeBusy(person=address.lower(), error="unknown person"))
                    continue
                rows = await self._rows_for(session, person.address)
                events = await self._expand(rows, start, end, person.address, person.timezone)
                busy = [
                    BusyInterval(start=e.start, end=e.end, show_as=e.show_as)
                    for e in events
                    if e.show_as is not ShowAs.FREE
                    and not e.is_cancelled
                    and not self._declined(e, person.address)
                ]
                results.append(
                    FreeBusy(
                        person=person.address,
                        timezone=person.timezone,
                        working_hours=working_hours_from_row(person),
                        busy=busy,
                    )
                )
        return results

    @staticmethod
    def _declined(event: CalendarEvent, address: str) -> bool:
        return any(
            a.address == address and a.response is ResponseStatus.DECLINED for a in event.attendees
        )

    async def create_event(self, request: EventRequest) -> CalendarEvent:
        if request.end <= request.start:
            raise FatalConnectorError("an event must end after it starts", connector=self.name)
        owner = (request.calendar_id or self.owner).lower()
        if owner != self.owner:
            raise FatalConnectorError(
                "the sandbox writes only to the owner's calendar", connector=self.name
            )
        uid = (
            f"{request.idempotency_key}@assistant"
            if request.idempotency_key
            else f"{new_id()}@assistant"
        )
        async with self._sessions() as session, session.begin():
            existing = (
                await session.execute(
                    select(SandboxEvent).where(
                        SandboxEvent.tenant_id == self.tenant_id,
                        SandboxEvent.owner == owner,
                        SandboxEvent.uid == uid,
                    )
                )
            ).scalar_one_or_none()
            if existing is not None:  # same idempotency key, same event
                return ical.event_from_component(
                    _vevent(existing), calendar_id=owner, event_id=existing.id
                )
            component = ical.build_vevent(request, uid=uid, organizer=owner)
            row = SandboxEvent(
                id=new_id(),
                tenant_id=self.tenant_id,
                owner=owner,
                uid=uid,
                ical=ical.wrap_calendar(component).to_ical().decode(),
                attendees=[a.address.lower() for a in request.attendees],
                updated_at=datetime.now(UTC),
            )
            session.add(row)
            await session.flush()
        return ical.event_from_component(component, calendar_id=owner, event_id=row.id)

    async def _owned_row(self, session: AsyncSession, event_id: str) -> SandboxEvent:
        row = await session.get(SandboxEvent, event_id.partition("::")[0])
        if row is None or row.tenant_id != self.tenant_id:
            raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
        return row

    async def update_event(self, event_id: str, update: EventUpdate) -> CalendarEvent:
        if "::" in event_id:
            raise FatalConnectorError(
                "the sandbox updates whole series, not one occurrence", connector=self.name
            )
        async with self._sessions() as session, session.begin():
            row = await self._owned_row(session, event_id)
            if row.owner != self.owner:
                raise FatalConnectorError(
                    "only the organiser can update an event", connector=self.name
                )
            current = ical.event_from_component(
                _vevent(row), calendar_id=row.owner, event_id=row.id
            )
            changes: dict[str, Any] = update.model_dump(exclude_none=True)
            merged = EventRequest(
                subject=changes.get("subject", current.subject),
                start=update.start or current.start,
                end=update.end or current.end,
                timezone=changes.get("timezone", current.timezone),
                attendees=update.attendees if update.attendees is not None else current.attendees,
                location=changes.get("location", current.location),
                body=changes.get("body", current.body),
                show_as=update.show_as or current.show_as,
            )
            if merged.end <= merged.start:
                raise FatalConnectorError("an event must end after it starts", connector=self.name)
            old = _vevent(row)
            component = ical.build_vevent(
                merged,
                uid=row.uid,
                organizer=row.owner,
                sequence=int(old.get("sequence", 0)) + 1,
                rrule=_as_text(old["rrule"].to_ical()) if old.get("rrule") else None,
            )
            row.ical = ical.wrap_calendar(component).to_ical().decode()
            row.attendees = [a.address.lower() for a in merged.attendees]
            row.updated_at = datetime.now(UTC)
        return ical.event_from_component(component, calendar_id=row.owner, event_id=row.id)

    async def cancel_event(self, event_id: str, comment: str | None = None) -> None:
        base_id, _, occurrence = event_id.partition("::")
        async with self._sessions() as session, session.begin():
            try:
                row = await self._owned_row(session, base_id)
            except ConnectorNotFoundError:
                return
            if row.owner != self.owner:
                raise FatalConnectorError(
                    "only the organiser can cancel; decline instead", connector=self.name
                )
            if occurrence:
                import icalendar  # on first use, as in integrations.ical: not at discovery

                cal = icalendar.Calendar.from_ical(row.ical)
                master = next(iter(cal.walk("VEVENT")))
                master.add("exdate", _occurrence_moment(occurrence, event_id, self.name))
                row.ical = cal.to_ical().decode()
            else:
                row.cancelled = True
            row.updated_at = datetime.now(UTC)

    async def respond_to_invite(
        self, event_id: str, response: InviteResponse, comment: str | None = None
    ) -> CalendarEvent:
        async with self._sessions() as session, session.begin():
            row = await self._owned_row(session, event_id)
            import icalendar  # on first use, as in integrations.ical: not at discovery

            cal = icalendar.Calendar.from_ical(row.ical)
            component = next(iter(cal.walk("VEVENT")))
            attendees = component.get("attendee")
            attendees = (
                attendees if isinstance(attendees, list) else [attendees] if attendees else []
            )
            mine = [a for a in attendees if str(a).lower() == f"mailto:{self.owner}"]
            if not mine:
                raise FatalConnectorError(
                    "the owner is not invited to this event", connector=self.name
                )
            for attendee in mine:
                attendee.params["PARTSTAT"] = _INVITE_TO_PARTSTAT[response]
            row.ical = cal.to_ical().decode()
            row.updated_at = datetime.now(UTC)
        return await self.get_event(event_id)

    async def aclose(self) -> None:
        return None


def attendee_addresses(attendees: Sequence[Attendee]) -> list[str]:
    return [a.address.lower() for a in attendees]
