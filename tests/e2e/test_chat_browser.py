"""The chat room in a real browser: Playwright driving Debian's Chromium against the service
on a real port, with the scripted OpenAI-compatible model, then with llama.cpp's server.

Dana asks a question and watches the tool run arrive before the answer; Jordan, her
delegate, asks in the same conversation for a draft and sees its card (the agent proposed
it at his request: he cannot approve it); Dana approves it on the card, through the review
room's rules, then deletes the conversation. Another executive's conversation neither
opens nor deletes from her session, and a post without the CSRF token is refused. axe-core
finds no violation, the room fits a phone and works from the keyboard. Against SmolLM2 the
answer streams in and the turn is recorded.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from tests.api.test_chat_api import first_id, tool_results
from tests.e2e.test_web_browser import AXE, CHROMIUM, CHROMIUM_ARGS, _axe_violations, _shot
from tests.fakes.openai_server import Answer, FakeOpenAI, _openai_server, openai_server
from tests.fakes.serving import serve_app
from tests.fixtures.postgres import require_or_skip
from tests.fixtures.web import (
    PASSWORD,
    add_user,
    build_triaged,
    give_password,
    web_settings,
)

__all__ = ["_openai_server", "openai_server"]  # fixtures

pytestmark = pytest.mark.slow

T = TypeVar("T")
OTTO_SECRET = "Otto's acquisition plans"
#: An answer as it stands once its turn ended (the bubble the fragments grow in is a draft).
SETTLED = "#transcript li.msg.assistant:not(.streaming)"


def _run_apart(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run set-up code on a thread of its own: Playwright's sync API keeps an event loop
    running on this one once the browser is up."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _settings(folder: Path, **llm: Any) -> Settings:
    base = web_settings(folder, runner="inprocess", poll_interval_seconds=0.2)
    return Settings(
        **base.model_dump(include={"data_dir", "sandbox", "governance"}),
        llm={"provider": "openai_compatible", **llm},
    )


async def _people(settings: Settings) -> dict[str, str]:
    """Dana (executive), Jordan (her delegate), Otto (another executive, with a
    conversation of his own)."""
    from assistant.agent import store
    from assistant.auth import users
    from assistant.services import Services

    services = await Services.build(settings)
    try:
        ids = {
            "dana": await give_password(services, "dana"),  # the quick start's executive
            "jordan": await add_user(
                services, "jordan", Role.DELEGATE, email="jordan@northwind.example"
            ),
            "otto": await add_user(
                services, "otto", Role.EXECUTIVE, email="otto@northwind.example"
            ),
        }
        async with services.sessions() as session:
            dana = Principal(
                user_id=ids["dana"], tenant_id="default", roles=frozenset({Role.EXECUTIVE})
            )
            await users.grant_delegation(
                session,
                dana,
                executive=await users.get_user(session, "default", ids["dana"]),
                delegate=await users.get_user(session, "default", ids["jordan"]),
                scopes=None,
            )
            otto = Principal(
                user_id=ids["otto"], tenant_id="default", roles=frozenset({Role.EXECUTIVE})
            )
            row = await store.create_conversation(session, otto, OTTO_SECRET)
            await store.append(session, row, turn=1, role="user", content=OTTO_SECRET)
            ids["otto_conversation"] = row.id
            await session.commit()
        return ids
    finally:
        await services.aclose()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, _openai_server: FakeOpenAI
) -> Iterator[dict[str, Any]]:
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_or_skip("playwright is not installed (make install-dev)")
    if not CHROMIUM.exists():
        require_or_skip("Debian's chromium is not installed (make system-deps)")
    folder = tmp_path_factory.mktemp("chat-browser")
    database = asyncio.run(build_triaged(folder))
    settings = _settings(folder, base_url=f"{_openai_server.base_url}/v1", model="fake-model")
    ids = asyncio.run(_people(settings))
    from assistant.app import create_app

    with serve_app(
        create_app(settings), name="chat-web-app", startup_timeout_s=60, lifespan="on"
    ) as port:
        yield {"base": f"http://127.0.0.1:{port}", "database": database, "ids": ids}


@pytest.fixture(scope="module")
def browser(server: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def model(body: dict[str, Any]) -> Answer:
    """Searches first; drafts a reply when the question asks for one; then answers, a
    moment later (so that the tool run shows before the answer does)."""
    question = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    results = tool_results(body)
    if not results:
        return Answer(tool_calls=[("search_mail", {"query": "Raj"})])
    if "draft" in str(question).lower() and len(results) == 1:
        reply = {"message_id": first_id(results[0]), "body": "Thanks Raj, agreed."}
        return Answer(tool_calls=[("draft_reply", reply)])
    return Answer(content="Raj wrote about the budget review.", delay_s=1.5)


def _signed_in(browser: Any, base: str, username: str, width: int = 1280) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": width, "height": 860})
    page = context.new_page()
    page.goto(f"{base}/auth/login?next=/app/inbox")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/inbox")
    return context, page


def _errors(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return problems


def _state(database: Path, action_id: str) -> tuple[str, str, str]:
    with sqlite3.connect(database) as db:
        state, actor_type, asker = db.execute(
            "SELECT state, actor_type, requested_by FROM governed_actions WHERE id = ?",
            (action_id,),
        ).fetchone()
    return str(state), str(actor_type), str(asker)


def _conversations(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        return {row[0] for row in db.execute("SELECT id FROM agent_conversations")}


def test_ask_see_tools_and_a_card_approve_it_and_delete(
    server: dict[str, Any], browser: Any, openai_server: FakeOpenAI
) -> None:
    base, database, ids = server["base"], server["database"], server["ids"]
    openai_server.responder = model

    # Dana asks; the tool run shows while the answer is still on its way.
    dana_context, dana = _signed_in(browser, base, "dana")
    dana_problems = _errors(dana)
    dana.get_by_role("link", name="Chat").click()
    dana.get_by_role("heading", name="Chat", level=1).wait_for()
    assert dana.get_by_role("link", name=OTTO_SECRET).count() == 0  # Otto's is not listed
    dana.get_by_label("Ask the assistant").fill("What did Raj write?")
    dana.get_by_role("button", name="Ask").click()
    tool = dana.locator("#transcript li.msg.tool").first
    tool.wait_for()
    assert "search_mail: ok" in tool.inner_text()
    assert dana.locator("#transcript li.msg.assistant").count() == 0  # not yet: streaming
    answer = dana.locator(SETTLED).first
    answer.wait_for()
    assert "Raj wrote about the budget review." in answer.inner_text()
    assert dana.locator("#transcript li.msg.assistant").count() == 1  # the draft was replaced
    dana.wait_for_url(re.compile(r"/app/chat/[0-9a-f]{32}$"))
    conversation = dana.url.rsplit("/", 1)[1]
    assert dana.get_by_role("link", name="What did Raj write?").is_visible()  # now listed
    assert dana.get_by_role("heading", name="What did Raj write?", level=2).is_visible()
    assert dana.get_by_role("status").filter(has_text="1 tool run(s)").is_visible()
    _shot(dana, "chat")

    # Jordan, her delegate, continues it and asks for a draft: the card shows what will be
    # sent and that someone else approves his request.
    jordan_context, jordan = _signed_in(browser, base, "jordan")
    jordan_problems = _errors(jordan)
    jordan.goto(f"{base}/app/chat")
    jordan.get_by_role("link", name="What did Raj write?").click()
    jordan.wait_for_url(f"{base}/app/chat/{conversation}")
    assert jordan.get_by_role("button", name="Delete for good").count() == 0
    jordan.get_by_label(re.compile("Ask the assistant")).fill("Draft a reply to Raj, please")
    jordan.get_by_role("button", name="Ask").click()
    card = jordan.locator("article.chat-card").first
    card.wait_for()
    assert "Thanks Raj, agreed." in card.inner_text()
    assert "waiting for you" in card.inner_text()
    assert "asked for by you" in card.inner_text()
    assert "you asked for this as dana's delegate" in card.inner_text().lower()
    assert card.get_by_role("button", name=re.compile("^Approve")).count() == 0
    action_id = card.get_attribute("data-action")
    # The agent proposed it, at Jordan's request.
    assert action_id and _state(database, action_id) == ("pending_review", "agent", ids["jordan"])
    jordan.locator(SETTLED).nth(1).wait_for()

    # Dana approves it on the card; the card then shows what became of it.
    dana.reload()
    card = dana.locator(f'article.chat-card[data-action="{action_id}"]')
    assert _axe_violations(dana) == [], _axe_violations(dana)
    assert "asked for by Jordan" in card.inner_text()
    card.get_by_role("button", name=re.compile("^Approve")).click()
    dana.locator(
        f'article.chat-card[data-action="{action_id}"]:is([data-state=scheduled],'
        "[data-state=approved])"
    ).wait_for()
    assert dana.url == f"{base}/app/chat/{conversation}"  # she stayed in the conversation
    assert _state(database, action_id)[0] in {"approved", "scheduled"}

    # Another executive's conversation: neither opened nor deleted from Dana's session; a
    # post without the CSRF token is refused.
    otto = ids["otto_conversation"]
    opened = dana.request.get(f"{base}/app/chat/{otto}", headers={"Accept": "text/html"})
    assert opened.status == 404 and OTTO_SECRET not in opened.text()
    token = dana.locator('#ask input[name="csrf"]').input_value()
    deleted = dana.request.post(f"{base}/app/chat/{otto}/delete", form={"csrf": token})
    assert deleted.status == 404
    forged = dana.request.post(f"{base}/app/chat/ask", form={"message": "Forward all my mail"})
    assert forged.status == 403 and forged.json()["error"] == "CsrfRejectedError"
    no_token = dana.request.post(f"{base}/app/chat/{conversation}/delete", form={})
    assert no_token.status == 403
    assert {otto, conversation} <= _conversations(database)

    # Dana deletes hers, after confirming.
    dana.get_by_text("Delete this conversation").click()
    dana.get_by_role("button", name="Delete for good").click()
    dana.wait_for_url(f"{base}/app/chat?done=deleted")
    assert dana.get_by_text("Conversation deleted.").is_visible()
    assert dana.get_by_role("link", name="What did Raj write?").count() == 0
    assert conversation not in _conversations(database)
    assert dana_problems == [] and jordan_problems == []  # no CSP violation, no script error
    jordan_context.close()
    dana_context.close()


def test_the_room_is_accessible_fits_a_phone_and_works_by_keyboard(
    server: dict[str, Any], browser: Any, openai_server: FakeOpenAI
) -> None:
    if not AXE.exists():
        require_or_skip("axe-core is not installed (make install-dev runs npm ci)")
    base = server["base"]
    openai_server.responder = model
    for width in (1280, 390):
        context, page = _signed_in(browser, base, "dana", width=width)
        problems = _errors(page)
        page.goto(f"{base}/app/chat")
        assert _axe_violations(page) == []
        # The keyboard alone: the question box is reachable, Ctrl+Enter sends it.
        page.get_by_label("Ask the assistant").focus()
        page.keyboard.type("What did Raj write?")
        page.keyboard.press("Control+Enter")
        page.locator(SETTLED).first.wait_for()
        assert _axe_violations(page) == []
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the chat scrolls sideways at {width}px"
        if width < 500:
            _shot(page, "phone-chat")
        assert problems == []
        context.close()


def test_an_answer_streams_from_llama_cpp(tmp_path: Path, browser: Any, llama_server: str) -> None:
    """SmolLM2-135M cannot drive tools: only that its answer streams into the room and the
    turn is recorded (stored, metered, audited)."""
    database = _run_apart(build_triaged(tmp_path))
    settings = _settings(
        tmp_path,
        base_url=llama_server,
        model="smollm2",
        max_output_tokens=48,
        timeout_s=600,
        max_retries=0,
    )
    ids = _run_apart(_people(settings))
    from assistant.app import create_app

    with serve_app(
        create_app(settings), name="chat-llama-app", startup_timeout_s=60, lifespan="on"
    ) as port:
        base = f"http://127.0.0.1:{port}"
        context, page = _signed_in(browser, base, "dana")
        problems = _errors(page)
        page.goto(f"{base}/app/chat")
        page.get_by_label("Ask the assistant").fill("Say hello to me in one short sentence.")
        page.get_by_role("button", name="Ask").click()
        answer = page.locator(f"{SETTLED} .text").first
        answer.wait_for(timeout=300_000)
        said = answer.inner_text().strip()
        assert said and not said.startswith(("I could not finish", "I stopped")), said
        page.get_by_role("status").filter(has_text="model call(s)").wait_for()
        assert problems == []
        context.close()
    with sqlite3.connect(database) as db:
        turns = db.execute(
            "SELECT turns FROM agent_conversations WHERE executive_id = ?", (ids["dana"],)
        ).fetchall()
        audited = db.execute(
            "SELECT outcome FROM audit_events WHERE action = 'chat.turn'"
        ).fetchall()
        metered = db.execute(
            "SELECT model, output_tokens FROM llm_calls WHERE task = 'agent'"
        ).fetchall()
    assert turns == [(1,)]
    assert audited == [("success",)]
    assert metered and all(m == "smollm2" and 0 < out <= 48 for m, out in metered)


def test_the_answer_streams_in_then_is_announced_once(
    server: dict[str, Any], browser: Any, openai_server: FakeOpenAI
) -> None:
    from playwright.sync_api import expect

    words = "Raj wrote twice this week: first about the budget, then about the board pack."
    openai_server.script(Answer(content=words, chunk_delay_s=0.25))
    context, page = _signed_in(browser, server["base"], "dana")
    problems = _errors(page)
    page.goto(f"{server['base']}/app/chat")
    page.get_by_label("Ask the assistant").fill("What did Raj write?")
    page.get_by_role("button", name="Ask").click()
    # The fragments grow in a draft that assistive technology does not read token by token.
    draft = page.locator("#transcript li.msg.assistant.streaming")
    draft.wait_for()
    assert draft.get_attribute("aria-hidden") == "true"
    expect(draft.locator(".text")).to_have_text(re.compile(r"^\S+ \S+ \S+"))
    partial = draft.locator(".text").inner_text()
    assert words.startswith(partial.rstrip()) and partial != words
    assert page.get_by_role("status").inner_text() == "The assistant is answering."
    # Then the whole answer replaces the draft, in the conversation's live region, once.
    settled = page.locator(SETTLED)
    settled.wait_for()
    assert settled.locator(".text").inner_text() == words
    assert settled.get_attribute("aria-hidden") is None
    assert page.locator("#transcript li.msg.assistant").count() == 1
    assert page.locator('[role="log"] li.msg.assistant').count() == 1
    page.get_by_role("status").filter(has_text="model call(s)").wait_for()
    assert problems == []
    context.close()


def test_text_before_a_tool_run_is_withdrawn(
    server: dict[str, Any], browser: Any, openai_server: FakeOpenAI
) -> None:
    openai_server.script(
        Answer(content="Let me look.", tool_calls=[("search_mail", {"query": "Raj"})]),
        Answer(content="Raj wrote twice."),
    )
    context, page = _signed_in(browser, server["base"], "dana")
    problems = _errors(page)
    page.goto(f"{server['base']}/app/chat")
    page.get_by_label("Ask the assistant").fill("What did Raj write?")
    page.get_by_role("button", name="Ask").click()
    page.locator(SETTLED).wait_for()
    page.get_by_role("status").filter(has_text="1 tool run(s)").wait_for()
    texts = page.locator("#transcript li.msg.assistant .text").all_inner_texts()
    assert texts == ["Raj wrote twice."]
    assert "Let me look." not in page.locator("#transcript").inner_text()
    assert problems == []
    context.close()


def test_the_turn_budget_message_shows(
    server: dict[str, Any], browser: Any, openai_server: FakeOpenAI
) -> None:
    openai_server.default = Answer(tool_calls=[("search_mail", {"query": "board"})])
    context, page = _signed_in(browser, server["base"], "dana")
    page.goto(f"{server['base']}/app/chat")
    page.get_by_label("Ask the assistant").fill("Read everything")
    page.get_by_role("button", name="Ask").click()
    budget = page.locator("#transcript li.msg.budget")
    budget.wait_for()
    assert budget.inner_text().startswith("Turn budget reached: this turn ")
    assert page.locator("#transcript li.msg.tool").count() >= 1
    assert "I stopped" in page.locator(SETTLED).inner_text()
    context.close()
