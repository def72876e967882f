"""Load the sandbox's working week from YAML files, shifted to the current week."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.ids import new_id
from integrations import ical
from integrations.base import (
    Attachment,
    Attendee,
    EmailAddress,
    EmailMessage,
    EventRequest,
    ShowAs,
)
from integrations.sandbox.email import bump_change_seq
from integrations.sandbox.models import (
    SandboxEvent,
    SandboxMailboxState,
    SandboxMessage,
    SandboxPerson,
    SandboxTombstone,
)
from integrations.sandbox.seed_files import default_seed_dir as default_seed_dir

WALL_TIME = "%Y-%m-%d %H:%M"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedPerson(_Strict):
    address: str
    name: str
    timezone: str
    working_hours: dict[str, Any] = Field(default_factory=dict)


class SeedMessage(_Strict):
    key: str
    folder: str = "inbox"
    date: str
    tz: str | None = None
    sender: EmailAddress = Field(alias="from")
    to: list[EmailAddress] = Field(default_factory=list)
    cc: list[EmailAddress] = Field(default_factory=list)
    reply_to: list[EmailAddress] = Field(default_factory=list)
    subject: str = ""
    message_id: str
    in_reply_to: str | None = None
    references: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list)
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    expect: dict[str, Any] = Field(default_factory=dict)


class SeedExecutive(_Strict):
    address: str
    name: str
    timezone: str


class MailboxSeed(_Strict):
    anchor_week: date
    executive: SeedExecutive
    internal_domains: list[str] = Field(default_factory=list)
    vips: list[str] = Field(default_factory=list)
    messages: list[SeedMessage]


class SeedEvent(_Strict):
    key: str
    owner: str
    subject: str
    start: str
    end: str
    tz: str | None = None
    rrule: str | None = None
    exdates: list[str] = Field(default_factory=list)
    all_day: bool = False
    attendees: list[Attendee] = Field(default_factory=list)
    show_as: str = "busy"
    location: str | None = None
    body: str | None = None


class CalendarSeed(_Strict):
    anchor_week: date
    people: list[SeedPerson]
    events: list[SeedEvent]


@dataclass(frozen=True)
class SeedReport:
    messages: int
    people: int
    events: int
    skipped: bool
    week_of: date


#: libyaml's loader where PyYAML was built with it: the pure-Python one takes ~0.5 s for the
#: mailbox seed, which every sandbox connector reads when it is built.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=8)
def _parse_seed_file(path: Path, modified_ns: int) -> Any:
    # Keyed on the modification time, so an edited seed is read again.
    return yaml.load(path.read_text("utf-8"), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)


def _read_seed_file(path: Path) -> Any:
    # Callers only validate the parsed tree into models; none mutates it.
    return _parse_seed_file(path, path.stat().st_mtime_ns)


def load_mailbox_seed(seed_dir: Path) -> MailboxSeed:
    return MailboxSeed.model_validate(_read_seed_file(seed_dir / "mailbox.yaml"))


def load_calendar_seed(seed_dir: Path) -> CalendarSeed:
    return CalendarSeed.model_validate(_read_seed_file(seed_dir / "calendars.yaml"))


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


class _Shifter:
    """Moves local wall times by whole days, so 09:00 stays 09:00 across DST."""

    def __init__(self, anchor: date, now: datetime, tz: str) -> None:
        local_today = now.astimezone(ZoneInfo(tz)).date()
        self.days = (_monday(local_today) - _monday(anchor)).days
        self.week_of = _monday(local_today)

    def __call__(self, wall: str, tz: str) -> datetime:
        naive = datetime.strptime(wall, WALL_TIME) + timedelta(days=self.days)
        return naive.replace(tzinfo=ZoneInfo(tz))


async def seed_sandbox(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    tenant_id: str,
    seed_dir: Path | None = None,
    now: datetime | None = None,
    reset: bool = False,
) -> SeedReport:
    """Seed the sandbox mailbox and calendars for ``tenant_id`` (once, unless ``reset``)."""
    seed_dir = seed_dir or default_seed_dir()
    mailbox_seed = load_mailbox_seed(seed_dir)
    calendar_seed = load_calendar_seed(seed_dir)
    now = now or datetime.now(UTC)
    executive = mailbox_seed.executive
    mailbox = executive.address.lower()
    shift_mail = _Shifter(mailbox_seed.anchor_week, now, executive.timezone)
    shift_cal = _Shifter(calendar_seed.anchor_week, now, executive.timezone)

    async with session_factory() as session, session.begin():
        already = (
            await session.execute(
                select(SandboxMessage.id)
                .where(SandboxMessage.tenant_id == tenant_id, SandboxMessage.seed_key.is_not(None))
                .limit(1)
            )
        ).first()
        if already and not reset:
            return SeedReport(0, 0, 0, skipped=True, week_of=shift_mail.week_of)
        for table in (
            SandboxMessage,
            SandboxTombstone,
            SandboxMailboxState,
            SandboxEvent,
            SandboxPerson,
        ):
            await session.execute(delete(table).where(table.tenant_id == tenant_id))

        threads: dict[str, str] = {}
        for item in sorted(mailbox_seed.messages, key=lambda m: (m.date, m.key)):
            when = shift_mail(item.date, item.tz or executive.timezone)
            root = item.references[0] if item.references else (item.in_reply_to or item.message_id)
            thread_id = threads.setdefault(root, new_id())
            threads.setdefault(item.message_id, thread_id)
            headers = {k.lower(): v for k, v in item.headers.items()}
            message = EmailMessage(
                id="seed",
                message_id=item.message_id,
                thread_id=thread_id,
                folder=item.folder,
                subject=item.subject,
                sender=item.sender,
                reply_to=item.reply_to,
                to=item.to,
                cc=item.cc,
                date=when.astimezone(UTC),
                text=item.text or "",
                html=item.html,
                attachments=item.attachments,
                in_reply_to=item.in_reply_to,
                references=item.references,
                list_unsubscribe=headers.pop("list-unsubscribe", None),
                list_id=headers.pop("list-id", None),
                auto_submitted=headers.pop("auto-submitted", None),
                precedence=headers.pop("precedence", None),
                headers=headers,
                flags=item.flags,
                is_draft=item.folder == "drafts",
            )
            if not message.text and message.html:
                from integrations.mime import html_to_text

                message.text = html_to_text(message.html)
            seq = await bump_change_seq(session, tenant_id, mailbox)
            session.add(
                SandboxMessage(
                    id=new_id(),
                    tenant_id=tenant_id,
                    mailbox=mailbox,
                    folder=item.folder,
                    change_seq=seq,
                    message_id=item.message_id,
                    seed_key=item.key,
                    data=message.model_dump(mode="json", exclude={"id"}),
                    created_at=datetime.now(UTC),
                )
            )

        zones = {p.address.lower(): p.timezone for p in calendar_seed.people}
        for person in calendar_seed.people:
            session.add(
                SandboxPerson(
                    tenant_id=tenant_id,
                    address=person.address.lower(),
                    name=person.name,
                    timezone=person.timezone,
                    working_hours=person.working_hours,
                )
            )
        for event in calendar_seed.events:
            owner = event.owner.lower()
            tz = event.tz or zones.get(owner, executive.timezone)
            request = EventRequest(
                subject=event.subject,
                start=shift_cal(event.start, tz),
                end=shift_cal(event.end, tz),
                timezone=tz,
                attendees=event.attendees,
                location=event.location,
                body=event.body,
                show_as=ShowAs(event.show_as),
            )
            uid = f"{event.key}@sandbox"
            component = ical.build_vevent(
                request,
                uid=uid,
                organizer=owner,
                rrule=event.rrule,
                exdates=[shift_cal(x, tz) for x in event.exdates],
            )
            if event.all_day:
                component.pop("dtstart")
                component.pop("dtend")
                component.add("dtstart", request.start.date())
                component.add(
                    "dtend",
                    request.end.date()
                    if request.end.date() > request.start.date()
                    else request.start.date() + timedelta(days=1),
                )
            session.add(
                SandboxEvent(
                    id=new_id(),
                    tenant_id=tenant_id,
                    owner=owner,
                    uid=uid,
                    ical=ical.wrap_calendar(component).to_ical().decode(),
                    attendees=[a.address.lower() for a in event.attendees],
                    seed_key=event.key,
                    updated_at=datetime.now(UTC),
                )
            )
        await session.flush()
    return SeedReport(
        messages=len(mailbox_seed.messages),
        people=len(calendar_seed.people),
        events=len(calendar_seed.events),
        skipped=False,
        week_of=shift_mail.week_of,
    )


def seed_labels(seed_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """The seed's own labels by Message-ID (ground truth for the demo; never shown to triage)."""
    seed = load_mailbox_seed(seed_dir or default_seed_dir())
    return {m.message_id: m.expect for m in seed.messages if m.expect}
