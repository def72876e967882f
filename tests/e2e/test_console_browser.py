"""The admin's and the auditor's rooms in a real browser (Playwright driving Debian's
Chromium against the service on a real port, with its in-process governance runner).

An admin adds a sandbox mail connector for Dana's mailbox, bound to her, sees it healthy
and Dana's mail come from it, rolls the
policy back one version and sees the running service follow it; an auditor filters the
audit log to one action, exports it with its proof, verifies the chain and opens the gate
report; an auditor finds no write anywhere she can go; axe-core finds no accessibility
violation in these rooms.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.core.principal import Principal, Role
from governance.policy import default_policy_path
from tests.e2e.test_web_browser import AXE, _axe_violations, _shot, browser, expect_heading
from tests.fakes.serving import serve_app
from tests.fixtures.postgres import require_or_skip
from tests.fixtures.web import (
    DANA,
    PASSWORD,
    add_user,
    build_triaged,
    give_password,
    web_settings,
)

__all__ = ["browser"]  # fixtures

pytestmark = pytest.mark.slow

SHIPPED = '"2026-11-24.1"'
EDITED = '"2026-12-01.1"'
CONSOLE_ROOMS = [
    "/app/admin/connectors",
    "/app/admin/connectors/new?slug=imap.email",
    "/app/admin/governance",
    "/app/admin/operations",
    "/app/admin/people",
    "/app/audit",
    "/app/audit/verify",
    "/app/audit/gate",
    "/app/audit/quality",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The service with an admin, an auditor and an executive, and two recorded versions of
    its (private) policy file: as shipped, then an edit that is in force."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_or_skip("playwright is not installed (make install-dev)")
    from tests.e2e.test_web_browser import CHROMIUM

    if not CHROMIUM.exists():
        require_or_skip("Debian's chromium is not installed (make system-deps)")
    folder = tmp_path_factory.mktemp("console-browser")
    asyncio.run(build_triaged(folder))
    policy = folder / "policies.yaml"
    shutil.copyfile(default_policy_path(), policy)
    settings = web_settings(
        folder, runner="inprocess", poll_interval_seconds=0.2, policy_file=policy
    )

    async def prepare() -> None:
        from assistant.change_control import snapshot_policy
        from assistant.services import Services

        services = await Services.build(settings)
        try:
            await add_user(services, "ada", Role.ADMIN, email="ada@northwind.example")
            await add_user(services, "otto", Role.AUDITOR, email="otto@northwind.example")
            await give_password(services, "dana")  # the quick start's executive
            await add_user(services, "eve", Role.EXECUTIVE, email="eve@northwind.example")
            operator = Principal(user_id="ops", tenant_id="default", roles=frozenset({Role.ADMIN}))
            async with services.sessions() as session, session.begin():
                await snapshot_policy(session, operator, settings, "as shipped")
            policy.write_text(
                policy.read_text().replace(f"version: {SHIPPED}", f"version: {EDITED}")
            )
            async with services.sessions() as session, session.begin():
                await snapshot_policy(session, operator, settings, "new label")
        finally:
            await services.aclose()

    asyncio.run(prepare())
    from assistant.app import create_app

    with serve_app(
        create_app(settings), name="console-app", startup_timeout_s=60, lifespan="on"
    ) as port:
        yield {"base": f"http://127.0.0.1:{port}", "policy": policy}


def _sign_in(page: Any, base: str, username: str, landing: str) -> None:
    page.goto(f"{base}/app")
    assert "/auth/login" in page.url
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{landing}")


def _policy_in_force(page: Any) -> str:
    return str(page.locator("#policy-in-force").inner_text())


def test_admin_adds_a_connector_and_rolls_the_policy_back(
    server: dict[str, Any], browser: Any
) -> None:
    base = server["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    # Eve, a new executive, has no mailbox yet: no mail over the API
    eve = browser.new_context()
    _sign_in(eve.new_page(), base, "eve", "/app/inbox")
    assert eve.request.get(f"{base}/api/v1/triage/inbox").json() == []

    _sign_in(page, base, "ada", "/app/admin/connectors")
    expect_heading(page, "Connectors")

    # the shared sandbox mailbox, bound to Eve, from the form generated from its config model
    page.get_by_label("Type").select_option("sandbox.email")
    page.get_by_role("button", name="Next").click()
    expect_heading(page, "New Sandbox mailbox connector")
    page.get_by_label("Name (lower-case letters, digits, . _ -)").fill("dana-mail")
    page.get_by_label("Mailbox").fill(DANA)
    page.get_by_role("group", name="Executives it serves").get_by_label("Eve").check()
    page.get_by_label("Person").fill("Ada")
    page.get_by_label("Role").fill("IT")
    page.get_by_label("Contact (email or https webhook)").fill("ada@northwind.example")
    page.get_by_label("Why (kept in the version history)").fill("Eve shares Dana's mailbox")
    _shot(page, "admin-connector-form")
    page.get_by_role("button", name="Add connector").click()
    page.wait_for_url(f"{base}/app/admin/connectors?notice=*")
    assert page.get_by_role("status").filter(has_text="dana-mail added").is_visible()
    row = page.locator("tr[data-connector=dana-mail]")
    assert row.locator("[data-health]").get_attribute("data-health") == "ok"
    assert "Eve" in row.locator("[data-serves]").inner_text()
    # and Eve's mail now comes from it
    inbox = eve.request.get(f"{base}/api/v1/triage/inbox").json()
    assert inbox and {item["mailbox"] for item in inbox} == {DANA.lower()}
    eve.close()
    row.get_by_role("button", name="Test").click()
    page.wait_for_url(f"{base}/app/admin/connectors?notice=*")
    assert page.get_by_role("status").filter(has_text="dana-mail ok").is_visible()
    _shot(page, "admin-connectors")

    # the policy: the edit is in force; roll back one version and see the service follow
    page.get_by_role("link", name="Governance").click()
    expect_heading(page, "Governance")
    assert "2026-12-01.1@" in _policy_in_force(page)
    page.get_by_role("button", name="Roll back to policy@1").click()
    page.wait_for_url(f"{base}/app/admin/governance?notice=*")
    assert page.get_by_role("status").filter(has_text="policy@1 restored as policy@3").is_visible()
    deadline = time.monotonic() + 10
    while "2026-11-24.1@" not in _policy_in_force(page):
        assert time.monotonic() < deadline, "the running service did not follow the rollback"
        page.wait_for_timeout(300)
        page.reload()
    assert page.locator("section[data-version='policy@3']").get_by_text("in force").is_visible()
    assert f"version: {SHIPPED}" in server["policy"].read_text()
    _shot(page, "admin-governance")
    assert problems == [], problems
    context.close()


def test_admin_manages_people_and_runs_the_drill(server: dict[str, Any], browser: Any) -> None:
    base = server["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    _sign_in(page, base, "ada", "/app/admin/connectors")
    page.get_by_role("link", name="People").click()
    expect_heading(page, "People")
    # her own row offers no form: another admin changes her roles and account
    assert page.locator("tr[data-user=ada] form").count() == 0
    page.get_by_label("User name").fill("dan")
    page.get_by_label("Display name").fill("Dan Delegate")
    page.get_by_role("group", name="Roles", exact=True).get_by_label("delegate").check()
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url(f"{base}/app/admin/people?notice=*")
    assert page.locator("tr[data-user=dan] [data-roles]").inner_text() == "delegate"
    page.get_by_role("button", name="Disable dan", exact=True).click()
    page.wait_for_url(f"{base}/app/admin/people?notice=*")
    assert page.locator("tr[data-user=dan] [data-account]").inner_text() == "disabled"

    page.get_by_label("Key name").fill("ci-reader")
    page.get_by_role("group", name="Key roles").get_by_label("auditor").check()
    page.get_by_role("button", name="Create key").click()
    key = page.locator("code.secret-once").inner_text()
    assert key.startswith("ea_")
    page.goto(f"{base}/app/admin/people")
    assert key not in page.content() and page.locator("tr[data-key=ci-reader]").is_visible()
    _shot(page, "admin-people")

    page.get_by_role("link", name="Operations").click()
    expect_heading(page, "Operations")
    page.get_by_role("button", name="Run the rollback drill").click()
    page.wait_for_url(f"{base}/app/admin/operations?notice=*", timeout=60_000)
    assert page.get_by_role("status").filter(has_text="drill passed").is_visible()
    assert "passed" in page.locator("#last-drill").inner_text()
    _shot(page, "admin-operations")
    assert problems == [], problems
    context.close()


def test_auditor_filters_exports_verifies_and_opens_the_gate(
    server: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    base = server["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    _sign_in(page, base, "otto", "/app/audit")
    expect_heading(page, "Audit log")

    page.get_by_label("Event kind").select_option("triage.decided")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"{base}/app/audit?*event=triage.decided*")
    rows = page.locator("table.audit tbody tr")
    assert rows.count() > 0
    kinds = {rows.nth(i).get_attribute("data-event-kind") for i in range(rows.count())}
    assert kinds == {"triage.decided"}
    shown = [int(str(rows.nth(i).get_attribute("data-seq"))) for i in range(rows.count())]
    _shot(page, "audit-log")

    with page.expect_download() as download:
        page.get_by_role("link", name="JSON Lines").click()
    saved = tmp_path / "audit.jsonl"
    download.value.save_as(saved)
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    proof = lines[-1]["proof"]
    assert {row["action"] for row in lines[:-1]} == {"triage.decided"}
    assert [row["seq"] for row in lines[:-1]][: len(shown)] == shown
    assert proof["chain_ok"] is True and proof["filter"] == {"event": "triage.decided"}

    page.get_by_role("link", name="Verify the chain").click()
    expect_heading(page, "Chain verification")
    assert page.get_by_role("status").filter(has_text="The chain is intact").is_visible()
    # checked against the deployment's anchor, which the page names
    assert page.locator("#verify-anchor").inner_text().startswith("file ")
    _shot(page, "audit-verify")

    page.get_by_role("link", name="Gate", exact=True).click()
    expect_heading(page, "Go / no-go gate")
    assert page.locator("#gate-decision").inner_text().split("Answer: ")[1].split()[0] in {
        "GO",
        "NO-GO",
        "REVISE",
    }
    assert page.locator("tr[data-criterion=audit_chain]").is_visible()
    _shot(page, "audit-gate")
    page.get_by_role("link", name="The full report with its charts").click()
    page.wait_for_url(f"{base}/api/v1/gate/report?format=html*")
    assert page.locator("svg").count() > 0
    assert problems == [], problems
    context.close()


def test_an_auditor_reaches_no_write_from_the_ui(server: dict[str, Any], browser: Any) -> None:
    """Every page she can reach by following links offers no form that changes anything
    (signing out aside); the admin's form and the executive's rooms are closed to her."""
    base = server["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    _sign_in(page, base, "otto", "/app/audit")
    seen: set[str] = set()
    todo = ["/app/audit"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        page.goto(f"{base}{path}")
        posts = page.eval_on_selector_all(
            "form", "fs => fs.filter(f => f.method === 'post').map(f => f.getAttribute('action'))"
        )
        assert posts == ["/auth/logout"], (path, posts)
        links = page.eval_on_selector_all(
            "a[href^='/app']", "as => as.map(a => a.getAttribute('href'))"
        )
        todo.extend(h.split("#")[0] for h in links if "/export" not in h and "/static/" not in h)
        # and no button outside a form (the page's script posts nothing)
        loose = page.eval_on_selector_all(
            "button", "bs => bs.filter(b => !b.closest('form')).map(b => b.textContent)"
        )
        assert loose == [], (path, loose)
    assert {
        "/app/admin/connectors",
        "/app/admin/governance",
        "/app/admin/operations",
        "/app/admin/people",
        "/app/audit/gate",
        "/app/audit/quality",
    } <= seen
    assert not any(p.startswith(("/app/inbox", "/app/review", "/app/history")) for p in seen)
    for closed in (
        "/app/admin/connectors/new?slug=sandbox.email",
        "/app/admin/connectors/sandbox-mail/edit",
    ):
        answer = page.goto(f"{base}{closed}")
        assert answer is not None and answer.status == 403
        assert page.get_by_text("PermissionDeniedError").is_visible()
    # Posting the admins' forms herself, with her own valid CSRF token, is refused too.
    page.goto(f"{base}/app/audit")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    for action, fields in (
        ("/app/admin/connectors", {"slug": "sandbox.email", "name": "otto-mail"}),
        ("/app/admin/governance/rollback", {"version": "policy@1", "reason": "mine"}),
        ("/app/admin/operations/drill", {}),
        ("/app/admin/people", {"username": "mallory", "roles": "admin"}),
        ("/app/admin/people/api-keys", {"name": "mine", "roles": "admin"}),
    ):
        answer = page.request.post(f"{base}{action}", form={"csrf": str(csrf), **fields})
        assert answer.status == 403, (action, answer.status)
        # refused for her role, not for a missing token or origin
        assert answer.json()["detail"] == "you may not do this", (action, answer.text())
    review = page.goto(f"{base}/app/review")
    assert review is not None and (review.status == 403 or page.url.endswith("/app/nobody"))
    context.close()


def test_console_rooms_are_accessible(server: dict[str, Any], browser: Any) -> None:
    if not AXE.exists():
        require_or_skip("axe-core is not installed (make install-dev runs npm ci)")
    base = server["base"]
    for width, height in ((1280, 860), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        _sign_in(page, base, "ada", "/app/admin/connectors")
        for room in CONSOLE_ROOMS:
            page.goto(f"{base}{room}")
            assert _axe_violations(page) == [], room
        context.close()
        # the activity room is the auditor's alone
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        _sign_in(page, base, "otto", "/app/audit")
        page.goto(f"{base}/app/audit/activity")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(f"{base}/app/audit/activity?executive=*")
        assert page.locator("table.activity-messages tbody tr").count() > 0
        assert _axe_violations(page) == [], "/app/audit/activity"
        context.close()
