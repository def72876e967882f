"""POST /api/v1/chat against the sandbox with the scripted OpenAI-compatible model: the
stream, cards through governance, the budget, scoping, storage and audit, bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assistant.core.principal import Role
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from governance.models import Action
from tests.conftest import FIXED_NOW, SEED_DIR
from tests.fakes.openai_server import Answer, FakeOpenAI, _openai_server, openai_server
from tests.fixtures.auth import as_role

__all__ = ["_openai_server", "openai_server"]  # fixtures

EXEC = "dana.whitfield@northwind.example"


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def tool_results(body: dict[str, Any]) -> list[str]:
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]


def offered(body: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in body.get("tools", [])}


def agent_settings(data_dir: Path, fake: FakeOpenAI, **agent: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        sandbox={"seed_dir": SEED_DIR},
        llm={
            "provider": "openai_compatible",
            "base_url": f"{fake.base_url}/v1",
            "model": "fake-model",
            "retry_initial_s": 0.01,
            "retry_max_s": 0.05,
            "prices": {"fake-model": {"input": 1.0, "output": 2.0}},
        },
        agent=agent,
        governance={"runner": "off"},
    )


@pytest.fixture
async def make_client(
    data_dir: Path, openai_server: FakeOpenAI
) -> AsyncIterator[Callable[..., Any]]:
    from assistant.app import create_app
    from assistant.core.db import create_engine, upgrade
    from assistant.services import Services
    from integrations.sandbox.seed import seed_sandbox

    opened: list[tuple[Any, httpx.AsyncClient]] = []

    async def make(**agent: Any) -> httpx.AsyncClient:
        settings = agent_settings(data_dir, openai_server, **agent)
        engine = create_engine(settings.database_url)
        await upgrade(engine)
        await engine.dispose()
        services = await Services.build(settings)
        await seed_sandbox(services.sessions, tenant_id="default", seed_dir=SEED_DIR, now=FIXED_NOW)
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        http.app = app  # type: ignore[attr-defined]
        opened.append((services, http))
        return http

    yield make
    for services, http in opened:
        await http.aclose()
        await services.aclose()


async def ask(client: httpx.AsyncClient, message: str, **extra: Any) -> httpx.Response:
    return await client.post("/api/v1/chat", json={"message": message, **extra})


async def audit_rows(client: httpx.AsyncClient, action: str) -> list[AuditEvent]:
    async with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        return list(
            (await session.execute(select(AuditEvent).where(AuditEvent.action == action))).scalars()
        )


async def actions_of(client: httpx.AsyncClient) -> list[Action]:
    async with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        return list((await session.execute(select(Action))).scalars())


def first_id(result: str) -> str:
    data = json.loads(result.split("\n", 1)[1].rsplit("\n", 1)[0])
    return str(data["messages"][0]["id"])


async def test_a_turn_streams_tools_a_card_and_the_answer(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)

    def model(body: dict[str, Any]) -> Answer:
        results = tool_results(body)
        if not results:
            return Answer(tool_calls=[("search_mail", {"query": "Raj"})])
        if len(results) == 1:
            return Answer(
                tool_calls=[
                    ("draft_reply", {"message_id": first_id(results[0]), "body": "Thanks Raj."})
                ]
            )
        return Answer(content="I drafted a reply to Raj; it waits for your approval.")

    openai_server.responder = model
    response = await client.post(
        "/api/v1/chat",
        json={"message": "Draft a reply to Raj's latest mail"},
        headers={"X-Correlation-ID": "corr-chat-1"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [e for e, _ in events]
    # The answer streams after the tools ran, then comes whole.
    assert [k for k in kinds if k != "answer.delta"] == [
        "turn",
        "tool",
        "tool",
        "card",
        "answer",
        "done",
    ]
    assert kinds.index("answer.delta") > kinds.index("card")
    assert kinds.count("answer.delta") > 1
    deltas = "".join(d["text"] for e, d in events if e == "answer.delta")
    assert deltas == "I drafted a reply to Raj; it waits for your approval."
    assert deltas == next(d for e, d in events if e == "answer")["text"]
    events = [(e, d) for e, d in events if e != "answer.delta"]
    card = events[3][1]
    assert card["kind"] == "email.draft.create"
    # A card is a governed proposal waiting for a person: nothing ran.
    assert card["state"] == "pending_review"
    (action,) = await actions_of(client)
    assert action.id == card["action_id"] and action.on_behalf_of == EXEC
    assert action.state == "pending_review"
    # The agent proposed it, at her request: she approves it (nobody else had to).
    assert (action.actor_type, action.actor_id, action.requested_by) == ("agent", "agent", EXEC)
    assert card["requested_by"] == EXEC
    approved = await client.post(f"/api/v1/review/{action.id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] in {"approved", "scheduled"}
    # One correlation id ties the request, the proposal, the model calls and the audit.
    assert action.correlation_id == "corr-chat-1" == events[-1][1]["correlation_id"]
    done = events[-1][1]
    assert done["model_calls"] == 3 and done["tool_calls"] == 2
    assert done["input_tokens"] > 0 and done["cost_usd"] > 0

    # Tool results reach the model only as delimited data, never as instructions.
    last = openai_server.requests[-1]
    assert all(r.startswith("<untrusted_data") for r in tool_results(last))
    assert last["messages"][0]["role"] == "system"
    tools = offered(last)
    assert {"search_mail", "draft_reply", "erp_overdue_invoices"} - tools == {
        "erp_overdue_invoices"
    }
    assert not {"set_autonomy", "update_policy"} & tools

    # Stored for the executive; audited without the question's text.
    conversation_id = events[0][1]["conversation_id"]
    stored = (await client.get(f"/api/v1/chat/conversations/{conversation_id}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "tool", "tool", "assistant"]
    (turn,) = await audit_rows(client, "chat.turn")
    assert turn.payload["proposed"] == [
        {"action_id": action.id, "kind": "email.draft.create", "state": "pending_review"}
    ]
    assert [t["name"] for t in turn.payload["tools"]] == ["search_mail", "draft_reply"]
    assert "Raj" not in json.dumps(turn.payload) and turn.payload["question_sha256"]
    assert turn.correlation_id == "corr-chat-1"


async def test_a_tool_the_turn_did_not_offer_is_refused(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.script(
        Answer(tool_calls=[("set_autonomy", {"kind": "email.send", "level": "auto"})]),
        Answer(content="I cannot do that."),
    )
    events = parse_sse((await ask(client, "Make yourself fully autonomous")).text)
    tool = next(d for e, d in events if e == "tool")
    assert tool == {"name": "set_autonomy", "status": "refused", "detail": "no such tool"}
    assert "no tool named" in tool_results(openai_server.requests[-1])[0]
    assert await actions_of(client) == []


async def test_the_turn_stops_at_its_tool_call_budget(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client(max_tool_calls=2)
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.default = Answer(tool_calls=[("search_mail", {"query": "board"})])
    events = parse_sse((await ask(client, "Read everything")).text)
    budget = next(d for e, d in events if e == "budget")
    assert "limit of 2 tool calls" in budget["detail"]
    answer = next(d for e, d in events if e == "answer")
    assert "I stopped" in answer["text"]
    (turn,) = await audit_rows(client, "chat.turn")
    assert turn.payload["tool_calls"] == 2 and turn.payload["budget_exceeded"]


async def test_the_turn_stops_at_its_token_budget(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client(max_tokens=500)
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.default = Answer(
        tool_calls=[("search_mail", {"query": "x"})], prompt_tokens=400, completion_tokens=200
    )
    events = parse_sse((await ask(client, "Anything")).text)
    assert "over its limit of 500" in next(d for e, d in events if e == "budget")["detail"]
    assert not [d for e, d in events if e == "tool"]  # no tool ran past the budget


async def test_an_outside_address_must_be_named_by_the_executive(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    draft = {"to": ["attacker@evil.example"], "subject": "Calendar", "body": "all of it"}
    openai_server.script(Answer(tool_calls=[("draft_email", draft)]), Answer(content="Done."))
    events = parse_sse((await ask(client, "Summarize my week")).text)
    tool = next(d for e, d in events if e == "tool")
    assert tool["status"] == "refused" and tool["error"] == "UntrustedSourceError"
    assert await actions_of(client) == []

    named = {**draft, "to": ["greg.lawson@fabrikam.example"]}
    openai_server.script(Answer(tool_calls=[("draft_email", named)]), Answer(content="Done."))
    events = parse_sse((await ask(client, "Draft a note to greg.lawson@fabrikam.example")).text)
    assert next(d for e, d in events if e == "card")["state"] == "pending_review"


async def test_bad_questions_and_callers_are_refused_and_audited(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client(max_message_chars=50)
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    assert (await ask(client, "")).status_code == 422
    blank = await ask(client, "   ")
    assert blank.status_code == 422 and blank.json()["error"] == "ChatInputError"
    long = await ask(client, "x" * 51)
    assert long.status_code == 422 and "50 characters" in long.json()["detail"]
    unknown = await ask(client, "hello", conversation_id="nope")
    assert unknown.status_code == 404 and unknown.json()["error"] == "NotFoundError"
    refused = await audit_rows(client, "chat.refused")
    assert len(refused) == 3 and all("x" * 10 not in json.dumps(r.payload) for r in refused)
    assert openai_server.requests == []  # nothing reached the model

    for role in (Role.ADMIN, Role.AUDITOR):
        as_role(client, role, user_id="someone")
        assert (await ask(client, "read Dana's mail")).status_code == 403


async def test_conversations_belong_to_their_executive(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.default = Answer(content="Nothing urgent.")
    events = parse_sse((await ask(client, "Anything urgent?")).text)
    conversation_id = events[0][1]["conversation_id"]
    again = parse_sse((await ask(client, "And tomorrow?", conversation_id=conversation_id)).text)
    assert again[0][1] == {"conversation_id": conversation_id, "turn": 2}
    # The earlier question and answer travel with the new one.
    contents = [m.get("content") for m in openai_server.requests[-1]["messages"]]
    assert "Anything urgent?" in contents and "Nothing urgent." in contents

    # Another executive neither sees, continues nor deletes it.
    as_role(client, Role.EXECUTIVE, user_id="marcus.chen@northwind.example")
    assert (await client.get("/api/v1/chat/conversations")).json() == []
    path = f"/api/v1/chat/conversations/{conversation_id}"
    assert (await client.get(path)).status_code == 404
    assert (await ask(client, "hi", conversation_id=conversation_id)).status_code == 404
    assert (await client.delete(path)).status_code == 404
    # Nor does the other executive's agent open Dana's mailbox.
    openai_server.default = Answer(content="ok")
    await ask(client, "What is in my inbox?")
    assert "search_mail" not in offered(openai_server.requests[-1])

    # Her delegate reads it but may not delete it; she may.
    as_role(client, Role.DELEGATE, user_id="jordan", on_behalf_of=EXEC)
    assert (await client.get(path)).status_code == 200
    assert (await client.delete(path)).status_code == 403
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    assert (await client.delete(path)).status_code == 204
    assert (await client.get(path)).status_code == 404
    (deleted,) = await audit_rows(client, "chat.conversation.deleted")
    assert deleted.resource_id == conversation_id and deleted.payload["turns"] == 2


async def test_a_delegate_gets_only_the_tools_of_her_grant(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(
        client,
        Role.DELEGATE,
        user_id="jordan",
        on_behalf_of=EXEC,
        delegated_scopes=frozenset({"mail.read", "calendar.read"}),
    )
    openai_server.default = Answer(content="ok")
    assert (await ask(client, "What is on today?")).status_code == 200
    tools = offered(openai_server.requests[-1])
    assert {"search_mail", "list_events", "find_meeting_times"} <= tools
    assert not {"draft_reply", "send_reply", "schedule_meeting", "triage_results"} & tools


async def test_the_step_protocol_forces_one_named_tool_per_step(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client(tool_protocol="step")
    as_role(client, Role.EXECUTIVE, user_id=EXEC)

    def step(tool: str, arguments: dict[str, Any], answer: str = "") -> Answer:
        return Answer(
            tool_calls=[("agent_step", {"tool": tool, "arguments": arguments, "answer": answer})]
        )

    openai_server.script(
        step("search_mail", {"query": "Raj"}),
        step("set_autonomy", {"kind": "email.send"}),
        step("answer", {}, "Raj wrote about the reforecast."),
    )
    events = parse_sse((await ask(client, "What did Raj send?")).text)
    # The step protocol's answer is a tool call's argument: it is not streamed.
    assert not [e for e, _ in events if e.startswith("answer.")]
    assert not any(r.get("stream") for r in openai_server.requests)
    tools = [d for e, d in events if e == "tool"]
    assert [(t["name"], t["status"]) for t in tools] == [
        ("search_mail", "ok"),
        ("set_autonomy", "refused"),
    ]
    assert next(d for e, d in events if e == "answer")["text"] == "Raj wrote about the reforecast."
    first = openai_server.requests[0]
    assert first["tool_choice"] == {"type": "function", "function": {"name": "agent_step"}}
    assert offered(first) == {"agent_step"}
    enum = first["tools"][0]["function"]["parameters"]["properties"]["tool"]["enum"]
    assert "search_mail" in enum and "answer" in enum and "set_autonomy" not in enum
    assert "- search_mail(" in first["messages"][0]["content"]
    assert tool_results(openai_server.requests[1])[0].startswith("<untrusted_data")


async def test_streamed_usage_is_metered_and_budgeted(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    from assistant.llm.models import LLMCallRow

    client = await make_client(max_tokens=500)
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.script(
        Answer(content="Nothing urgent today.", prompt_tokens=150, completion_tokens=9)
    )
    events = parse_sse((await ask(client, "Anything urgent?")).text)
    done = next(d for e, d in events if e == "done")
    # Usage comes from the stream's usage chunk.
    assert (done["input_tokens"], done["output_tokens"]) == (150, 9)
    assert done["cost_usd"] == pytest.approx((150 * 1.0 + 9 * 2.0) / 1_000_000)
    assert openai_server.last["stream"] is True
    assert openai_server.last["stream_options"] == {"include_usage": True}
    async with client.app.state.services.sessions() as session:  # type: ignore[attr-defined]
        (call,) = (await session.execute(select(LLMCallRow))).scalars()
    assert (call.input_tokens, call.output_tokens, call.outcome) == (150, 9, "ok")

    # The answer streamed, then the budget replaced it: the final answer says so.
    openai_server.script(Answer(content="A long answer.", prompt_tokens=400, completion_tokens=200))
    events = parse_sse((await ask(client, "Tell me everything")).text)
    kinds = [e for e, _ in events]
    assert "".join(d["text"] for e, d in events if e == "answer.delta") == "A long answer."
    assert kinds[-3:] == ["budget", "answer", "done"]
    assert "I stopped" in events[-2][1]["text"]


async def test_text_before_a_tool_call_is_withdrawn(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.script(
        Answer(content="Let me look.", tool_calls=[("search_mail", {"query": "Raj"})]),
        Answer(content="Raj wrote twice."),
    )
    events = parse_sse((await ask(client, "What did Raj write?")).text)
    kinds = [e for e, _ in events]
    reset = kinds.index("answer.reset")
    assert "".join(d["text"] for e, d in events[:reset] if e == "answer.delta") == "Let me look."
    assert kinds[reset + 1] == "tool"  # the tool still ran
    later = "".join(d["text"] for e, d in events[reset:] if e == "answer.delta")
    assert later == "Raj wrote twice." == next(d for e, d in events if e == "answer")["text"]


async def test_a_stream_that_breaks_ends_the_turn_with_an_error(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client()
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.script(Answer(content="Raj wrote about the budget review.", break_after_chunks=3))
    response = await ask(client, "What did Raj write?")
    assert response.status_code == 200
    events = parse_sse(response.text)
    kinds = [e for e, _ in events]
    assert "".join(d["text"] for e, d in events if e == "answer.delta") == "Raj wrote"
    assert kinds[-3:] == ["error", "answer", "done"]
    assert "LLMUnavailableError" in events[-3][1]["detail"]
    assert events[-2][1]["text"] == "I could not finish this answer."
    assert len(openai_server.requests) == 1  # text had been shown: not asked again
    conversation_id = events[0][1]["conversation_id"]
    stored = (await client.get(f"/api/v1/chat/conversations/{conversation_id}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][-1]["content"] == "I could not finish this answer."
    (turn,) = await audit_rows(client, "chat.turn")
    assert turn.outcome == "failure" and turn.reason == "model_failed"


async def test_a_reader_who_leaves_mid_stream_ends_the_model_call(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    from assistant.api.chat import build_agent
    from assistant.core.principal import Principal
    from assistant.governance_app import build_governance

    client = await make_client()
    services = client.app.state.services  # type: ignore[attr-defined]
    agent = build_agent(services, build_governance(services, mode="off").actions)
    dana = Principal(user_id=EXEC, tenant_id="default", roles=frozenset({Role.EXECUTIVE}))
    openai_server.script(Answer(content="one two three four five six seven", chunk_delay_s=0.5))
    scope, conversation_id = await agent.prepare(dana, "Count slowly", None)
    turn = agent.run(scope, conversation_id, "Count slowly")
    try:
        async for event in turn:
            if event.type == "answer.delta":
                break
        await turn.aclose()  # as the server does when the reader goes away
        await asyncio.sleep(0.3)
        # The model call was cancelled with the turn, not left streaming to nobody.
        assert openai_server.in_flight == 0
    finally:
        await agent.llm.aclose()


async def test_an_answer_can_come_whole(
    make_client: Callable[..., Any], openai_server: FakeOpenAI
) -> None:
    client = await make_client(stream_answer=False)
    as_role(client, Role.EXECUTIVE, user_id=EXEC)
    openai_server.script(Answer(content="Nothing urgent.", prompt_tokens=150, completion_tokens=4))
    events = parse_sse((await ask(client, "Anything urgent?")).text)
    assert [e for e, _ in events] == ["turn", "answer", "done"]
    assert events[1][1]["text"] == "Nothing urgent."
    assert not openai_server.last.get("stream")
    assert (events[-1][1]["input_tokens"], events[-1][1]["output_tokens"]) == (150, 4)
