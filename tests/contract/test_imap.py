"""The email contract against a real Dovecot (IMAP) with a real SMTP server delivering into it."""

from __future__ import annotations

import asyncio
import contextlib
import email
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from integrations.base import ConnectorContext, DraftMode, DraftRequest, EmailAddress, FolderRole
from integrations.errors import (
    ConnectorAuthError,
    CursorExpiredError,
    FatalConnectorError,
    MalformedContentError,
    RetriableConnectorError,
)
from integrations.imap import EMAIL_SPEC, ImapEmailConfig, ImapEmailConnector, build_connector
from tests.contract.email_contract import EmailContract
from tests.fixtures.dovecot import MailServer, mail_server  # noqa: F401


def _connector(server: MailServer, address: str, **extra: Any) -> ImapEmailConnector:
    config = ImapEmailConfig.model_validate(server.imap_config(address, **extra))
    return build_connector(config, ConnectorContext(tenant_id="t1", instance_name="imap-test"))


async def _seed(server: MailServer, address: str) -> None:
    await asyncio.to_thread(
        server.deliver,
        address,
        "Quarterly numbers",
        "Please find the numbers below.",
        "alice@partner.example",
    )
    await asyncio.to_thread(
        server.deliver,
        address,
        "Board meeting",
        "Can we meet on Thursday?",
        "bob@partner.example",
        cc=["carol@partner.example", address],
    )
    await asyncio.to_thread(
        server.deliver,
        address,
        "Newsletter",
        "Unsubscribe below.",
        "news@vendor.example",
        headers={"List-Unsubscribe": "<mailto:unsub@vendor.example>", "Precedence": "bulk"},
    )


class TestImapEmail(EmailContract):
    @pytest.fixture
    async def email_connector(
        self,
        mail_server: MailServer,
    ) -> AsyncIterator[ImapEmailConnector]:
        address = mail_server.add_user()
        await _seed(mail_server, address)
        connector = _connector(mail_server, address)
        yield connector
        await connector.aclose()

    @pytest.fixture
    def deliver(self, email_connector: ImapEmailConnector, mail_server: MailServer):  # type: ignore[no-untyped-def]
        async def deliver(subject: str, text: str, sender: str) -> None:
            await asyncio.to_thread(
                mail_server.deliver, email_connector.mailbox, subject, text, sender
            )

        return deliver


# ------------------------------------------------------------------ IMAP-specific behaviour


@pytest.fixture
async def mailbox(mail_server: MailServer) -> str:
    address = mail_server.add_user()
    await _seed(mail_server, address)
    return address


async def test_starttls_and_spec_factory(mail_server: MailServer, mailbox: str) -> None:
    raw = mail_server.imap_config(
        mailbox, imap_port=mail_server.imap_port, imap_security="starttls"
    )
    connector = await EMAIL_SPEC.factory(
        EMAIL_SPEC.validate_config(raw), ConnectorContext(tenant_id="t1", instance_name="x")
    )
    try:
        assert (await connector.check()).status.value == "ok"
        batch = await connector.sync("INBOX")
        assert len(batch.messages) == 3
    finally:
        await connector.aclose()


async def test_xoauth2_for_imap_and_smtp(mail_server: MailServer, mailbox: str) -> None:
    token = mail_server.issue_token(mailbox)
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return token

    raw = mail_server.imap_config(mailbox, auth="xoauth2", password=None)
    config = ImapEmailConfig.model_validate(raw)
    connector = build_connector(
        config,
        ConnectorContext(
            tenant_id="t1", instance_name="oauth", extras={"token_providers": {"oauth": provider}}
        ),
    )
    try:
        assert (await connector.check()).status.value == "ok"
        draft = await connector.create_draft(
            DraftRequest(
                to=[EmailAddress(address="dana@partner.example")],
                subject="via oauth",
                body_text="Sent with XOAUTH2.",
            )
        )
        await connector.send_draft(draft.id)
    finally:
        await connector.aclose()
    assert calls >= 2  # IMAP and SMTP both asked the provider
    sent = [m for m in mail_server.outbox if m.auth_user == mailbox]
    assert any(b"via oauth" in m.data for m in sent)


async def test_wrong_password_is_reported_not_raised(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox, password="wrong")
    health = await connector.check()
    assert health.status.value == "down"
    with pytest.raises(ConnectorAuthError):
        await connector.list_folders()


async def test_untrusted_certificate_is_refused(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox, ca_file=None)
    with pytest.raises(FatalConnectorError):
        await connector.list_folders()


async def test_uidvalidity_change_expires_the_cursor(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox)
    try:
        batch = await connector.sync("INBOX")
        await connector.aclose()  # a new session sees the new UIDVALIDITY
        await asyncio.to_thread(
            mail_server.doveadm,
            "mailbox",
            "update",
            "-u",
            mailbox,
            "--uid-validity",
            "4242",
            "INBOX",
        )
        with pytest.raises(CursorExpiredError):
            await connector.sync("INBOX", batch.cursor)
        again = await connector.sync("INBOX")
        assert again.full_resync and len(again.messages) == 3
    finally:
        await connector.aclose()


async def test_flag_change_is_seen_by_incremental_sync(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox)
    try:
        first = await connector.sync("INBOX")
        quiet = await connector.sync("INBOX", first.cursor)
        assert quiet.messages == [] and quiet.cursor == first.cursor
        target = first.messages[0]
        await connector.set_flags(target.id, add=["seen", "$label1"])
        changed = await connector.sync("INBOX", first.cursor)
        assert [m.id for m in changed.messages] == [target.id]
        assert {"seen", "$label1"} <= set(changed.messages[0].flags)
    finally:
        await connector.aclose()


