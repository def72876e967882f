"""The email capability over IMAP (read, sync, drafts, flags, moves, IDLE) and SMTP (send).

Message ids are ``<folder>/<UIDVALIDITY>/<UID>``. The sync cursor records UIDVALIDITY, the
HIGHESTMODSEQ reached (CONDSTORE), the UIDs already reported and the UIDs still to report
in the current pass, so that paging, restarts and expunges are all exact; a UIDVALIDITY
change raises :class:`CursorExpiredError`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TypeVar

import structlog
from aioimaplib import aioimaplib

from integrations.base import (
    ConnectorHealth,
    ConnectorStatus,
    DraftMode,
    DraftRequest,
    EmailAddress,
    EmailMessage,
    Folder,
    FolderRole,
    SkippedMessage,
    SyncBatch,
)
from integrations.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorNotFoundError,
    CursorExpiredError,
    FatalConnectorError,
    MalformedContentError,
    RetriableConnectorError,
)
from integrations.imap.connection import (
    FetchedMessage,
    ImapConnection,
    ImapEndpoint,
    MailboxState,
    decode_mailbox_name,
    parse_uid_set,
    quote,
    uid_set,
)
from integrations.imap.smtp import SmtpEndpoint, submit
from integrations.mime import (
    IDEMPOTENCY_HEADER,
    build_message,
    for_transmission,
    parse_message,
    parse_mime,
    reply_recipients,
    reply_subject,
    reply_threading,
    to_bytes,
)

log = structlog.stdlib.get_logger(__name__)

T = TypeVar("T")

_CURSOR_PREFIX = "imap1:"
_IDLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectorError,
    OSError,
    TimeoutError,
    aioimaplib.Abort,
    aioimaplib.CommandTimeout,
)
_FETCH_ITEMS = "(UID FLAGS INTERNALDATE BODY.PEEK[])"
_SYSTEM_FLAGS = {
    "\\seen": "seen",
    "\\answered": "answered",
    "\\flagged": "flagged",
    "\\deleted": "deleted",
    "\\draft": "draft",
}
_FLAG_NAMES = frozenset(_SYSTEM_FLAGS.values())
_KEYWORD = re.compile(r"^[A-Za-z0-9$_.\-]{1,64}$")
_ROLE_ATTRIBUTES = {
    "\\sent": FolderRole.SENT,
    "\\drafts": FolderRole.DRAFTS,
    "\\trash": FolderRole.TRASH,
    "\\junk": FolderRole.JUNK,
    "\\archive": FolderRole.ARCHIVE,
}
_ROLE_NAMES = {
    "sent": FolderRole.SENT,
    "sent items": FolderRole.SENT,
    "sent mail": FolderRole.SENT,
    "sent messages": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "draft": FolderRole.DRAFTS,
    "trash": FolderRole.TRASH,
    "deleted items": FolderRole.TRASH,
    "deleted messages": FolderRole.TRASH,
    "junk": FolderRole.JUNK,
    "spam": FolderRole.JUNK,
    "junk e-mail": FolderRole.JUNK,
    "archive": FolderRole.ARCHIVE,
    "archives": FolderRole.ARCHIVE,
}


def _imap_flag(name: str) -> str:
    return {
        "seen": "\\Seen",
        "answered": "\\Answered",
        "flagged": "\\Flagged",
        "deleted": "\\Deleted",
        "draft": "\\Draft",
    }.get(name, name)


def _our_flags(flags: Sequence[str]) -> list[str]:
    result: list[str] = []
    for flag in flags:
        lower = flag.lower()
        if lower == "\\recent":
            continue
        result.append(_SYSTEM_FLAGS.get(lower, lower))
    return sorted(set(result))


@dataclass
class _Cursor:
    uidvalidity: int
    modseq: int | None  # HIGHESTMODSEQ at the end of the last complete pass
    uidnext: int | None
    known: set[int]  # UIDs already reported (present in the folder)
    pending: set[int]  # UIDs still to report in the current pass
    target_modseq: int | None  # HIGHESTMODSEQ the current pass will reach

    def encode(self) -> str:
        body = json.dumps(
            {
                "uv": self.uidvalidity,
                "ms": self.modseq,
                "un": self.uidnext,
                "k": uid_set(self.known),
                "p": uid_set(self.pending),
                "tms": self.target_modseq,
            },
            separators=(",", ":"),
        ).encode()
        return _CURSOR_PREFIX + base64.urlsafe_b64encode(zlib.compress(body)).decode()

    @classmethod
    def decode(cls, cursor: str, connector: str) -> _Cursor:
        try:
            if not cursor.startswith(_CURSOR_PREFIX):
                raise ValueError("prefix")
            data = json.loads(
                zlib.decompress(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :].encode()))
            )
            return cls(
                uidvalidity=int(data["uv"]),
                modseq=data.get("ms"),
                uidnext=data.get("un"),
                known=set(parse_uid_set(data.get("k", ""))),
                pending=set(parse_uid_set(data.get("p", ""))),
                target_modseq=data.get("tms"),
            )
        except (ValueError, KeyError, TypeError, zlib.error):
            raise CursorExpiredError(
                "unrecognised sync cursor; resync", connector=connector
            ) from None


def _split_id(message_id: str, connector: str) -> tuple[str, int, int]:
    folder, _, rest = message_id.rpartition("/")
    folder, _, validity = folder.rpartition("/")
    if not folder or not validity.isdigit() or not rest.isdigit():
        raise ConnectorNotFoundError(f"no message {message_id!r}", connector=connector)
    return folder, int(validity), int(rest)


class ImapEmailConnector:
    """A mailbox on an IMAP server, sending through SMTP submission."""

    def __init__(
        self,
        *,
        mailbox: str,
        imap: ImapEndpoint,
        smtp: SmtpEndpoint,
        name: str = "imap",
        folder_roles: dict[str, FolderRole] | None = None,
        save_sent_copy: bool = True,
    ) -> None:
        self.mailbox = mailbox.lower()
        self.name = name
        self._imap = imap
        self._smtp = smtp
        self._role_overrides = dict(folder_roles or {})
        self._save_sent_copy = save_sent_copy
        self._conn: ImapConnection | None = None
        self._lock = asyncio.Lock()
        self._folders: list[Folder] | None = None
        self.commands = 0  # IMAP commands sent (benchmarks)

    # ------------------------------------------------------------------ connection

    async def _ensure(self) -> ImapConnection:
        if self._conn is None or not self._conn.alive:
            if self._conn is not None:
                self.commands += self._conn.commands
                await self._conn.close()
            self._conn = ImapConnection(self._imap, connector=self.name)
            await self._conn.connect()
        return self._conn

    async def _drop(self) -> None:
        if self._conn is not None:
            self.commands += self._conn.commands
            await self._conn.close()
            self._conn = None

    async def _with(self, op: Callable[[ImapConnection], Awaitable[T]], *, retry: bool = True) -> T:
        """Run ``op`` on the connection; reconnect once after a transport failure."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            async with self._lock:
                try:
                    conn = await self._ensure()
                    return await op(conn)
                except RetriableConnectorError:
                    await self._drop()
                    if attempt + 1 >= attempts:
                        raise
                    log.info("imap.reconnecting", connector=self.name)
        raise AssertionError("unreachable")  # pragma: no cover

    def command_count(self) -> int:
        return self.commands + (self._conn.commands if self._conn else 0)

    # ------------------------------------------------------------------ folders

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._with(lambda conn: conn.noop())
        except ConnectorAuthError:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail="authentication failed")
        except ConnectorError as exc:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=exc.detail)
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time.perf_counter() - started) * 1000
        )

    def _role(self, name: str, attributes: set[str]) -> FolderRole:
        if name in self._role_overrides:
            return self._role_overrides[name]
        if name.upper() == "INBOX":
            return FolderRole.INBOX
        for attribute, role in _ROLE_ATTRIBUTES.items():
            if attribute in attributes:
                return role
        leaf = decode_mailbox_name(name).rsplit("/", 1)[-1].rsplit(".", 1)[-1].lower()
        return _ROLE_NAMES.get(leaf, FolderRole.OTHER)

    async def list_folders(self) -> list[Folder]:
        async def op(conn: ImapConnection) -> list[Folder]:
            folders: list[Folder] = []
            for listed in await conn.list_mailboxes():
                if "\\noselect" in listed.attributes or "\\nonexistent" in listed.attributes:
                    continue
                status = await conn.status(listed.name)
                folders.append(
                    Folder(
                        id=listed.name,
                        name=decode_mailbox_name(listed.name),
                        role=self._role(listed.name, listed.attributes),
                        total=status.get("messages"),
                        unread=status.get("unseen"),
                    )
                )
            return folders

        folders = await self._with(op)
        # One folder per role: the first one found keeps it, later ones are "other".
        taken: set[FolderRole] = set()
        for folder in folders:
            if folder.role is not FolderRole.OTHER:
                if folder.role in taken:
                    folder.role = FolderRole.OTHER
                taken.add(folder.role)
        self._folders = folders
        return folders

    async def _folder(self, role: FolderRole) -> str:
        if self._folders is None:
            await self.list_folders()
        assert self._folders is not None
        for folder in self._folders:
            if folder.role is role:
                return folder.id
        raise FatalConnectorError(f"the mailbox has no {role.value} folder", connector=self.name)

    async def _known_folder(self, folder: str) -> None:
        if self._folders is None or folder not in {f.id for f in self._folders}:
            await self.list_folders()
        assert self._folders is not None
        if folder not in {f.id for f in self._folders}:
            raise ConnectorNotFoundError(f"no folder {folder!r}", connector=self.name)

    # ------------------------------------------------------------------ reading

    def _message(
        self, folder: str, state_uv: int, fetched: FetchedMessage, drafts: str | None = None
    ) -> EmailMessage:
        flags = _our_flags(fetched.flags)
        return parse_message(
            fetched.raw or b"",
            id=f"{folder}/{state_uv}/{fetched.uid}",
            folder=folder,
            flags=flags,
            is_draft="draft" in flags or (drafts is not None and folder == drafts),
            received=fetched.internaldate,
        )

    async def _fetch(
        self,
        conn: ImapConnection,
        folder: str,
        uv: int,
        uids: Sequence[int],
        skipped: list[SkippedMessage] | None = None,
    ) -> list[EmailMessage]:
        """The messages of ``uids``. With ``skipped``, one that cannot be read safely is
        left out and listed there (the page goes on); without it, its error is raised."""
        if not uids:
            return []
        fetched = await conn.uid_fetch(uid_set(list(uids)), _FETCH_ITEMS)
        wanted = set(uids)
        drafts = await self._drafts_name()
        by_uid = {f.uid: f for f in fetched if f.uid in wanted and f.raw is not None}
        messages: list[EmailMessage] = []
        for uid in sorted(by_uid):
            try:
                messages.append(self._message(folder, uv, by_uid[uid], drafts))
            except MalformedContentError as exc:
                if skipped is None:
                    raise
                message_id = f"{folder}/{uv}/{uid}"
                log.warning(
                    "connector.email.message_skipped",
                    connector=self.name,
                    message=message_id,
                    reason=exc.detail,
                )
                skipped.append(SkippedMessage(id=message_id, reason=exc.detail))
        return messages

    async def _drafts_name(self) -> str | None:
        if self._folders is None:
            return None
        return next((f.id for f in self._folders if f.role is FolderRole.DRAFTS), None)

    async def _select_checked(
        self, conn: ImapConnection, folder: str, uv: int, message_id: str
    ) -> MailboxState:
        try:
            state = await conn.select(folder)
        except (ConnectorNotFoundError, FatalConnectorError):
            raise ConnectorNotFoundError(
                f"no message {message_id!r}", connector=self.name
            ) from None
        assert state is not None
        if state.uidvalidity != uv:
            raise ConnectorNotFoundError(
                f"no message {message_id!r} (UIDVALIDITY changed)", connector=self.name
            )
        return state

    async def get_message(self, message_id: str) -> EmailMessage:
        folder, uv, uid = _split_id(message_id, self.name)
        if self._folders is None:
            await self.list_folders()

        async def op(conn: ImapConnection) -> EmailMessage:
            await self._select_checked(conn, folder, uv, message_id)
            found = await self._fetch(conn, folder, uv, [uid])
            if not found:
                raise ConnectorNotFoundError(f"no message {message_id!r}", connector=self.name)
            return found[0]

        return await self._with(op)

    async def sync(
        self, folder: str, cursor: str | None = None, *, page_size: int = 100
    ) -> SyncBatch:
        previous = _Cursor.decode(cursor, self.name) if cursor is not None else None
        if self._folders is None:
            await self.list_folders()

        async def op(conn: ImapConnection) -> SyncBatch:
            try:
                state = await conn.select(folder)
            except FatalConnectorError:
                raise ConnectorNotFoundError(f"no folder {folder!r}", connector=self.name) from None
            assert state is not None
            if previous is not None and previous.uidvalidity != state.uidvalidity:
                raise CursorExpiredError("UIDVALIDITY changed; resync", connector=self.name)
            condstore = state.highestmodseq is not None
            # Nothing changed: one round trip. EXISTS is compared too, because CONDSTORE
            # alone does not oblige a server to raise HIGHESTMODSEQ on expunge.
            if (
                previous is not None
                and not previous.pending
                and condstore
                and previous.modseq == state.highestmodseq
                and previous.uidnext == state.uidnext
                and len(previous.known) == state.exists
            ):
                return SyncBatch(cursor=previous.encode())
            current = set(await conn.uid_search("ALL")) if state.exists else set()
            if previous is None:
                known: set[int] = set()
                pending = set(current)
                target = state.highestmodseq
                modseq: int | None = None
                removed: set[int] = set()
            else:
                known = previous.known & current
                removed = previous.known - current
                modseq = previous.modseq
                if previous.pending:
                    pending = previous.pending & current
                    target = previous.target_modseq
                else:
                    pending = current - previous.known
                    if condstore and previous.modseq is not None and known:
                        changed = await conn.uid_search("MODSEQ", str(previous.modseq + 1))
                        pending |= set(changed) & known
                    target = state.highestmodseq
            page = sorted(pending)[:page_size]
            skipped: list[SkippedMessage] = []
            messages = await self._fetch(conn, folder, state.uidvalidity, page, skipped)
            # A skipped message counts as seen: the cursor moves past it, never back to it.
            read = [m.id for m in messages] + [m.id for m in skipped]
            known |= {int(message_id.rsplit("/", 1)[1]) for message_id in read}
            pending -= set(page)
            more = bool(pending)
            next_cursor = _Cursor(
                uidvalidity=state.uidvalidity,
                modseq=modseq if more else target,
                uidnext=state.uidnext,
                known=known,
                pending=pending,
                target_modseq=target,
            )
            return SyncBatch(
                messages=messages,
                removed_ids=[f"{folder}/{state.uidvalidity}/{u}" for u in sorted(removed)],
                cursor=next_cursor.encode(),
                more=more,
                full_resync=previous is None,
                skipped=skipped,
            )

        return await self._with(op)

    # ------------------------------------------------------------------ drafts

    async def _find_by_header(
        self, conn: ImapConnection, folder: str, header: str, value: str
    ) -> tuple[int, int] | None:
        state = await conn.select(folder)
        assert state is not None
        uids = await conn.uid_search("HEADER", header, quote(value))
        return (state.uidvalidity, uids[-1]) if uids else None

    async def create_draft(self, request: DraftRequest) -> EmailMessage:
        drafts = await self._folder(FolderRole.DRAFTS)
        me = EmailAddress(address=self.mailbox)
        if request.idempotency_key:
            key = request.idempotency_key

            async def find(conn: ImapConnection) -> tuple[int, int] | None:
                return await self._find_by_header(conn, drafts, IDEMPOTENCY_HEADER, key)

            found = await self._with(find)
            if found is not None:
                return await self.get_message(f"{drafts}/{found[0]}/{found[1]}")
        to, cc = list(request.to), list(request.cc)
        subject = request.subject or ""
        in_reply_to: str | None = None
        references: list[str] = []
        if request.mode is not DraftMode.NEW:
            if not request.reply_to_id:
                raise FatalConnectorError("a reply needs reply_to_id", connector=self.name)
            original = await self.get_message(request.reply_to_id)
            default_to, default_cc = reply_recipients(original, request.mode, self.mailbox)
            to = to or default_to
            cc = cc or default_cc
            subject = request.subject or reply_subject(original.subject)
            in_reply_to, references = reply_threading(original)
        extra = {IDEMPOTENCY_HEADER: request.idempotency_key} if request.idempotency_key else {}
        mime = build_message(
            sender=me,
            to=to,
            cc=cc,
            bcc=request.bcc,
            subject=subject,
            body_text=request.body_text,
            body_html=request.body_html,
            in_reply_to=in_reply_to,
            references=references,
            extra_headers=extra,
        )
        raw = to_bytes(mime)
        message_id = str(mime["Message-ID"])

        async def append(conn: ImapConnection) -> tuple[int, int]:
            appended = await conn.append(drafts, raw, ["\\Draft", "\\Seen"])
            if appended is None:  # no UIDPLUS: find it by its Message-ID
                appended = await self._find_by_header(conn, drafts, "Message-ID", message_id)
            if appended is None:
                raise FatalConnectorError(
                    "the draft was stored but cannot be found", connector=self.name
                )
            return appended

        uv, uid = await self._with(append, retry=False)
        log.info("imap.draft_created", connector=self.name, mode=request.mode.value)
        return parse_message(
            raw, id=f"{drafts}/{uv}/{uid}", folder=drafts, flags=["draft", "seen"], is_draft=True
        )

    async def send_draft(self, draft_id: str) -> EmailMessage:
        folder, uv, uid = _split_id(draft_id, self.name)
        drafts = await self._folder(FolderRole.DRAFTS)
        sent = await self._folder(FolderRole.SENT)
        if folder == sent:
            return await self.get_message(draft_id)  # already sent: a retried send is a no-op
        if folder != drafts:
            raise FatalConnectorError("only drafts can be sent", connector=self.name)
        draft = await self.get_message(draft_id)
        recipients = [a.address for a in [*draft.to, *draft.cc, *draft.bcc]]
        if not recipients:
            raise FatalConnectorError("the draft has no recipients", connector=self.name)

        async def fetch_raw(conn: ImapConnection) -> bytes:
            await self._select_checked(conn, folder, uv, draft_id)
            fetched = await conn.uid_fetch(str(uid), "(UID BODY.PEEK[])")
            raw = next((f.raw for f in fetched if f.uid == uid and f.raw), None)
            if raw is None:
                raise ConnectorNotFoundError(f"no message {draft_id!r}", connector=self.name)
            return raw

        mime = parse_mime(await self._with(fetch_raw))
        message_id = draft.message_id or str(mime["Message-ID"])

        async def already_sent(conn: ImapConnection) -> tuple[int, int] | None:
            return await self._find_by_header(conn, sent, "Message-ID", message_id)

        # A send retried after a crash between SMTP and the Sent copy must not go out twice.
        placed = await self._with(already_sent)
        if placed is None:
            del mime["Date"]
            mime["Date"] = format_datetime(datetime.now(UTC))
            await submit(
                self._smtp,
                for_transmission(mime),
                sender=self.mailbox,
                recipients=recipients,
                connector=self.name,
            )
            log.info("imap.sent", connector=self.name, recipients=len(recipients))
            if self._save_sent_copy:
                raw = to_bytes(mime)

                async def save(conn: ImapConnection) -> tuple[int, int] | None:
                    appended = await conn.append(sent, raw, ["\\Seen"])
                    return appended or await self._find_by_header(
                        conn, sent, "Message-ID", message_id
                    )

                placed = await self._with(save, retry=False)
            else:
                placed = await self._with(already_sent)
        await self._expunge(folder, uv, uid)
        if draft.in_reply_to:
            await self._mark_answered(draft.in_reply_to)
        if placed is None:
            raise FatalConnectorError(
                "sent, but the copy in Sent cannot be found", connector=self.name
            )
        return await self.get_message(f"{sent}/{placed[0]}/{placed[1]}")

    async def _expunge(self, folder: str, uv: int, uid: int) -> bool:
        async def op(conn: ImapConnection) -> bool:
            state = await conn.select(folder)
            assert state is not None
            if state.uidvalidity != uv or not await conn.uid_search("UID", str(uid)):
                return False
            await conn.uid_store(str(uid), "+FLAGS.SILENT", ["\\Deleted"])
            await conn.uid_expunge(str(uid))
            return True

        return await self._with(op)

    async def _mark_answered(self, message_id: str) -> None:
        try:
            inbox = await self._folder(FolderRole.INBOX)

            async def op(conn: ImapConnection) -> None:
                found = await self._find_by_header(conn, inbox, "Message-ID", message_id)
                if found is not None:
                    await conn.uid_store(str(found[1]), "+FLAGS.SILENT", ["\\Answered"])

            await self._with(op)
        except ConnectorError:  # cosmetic: the reply went out either way
            log.info("imap.mark_answered_failed", connector=self.name)

    async def delete_draft(self, draft_id: str) -> None:
        try:
            folder, uv, uid = _split_id(draft_id, self.name)
        except ConnectorNotFoundError:
            return
        drafts = await self._folder(FolderRole.DRAFTS)
        if folder != drafts:
            try:
                await self.get_message(draft_id)
            except ConnectorNotFoundError:
                return
            raise FatalConnectorError("not a draft (already sent?)", connector=self.name)
        await self._expunge(folder, uv, uid)

    # ------------------------------------------------------------------ changes

    async def move_message(self, message_id: str, folder: str) -> EmailMessage:
        source, uv, uid = _split_id(message_id, self.name)
        await self._known_folder(folder)
        if source == folder:
            return await self.get_message(message_id)
        original = await self.get_message(message_id)

        async def op(conn: ImapConnection) -> str:
            await self._select_checked(conn, source, uv, message_id)
            new_uid = await conn.uid_move(uid, folder)
            state = await conn.select(folder)
            assert state is not None
            if new_uid is None and original.message_id:
                uids = await conn.uid_search("HEADER", "Message-ID", quote(original.message_id))
                new_uid = uids[-1] if uids else None
            if new_uid is None:
                raise FatalConnectorError(
                    "moved, but the message cannot be found", connector=self.name
                )
            return f"{folder}/{state.uidvalidity}/{new_uid}"

        new_id = await self._with(op, retry=False)
        return await self.get_message(new_id)

    async def set_flags(
        self, message_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> EmailMessage:
        bad = [f for f in [*add, *remove] if f not in _FLAG_NAMES and not _KEYWORD.match(f)]
        if bad:
            raise FatalConnectorError(f"unknown flags: {sorted(bad)}", connector=self.name)
        folder, uv, uid = _split_id(message_id, self.name)

        async def op(conn: ImapConnection) -> None:
            await self._select_checked(conn, folder, uv, message_id)
            if not await conn.uid_search("UID", str(uid)):
                raise ConnectorNotFoundError(f"no message {message_id!r}", connector=self.name)
            if add:
                await conn.uid_store(str(uid), "+FLAGS.SILENT", [_imap_flag(f) for f in add])
            if remove:
                await conn.uid_store(str(uid), "-FLAGS.SILENT", [_imap_flag(f) for f in remove])

        await self._with(op)
        return await self.get_message(message_id)

    # ------------------------------------------------------------------ push

    async def watch(
        self,
        folder: str,
        *,
        idle_timeout_s: float = 25 * 60,
        poll_interval_s: float = 60.0,
        max_backoff_s: float = 60.0,
    ) -> AsyncIterator[None]:
        """Yield whenever ``folder`` may have changed: IMAP IDLE on a dedicated connection.

        Yields once at start and once after every reconnect (to catch up on what happened
        while disconnected); reconnects with exponential backoff and jitter. Without IDLE
        it polls. Authentication failures end the watch (retrying cannot fix them).
        """
        conn: ImapConnection | None = None
        failures = 0
        try:
            while True:
                try:
                    if conn is None or not conn.alive:
                        if conn is not None:
                            await conn.close()
                        conn = ImapConnection(self._imap, connector=self.name)
                        await conn.connect()
                        await conn.select(folder)
                        failures = 0
                        yield None
                    if not conn.has("IDLE"):
                        await asyncio.sleep(poll_interval_s)
                        await conn.noop()
                        yield None
                        continue
                    if await self._idle_once(conn, idle_timeout_s):
                        yield None
                except ConnectorAuthError:
                    raise
                except _IDLE_ERRORS as exc:
                    failures += 1
                    delay = min(max_backoff_s, 2 ** min(failures, 10) * 0.25)
                    delay *= random.uniform(0.5, 1.0)
                    log.info(
                        "imap.idle_reconnect",
                        connector=self.name,
                        failures=failures,
                        error=type(exc).__name__,
                        delay_s=round(delay, 2),
                    )
                    if conn is not None:
                        await conn.close()
                        conn = None
                    await asyncio.sleep(delay)
        finally:
            if conn is not None:
                await conn.close()

    async def _idle_once(self, conn: ImapConnection, timeout_s: float) -> bool:
        """One IDLE round: True when the server reported a change, False on timeout."""
        client = conn.client
        idle = await client.idle_start(timeout=timeout_s)
        try:
            pushed = await client.wait_server_push(timeout=timeout_s + 5)
        except TimeoutError:
            pushed = aioimaplib.STOP_WAIT_SERVER_PUSH
        lines = pushed if isinstance(pushed, list) else []
        bye = any(isinstance(line, bytes | bytearray) and b"BYE" in line for line in lines)
        if bye or conn.lost:
            raise RetriableConnectorError(
                "the IMAP server closed the IDLE session", connector=self.name
            )
        if client.has_pending_idle():
            client.idle_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle, 5)
        if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
            return False
        return any(
            isinstance(line, bytes | bytearray)
            and (b"EXISTS" in line or b"EXPUNGE" in line or b"FETCH" in line)
            for line in lines
        )

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


__all__ = ["ImapEmailConnector"]
