"""Graph change notifications end to end: the app served over HTTP, the emulator calling it.

Subscription with the validation handshake, clientState checked, a notification marking
the inbox for a prompt sync, renewal before expiry, re-subscription when Graph lost it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.settings import Settings
from assistant.ingestion.models import MailSubscription
from assistant.ingestion.push import ensure_subscription
from assistant.ingestion.service import MailIngestor
from integrations.base import ConnectorContext
from integrations.msgraph.mail import GraphEmailConnector, GraphMailConfig, build_connector
from tests.fakes.graph_mail import GraphMailEmulator
from tests.fixtures import graph_mail as graph_fixtures
from tests.fixtures.graph_mail import graph_config

graph = graph_fixtures.graph
graph_tls = graph_fixtures.graph_tls


@pytest.fixture
def app_url(settings: Settings, engine: object) -> Iterator[str]:
    """The assistant's app over real HTTP (Graph must be able to call the webhook)."""
    from assistant.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
async def mailbox(
    graph: GraphMailEmulator, graph_tls: tuple[Path, Path, Path]
) -> AsyncIterator[tuple[object, GraphEmailConnector]]:
    box = graph.add_mailbox("push@contoso.example")
    config = GraphMailConfig.model_validate(graph_config(graph, graph_tls[0], box))
    connector = build_connector(config, ConnectorContext(tenant_id="default", instance_name="m365"))
    yield box, connector
    await connector.aclose()


async def test_notification_triggers_a_prompt_sync(
    app_url: str,
    graph: GraphMailEmulator,
    sessions: async_sessionmaker[AsyncSession],
    mailbox: tuple[object, GraphEmailConnector],
) -> None:
    box, connector = mailbox
    inbox = box.well_known["inbox"]  # type: ignore[attr-defined]
    url = f"{app_url}/webhooks/msgraph/mail"
    sub = await ensure_subscription(
        sessions, connector, tenant_id="default", name="m365", folder=inbox, notification_url=url
    )
    assert sub.id in graph.subscriptions  # the handshake succeeded
    assert graph.subscriptions[sub.id].client_state not in (None, sub.client_state_hash)

    ingestor = MailIngestor(sessions)
    assert await ingestor.requested() == []
    graph.deliver(box, "Pushed", "Arrived by notification.", "alice@partner.example")  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while not await ingestor.requested():
        assert time.monotonic() < deadline, "no notification reached the webhook"
        await asyncio.sleep(0.05)
    assert await ingestor.requested() == [("default", "m365", inbox)]
    report = await ingestor.sync_folder("default", "m365", connector, inbox)
    assert report.queued == 1
    assert await ingestor.requested() == []  # the request is served

    # A notification with the wrong clientState is ignored.
    async with httpx.AsyncClient() as http:
        forged = await http.post(
            url,
            json={
                "value": [
                    {
                        "subscriptionId": sub.id,
                        "clientState": "guess",
                        "changeType": "created",
                        "resource": "Users/x/Messages/y",
                    }
                ]
            },
        )
    assert forged.status_code == 202
    await asyncio.sleep(0.1)
    assert await ingestor.requested() == []


async def test_validation_token_is_echoed_as_plain_text(app_url: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{app_url}/webhooks/msgraph/mail", params={"validationToken": "<b>token 1</b>"}
        )
    assert answer.status_code == 200 and answer.text == "<b>token 1</b>"
    assert answer.headers["content-type"].startswith("text/plain")


async def test_renewal_before_expiry_and_resubscription(
    app_url: str,
    graph: GraphMailEmulator,
    sessions: async_sessionmaker[AsyncSession],
    mailbox: tuple[object, GraphEmailConnector],
) -> None:
    box, connector = mailbox
    inbox = box.well_known["inbox"]  # type: ignore[attr-defined]
    url = f"{app_url}/webhooks/msgraph/mail"
    first = await ensure_subscription(
        sessions,
        connector,
        tenant_id="default",
        name="m365",
        folder=inbox,
        notification_url=url,
        minutes=120,
    )
    same = await ensure_subscription(
        sessions,
        connector,
        tenant_id="default",
        name="m365",
        folder=inbox,
        notification_url=url,
        minutes=120,
        renew_before=timedelta(minutes=30),
    )
    assert same.id == first.id and same.expires_at == first.expires_at
    renewed = await ensure_subscription(
        sessions,
        connector,
        tenant_id="default",
        name="m365",
        folder=inbox,
        notification_url=url,
        minutes=600,
        renew_before=timedelta(hours=3),
    )
    assert renewed.id == first.id and renewed.expires_at > first.expires_at
    graph.subscriptions.pop(first.id)  # Graph lost it (expired, deleted)
    again = await ensure_subscription(
        sessions,
        connector,
        tenant_id="default",
        name="m365",
        folder=inbox,
        notification_url=url,
        minutes=600,
        renew_before=timedelta(hours=20),
    )
    assert again.id != first.id and again.id in graph.subscriptions
    async with sessions() as session:
        assert await session.get(MailSubscription, first.id) is None
        assert await session.get(MailSubscription, again.id) is not None