async def test_parsed_headers_and_reply_all_threading(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox)
    try:
        messages = {m.subject: m for m in (await connector.sync("INBOX")).messages}
        news = messages["Newsletter"]
        assert news.list_unsubscribe == "<mailto:unsub@vendor.example>"
        assert news.precedence == "bulk"
        board = messages["Board meeting"]
        reply = await connector.create_draft(
            DraftRequest(
                mode=DraftMode.REPLY_ALL, reply_to_id=board.id, body_text="Thursday works."
            )
        )
        assert [a.address for a in reply.to] == ["bob@partner.example"]
        assert [a.address for a in reply.cc] == ["carol@partner.example"]
        sent = await connector.send_draft(reply.id)
        assert sent.folder == "Sent" and sent.in_reply_to == board.message_id
        wire = email.message_from_bytes(mail_server.outbox[-1].data)
        assert wire["In-Reply-To"] == board.message_id
        assert wire["References"] == board.message_id
        assert "X-Assistant-Idempotency-Key" not in wire
        assert "answered" in (await connector.get_message(board.id)).flags
    finally:
        await connector.aclose()


async def test_idle_pushes_new_mail_and_survives_a_kick(
    mail_server: MailServer,
    mailbox: str,
) -> None:
    connector = _connector(mail_server, mailbox)
    events: asyncio.Queue[None] = asyncio.Queue()

    async def consume() -> None:
        async with contextlib.aclosing(connector.watch("INBOX", max_backoff_s=0.5)) as pushes:
            async for _ in pushes:
                await events.put(None)

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(events.get(), 20)  # the initial catch-up
        await asyncio.sleep(0.3)  # let IDLE start
        await asyncio.to_thread(
            mail_server.deliver, mailbox, "pushed", "by IDLE", "erin@partner.example"
        )
        await asyncio.wait_for(events.get(), 20)
        while not events.empty():
            events.get_nowait()
        await asyncio.to_thread(mail_server.doveadm, "kick", mailbox)
        await asyncio.wait_for(events.get(), 20)  # reconnected, caught up
        batch = await connector.sync("INBOX")
        assert "pushed" in {m.subject for m in batch.messages}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await connector.aclose()


async def test_server_outage_is_retriable(mail_server: MailServer, mailbox: str) -> None:
    connector = _connector(mail_server, mailbox, imap_port=1)  # nothing listens on port 1
    with pytest.raises(RetriableConnectorError):
        await connector.list_folders()
    health = await connector.check()
    assert health.status.value == "down"


def test_config_errors_are_reported_together() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        ImapEmailConfig.model_validate(
            {"address": "nobody", "imap_port": 0, "imap_security": "plain"}
        )
    fields = {e["loc"][0] for e in caught.value.errors()}
    assert {"address", "imap_host", "imap_port", "imap_security"} <= fields


async def test_drafts_folder_role(mail_server: MailServer, mailbox: str) -> None:
    connector = _connector(mail_server, mailbox)
    try:
        roles = {f.role: f.id for f in await connector.list_folders()}
        assert roles[FolderRole.DRAFTS] == "Drafts" and roles[FolderRole.ARCHIVE] == "Archive"
        key = uuid.uuid4().hex
        draft = await connector.create_draft(
            DraftRequest(subject="k", body_text="x", idempotency_key=key)
        )
        assert draft.folder == "Drafts" and draft.is_draft
    finally:
        await connector.aclose()


def _deep_multipart(sender: str, to: str, levels: int = 1000) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Hostile\r\nMIME-Version: 1.0\r\n".encode()
        + opening
        + b"Content-Type: text/plain\r\n\r\nboom"
        + closing
    )


async def test_one_hostile_message_is_skipped_reported_and_passed(
    mail_server: MailServer, mailbox: str, sessions: Any
) -> None:
    """Issue 15, finding 11: a message the parser refuses no longer fails the whole page;
    it is skipped, reported (log and audit) and the cursor moves past it."""
    from sqlalchemy import select

    from assistant.ingestion.service import MailIngestor
    from governance.audit_models import AuditEvent

    sender = "mallory@partner.example"
    await asyncio.to_thread(
        mail_server.deliver_raw, sender, [mailbox], _deep_multipart(sender, mailbox)
    )
    await asyncio.to_thread(mail_server.deliver, mailbox, "After it", "Still here.", sender)
    connector = _connector(mail_server, mailbox)
    try:
        batch = await connector.sync("INBOX")
        assert {m.subject for m in batch.messages} == {
            "Quarterly numbers",
            "Board meeting",
            "Newsletter",
            "After it",
        }
        assert len(batch.skipped) == 1 and "nested" in batch.skipped[0].reason
        again = await connector.sync("INBOX", batch.cursor)
        assert again.messages == [] and again.skipped == []  # the cursor is past it

        report = await MailIngestor(sessions).sync_folder("t1", "imap-test", connector, "INBOX")
        assert report.queued == 4 and report.skipped == 1 and report.error is None
        async with sessions() as session:
            skipped = (
                await session.scalars(select(AuditEvent).where(AuditEvent.action == "mail.skipped"))
            ).all()
        assert len(skipped) == 1
        assert skipped[0].payload["messages"][0]["id"] == batch.skipped[0].id
        assert "boom" not in str(skipped[0].payload)
        with pytest.raises(MalformedContentError):
            await connector.get_message(batch.skipped[0].id)
    finally:
        await connector.aclose()
