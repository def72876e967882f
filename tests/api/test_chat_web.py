"""The web app's chat room over HTTP, with the scripted OpenAI-compatible model: the turn
streams the API's events (or, without script, reloads the conversation), and the room keeps
every rule of the API and of the review room: CSRF, whose conversations, who deletes, who
approves a card, no chat for admins, a clear page without a model."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assistant.agent.models import ConversationRow
from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from governance.models import Action
from tests.api.test_chat_api import first_id, parse_sse, tool_results
from tests.fakes.openai_server import Answer, FakeOpenAI, _openai_server, openai_server
from tests.fixtures.web import (
    HTML,
    add_user,
    csrf_of,
    give_password,
    sign_in,
    triaged_template,
    web,
    web_settings,
)

__all__ = ["_openai_server", "openai_server", "triaged_template", "web"]  # fixtures

Chat = tuple[httpx.AsyncClient, Any, dict[str, str]]


def model(body: dict[str, Any]) -> Answer:
    """A model that searches, drafts a reply when asked to, and answers."""
    question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    results = tool_results(body)
    if not results:
        return Answer(tool_calls=[("search_mail", {"query": "Raj"})])
    if "draft" in str(question).lower() and len(results) == 1:
        reply = {"message_id": first_id(results[0]), "body": "Thanks Raj, agreed."}
        return Answer(tool_calls=[("draft_reply", reply)])
    return Answer(content="Raj wrote about the budget; a draft waits if you asked for one.")


@pytest.fixture
async def chat(
    triaged_template: Path, data_dir: Path, openai_server: FakeOpenAI
) -> AsyncIterator[Chat]:
    """(client, services, user ids) on a triaged sandbox with a model, Dana (executive),
    Otto (another executive), Jordan (Dana's delegate) and Ada (admin)."""
    from assistant.app import create_app
    from assistant.auth import users
    from assistant.services import Services

    shutil.copyfile(triaged_template, data_dir / "assistant.db")
    settings = Settings(
        **{
            **web_settings(data_dir).model_dump(include={"data_dir", "sandbox", "governance"}),
            "llm": {
                "provider": "openai_compatible",
                "base_url": f"{openai_server.base_url}/v1",
                "model": "fake-model",
            },
        }
    )
    services = await Services.build(settings)
    ids = {
        "dana": await give_password(services, "dana"),  # the quick start's executive
        "otto": await add_user(services, "otto", Role.EXECUTIVE, email="otto@northwind.example"),
        "jordan": await add_user(
            services, "jordan", Role.DELEGATE, email="jordan@northwind.example"
        ),
        "ada": await add_user(services, "ada", Role.ADMIN),
    }
    async with services.sessions() as session:
        await users.grant_delegation(
            session,
            Principal(user_id=ids["dana"], tenant_id="default", roles=frozenset({Role.EXECUTIVE})),
            executive=await users.get_user(session, "default", ids["dana"]),
            delegate=await users.get_user(session, "default", ids["jordan"]),
            scopes=None,
        )
        await session.commit()
    openai_server.responder = model
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, services, ids
    await services.aclose()


async def ask(
    client: httpx.AsyncClient, token: str, message: str, conversation: str = ""
) -> list[tuple[str, dict[str, Any]]]:
    response = await client.post(
        "/app/chat/ask",
        data={"message": message, "conversation_id": conversation},
        headers={"X-CSRF-Token": token, "Accept": "text/event-stream"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    # The room streams the API's events: the answer in fragments, then whole.
    kinds = {e for e, _ in events}
    if not kinds & {"budget", "error", "answer.reset"}:
        streamed = "".join(d["text"] for e, d in events if e == "answer.delta")
        assert streamed == next(d for e, d in events if e == "answer")["text"]
    return [(e, d) for e, d in events if e != "answer.delta"]


async def conversations(services: Any) -> list[ConversationRow]:
    async with services.sessions() as session:
        return list((await session.execute(select(ConversationRow))).scalars())


async def test_a_turn_streams_and_a_form_post_reloads_the_conversation(chat: Chat) -> None:
    client, services, ids = chat
    await sign_in(client, "dana")
    room = await client.get("/app/chat", headers=HTML)
    assert room.status_code == 200
    assert 'href="/app/chat" aria-current="page">Chat</a>' in room.text  # the nav entry
    assert "No language model is configured" not in room.text
    token = csrf_of(room)

    events = await ask(client, token, "What did Raj write?")
    assert [e for e, _ in events] == ["turn", "tool", "answer", "done"]
    assert events[1][1] == {"name": "search_mail", "status": "ok"}
    conversation = events[0][1]["conversation_id"]
    (row,) = await conversations(services)
    assert (row.id, row.executive_id, row.created_by) == (conversation, ids["dana"], ids["dana"])

    # Without script: the form posts, the turn runs, the conversation page shows it.
    posted = await client.post(
        "/app/chat/ask",
        data={"message": "And before that?", "conversation_id": conversation, "csrf": token},
        headers=HTML,
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"/app/chat/{conversation}"
    page = await client.get(posted.headers["location"], headers=HTML)
    assert page.status_code == 200
    assert page.text.count("Raj wrote about the budget") == 2
    assert page.text.count("<code>search_mail</code>: ok") == 2
    assert "And before that?" in page.text
    assert f'href="/app/chat/{conversation}" aria-current="page"' in page.text


async def test_csrf_other_executives_admins_and_delegates(chat: Chat) -> None:
    client, services, ids = chat
    await sign_in(client, "dana")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    conversation = (await ask(client, token, "What did Raj write?"))[0][1]["conversation_id"]

    # No CSRF token (or another session's): refused, audited, nothing asked or deleted.
    asked = len(await conversations(services))
    for headers in ({}, {"X-CSRF-Token": "0" * 32}):
        refused = await client.post(
            "/app/chat/ask", data={"message": "Forward everything"}, headers=headers
        )
        assert refused.status_code == 403
        assert refused.json()["error"] == "CsrfRejectedError"
    gone = await client.post(f"/app/chat/{conversation}/delete", data={})
    assert gone.status_code == 403 and gone.json()["error"] == "CsrfRejectedError"
    assert len(await conversations(services)) == asked
    async with services.sessions() as session:
        denied = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
            )
        ).scalars()
        assert [e.payload["needed"] for e in denied] == [["csrf"]] * 3

    # Otto, another executive, neither opens nor deletes Dana's conversation (as if absent).
    await sign_in(client, "otto")
    otto_token = csrf_of(await client.get("/app/chat", headers=HTML))
    opened = await client.get(f"/app/chat/{conversation}", headers=HTML)
    assert opened.status_code == 404 and "Raj" not in opened.text
    deleted = await client.post(
        f"/app/chat/{conversation}/delete", data={"csrf": otto_token}, headers=HTML
    )
    assert deleted.status_code == 404
    continued = await client.post(
        "/app/chat/ask",
        data={"message": "Go on", "conversation_id": conversation},
        headers={"X-CSRF-Token": otto_token, "Accept": "text/event-stream"},
    )
    assert continued.status_code == 404 and continued.json()["error"] == "NotFoundError"
    listing = await client.get("/app/chat", headers=HTML)
    assert conversation not in listing.text
    assert len(await conversations(services)) == asked

    # Admins serve no executive: no Chat entry, 403 on the room and on a question.
    await sign_in(client, "ada")
    inbox = await client.get("/app/admin/connectors", headers=HTML)
    assert 'href="/app/chat"' not in inbox.text
    assert (await client.get("/app/chat", headers=HTML)).status_code == 403
    admin_ask = await client.post(
        "/app/chat/ask",
        data={"message": "Read Dana's mail"},
        headers={"X-CSRF-Token": csrf_of(inbox), "Accept": "text/event-stream"},
    )
    assert admin_ask.status_code == 403

    # Jordan, Dana's delegate, reads and continues her conversation but does not delete it.
    await sign_in(client, "jordan")
    room = await client.get(f"/app/chat/{conversation}", headers=HTML)
    assert room.status_code == 200 and "What did Raj write?" in room.text
    assert "Delete this conversation" not in room.text
    jordan_token = csrf_of(room)
    events = await ask(client, jordan_token, "Anything else?", conversation)
    assert events[0][1]["conversation_id"] == conversation
    refused = await client.post(
        f"/app/chat/{conversation}/delete", data={"csrf": jordan_token}, headers=HTML
    )
    assert refused.status_code == 403
    assert len(await conversations(services)) == asked


async def proposal_event(services: Any, action_id: str) -> AuditEvent:
    async with services.sessions() as session:
        return (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.action_id == action_id, AuditEvent.action == "action.proposed"
                )
            )
        ).scalar_one()


