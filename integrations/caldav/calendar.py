"""CalDAV calendar connector on the ``caldav`` library's async client.

Each calendar the connector reads is mirrored in memory and kept current by RFC 6578
sync-collection (the sync token), fetching changed objects with one calendar-multiget.
Recurrences are expanded locally by recurring-ical-events (RRULE, RDATE, EXDATE,
RECURRENCE-ID, VTIMEZONE) rather than by the server, and free/busy is computed from the
colleagues' events instead of being trusted from a server's free-busy report.

Writes are conditional: a create is ``PUT`` with ``If-None-Match: *`` to a resource named
after the UID (so the idempotency key is the UID), updates and deletes carry ``If-Match``
with the ETag the mirror holds. The sync token lives in the connector instance: a new
instance starts with a full sync (one REPORT and one multiget per calendar).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urljoin
from zoneinfo import ZoneInfo

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from integrations import ical
from integrations.base import (
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
    ConnectorAuthError,
    ConnectorConflictError,
    ConnectorError,
    ConnectorNotFoundError,
    FatalConnectorError,
    MalformedContentError,
    RetriableConnectorError,
)

if TYPE_CHECKING:
    import icalendar

log = structlog.stdlib.get_logger(__name__)

T = TypeVar("T")

_VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"  # noqa: S105 - an XML element name
_NO_UID_CONFLICT = "{urn:ietf:params:xml:ns:caldav}no-uid-conflict"
_ICAL_HEADERS = {"Content-Type": "text/calendar; charset=utf-8"}
_MULTIGET_BATCH = 100
_INVITE_TO_RESPONSE = {
    InviteResponse.ACCEPT: ResponseStatus.ACCEPTED,
    InviteResponse.TENTATIVE: ResponseStatus.TENTATIVE,
    InviteResponse.DECLINE: ResponseStatus.DECLINED,
}


def _zone(value: str) -> str:
    return ical.resolve_timezone(value)


class CalDAVPerson(BaseModel):
    """Where a colleague's calendar lives, and their working day."""

    model_config = ConfigDict(extra="forbid")

    calendar_url: str | None = Field(
        default=None,
        title="Calendar URL",
        description="Absolute, or relative to the server URL. Default: the URL template.",
    )
    name: str | None = Field(default=None, title="Display name")
    timezone: str = Field(default="UTC", title="Time zone", description="IANA name.")
    working_hours: WorkingHours | None = Field(
        default=None, title="Working hours", description="Default: the connector's."
    )

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))


