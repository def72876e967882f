"""The email contract against the Microsoft Graph emulator (real HTTPS, real msal)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from integrations.base import ConnectorContext, DraftMode, DraftRequest, FolderRole
from integrations.errors import (
    ConnectorAuthError,
    CursorExpiredError,
    RetriableConnectorError,
)
from integrations.msgraph.mail import (
    EMAIL_SPEC,
    GraphEmailConnector,
    GraphMailConfig,
    build_connector,
)
from tests.contract.email_contract import EmailContract
from tests.fakes.graph_mail import GraphMailEmulator, Mailbox
from tests.fixtures import graph_mail as graph_fixtures
from tests.fixtures.graph_mail import graph_config

# Session fixtures, shared by name with the other modules that need the emulator.
graph = graph_fixtures.graph
graph_tls = graph_fixtures.graph_tls


def _connector(
    emulator: GraphMailEmulator, ca_file: Path, box: Mailbox, **extra: Any
) -> GraphEmailConnector:
    config = GraphMailConfig.model_validate(graph_config(emulator, ca_file, box, **extra))
    return build_connector(config, ConnectorContext(tenant_id="t1", instance_name="graph-test"))


def _seed(emulator: GraphMailEmulator) -> Mailbox:
    box = emulator.add_mailbox(f"exec-{uuid.uuid4().hex[:6]}@contoso.example", "Exec")
    emulator.deliver(
        box, "Quarterly numbers", "Please find the numbers below.", "alice@partner.example"
    )
    emulator.deliver(
        box,
        "Board meeting",
        "Can we meet on Thursday?",
        "bob@partner.example",
        cc=["carol@partner.example", box.address],
    )
    emulator.deliver(
        box,
        "Newsletter",
        "",
        "news@vendor.example",
        html="<p>Big <b>news</b></p><p><a href='https://v.example/u'>Unsub</a></p>",
        headers={"List-Unsubscribe": "<mailto:unsub@vendor.example>", "Precedence": "bulk"},
    )
    return box


class TestGraphEmail(EmailContract):
    @pytest.fixture
    async def email_connector(
        self, graph: GraphMailEmulator, graph_tls: tuple[Path, Path, Path]
    ) -> AsyncIterator[GraphEmailConnector]:
        box = _seed(graph)
        connector = _connector(graph, graph_tls[0], box)
        connector.box = box  # type: ignore[attr-defined]
        yield connector
        await connector.aclose()

    @pytest.fixture
    def deliver(self, email_connector: GraphEmailConnector, graph: GraphMailEmulator):  # type: ignore[no-untyped-def]
        async def deliver(subject: str, text: str, sender: str) -> None:
            graph.deliver(email_connector.box, subject, text, sender)  # type: ignore[attr-defined]

        return deliver


# ------------------------------------------------------------------ Graph-specific behaviour


@pytest.fixture
async def seeded(
    graph: GraphMailEmulator, graph_tls: tuple[Path, Path, Path]
) -> AsyncIterator[tuple[Mailbox, GraphEmailConnector]]:
    box = _seed(graph)
    connector = _connector(graph, graph_tls[0], box)
    yield box, connector
    await connector.aclose()


async def test_delta_pages_by_next_link_with_select(
    graph: GraphMailEmulator, seeded: tuple[Mailbox, GraphEmailConnector]
) -> None:
    box, connector = seeded
    inbox = box.well_known["inbox"]
    before = len(graph.requests)
    first = await connector.sync(inbox, page_size=2)
    assert first.more and len(first.messages) == 2 and first.full_resync
    second = await connector.sync(inbox, first.cursor, page_size=2)
    assert not second.more and len(second.messages) == 1
    delta_calls = [p for m, p in graph.requests[before:] if p.endswith("/messages/delta")]
    assert len(delta_calls) == 2
    news = second.messages[0]
    assert news.html and "Big news" in news.text and news.precedence == "bulk"
    assert news.list_unsubscribe == "<mailto:unsub@vendor.example>"


async def test_expired_delta_token_is_410_then_full_resync(
    graph: GraphMailEmulator, seeded: tuple[Mailbox, GraphEmailConnector]
) -> None:
    box, connector = seeded
    inbox = box.well_known["inbox"]
    done = await connector.sync(inbox)
    graph.expire_sync_state()
    with pytest.raises(CursorExpiredError):
        await connector.sync(inbox, done.cursor)
    again = await connector.sync(inbox)
    assert again.full_resync and len(again.messages) == 3


async def test_429_and_503_honour_retry_after(
    graph: GraphMailEmulator, seeded: tuple[Mailbox, GraphEmailConnector]
) -> None:
    box, connector = seeded
    await connector.list_folders()
    graph.fail_next(1, status=429, retry_after=1)
    graph.fail_next(1, status=503, retry_after=0)
    before = connector.requests
    batch = await connector.sync(box.well_known["inbox"])
    assert len(batch.messages) == 3
    assert connector.requests - before == 3  # two refusals, then the answer
    graph.fail_next(10, status=429, retry_after=0)
    with pytest.raises(RetriableConnectorError) as caught:
        await connector.sync(box.well_known["inbox"])
    assert caught.value.retry_after == 0
    graph.faults.clear()


async def test_flag_only_change_is_completed_by_a_get(
    graph: GraphMailEmulator, seeded: tuple[Mailbox, GraphEmailConnector]
) -> None:
    box, connector = seeded
    inbox = box.well_known["inbox"]
    done = await connector.sync(inbox)
    target = done.messages[0]
    await connector.set_flags(target.id, add=["seen", "Important"])
    changed = await connector.sync(inbox, done.cursor)
    assert [m.id for m in changed.messages] == [target.id]
    assert changed.messages[0].subject == target.subject
    assert {"seen", "important"} <= set(changed.messages[0].flags)


async def test_reply_all_is_threaded_by_graph(seeded: tuple[Mailbox, GraphEmailConnector]) -> None:
    box, connector = seeded
    messages = (await connector.sync(box.well_known["inbox"])).messages
    board = next(m for m in messages if m.subject == "Board meeting")
    reply = await connector.create_draft(
        DraftRequest(
            mode=DraftMode.REPLY_ALL,
            reply_to_id=board.id,
            body_text="Thursday works.",
            idempotency_key="reply-1",
        )
    )
    assert reply.thread_id == board.thread_id
    assert reply.in_reply_to == board.message_id
    assert [a.address for a in reply.to] == ["bob@partner.example"]
    assert [a.address for a in reply.cc] == ["carol@partner.example"]
    again = await connector.create_draft(
        DraftRequest(
            mode=DraftMode.REPLY_ALL,
            reply_to_id=board.id,
            body_text="Thursday works.",
            idempotency_key="reply-1",
        )
    )
    assert again.id == reply.id
    sent = await connector.send_draft(reply.id)
    assert sent.id == reply.id and sent.folder == box.well_known["sentitems"]


async def test_bad_secret_is_an_auth_error(
    graph: GraphMailEmulator, graph_tls: tuple[Path, Path, Path]
) -> None:
    box = graph.add_mailbox("nobody@contoso.example")
    connector = _connector(graph, graph_tls[0], box, client_secret="wrong")
    try:
        assert (await connector.check()).status.value == "down"
        with pytest.raises(ConnectorAuthError):
            await connector.list_folders()
    finally:
        await connector.aclose()


async def test_spec_factory_and_config_errors_all_at_once(
    graph: GraphMailEmulator, graph_tls: tuple[Path, Path, Path]
) -> None:
    from pydantic import ValidationError

    box = graph.add_mailbox("spec@contoso.example")
    raw = graph_config(graph, graph_tls[0], box)
    connector = await EMAIL_SPEC.factory(
        EMAIL_SPEC.validate_config(raw), ConnectorContext(tenant_id="t", instance_name="g")
    )
    try:
        roles = {f.role for f in await connector.list_folders()}
        assert FolderRole.ARCHIVE in roles
    finally:
        await connector.aclose()
    with pytest.raises(ValidationError) as caught:
        GraphMailConfig.model_validate({"auth": "magic", "timeout_s": -1})
    assert {e["loc"][0] for e in caught.value.errors()} >= {"mailbox", "auth", "timeout_s"}


async def test_cursor_for_another_host_is_refused(
    seeded: tuple[Mailbox, GraphEmailConnector],
) -> None:
    import base64
    import json

    box, connector = seeded
    inbox = box.well_known["inbox"]
    forged = (
        "graph1:"
        + base64.urlsafe_b64encode(
            json.dumps({"f": inbox, "u": "https://attacker.example/steal"}).encode()
        ).decode()
    )
    with pytest.raises(CursorExpiredError):
        await connector.sync(inbox, forged)


async def test_attachment_metadata(
    graph: GraphMailEmulator, seeded: tuple[Mailbox, GraphEmailConnector]
) -> None:
    box, connector = seeded
    message = graph.deliver(box, "Invoice", "See attached.", "billing@vendor.example")
    with graph.lock:
        stored = box.messages[message["id"]]
        stored["hasAttachments"] = True
        stored["attachments"] = [
            {
                "id": "att1",
                "name": "invoice.pdf",
                "contentType": "application/pdf",
                "size": 48213,
                "isInline": False,
            }
        ]
    fetched = await connector.get_message(message["id"])
    assert [(a.filename, a.size) for a in fetched.attachments] == [("invoice.pdf", 48213)]
    await asyncio.sleep(0)
