"""Benchmark: the web app's rooms with 200 items, against the JSON API for the same items.

Builds a SQLite deployment (the sandbox, triaged by the rules) and adds synthetic mail and
pending drafts for the executive until the inbox and the review queue hold ``--items``
each. Prints, side by side, the median server time of the HTML page and of the JSON API
listing the same items (the baseline: what any client must pay to get the data), and the
time Chromium takes to load and lay out the page (navigation start to the load event).

    .venv/bin/python -m bench.web_pages [--items 200] [--runs 15]

Needs Debian's chromium and Playwright (make install-dev) for the browser figures.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

DANA = "dana.whitfield@northwind.example"
PASSWORD = "correct-horse-battery"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def build(folder: Path, items: int) -> Any:
    from assistant.auth import users
    from assistant.core.clock import utcnow
    from assistant.core.principal import system_principal
    from assistant.governance_app import build_governance
    from assistant.ingestion.models import TriageQueueItem
    from assistant.services import Services
    from assistant.triage.models import Category, Provenance, TriageResult
    from assistant.triage.store import save_result
    from governance.service import Proposal
    from tests.fixtures.web import build_triaged, web_settings

    await build_triaged(folder)
    settings = web_settings(folder)
    services = await Services.build(settings)
    now = utcnow()
    async with services.sessions() as session:
        have = await session.scalar(
            __import__("sqlalchemy")
            .select(__import__("sqlalchemy").func.count())
            .select_from(TriageQueueItem)
        )
        for i in range(max(0, items - int(have or 0))):
            provider_id = f"bench-{i}"
            message = {
                "id": provider_id,
                "folder": "inbox",
                "subject": f"Bench message {i}: quarterly figures for region {i % 7}",
                "sender": {"address": f"sender{i % 13}@partner.example", "name": f"Sender {i}"},
                "to": [{"address": DANA}],
                "date": (now - timedelta(minutes=i)).isoformat(),
                "text": "Hello " * 40,
            }
            session.add(
                TriageQueueItem(
                    tenant_id="default",
                    connector="sandbox-mail",
                    folder="inbox",
                    provider_id=provider_id,
                    status="done",
                    attempts=1,
                    message=message,
                    enqueued_at=now,
                )
            )
            await save_result(
                session,
                tenant_id="default",
                mailbox=DANA,
                result=TriageResult(
                    message_id=provider_id,
                    category=list(Category)[i % 4],
                    reason="synthetic item for the benchmark",
                    summary=f"Bench message {i}",
                    provenance=Provenance(stage="rule", rule_id="bench"),
                    confidence=0.9,
                ),
                sender=message["sender"]["address"],
                message_date=now - timedelta(minutes=i),
            )
        # dana exists as `assistant sandbox seed --executive dana` made her, bound to the
        # sandbox mailbox; she gets her password as `assistant users password dana` does it
        dana = await users.find_user(session, "default", "dana")
        assert dana is not None
        await users.set_password(session, dana, PASSWORD)
        dana_id = str(dana.id)
        await session.commit()
    governance = build_governance(services, mode="off")
    async with services.sessions() as session:
        for i in range(items):
            await governance.actions.propose(
                session,
                system_principal("default", "pipeline"),
                Proposal(
                    kind="email.draft.create",
                    arguments={
                        "to": [{"address": f"colleague{i % 9}@northwind.example"}],
                        "subject": f"Draft {i}",
                        "body_text": "Thank you, noted. " * 10,
                    },
                    on_behalf_of=dana_id,
                ),
            )
        await session.commit()
    services.bench_executive = dana_id  # type: ignore[attr-defined]
    return services


async def server_times(services: Any, runs: int) -> dict[str, float]:
    from assistant.app import create_app
    from assistant.core.principal import Role

    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        form = await client.get("/auth/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        await client.post(
            "/auth/password",
            data={"username": "dana", "password": PASSWORD, "csrf": csrf.group(1)},
        )
        html = {"Accept": "text/html"}
        targets = {
            "inbox page (HTML)": ("/app/inbox", html),
            "inbox API (JSON)": ("/api/v1/triage/inbox?limit=200", {}),
            "review page (HTML)": ("/app/review", html),
            "review API (JSON)": (
                f"/api/v1/actions?state=pending_review&limit=200&owner={services.bench_executive}",
                {},
            ),
        }
        cards = (await client.get("/app/review", headers=html)).text.count('<article class="card"')
        items = (await client.get("/app/inbox", headers=html)).text.count('<li class="item"')
        print(f"  pages hold {items} inbox items and {cards} review cards")
        admin = services.auth.mint("bench-admin", "default", [Role.ADMIN])
        medians = {}
        for name, (path, headers) in targets.items():
            if "review API" in name:  # the actions API shows her mailbox to an admin
                headers = {"Authorization": f"Bearer {admin}"}
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.get(path, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
            medians[name] = statistics.median(samples)
    return medians


def browser_times(folder: Path, runs: int) -> dict[str, float]:
    import threading

    import uvicorn
    from playwright.sync_api import sync_playwright

    from assistant.app import create_app
    from tests.fakes.serving import free_port
    from tests.fixtures.web import web_settings

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(web_settings(folder)), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, float] = {}
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = browser.new_page()
            page.goto(f"{base}/auth/login")
            page.get_by_label("User name").fill("dana")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/app/inbox")
            for room in ("inbox", "review"):
                served, loaded = [], []
                for _ in range(runs):
                    page.goto(f"{base}/app/{room}", wait_until="load")
                    timing = page.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return [t.responseEnd - t.startTime,"
                        " (t.loadEventEnd || t.domComplete) - t.startTime]; })()"
                    )
                    served.append(timing[0] / 1000)
                    loaded.append(timing[1] / 1000)
                results[f"{room} in Chromium: last byte"] = statistics.median(served)
                results[f"{room} in Chromium: loaded"] = statistics.median(loaded)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        async def server_side() -> dict[str, float]:
            services = await build(folder, args.items)
            try:
                return await server_times(services, args.runs)
            finally:
                await services.aclose()

        figures = asyncio.run(server_side())
        print(
            f"{args.items} messages in the inbox, {args.items} drafts in review; "
            f"median of {args.runs} requests (server side, in-process)"
        )
        for name, seconds in figures.items():
            print(f"  {name:28} {seconds * 1000:8.1f} ms")
        inbox = figures["inbox page (HTML)"] / figures["inbox API (JSON)"]
        review = figures["review page (HTML)"] / figures["review API (JSON)"]
        print(f"  HTML/JSON ratio: inbox {inbox:.2f}, review {review:.2f}")
        if not args.no_browser:
            for name, seconds in browser_times(folder, max(3, args.runs // 3)).items():
                print(f"  {name:36} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