async def refusals(services: Any, actor: str) -> list[dict[str, Any]]:
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.action == "governance.refused", AuditEvent.actor_id == actor
                )
            )
        ).scalars()
        return [json.loads(r.payload_json) | {"route": r.resource_id} for r in rows]


async def test_a_delegates_request_goes_to_her_executive(chat: Chat) -> None:
    """Jordan asks for a draft: the agent proposes it at his request; his card offers no
    approval, and approving anyway is refused (403, audited); Dana approves it."""
    client, services, ids = chat
    await sign_in(client, "jordan")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    events = await ask(client, token, "Draft a reply to Raj's latest mail")
    assert [e for e, _ in events] == ["turn", "tool", "tool", "card", "answer", "done"], events[2]
    action_id = events[3][1]["action_id"]
    assert events[3][1]["requested_by"] == ids["jordan"]
    conversation = events[0][1]["conversation_id"]

    his = await client.get(f"/app/chat/cards/{action_id}", headers=HTML)
    assert his.status_code == 200 and "waiting for you" in his.text
    assert "asked for by you" in his.text
    assert "you asked for this as dana's delegate" in his.text.lower()
    assert f"/app/review/{action_id}/approve" not in his.text
    # The button is not there; the route refuses him all the same, and says so in the log.
    for path in ("approve", "edit"):
        refused = await client.post(
            f"/app/review/{action_id}/{path}",
            data={"csrf": token, "body_text": "Thanks Raj, agreed!"},
            headers=HTML,
        )
        assert refused.status_code == 403 and "SeparationOfDutiesError" in refused.text
    assert [(r["error"], r["route"]) for r in await refusals(services, ids["jordan"])] == [
        ("SeparationOfDutiesError", f"POST /app/review/{action_id}/approve"),
        ("SeparationOfDutiesError", f"POST /app/review/{action_id}/edit"),
    ]

    await sign_in(client, "dana")
    room = await client.get(f"/app/chat/{conversation}", headers=HTML)
    assert f"/app/review/{action_id}/approve" in room.text
    assert "asked for by Jordan" in room.text
    assert "Thanks Raj, agreed." in room.text  # what will be sent, on the card
    approved = await client.post(
        f"/app/review/{action_id}/approve",
        data={"csrf": csrf_of(room)},
        headers={"X-CSRF-Token": csrf_of(room)},
    )
    assert approved.status_code == 303
    async with services.sessions() as session:
        action = await session.get(Action, action_id)
        assert action is not None and action.state in {"approved", "scheduled"}
        # Filed under Dana (her user id: the sandbox mailbox is bound to her), proposed by
        # the agent at Jordan's request.
        assert (action.on_behalf_of, action.actor_type, action.actor_id, action.requested_by) == (
            ids["dana"],
            "agent",
            "agent",
            ids["jordan"],
        )
    event = await proposal_event(services, action_id)
    assert (event.actor_type, event.actor_id, event.on_behalf_of) == ("agent", "agent", ids["dana"])
    assert json.loads(event.payload_json)["requested_by"] == ids["jordan"]
    card = await client.get(f"/app/chat/cards/{action_id}", headers=HTML)
    assert f"/app/review/{action_id}/approve" not in card.text
    assert re.search(r'data-state="(approved|scheduled)"', card.text)

    # Otto sees no card of Dana's.
    await sign_in(client, "otto")
    assert (await client.get(f"/app/chat/cards/{action_id}", headers=HTML)).status_code == 404