class CalDAVCalendarConfig(BaseModel):
    """Connection to a CalDAV server for one owner, plus the colleagues it may read."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(title="Server URL", description="Base URL of the CalDAV server.")
    username: str = Field(title="User name")
    password: SecretStr = Field(title="Password or app password")
    owner: str | None = Field(
        default=None,
        title="Owner address",
        description="The owner's email address; default: the user name.",
    )
    calendar_url: str | None = Field(
        default=None,
        title="Owner's calendar URL",
        description="Absolute or relative to the server URL; default: the principal's first "
        "calendar.",
    )
    timezone: str = Field(default="UTC", title="Owner's time zone", description="IANA name.")
    working_hours: WorkingHours = Field(
        default_factory=WorkingHours,
        title="Working hours",
        description="The owner's, and the default for colleagues (in their own zone).",
    )
    people: dict[str, CalDAVPerson] = Field(
        default_factory=dict,
        title="Colleagues",
        description="Email address -> calendar, for free/busy and shared calendars.",
    )
    calendar_url_template: str | None = Field(
        default=None,
        title="Calendar URL template",
        description="For people not listed, e.g. '{url}/{address}/calendar/'; placeholders "
        "{url}, {address}, {local} (the part before @).",
    )
    timeout_s: int = Field(default=30, ge=1, le=600, title="Request timeout (s)")
    verify_tls: bool = Field(default=True, title="Verify TLS certificates")

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    @field_validator("people")
    @classmethod
    def _lower_people(cls, value: dict[str, CalDAVPerson]) -> dict[str, CalDAVPerson]:
        return {k.strip().lower(): v for k, v in value.items()}


@dataclass
class _Resource:
    """One calendar object resource (one UID: a master and its overrides)."""

    name: str  # last path segment, unquoted
    url: str
    etag: str | None
    calendar: icalendar.Calendar

    @property
    def uid(self) -> str | None:
        for component in self.calendar.walk("VEVENT"):
            if component.get("uid"):
                return str(component.get("uid"))
        return None

    def master(self) -> icalendar.Event | None:
        events: list[Any] = self.calendar.walk("VEVENT")
        masters = [c for c in events if c.get("recurrence-id") is None]
        return masters[0] if masters else (events[0] if events else None)


@dataclass
class _Mirror:
    url: str
    token: str | None = None
    resources: dict[str, _Resource] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class CalendarChanges:
    """What one incremental sync of a calendar brought: event ids changed and removed."""

    calendar_id: str
    token: str | None
    changed: list[str]
    removed: list[str]
    full: bool = False


def _name_of(url: Any) -> str:
    return unquote(str(url).rstrip("/").rsplit("/", 1)[-1])


def _parse_occurrence(event_id: str) -> tuple[str, datetime | None]:
    base, sep, stamp = event_id.rpartition("::")
    if not sep:
        return event_id, None
    try:
        return base, datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return event_id, None


class CalDAVCalendarConnector:
    """The owner's CalDAV calendar, and colleagues' calendars read for free/busy.

    Calendar ids are people's addresses; event ids are ``address/resource-name``, with
    ``::YYYYMMDDTHHMMSS`` (the occurrence's RECURRENCE-ID in UTC) for one occurrence of a
    series.
    """

    def __init__(
        self,
        config: CalDAVCalendarConfig,
        *,
        name: str = "caldav-calendar",
        client: Any | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.owner = (config.owner or config.username).strip().lower()
        # caldav (with niquests) takes ~1 s to import: loaded when a CalDAV connector is built,
        # not when connectors are discovered at start-up.
        from caldav import aio

        # caldav's domain objects are typed for both its sync and async modes: Any here.
        self._client: Any = client or aio.AsyncDAVClient(
            url=config.url,
            username=config.username,
            password=config.password.get_secret_value(),
            timeout=config.timeout_s,
            ssl_verify_cert=config.verify_tls,
        )
        self._owner_url: str | None = (
            self._absolute(config.calendar_url) if config.calendar_url else None
        )
        self._mirrors: dict[str, _Mirror] = {}
        self._discover_lock = asyncio.Lock()
        # One request at a time on the shared session: concurrent first requests race in
        # the HTTP pool of caldav's async transport ("Pool is closed").
        self._io_lock = asyncio.Lock()

    # ------------------------------------------------------------------ plumbing

    def _absolute(self, url: str) -> str:
        absolute = urljoin(self.config.url.rstrip("/") + "/", url)
        return absolute if absolute.endswith("/") else absolute + "/"

    def _error(self, exc: BaseException, action: str) -> ConnectorError:
        """A typed connector error for a caldav or transport failure (never the password)."""
        from caldav.lib import error as dav_error

        if isinstance(exc, ConnectorError):
            return exc
        if isinstance(exc, dav_error.RateLimitError):
            return RetriableConnectorError(
                f"CalDAV {action}: rate limited",
                connector=self.name,
                retry_after=exc.retry_after_seconds,
            )
        if isinstance(exc, dav_error.AuthorizationError):
            what = "credentials refused" if exc.status == 401 else "access denied"
            return ConnectorAuthError(f"CalDAV {action}: {what}", connector=self.name)
        if isinstance(exc, dav_error.NotFoundError):
            return ConnectorNotFoundError(f"CalDAV {action}: not found", connector=self.name)
        if isinstance(exc, dav_error.DAVError):
            status = exc.status or 0
            if status >= 500 or status in (408, 425):
                return RetriableConnectorError(
                    f"CalDAV {action}: server answered {status}", connector=self.name
                )
            return FatalConnectorError(
                f"CalDAV {action} failed: {type(exc).__name__}", connector=self.name
            )
        if isinstance(exc, (OSError, TimeoutError)):
            return RetriableConnectorError(
                f"CalDAV {action}: {type(exc).__name__}", connector=self.name
            )
        return FatalConnectorError(
            f"CalDAV {action} failed: {type(exc).__name__}", connector=self.name
        )

    async def _raw(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self._io_lock:
            return await call()

    async def _call(self, action: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._raw(call)
        except ConnectorError:
            raise
        except Exception as exc:
            raise self._error(exc, action) from None

    def _check_status(self, action: str, status: int, *, ok: Sequence[int]) -> None:
        if status in ok:
            return
        if status == 404:
            raise ConnectorNotFoundError(f"CalDAV {action}: not found", connector=self.name)
        if status == 412:
            raise ConnectorConflictError(
                f"CalDAV {action}: changed on the server", connector=self.name
            )
        if status >= 500:
            raise RetriableConnectorError(
                f"CalDAV {action}: server answered {status}", connector=self.name
            )
        raise FatalConnectorError(f"CalDAV {action}: server answered {status}", connector=self.name)

    async def _owner_calendar_url(self) -> str:
        if self._owner_url is not None:
            return self._owner_url
        async with self._discover_lock:
            if self._owner_url is None:

                async def discover() -> str:
                    principal = await self._client.get_principal()
                    calendars = await principal.get_calendars()
                    if not calendars:
                        raise ConnectorNotFoundError(
                            "the CalDAV principal has no calendar", connector=self.name
                        )
                    return self._absolute(str(calendars[0].url))

                self._owner_url = await self._call("discovery", discover)
        return self._owner_url

    async def _calendar_url(self, address: str) -> str | None:
        address = address.strip().lower()
        if address == self.owner:
            return await self._owner_calendar_url()
        person = self.config.people.get(address)
        if person is not None and person.calendar_url:
            return self._absolute(person.calendar_url)
        template = self.config.calendar_url_template
        if template:
            return self._absolute(
                template.format(
                    url=self.config.url.rstrip("/"), address=address, local=address.split("@", 1)[0]
                )
            )
        return None

    def _person_timezone(self, address: str) -> str:
        if address == self.owner:
            return self.config.timezone
        person = self.config.people.get(address)
        return person.timezone if person else "UTC"

    def _working_hours(self, address: str) -> WorkingHours:
        person = self.config.people.get(address)
        hours = (
            person.working_hours if person and person.working_hours else self.config.working_hours
        )
        return hours.model_copy(update={"timezone": self._person_timezone(address)})

    # ------------------------------------------------------------------ the mirror

    def _mirror(self, url: str) -> _Mirror:
        if url not in self._mirrors:
            self._mirrors[url] = _Mirror(url=url)
        return self._mirrors[url]

    async def _sync(self, url: str) -> tuple[_Mirror, list[str], list[str], bool]:
        """Bring the mirror of ``url`` up to date; (mirror, changed, removed, full)."""
        from caldav import aio
        from caldav.lib import error as dav_error

        mirror = self._mirror(url)
        async with mirror.lock:
            calendar: Any = aio.Calendar(client=self._client, url=url)
            token = mirror.token
            try:
                collection = await self._raw(
                    lambda: calendar.get_objects_by_sync_token(
                        sync_token=token, load_objects=False, disable_fallback=True
                    )
                )
            except dav_error.DAVError as exc:
                if token is None or _VALID_SYNC_TOKEN not in exc.preconditions:
                    raise self._error(exc, "sync") from None
                # RFC 6578 3.2: the token expired; start again from nothing.
                log.info("connector.calendar.sync_token_expired", connector=self.name)
                token = None
                collection = await self._call(
                    "sync",
                    lambda: calendar.get_objects_by_sync_token(
                        sync_token=None, load_objects=False, disable_fallback=True
                    ),
                )
            except Exception as exc:
                raise self._error(exc, "sync") from None
            full = token is None
            deleted = {_name_of(u) for u in collection.deleted_urls}
            listed: dict[str, tuple[Any, str | None]] = {}
            for obj in collection.objects:
                name = _name_of(obj.url)
                if name not in deleted:
                    listed[name] = (obj.url, obj.props.get("{DAV:}getetag"))
            current = {} if full else dict(mirror.resources)
            removed = (
                [n for n in mirror.resources if n not in listed]
                if full
                else [n for n in deleted if n in mirror.resources]
            )
            for name in deleted:
                current.pop(name, None)
            stale = []
            for name, (obj_url, etag) in listed.items():
                known = mirror.resources.get(name)
                if known is not None and etag is not None and known.etag == etag:
                    current[name] = known
                else:
                    stale.append(obj_url)
            changed: list[str] = []
            for batch_start in range(0, len(stale), _MULTIGET_BATCH):
                batch = stale[batch_start : batch_start + _MULTIGET_BATCH]
                loaded: list[Any] = await self._call(
                    "multiget",
                    lambda b=batch: calendar.multiget(b),  # type: ignore[misc]
                )
                for obj in loaded:
                    name = _name_of(obj.url)
                    try:
                        parsed = ical.parse_calendar(obj.data)
                    except Exception:  # icalendar raises more than ValueError on bad input
                        log.warning(
                            "connector.calendar.unparsable_object",
                            connector=self.name,
                            resource=name,
                        )
                        continue
                    current[name] = _Resource(
                        name=name,
                        url=str(obj.url),
                        etag=obj.props.get("{DAV:}getetag"),
                        calendar=parsed,
                    )
                    changed.append(name)
            mirror.resources = current
            mirror.token = str(collection.sync_token) if collection.sync_token else None
            if changed or removed:
                log.debug(
                    "connector.calendar.synced",
                    connector=self.name,
                    changed=len(changed),
                    removed=len(removed),
                    full=full,
                )
            return mirror, changed, removed, full

    async def sync_calendar(self, calendar_id: str | None = None) -> CalendarChanges:
        """Pull the changes of one calendar since the last sync (by sync-token)."""
        address = (calendar_id or self.owner).lower()
        url = await self._calendar_url(address)
        if url is None:
            raise ConnectorNotFoundError(f"no calendar {address!r}", connector=self.name)
        mirror, changed, removed, full = await self._sync(url)
        return CalendarChanges(
            calendar_id=address,
            token=mirror.token,
            full=full,
            changed=[f"{address}/{n}" for n in changed],
            removed=[f"{address}/{n}" for n in removed],
        )

    # ------------------------------------------------------------------ reads

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            url = await self._owner_calendar_url()
            response = await self._call(
                "check", lambda: self._client.propfind(url, props=["displayname"], depth=0)
            )
            self._check_status("check", response.status, ok=(200, 207))
        except ConnectorError as exc:
            status = ConnectorStatus.DOWN
            return ConnectorHealth(status=status, detail=f"{type(exc).__name__}: {exc.detail}")
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def list_calendars(self) -> list[CalendarInfo]:
        calendars = [
            CalendarInfo(
                id=self.owner,
                name=self.owner,
                owner=self.owner,
                timezone=self.config.timezone,
                can_edit=True,
            )
        ]
        for address, person in sorted(self.config.people.items()):
            if address != self.owner:
                calendars.append(
                    CalendarInfo(
                        id=address,
                        name=person.name or address,
                        owner=address,
                        timezone=person.timezone,
                        can_edit=False,
                    )
                )
        return calendars

    def _events_of(
        self,
        resource: _Resource,
        address: str,
        start: datetime,
        end: datetime,
    ) -> list[CalendarEvent]:
        base_id = f"{address}/{resource.name}"
        series = ical.is_series(resource.calendar)
        tz = self._person_timezone(address)
        return [
            ical.event_from_component(
                component,
                calendar_id=address,
                event_id=ical.occurrence_id(base_id, component),
                default_tz=tz,
                series_id=base_id if series else None,
            ).model_copy(update={"etag": resource.etag})
            for component in ical.expand(resource.calendar, start, end)
        ]

    async def _events(self, address: str, start: datetime, end: datetime) -> list[CalendarEvent]:
        url = await self._calendar_url(address)
        if url is None:
            raise ConnectorNotFoundError(f"no calendar {address!r}", connector=self.name)
        mirror, *_ = await self._sync(url)
        events: list[CalendarEvent] = []
        for resource in list(mirror.resources.values()):
            try:
                events.extend(self._events_of(resource, address, start, end))
            except Exception as exc:  # one malformed object must not hide everyone's others
                log.warning(
                    "connector.calendar.object_skipped",
                    connector=self.name,
                    calendar=address,
                    resource=resource.name,
                    error=type(exc).__name__,
                )
        events.sort(key=lambda e: (e.start, e.id))
        return events

    async def list_events(
        self, start: datetime, end: datetime, *, calendar_id: str | None = None
    ) -> list[CalendarEvent]:
        return await self._events((calendar_id or self.owner).lower(), start, end)

    async def _resource(self, event_id: str) -> tuple[str, _Resource, datetime | None]:
        base, moment = _parse_occurrence(event_id)
        address, sep, name = base.partition("/")
        url = await self._calendar_url(address) if sep and name else None
        if url is None:
            raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
        mirror, *_ = await self._sync(url)
        resource = mirror.resources.get(name)
        if resource is None:
            raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
        return address.lower(), resource, moment

    def _occurrence(
        self, resource: _Resource, address: str, event_id: str, moment: datetime
    ) -> tuple[CalendarEvent, icalendar.Event] | None:
        base_id = f"{address}/{resource.name}"
        try:
            component = ical.find_occurrence(resource.calendar, base_id, event_id, moment)
            if component is None:
                return None
            event = ical.event_from_component(
                component,
                calendar_id=address,
                event_id=event_id,
                default_tz=self._person_timezone(address),
                series_id=base_id,
            ).model_copy(update={"etag": resource.etag})
        except Exception as exc:  # the calendar object is malformed: a typed error, not a 500
            raise MalformedContentError(
                f"calendar object {resource.name!r} cannot be read ({type(exc).__name__})",
                connector=self.name,
            ) from None
        return event, component

    async def get_event(self, event_id: str) -> CalendarEvent:
        address, resource, moment = await self._resource(event_id)
        if moment is not None:
            found = self._occurrence(resource, address, event_id, moment)
            if found is None:
                raise ConnectorNotFoundError(f"no occurrence {event_id!r}", connector=self.name)
            return found[0]
        master = resource.master()
        if master is None:
            raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
        base_id = f"{address}/{resource.name}"
        try:
            event = ical.event_from_component(
                master,
                calendar_id=address,
                event_id=base_id,
                default_tz=self._person_timezone(address),
                series_id=base_id if ical.is_series(resource.calendar) else None,
            )
        except Exception as exc:  # the calendar object is malformed: a typed error, not a 500
            raise MalformedContentError(
                f"calendar object {resource.name!r} cannot be read ({type(exc).__name__})",
                connector=self.name,
            ) from None
        return event.model_copy(update={"etag": resource.etag})

    async def _free_busy_of(self, address: str, start: datetime, end: datetime) -> FreeBusy:
        address = address.strip().lower()
        try:
            events = await self._events(address, start, end)
        except ConnectorNotFoundError:
            return FreeBusy(person=address, error="unknown person")
        except ConnectorAuthError:
            return FreeBusy(person=address, error="calendar not readable")
        busy = [
            BusyInterval(start=max(e.start, start), end=min(e.end, end), show_as=e.show_as)
            for e in events
            if e.show_as is not ShowAs.FREE
            and not e.is_cancelled
            and not any(
                a.address == address and a.response is ResponseStatus.DECLINED for a in e.attendees
            )
        ]
        return FreeBusy(
            person=address,
            timezone=self._person_timezone(address),
            working_hours=self._working_hours(address),
            busy=busy,
        )

    async def get_free_busy(
        self, people: Sequence[str], start: datetime, end: datetime
    ) -> list[FreeBusy]:
        return list(await asyncio.gather(*(self._free_busy_of(p, start, end) for p in people)))

    # ------------------------------------------------------------------ writes

    async def _put(
        self, resource_url: str, calendar: icalendar.Calendar, headers: dict[str, str], action: str
    ) -> int:
        from caldav.lib import error as dav_error

        body = calendar.to_ical().decode()
        try:
            response = await self._raw(
                lambda: self._client.put(resource_url, body, {**_ICAL_HEADERS, **headers})
            )
        except dav_error.DAVError as exc:
            if _NO_UID_CONFLICT in exc.preconditions:
                return 409  # RFC 4791 5.3.2.1: that UID lives under another name
            raise self._error(exc, action) from None
        except Exception as exc:
            raise self._error(exc, action) from None
        return int(response.status)

    async def create_event(self, request: EventRequest) -> CalendarEvent:
        if request.end <= request.start:
            raise FatalConnectorError("an event must end after it starts", connector=self.name)
        address = (request.calendar_id or self.owner).lower()
        if address != self.owner:
            raise FatalConnectorError(
                "CalDAV writes only to the owner's calendar", connector=self.name
            )
        url = await self._owner_calendar_url()
        uid = f"{request.idempotency_key or uuid.uuid4().hex}@assistant"
        name = f"{uid}.ics"
        component = ical.build_vevent(request, uid=uid, organizer=self.owner)
        status = await self._put(
            url + quote(name, safe="@"),
            ical.wrap_calendar(component),
            {"If-None-Match": "*"},
            "create",
        )
        replayed = status in (409, 412)  # the same key was used before: the event exists
        if not replayed:
            self._check_status("create", status, ok=(200, 201, 204))
        mirror, *_ = await self._sync(url)
        existing = mirror.resources.get(name) or next(
            (r for r in mirror.resources.values() if r.uid == uid), None
        )
        if existing is None:
            raise ConnectorConflictError(
                "the created event did not come back from the server", connector=self.name
            )
        if replayed:
            log.info("connector.calendar.create_replayed", connector=self.name)
        else:
            log.info(
                "connector.calendar.event_created",
                connector=self.name,
                attendees=len(request.attendees),
            )
        return await self.get_event(f"{self.owner}/{existing.name}")

    def _require_organizer(self, resource: _Resource, action: str) -> None:
        master = resource.master()
        organizer = master.get("organizer") if master is not None else None
        if organizer is not None and str(organizer).lower().removeprefix("mailto:") != self.owner:
            raise FatalConnectorError(
                f"only the organiser can {action} an event", connector=self.name
            )

    async def _write_back(self, address: str, resource: _Resource, action: str) -> None:
        resource.calendar.add_missing_timezones()
        headers = {"If-Match": resource.etag} if resource.etag else {}
        status = await self._put(resource.url, resource.calendar, headers, action)
        self._check_status(action, status, ok=(200, 201, 204))
        url = await self._calendar_url(address)
        if url is not None:
            await self._sync(url)

    async def _with_retry_on_conflict(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a read-modify-write; on 412 (someone wrote in between) resync and redo once."""
        try:
            return await call()
        except ConnectorConflictError:
            return await call()

    @staticmethod
    def _override_for(resource: _Resource, component: icalendar.Event) -> icalendar.Event:
        """The override VEVENT for an expanded occurrence, created from it when missing."""
        import icalendar  # on first use, as in integrations.ical: not at discovery

        rid = component.decoded("recurrence-id")
        for existing in resource.calendar.walk("VEVENT"):
            if (
                isinstance(existing, icalendar.Event)
                and existing.get("recurrence-id") is not None
                and existing.decoded("recurrence-id") == rid
            ):
                return existing
        override: icalendar.Event = icalendar.Event()
        for key, value in component.property_items(recursive=False):
            if key in {"BEGIN", "END", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}:
                continue
            override.add(key, value, encode=False)
        override.add("recurrence-id", rid)
        resource.calendar.add_component(override)
        return override

    async def update_event(self, event_id: str, update: EventUpdate) -> CalendarEvent:
        async def attempt() -> CalendarEvent:
            address, resource, moment = await self._resource(event_id)
            if address != self.owner:
                raise FatalConnectorError(
                    "CalDAV writes only to the owner's calendar", connector=self.name
                )
            self._require_organizer(resource, "update")
            tz = self._person_timezone(address)
            if moment is not None:
                found = self._occurrence(resource, address, event_id, moment)
                if found is None:
                    raise ConnectorNotFoundError(f"no occurrence {event_id!r}", connector=self.name)
                target = self._override_for(resource, found[1])
            else:
                master = resource.master()
                if master is None:
                    raise ConnectorNotFoundError(f"no event {event_id!r}", connector=self.name)
                target = master
            ical.apply_update(target, update, default_tz=tz)
            new_start = ical.event_from_component(
                target, calendar_id=address, event_id=event_id, default_tz=tz
            )
            if new_start.end <= new_start.start:
                raise FatalConnectorError("an event must end after it starts", connector=self.name)
            await self._write_back(address, resource, "update")
            log.info(
                "connector.calendar.event_updated",
                connector=self.name,
                occurrence=moment is not None,
            )
            if moment is None:
                return await self.get_event(event_id)
            base_id = f"{address}/{resource.name}"
            return await self.get_event(
                ical.occurrence_id(base_id, target)
                if target.get("recurrence-id") is not None
                else event_id
            )

        return await self._with_retry_on_conflict(attempt)

    async def cancel_event(self, event_id: str, comment: str | None = None) -> None:
        async def attempt() -> None:
            try:
                address, resource, moment = await self._resource(event_id)
            except ConnectorNotFoundError:
                return  # cancelling twice is not an error
            if address != self.owner:
                raise FatalConnectorError(
                    "CalDAV writes only to the owner's calendar", connector=self.name
                )
            self._require_organizer(resource, "cancel")
            if moment is None:
                # A scheduling server (RFC 6638) turns the organiser's DELETE into CANCELs.
                headers = {"If-Match": resource.etag} if resource.etag else {}
                response = await self._call(
                    "cancel", lambda: self._client.delete(resource.url, headers)
                )
                self._check_status("cancel", int(response.status), ok=(200, 204, 404))
                await self._sync(await self._owner_calendar_url())
                log.info("connector.calendar.event_cancelled", connector=self.name)
                return
            found = self._occurrence(resource, address, event_id, moment)
            master = resource.master()
            if found is None or master is None:
                return
            rid = found[1].decoded("recurrence-id")
            tz = ZoneInfo(ical.event_timezone(master, self._person_timezone(address)))
            master.add("exdate", rid.astimezone(tz) if isinstance(rid, datetime) else rid)
            for component in list(resource.calendar.subcomponents):
                if (
                    component.name == "VEVENT"
                    and component.get("recurrence-id") is not None
                    and component.decoded("recurrence-id") == rid
                ):
                    resource.calendar.subcomponents.remove(component)
            master["sequence"] = int(master.get("sequence", 0)) + 1
            await self._write_back(address, resource, "cancel")
            log.info("connector.calendar.occurrence_cancelled", connector=self.name)

        await self._with_retry_on_conflict(attempt)

    async def respond_to_invite(
        self, event_id: str, response: InviteResponse, comment: str | None = None
    ) -> CalendarEvent:
        async def attempt() -> CalendarEvent:
            address, resource, moment = await self._resource(event_id)
            if address != self.owner:
                raise FatalConnectorError(
                    "only the owner's invitations can be answered", connector=self.name
                )
            partstat = _INVITE_TO_RESPONSE[response]
            if moment is not None:
                found = self._occurrence(resource, address, event_id, moment)
                if found is None:
                    raise ConnectorNotFoundError(f"no occurrence {event_id!r}", connector=self.name)
                targets = [self._override_for(resource, found[1])]
            else:
                import icalendar  # on first use, as in integrations.ical: not at discovery

                targets = [
                    c for c in resource.calendar.walk("VEVENT") if isinstance(c, icalendar.Event)
                ]
            answered = [ical.set_partstat(t, self.owner, partstat) for t in targets]
            if not any(answered):
                raise FatalConnectorError(
                    "the owner is not invited to this event", connector=self.name
                )
            if comment:
                for target in targets:
                    target.pop("comment", None)
                    target.add("comment", comment)
            # The attendee's PUT is what a scheduling server (RFC 6638) turns into a REPLY.
            await self._write_back(address, resource, "respond")
            log.info(
                "connector.calendar.invite_answered", connector=self.name, response=response.value
            )
            return await self.get_event(event_id)

        return await self._with_retry_on_conflict(attempt)

    async def aclose(self) -> None:
        try:
            await self._client.close()
        except Exception as exc:  # closing must not mask the caller's own error
            log.debug(
                "connector.calendar.close_failed", connector=self.name, error=type(exc).__name__
            )
