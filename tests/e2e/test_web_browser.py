"""The executive's morning in a real browser: Playwright driving Debian's Chromium against
the service on a real port (its lifespan runs the in-process governance runner).

The deployment is set up as the README's web-app section says, with the `assistant`
console script itself (no seeding of users or addresses behind its back): `db upgrade`,
`sandbox seed --executive dana` (dana: executive role only), `triage run`, `users password
dana`. Then, as dana: sign in, see the inbox, correct a triage, approve a draft, undo it
inside the hold window, reject another with a reason, find the history entry; axe-core
finds no accessibility violation on any room; the rooms fit a phone's width. Set
WEB_SCREENSHOTS=DIR to keep a screenshot of each room (the README's come from there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.core.settings import Settings
from tests.fakes.serving import serve_app
from tests.fixtures.postgres import require_or_skip
from tests.fixtures.web import HOLD, PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
ROOMS = ["/app/inbox", "/app/review", "/app/meetings", "/app/history", "/app/delegates"]

pytestmark = pytest.mark.slow


def _undecided_subjects(database: Path) -> list[str]:
    """Subjects, each unique in the inbox, of mail the rules left to a person, from
    colleagues (a reply can be drafted)."""
    import json
    import sqlite3
    from collections import Counter

    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT t.category, t.sender, q.message FROM triage_results t "
            "JOIN mail_triage_queue q ON q.provider_id = t.message_id "
            "ORDER BY t.message_date DESC"
        ).fetchall()
    subject = {
        i: json.loads(message).get("subject") or "" for i, (_, _, message) in enumerate(rows)
    }
    seen = Counter(subject.values())
    return [
        subject[i]
        for i, (category, sender, _) in enumerate(rows)
        if category is None
        and (sender or "").endswith("@northwind.example")
        and subject[i]
        and seen[subject[i]] == 1
    ]


def readme_setup(folder: Path) -> dict[str, str]:
    """The README's commands for a new executive, run as a new user runs them (the
    `assistant` console script, from the repository, with the README's hold window for
    Undo); returns the environment the service runs with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_DATA_DIR"] = str(folder)
    env["ASSISTANT_GOVERNANCE__HOLD_WINDOW_SECONDS"] = json.dumps(HOLD)
    for args, typed in (
        (["db", "upgrade"], None),
        (["sandbox", "seed", "--executive", "dana"], None),
        (["triage", "run"], None),
        (["users", "password", "dana"], PASSWORD + "\n"),
    ):
        assistant_command(env, *args, typed=typed)
    return env


