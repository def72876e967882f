"""The email capability contract: every EmailConnector must pass these tests.

A subclass provides two fixtures:
- ``email_connector``: a connector whose inbox holds at least three messages, one of
  them with a Cc and a Message-ID;
- ``deliver``: an async callable ``deliver(subject, text, sender)`` that makes a new
  message arrive in the inbox the way the real system would (SMTP, a Graph post, ...).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from integrations.base import (
    DraftMode,
    DraftRequest,
    EmailAddress,
    EmailConnector,
    EmailMessage,
    FolderRole,
)
from integrations.errors import ConnectorNotFoundError, CursorExpiredError, FatalConnectorError

Deliver = Callable[[str, str, str], Awaitable[Any]]


async def _folder(connector: EmailConnector, role: FolderRole) -> str:
    folders = await connector.list_folders()
    return next(f.id for f in folders if f.role is role)


async def _all(
    connector: EmailConnector, folder: str, page_size: int = 100
) -> tuple[list[EmailMessage], str]:
    messages: list[EmailMessage] = []
    cursor = None
    while True:
        batch = await connector.sync(folder, cursor, page_size=page_size)
        messages.extend(batch.messages)
        cursor = batch.cursor
        if not batch.more:
            return messages, cursor


class EmailContract:
    async def test_is_an_email_connector(self, email_connector: EmailConnector) -> None:
        assert isinstance(email_connector, EmailConnector)
        health = await email_connector.check()
        assert health.status.value == "ok", health.detail

    async def test_folders_have_standard_roles(self, email_connector: EmailConnector) -> None:
        roles = {f.role for f in await email_connector.list_folders()}
        assert {FolderRole.INBOX, FolderRole.SENT, FolderRole.DRAFTS} <= roles

    async def test_full_sync_pages_without_duplicates(
        self, email_connector: EmailConnector
    ) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        whole, _ = await _all(email_connector, inbox)
        paged, _ = await _all(email_connector, inbox, page_size=2)
        assert len(whole) >= 3
        assert sorted(m.id for m in paged) == sorted(m.id for m in whole)
        assert len({m.id for m in whole}) == len(whole)
        for message in whole:
            assert message.folder == inbox
            assert message.date is None or message.date.tzinfo is not None

    async def test_incremental_sync_returns_only_new_mail(
        self, email_connector: EmailConnector, deliver: Deliver
    ) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        _, cursor = await _all(email_connector, inbox)
        quiet = await email_connector.sync(inbox, cursor)
        assert quiet.messages == []
        subject = f"contract {uuid.uuid4().hex[:8]}"
        await deliver(subject, "Hello from the contract suite.", "alice@partner.example")
        batch = await email_connector.sync(inbox, cursor)
        assert [m.subject for m in batch.messages] == [subject]
        arrived = batch.messages[0]
        assert arrived.sender is not None and arrived.sender.address == "alice@partner.example"
        assert "contract suite" in arrived.text
        again = await email_connector.sync(inbox, batch.cursor)
        assert again.messages == []

    async def test_garbage_cursor_is_a_typed_error(self, email_connector: EmailConnector) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        with pytest.raises(CursorExpiredError):
            await email_connector.sync(inbox, "not-a-cursor")

    async def test_get_message_round_trip_and_missing(
        self, email_connector: EmailConnector
    ) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        first = (await _all(email_connector, inbox))[0][0]
        fetched = await email_connector.get_message(first.id)
        assert fetched.id == first.id and fetched.subject == first.subject
        assert fetched.message_id == first.message_id
        with pytest.raises(ConnectorNotFoundError):
            await email_connector.get_message(first.id + "0missing")

    async def test_new_draft_is_idempotent(self, email_connector: EmailConnector) -> None:
        key = uuid.uuid4().hex
        request = DraftRequest(
            to=[EmailAddress(address="bob@partner.example")],
            subject="Contract draft",
            body_text="Draft body",
            idempotency_key=key,
        )
        draft = await email_connector.create_draft(request)
        again = await email_connector.create_draft(request)
        assert draft.id == again.id
        drafts = await _folder(email_connector, FolderRole.DRAFTS)
        listed, _ = await _all(email_connector, drafts)
        assert [m.id for m in listed].count(draft.id) == 1
        assert draft.subject == "Contract draft"
        assert [a.address for a in draft.to] == ["bob@partner.example"]
        assert "Draft body" in draft.text

    async def test_reply_threads_correctly(self, email_connector: EmailConnector) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        original = next(m for m in (await _all(email_connector, inbox))[0] if m.message_id)
        reply = await email_connector.create_draft(
            DraftRequest(mode=DraftMode.REPLY, reply_to_id=original.id, body_text="Thanks, noted.")
        )
        assert reply.in_reply_to == original.message_id
        assert reply.references[-1] == original.message_id
        assert reply.subject.lower().startswith("re:")
        expected = (original.reply_to or [original.sender])[0]
        assert expected is not None
        assert [a.address for a in reply.to] == [expected.address]

    async def test_reply_all_keeps_everyone_but_me(self, email_connector: EmailConnector) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        original = next(m for m in (await _all(email_connector, inbox))[0] if m.cc)
        reply = await email_connector.create_draft(
            DraftRequest(
                mode=DraftMode.REPLY_ALL, reply_to_id=original.id, body_text="All: agreed."
            )
        )
        everyone = {a.address for a in [*reply.to, *reply.cc]}
        assert email_connector.mailbox.lower() not in everyone
        assert {a.address for a in original.cc} - {email_connector.mailbox.lower()} <= everyone

    async def test_send_moves_draft_to_sent_once(self, email_connector: EmailConnector) -> None:
        draft = await email_connector.create_draft(
            DraftRequest(
                to=[EmailAddress(address="carol@partner.example")],
                subject="Contract send",
                body_text="Sent by the contract suite.",
                idempotency_key=uuid.uuid4().hex,
            )
        )
        sent = await email_connector.send_draft(draft.id)
        sent_folder = await _folder(email_connector, FolderRole.SENT)
        assert sent.folder == sent_folder
        assert not sent.is_draft
        # Refusing a second send is as good as ignoring it; sending twice is not.
        with contextlib.suppress(FatalConnectorError, ConnectorNotFoundError):
            await email_connector.send_draft(draft.id)
        in_sent, _ = await _all(email_connector, sent_folder)
        assert [m.subject for m in in_sent].count("Contract send") == 1
        drafts = await _folder(email_connector, FolderRole.DRAFTS)
        assert draft.id not in {m.id for m in (await _all(email_connector, drafts))[0]}

    async def test_send_without_recipients_is_refused(
        self, email_connector: EmailConnector
    ) -> None:
        draft = await email_connector.create_draft(DraftRequest(subject="Nobody", body_text="x"))
        with pytest.raises(FatalConnectorError):
            await email_connector.send_draft(draft.id)
        await email_connector.delete_draft(draft.id)

    async def test_delete_draft_twice_is_fine(self, email_connector: EmailConnector) -> None:
        draft = await email_connector.create_draft(
            DraftRequest(
                to=[EmailAddress(address="dan@partner.example")], subject="To delete", body_text="x"
            )
        )
        await email_connector.delete_draft(draft.id)
        await email_connector.delete_draft(draft.id)
        with pytest.raises(ConnectorNotFoundError):
            await email_connector.get_message(draft.id)

    async def test_move_is_seen_by_incremental_sync(
        self, email_connector: EmailConnector, deliver: Deliver
    ) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        archive = await _folder(email_connector, FolderRole.ARCHIVE)
        subject = f"to archive {uuid.uuid4().hex[:8]}"
        await deliver(subject, "Please file me.", "erin@partner.example")
        messages, cursor = await _all(email_connector, inbox)
        target = next(m for m in messages if m.subject == subject)
        moved = await email_connector.move_message(target.id, archive)
        assert moved.folder == archive
        batch = await email_connector.sync(inbox, cursor)
        assert target.id in batch.removed_ids
        archived, _ = await _all(email_connector, archive)
        assert subject in {m.subject for m in archived}

    async def test_flags_add_and_remove(self, email_connector: EmailConnector) -> None:
        inbox = await _folder(email_connector, FolderRole.INBOX)
        first = (await _all(email_connector, inbox))[0][0]
        flagged = await email_connector.set_flags(first.id, add=["flagged"])
        assert "flagged" in flagged.flags
        cleared = await email_connector.set_flags(flagged.id, remove=["flagged"])
        assert "flagged" not in cleared.flags