async def test_dana_approves_what_she_asked_her_assistant_for(chat: Chat) -> None:
    """The agent proposes, Dana disposes: her own request's card offers Approve (no "find a
    delegate"), her approval is final; another executive and an admin cannot approve it."""
    client, services, ids = chat
    await sign_in(client, "dana")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    events = await ask(client, token, "Draft a reply to Raj's latest mail")
    action_id = next(d for e, d in events if e == "card")["action_id"]
    card = await client.get(f"/app/chat/cards/{action_id}", headers=HTML)
    assert f"/app/review/{action_id}/approve" in card.text
    assert "asked for by you" in card.text and "You asked for this" not in card.text
    assert "another person approves" not in card.text
    review = await client.get("/app/review", headers=HTML)
    assert "Drafted by the assistant, asked for by you." in review.text

    for other, home in (("otto", "/app/inbox"), ("ada", "/app/admin/connectors")):
        await sign_in(client, other)
        other_token = csrf_of(await client.get(home, headers=HTML))
        refused = await client.post(
            f"/app/review/{action_id}/approve", data={"csrf": other_token}, headers=HTML
        )
        assert refused.status_code in {403, 404}, (other, refused.status_code)

    await sign_in(client, "dana")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    approved = await client.post(
        f"/app/review/{action_id}/approve", data={"csrf": token}, headers=HTML
    )
    assert approved.status_code == 303, approved.text
    async with services.sessions() as session:
        action = await session.get(Action, action_id)
        assert action is not None and action.state in {"approved", "scheduled"}
        assert (action.actor_type, action.requested_by) == ("agent", ids["dana"])
        # A card is a suggestion a person approves, never more.
        assert action.autonomy == "suggest"
    assert await refusals(services, ids["dana"]) == []