def assistant_command(env: dict[str, str], *args: str, typed: str | None = None) -> None:
    """Run the `assistant` console script as a person at a terminal would; it must succeed."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("assistant")), *args],
        input=typed,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_or_skip("playwright is not installed (make install-dev)")
    if not CHROMIUM.exists():
        require_or_skip("Debian's chromium is not installed (make system-deps)")
    folder = tmp_path_factory.mktemp("web-browser")
    readme_setup(folder)
    # `assistant serve` with the README's environment (and a quicker runner poll)
    settings = Settings(
        data_dir=folder,
        governance={
            "runner": "inprocess",
            "poll_interval_seconds": 0.2,
            "hold_window_seconds": HOLD,
        },
    )
    from assistant.app import create_app

    with serve_app(
        create_app(settings), name="web-app", startup_timeout_s=60, lifespan="on"
    ) as port:
        yield {
            "base": f"http://127.0.0.1:{port}",
            "subjects": _undecided_subjects(folder / "assistant.db"),
            "database": folder / "assistant.db",
        }


@pytest.fixture(scope="module")
def browser(server: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/app/inbox")
    assert "/auth/login" in page.url  # no session yet: the sign-in form, then back here
    page.get_by_label("User name").fill("dana")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/app/inbox")


def _axe_violations(page: Any) -> list[dict[str, Any]]:
    # evaluate() runs through the DevTools protocol, not as page script: the strict CSP
    # (no inline script) stays on while axe checks the page.
    page.evaluate(AXE.read_text())
    result: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))"
        ".slice(0, 3)}))"
    )
    return result


#: Screenshots for the README are rendered at 3/4 scale: the layout (in CSS pixels) is the
#: same, the PNGs about half the bytes.
SHOT_SCALE = 0.75 if os.environ.get("WEB_SCREENSHOTS") else 1.0


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("WEB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_the_executive_morning(server: dict[str, Any], browser: Any) -> None:
    base = server["base"]
    first, second = server["subjects"][:2]
    context = browser.new_context(
        viewport={"width": 1280, "height": 860}, device_scale_factor=SHOT_SCALE
    )
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    _sign_in(page, base)
    expect_heading(page, "Inbox")
    # an executive, not an admin: no console in her navigation
    assert page.get_by_role("link", name="Connectors").count() == 0
    assert page.get_by_role("heading", name="Needs your decision").is_visible()
    assert page.get_by_text("decided by a rule").first.is_visible()
    _shot(page, "inbox")

    # correct a triage, with a note: the assistant then drafts the reply for review
    item = page.locator("li.item", has=page.get_by_role("link", name=first, exact=True))
    item.get_by_label("Note for a correction (optional)").fill("he is waiting for my answer")
    item.get_by_role("button", name="respond", exact=True).click()
    page.wait_for_url(f"{base}/app/inbox?done=corrected")
    assert page.get_by_role("status").filter(has_text="Triage corrected").is_visible()
    page.get_by_role("link", name=first, exact=True).first.click()
    expect_heading(page, first)
    assert page.get_by_text("decided by a person").is_visible()
    _shot(page, "message")

    # approve the draft; undo it inside the hold window
    page.get_by_role("link", name="Review").click()
    expect_heading(page, "Review")
    card = page.locator("article.card").first
    assert card.get_by_text("Why it waits:").is_visible()
    _shot(page, "review")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{base}/app/review?done=approved")
    countdown = page.locator(".countdown").first
    countdown.wait_for()
    left = int(countdown.inner_text().split()[0])
    assert 0 < left <= 30
    _shot(page, "undo")
    page.wait_for_timeout(1500)  # the countdown ticks in the page, without a reload
    assert int(page.locator(".countdown").first.inner_text().split()[0]) < left
    page.get_by_role("button", name="Undo").first.click()
    page.wait_for_url(f"{base}/app/review?done=undone")
    assert page.get_by_text("Undone: it will not happen.").is_visible()
    assert page.locator("li[data-state=cancelled]").count() == 1

    # another draft, rejected with a reason
    page.get_by_role("link", name="Inbox").click()
    item = page.locator("li.item", has=page.get_by_role("link", name=second, exact=True))
    item.get_by_role("button", name="respond", exact=True).click()
    page.wait_for_url(f"{base}/app/inbox?done=corrected")
    page.get_by_role("link", name="Review").click()
    card = page.locator("article.card").first
    card.locator("summary", has_text="Reject").click()  # opens the reject form
    card.get_by_label("Reason (required)").fill("I will call Raj instead")
    card.locator("button.danger", has_text="Reject").click()
    page.wait_for_url(f"{base}/app/review?done=rejected")

    # the history has it, with its reason and audit event id
    page.get_by_role("link", name="History").click()
    expect_heading(page, "History")
    page.get_by_label("Search").fill("call Raj")
    page.get_by_role("button", name="Search").click()
    row = page.locator("tr", has_text="I will call Raj instead").first
    assert "rejected" in row.inner_text()
    event_id = row.get_attribute("data-event")
    assert event_id and event_id in row.inner_text()
    page.goto(f"{base}/app/history")
    _shot(page, "history")
    page.goto(f"{base}/app/meetings")
    _shot(page, "meetings")
    assert problems == [], problems  # no CSP violation, no failed asset, no script error
    context.close()


def test_live_update_without_reload(server: dict[str, Any], browser: Any) -> None:
    """A draft proposed elsewhere (here: from another tab) appears on an open review page
    by itself, without a reload."""
    base = server["base"]
    third = server["subjects"][2]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    watching = context.new_page()
    _sign_in(watching, base)
    watching.goto(f"{base}/app/review")
    watching.evaluate("window.sameDocument = true")
    before = watching.locator("article.card").count()

    other = context.new_page()
    other.goto(f"{base}/app/inbox")
    item = other.locator("li.item", has=other.get_by_role("link", name=third, exact=True))
    item.get_by_role("button", name="respond", exact=True).click()
    other.wait_for_url(f"{base}/app/inbox?done=corrected")

    watching.get_by_text("Updated just now.").wait_for(timeout=15_000)
    assert watching.evaluate("window.sameDocument") is True  # no reload happened
    assert watching.locator("article.card").count() == before + 1
    context.close()


def test_she_grants_and_revokes_a_delegate(server: dict[str, Any], browser: Any) -> None:
    """Dana lets Jordan (a delegate an admin added) read her mail, then revokes it. Runs
    before the accessibility check, so that check meets the room with its table and form."""
    base = server["base"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env["ASSISTANT_DATA_DIR"] = str(server["database"].parent)
    assistant_command(
        env, "users", "add", "jordan", "--role", "delegate", "--display-name", "Jordan Lee"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, base)
    page.get_by_role("link", name="Delegates").click()
    expect_heading(page, "Delegates")
    page.get_by_label("Delegate", exact=True).select_option(label="Jordan Lee")
    for scope in ("propose actions for you", "cancel your actions", "draft replies for you"):
        page.get_by_label(scope).uncheck()
    page.get_by_role("button", name="Grant").click()
    page.wait_for_url(f"{base}/app/delegates?notice=*")
    page.get_by_text("Jordan Lee may act for you").wait_for()
    row = page.locator("tr[data-delegation]")
    assert row.count() == 1
    assert "read your mail" in row.inner_text() and "propose" not in row.inner_text()
    assert row.locator("[data-state]").inner_text() == "active"
    page.get_by_role("button", name="Revoke Jordan Lee").click()
    page.wait_for_url(f"{base}/app/delegates?notice=*")
    assert page.locator("tr[data-delegation] [data-state]").inner_text().startswith("revoked")
    context.close()


def test_rooms_are_accessible_and_fit_a_phone(server: dict[str, Any], browser: Any) -> None:
    if not AXE.exists():
        require_or_skip("axe-core is not installed (make install-dev runs npm ci)")
    base = server["base"]
    control = browser.new_page()  # the check can fail: an unlabelled field is reported
    control.set_content('<html lang="en"><title>t</title><main><input></main></html>')
    assert "label" in {v["id"] for v in _axe_violations(control)}
    control.close()
    for width, height in ((1280, 860), (390, 844)):
        context = browser.new_context(
            viewport={"width": width, "height": height}, device_scale_factor=SHOT_SCALE
        )
        page = context.new_page()
        _sign_in(page, base)
        for room in ROOMS:
            page.goto(f"{base}{room}")
            assert _axe_violations(page) == [], room
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{room} scrolls sideways at {width}px"
            if width < 500:
                _shot(page, f"phone-{room.rsplit('/', 1)[-1]}")
        # keyboard: the skip link is the first stop and leads to the content
        page.goto(f"{base}/app/inbox")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        context.close()


def expect_heading(page: Any, name: str) -> None:
    page.get_by_role("heading", name=name, level=1).wait_for()
