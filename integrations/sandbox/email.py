"""Sandbox mailbox: every operation of the email capability, on the app's own database."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.ids import new_id
from integrations.base import (
    ConnectorHealth,
    ConnectorStatus,
    DraftMode,
    DraftRequest,
    EmailAddress,
    EmailMessage,
    Folder,
    FolderRole,
    SyncBatch,
)
from integrations.errors import (
    ConnectorNotFoundError,
    CursorExpiredError,
    FatalConnectorError,
)
from integrations.sandbox.models import SandboxMailboxState, SandboxMessage, SandboxTombstone

FOLDERS: tuple[FolderRole, ...] = (
    FolderRole.INBOX,
    FolderRole.SENT,
    FolderRole.DRAFTS,
    FolderRole.ARCHIVE,
    FolderRole.TRASH,
    FolderRole.JUNK,
)
_CURSOR_PREFIX = "sbx1:"
_FLAG_NAMES = frozenset({"seen", "flagged", "answered", "deleted", "draft"})


def _reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def dialect_insert(session: AsyncSession) -> Any:
    """The backend's own INSERT (with ON CONFLICT), imported for the backend in use:
    importing PostgreSQL's dialect loads every PostgreSQL driver's module, needless on
    SQLite."""
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert


async def bump_change_seq(session: AsyncSession, tenant_id: str, mailbox: str) -> int:
    """Next position of the mailbox's change counter (the row is created on first use).

    One upsert statement, so two first writers cannot both insert the row.
    """
    statement = _bump(dialect_insert(session), tenant_id, mailbox)
    return int((await session.execute(statement)).scalar_one())


def _bump(insert: Any, tenant_id: Any, mailbox: Any) -> Any:
    """The upsert that moves the change counter, returning its new position."""
    return (
        insert(SandboxMailboxState)
        .values(tenant_id=tenant_id, mailbox=mailbox, change_seq=1)
        .on_conflict_do_update(
            index_elements=["tenant_id", "mailbox"],
            set_={"change_seq": SandboxMailboxState.change_seq + 1},
        )
        .returning(SandboxMailboxState.change_seq)
    )


_DRAFT_COLUMNS = (
    "id",
    "tenant_id",
    "mailbox",
    "folder",
    "message_id",
    "idempotency_key",
    "data",
    "created_at",
)


@functools.cache
def _pg_draft_insert(*, keyed: bool) -> Any:
    """PostgreSQL: bump the mailbox's counter and insert the draft at its new position in
    one statement (built once; the values are parameters named after the columns). With
    ``keyed``, a draft the idempotency key already wrote makes it insert nothing."""
    from sqlalchemy.dialects.postgresql import insert

    # Core (the table, not the mapped class): the parameters are one row's values, not
    # rows of an ORM bulk insert.
    table = cast(Table, SandboxMessage.__table__)
    columns = table.c
    bumped = _bump(insert, bindparam("tenant_id"), bindparam("mailbox")).cte("bumped")
    statement = insert(table).from_select(
        [*_DRAFT_COLUMNS, "change_seq"],
        select(
            *(bindparam(name, type_=columns[name].type) for name in _DRAFT_COLUMNS),
            bumped.c.change_seq,
        ),
    )
    if keyed:
        statement = statement.on_conflict_do_nothing(
            index_elements=["tenant_id", "mailbox", "idempotency_key"]
        )
    return statement.returning(columns.id)


class _AlreadyWrittenError(Exception):
    """The draft of this idempotency key exists: roll the new one back."""


class SandboxEmailConnector:
    """A mailbox kept in the application database (the embedded default)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        mailbox: str,
        session_factory: async_sessionmaker[AsyncSession],
        name: str = "sandbox-mail",
    ) -> None:
        self.tenant_id = tenant_id
        self.mailbox = mailbox.lower()
        self.name = name
        self._sessions = session_factory

    # ------------------------------------------------------------------ helpers

    def _domain(self) -> str:
        return self.mailbox.rsplit("@", 1)[-1]

    async def _row(self, session: AsyncSession, message_id: str) -> SandboxMessage:
        row = await session.get(SandboxMessage, message_id)
        if row is None or row.tenant_id != self.tenant_id or row.mailbox != self.mailbox:
            raise ConnectorNotFoundError(f"no message {message_id!r}", connector=self.name)
        return row

    async def _relocate(
        self, session: AsyncSession, row: SandboxMessage, folder: str, data: dict[str, Any]
    ) -> None:
        seq = await bump_change_seq(session, self.tenant_id, self.mailbox)
        if folder != row.folder:
            session.add(
                SandboxTombstone(
                    tenant_id=self.tenant_id,
                    mailbox=self.mailbox,
                    folder=row.folder,
                    message_ref=row.id,
                    change_seq=seq,
                )
            )
        data["folder"] = folder
        row.folder = folder
        row.change_seq = seq
        row.data = data

    @staticmethod
    def _message(row: SandboxMessage) -> EmailMessage:
        return EmailMessage.model_validate({**row.data, "id": row.id, "folder": row.folder})

    # ------------------------------------------------------------------ capability

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            async with self._sessions() as session:
                await session.execute(
                    select(func.count())
                    .select_from(SandboxMessage)
                    .where(SandboxMessage.tenant_id == self.tenant_id)
                )
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def list_folders(self) -> list[Folder]:
        async with self._sessions() as session:
            counts = dict(
                (
                    await session.execute(
                        select(SandboxMessage.folder, func.count())
                        .where(
                            SandboxMessage.tenant_id == self.tenant_id,
                            SandboxMessage.mailbox == self.mailbox,
                        )
                        .group_by(SandboxMessage.folder)
                    )
                ).all()
            )
        return [
            Folder(
                id=role.value, name=role.value.title(), role=role, total=counts.get(role.value, 0)
            )
            for role in FOLDERS
        ]

    async def sync(
        self, folder: str, cursor: str | None = None, *, page_size: int = 100
    ) -> SyncBatch:
        self._check_folder(folder)
        since = self._parse_cursor(cursor)
        async with self._sessions() as session:
            current = (
                await session.execute(
                    select(SandboxMailboxState.change_seq).where(
                        SandboxMailboxState.tenant_id == self.tenant_id,
                        SandboxMailboxState.mailbox == self.mailbox,
                    )
                )
            ).scalar_one_or_none() or 0
            if since > current:
                raise CursorExpiredError(
                    "the sync cursor is ahead of the mailbox; resync", connector=self.name
                )
            rows = list(
                (
                    await session.execute(
                        select(SandboxMessage)
                        .where(
                            SandboxMessage.tenant_id == self.tenant_id,
                            SandboxMessage.mailbox == self.mailbox,
                            SandboxMessage.folder == folder,
                            SandboxMessage.change_seq > since,
                        )
                        .order_by(SandboxMessage.change_seq)
                        .limit(page_size + 1)
                    )
                ).scalars()
            )
            more = len(rows) > page_size
            rows = rows[:page_size]
            upto = rows[-1].change_seq if more else current
            gone = set(
                (
                    await session.execute(
                        select(SandboxTombstone.message_ref).where(
                            SandboxTombstone.tenant_id == self.tenant_id,
                            SandboxTombstone.mailbox == self.mailbox,
                            SandboxTombstone.folder == folder,
                            SandboxTombstone.change_seq > since,
                            SandboxTombstone.change_seq <= upto,
                        )
                    )
                ).scalars()
            )
            if gone:
                # A message that left and came back is present, not removed.
                back = set(
                    (
                        await session.execute(
                            select(SandboxMessage.id).where(
                                SandboxMessage.id.in_(gone), SandboxMessage.folder == folder
                            )
                        )
                    ).scalars()
                )
                gone -= back
        return SyncBatch(
            messages=[self._message(row) for row in rows],
            removed_ids=sorted(gone),
            cursor=f"{_CURSOR_PREFIX}{upto}",
            more=more,
            full_resync=cursor is None,
        )

    async def get_message(self, message_id: str) -> EmailMessage:
        async with self._sessions() as session:
            return self._message(await self._row(session, message_id))

    async def create_draft(self, request: DraftRequest) -> EmailMessage:
        key = request.idempotency_key
        if key and request.mode is not DraftMode.NEW:
            # A reply reads its original first, which may be gone by a retry: the draft
            # the key already wrote is the answer then, not an error.
            existing = await self._draft_of(key)
            if existing is not None:
                return existing
        try:
            async with self._sessions() as session, session.begin():
                data = await self._draft_data(session, request)
                draft_id = new_id()
                row: dict[str, Any] = {
                    "id": draft_id,
                    "tenant_id": self.tenant_id,
                    "mailbox": self.mailbox,
                    "folder": FolderRole.DRAFTS.value,
                    "message_id": data["message_id"],
                    "idempotency_key": key,
                    "data": data,
                    "created_at": datetime.now(UTC),
                }
                if session.get_bind().dialect.name == "postgresql":
                    # The counter's bump and the draft in one statement: the counter's
                    # row lock, which orders the mailbox's writers, is held only until
                    # the commit that follows.
                    statement = _pg_draft_insert(keyed=bool(key))
                    params = row
                else:  # SQLite: no INSERT inside WITH; its round trips cost nothing
                    row["change_seq"] = await bump_change_seq(session, self.tenant_id, self.mailbox)
                    statement = dialect_insert(session)(SandboxMessage).values(**row)
                    if key:
                        statement = statement.on_conflict_do_nothing(
                            index_elements=["tenant_id", "mailbox", "idempotency_key"]
                        )
                    statement = statement.returning(SandboxMessage.id)
                    params = {}
                # With a key, its unique index decides in the same statement (no read
                # first): a second write of the key inserts nothing.
                inserted = (await session.execute(statement, params)).scalar_one_or_none()
                if inserted is None:
                    raise _AlreadyWrittenError  # rolls the counter's bump back too
                return EmailMessage.model_validate(
                    {**data, "id": draft_id, "folder": FolderRole.DRAFTS.value}
                )
        except _AlreadyWrittenError:
            assert key is not None
            written = await self._draft_of(key)
            if written is None:  # written and gone (deleted) since: a conflict of its own
                raise FatalConnectorError(
                    "the draft of this idempotency key is gone", connector=self.name
                ) from None
            return written

    async def _draft_of(self, idempotency_key: str) -> EmailMessage | None:
        async with self._sessions() as session:
            existing = (
                await session.execute(
                    select(SandboxMessage).where(
                        SandboxMessage.tenant_id == self.tenant_id,
                        SandboxMessage.mailbox == self.mailbox,
                        SandboxMessage.idempotency_key == idempotency_key,
                    )
                )
            ).scalar_one_or_none()
        return None if existing is None else self._message(existing)

    async def _draft_data(self, session: AsyncSession, request: DraftRequest) -> dict[str, Any]:
        me = EmailAddress(address=self.mailbox)
        to, cc = list(request.to), list(request.cc)
        subject = request.subject or ""
        in_reply_to: str | None = None
        references: list[str] = []
        thread_id = new_id()
        if request.mode is not DraftMode.NEW:
            if not request.reply_to_id:
                raise FatalConnectorError("a reply needs reply_to_id", connector=self.name)
            original = self._message(await self._row(session, request.reply_to_id))
            if not to:
                to = list(original.reply_to or ([original.sender] if original.sender else []))
                if request.mode is DraftMode.REPLY_ALL and not cc:
                    cc = [
                        a
                        for a in [*original.to, *original.cc]
                        if a.address != self.mailbox and a.address not in {t.address for t in to}
                    ]
            subject = request.subject or _reply_subject(original.subject)
            in_reply_to = original.message_id
            references = [
                *original.references,
                *([original.message_id] if original.message_id else []),
            ]
            thread_id = original.thread_id or thread_id
        message_id = f"<{new_id()}@sandbox.{self._domain()}>"
        return EmailMessage(
            id="pending",
            message_id=message_id,
            thread_id=thread_id,
            folder=FolderRole.DRAFTS.value,
            subject=subject,
            sender=me,
            to=to,
            cc=cc,
            bcc=list(request.bcc),
            date=datetime.now(UTC),
            text=request.body_text,
            html=request.body_html,
            in_reply_to=in_reply_to,
            references=references,
            is_draft=True,
        ).model_dump(mode="json", exclude={"id"})

    async def send_draft(self, draft_id: str) -> EmailMessage:
        async with self._sessions() as session, session.begin():
            row = await self._row(session, draft_id)
            if row.folder == FolderRole.SENT.value:
                return self._message(row)  # already sent: a retried send is a no-op
            if row.folder != FolderRole.DRAFTS.value or not row.data.get("is_draft"):
                raise FatalConnectorError("only drafts can be sent", connector=self.name)
            data = dict(row.data)
            if not (data.get("to") or data.get("cc") or data.get("bcc")):
                raise FatalConnectorError("the draft has no recipients", connector=self.name)
            data.update(
                is_draft=False,
                date=datetime.now(UTC).isoformat(),
                flags=sorted({*data.get("flags", []), "seen"}),
            )
            await self._relocate(session, row, FolderRole.SENT.value, data)
            if data.get("in_reply_to"):
                original = (
                    (
                        await session.execute(
                            select(SandboxMessage).where(
                                SandboxMessage.tenant_id == self.tenant_id,
                                SandboxMessage.mailbox == self.mailbox,
                                SandboxMessage.message_id == data["in_reply_to"],
                            )
                        )
                    )
                    .scalars()
                    .first()
                )
                if original is not None:
                    flagged = dict(original.data)
                    flagged["flags"] = sorted({*flagged.get("flags", []), "answered"})
                    await self._relocate(session, original, original.folder, flagged)
            await session.flush()
            return self._message(row)

    async def delete_draft(self, draft_id: str) -> None:
        async with self._sessions() as session, session.begin():
            try:
                row = await self._row(session, draft_id)
            except ConnectorNotFoundError:
                return
            if row.folder != FolderRole.DRAFTS.value:
                raise FatalConnectorError("not a draft (already sent?)", connector=self.name)
            seq = await bump_change_seq(session, self.tenant_id, self.mailbox)
            session.add(
                SandboxTombstone(
                    tenant_id=self.tenant_id,
                    mailbox=self.mailbox,
                    folder=row.folder,
                    message_ref=row.id,
                    change_seq=seq,
                )
            )
            await session.execute(delete(SandboxMessage).where(SandboxMessage.id == row.id))

    async def move_message(self, message_id: str, folder: str) -> EmailMessage:
        self._check_folder(folder)
        async with self._sessions() as session, session.begin():
            row = await self._row(session, message_id)
            if row.folder != folder:
                await self._relocate(session, row, folder, dict(row.data))
            return self._message(row)

    async def set_flags(
        self, message_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> EmailMessage:
        unknown = {f for f in [*add, *remove] if f not in _FLAG_NAMES}
        if unknown:
            raise FatalConnectorError(f"unknown flags: {sorted(unknown)}", connector=self.name)
        async with self._sessions() as session, session.begin():
            row = await self._row(session, message_id)
            data = dict(row.data)
            data["flags"] = sorted((set(data.get("flags", [])) | set(add)) - set(remove))
            await self._relocate(session, row, row.folder, data)
            return self._message(row)

    async def deliver(self, message: EmailMessage, *, folder: str = "inbox") -> EmailMessage:
        """Inbound mail arriving in the sandbox (what SMTP delivery is to a real server)."""
        self._check_folder(folder)
        async with self._sessions() as session, session.begin():
            seq = await bump_change_seq(session, self.tenant_id, self.mailbox)
            data = message.model_dump(mode="json", exclude={"id"})
            data["folder"] = folder
            data.setdefault("date", datetime.now(UTC).isoformat())
            row = SandboxMessage(
                id=new_id(),
                tenant_id=self.tenant_id,
                mailbox=self.mailbox,
                folder=folder,
                change_seq=seq,
                message_id=message.message_id,
                data=data,
                created_at=datetime.now(UTC),
            )
            session.add(row)
            await session.flush()
            return self._message(row)

    async def aclose(self) -> None:
        return None

    # ------------------------------------------------------------------ validation

    def _check_folder(self, folder: str) -> None:
        if folder not in {f.value for f in FOLDERS}:
            raise ConnectorNotFoundError(f"no folder {folder!r}", connector=self.name)

    def _parse_cursor(self, cursor: str | None) -> int:
        if cursor is None:
            return 0
        if not cursor.startswith(_CURSOR_PREFIX) or not cursor[len(_CURSOR_PREFIX) :].isdigit():
            raise CursorExpiredError("unrecognised sync cursor; resync", connector=self.name)
        return int(cursor[len(_CURSOR_PREFIX) :])