async def test_dana_deletes_her_conversation(chat: Chat) -> None:
    client, services, _ = chat
    await sign_in(client, "dana")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    conversation = (await ask(client, token, "What did Raj write?"))[0][1]["conversation_id"]
    deleted = await client.post(
        f"/app/chat/{conversation}/delete", data={"csrf": token}, headers=HTML
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/app/chat?done=deleted"
    assert await conversations(services) == []
    assert (await client.get(f"/app/chat/{conversation}", headers=HTML)).status_code == 404
    too_long = await client.get("/app/chat/" + "a" * 65, headers={"Accept": "application/json"})
    assert too_long.status_code == 422 and too_long.json()["error"]
    async with services.sessions() as session:
        (event,) = (
            await session.execute(
                select(AuditEvent).where(AuditEvent.action == "chat.conversation.deleted")
            )
        ).scalars()
        assert event.resource_id == conversation


async def test_without_a_model_the_room_says_so(web: tuple[httpx.AsyncClient, Any]) -> None:
    client, services = web
    await give_password(services, "dana")
    await sign_in(client, "dana")
    room = await client.get("/app/chat", headers=HTML)
    assert room.status_code == 200
    assert "No language model is configured" in room.text
    assert 'id="ask"' not in room.text
    refused = await client.post(
        "/app/chat/ask",
        data={"message": "What is on today?"},
        headers={"X-CSRF-Token": csrf_of(room), "Accept": "text/event-stream"},
    )
    assert refused.status_code == 503
    assert refused.json()["error"] == "ServiceUnavailableError"


async def test_the_turn_budget_message_is_kept_with_the_conversation(
    chat: Chat, openai_server: FakeOpenAI
) -> None:
    client, _, _ = chat
    openai_server.responder = None
    openai_server.default = Answer(tool_calls=[("search_mail", {"query": "board"})])
    await sign_in(client, "dana")
    token = csrf_of(await client.get("/app/chat", headers=HTML))
    events = await ask(client, token, "Read everything")
    (budget,) = [data for kind, data in events if kind == "budget"]
    assert "limit" in budget["detail"]
    page = await client.get(f"/app/chat/{events[0][1]['conversation_id']}", headers=HTML)
    assert "Turn budget reached: " + budget["detail"] in page.text
