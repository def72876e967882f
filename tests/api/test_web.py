"""The web app over HTTP: sign-in and scope, CSRF, headers, every room's forms and their
typed errors, and what lands in the governed actions and the audit log."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from assistant.core.principal import Role
from assistant.triage.store import TriageCorrectionRow, TriageResultRow
from assistant.web.inbox import sanitize_mail_html
from governance.audit_models import AuditEvent
from governance.models import Action
from tests.fakes.openai_server import _openai_server, openai_server
from tests.fixtures.web import (
    HTML,
    add_user,
    csrf_of,
    give_password,
    sign_in,
    triaged_template,
    web,
)

__all__ = ["_openai_server", "openai_server", "triaged_template", "web"]  # fixtures

Web = tuple[httpx.AsyncClient, Any]


async def _undecided(services: Any, internal: bool = True) -> TriageResultRow:
    """A message the rules left to a person, from a colleague (a reply can be drafted)."""
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(TriageResultRow)
                .where(TriageResultRow.category.is_(None))
                .order_by(TriageResultRow.message_date.desc())
            )
        ).scalars()
        for row in rows:
            flags = row.result["flags"]
            sender = row.sender or ""
            if (
                not flags["phishing"]
                and not flags["prompt_injection"]
                and (sender.endswith("@northwind.example") == internal)
            ):
                return row
    raise AssertionError("the sandbox has no such message")


async def _dana(client: httpx.AsyncClient, services: Any) -> str:
    user_id = await give_password(services, "dana")
    await sign_in(client, "dana")
    return user_id


async def _correct(
    client: httpx.AsyncClient, row: TriageResultRow, category: str, note: str = ""
) -> httpx.Response:
    page = await client.get("/app/inbox", headers=HTML)
    return await client.post(
        "/app/inbox/correct",
        data={"csrf": csrf_of(page), "pick": f"{row.id}:{category}", f"note-{row.id}": note},
        headers=HTML,
    )


async def _dana_schedules_a_meeting(client: httpx.AsyncClient, services: Any) -> Action:
    """Dana signed in marks a mail "schedule": the meeting proposal it makes (the sandbox
    calendar has a free slot for it)."""
    await _dana(client, services)
    assert (await _correct(client, await _undecided(services), "schedule")).status_code == 303
    async with services.sessions() as session:
        event = await session.scalar(select(Action).where(Action.kind == "calendar.event.create"))
    assert event is not None
    return event


async def _pending_draft(client: httpx.AsyncClient, services: Any) -> Action:
    """The reply draft that correcting a message to respond proposes (mail the rules
    decided as respond at triage already has its own drafts: those are not it)."""
    pending = (Action.kind == "email.draft.create") & (Action.state == "pending_review")
    async with services.sessions() as session:
        before = set((await session.execute(select(Action.id).where(pending))).scalars())
    row = await _undecided(services)
    done = await _correct(client, row, "respond")
    assert done.status_code == 303
    async with services.sessions() as session:
        actions = (await session.execute(select(Action).where(pending))).scalars().all()
    new = [a for a in actions if a.id not in before]
    assert len(new) == 1, "correcting to respond proposes a reply draft"
    return new[0]


async def _state(services: Any, action_id: str) -> str:
    async with services.sessions() as session:
        action = await session.get(Action, action_id)
        assert action is not None
        return action.state


# ---------------------------------------------------------------------------- sign-in, shell


async def test_pages_send_people_to_sign_in_and_back(web: Web) -> None:
    client, services = web
    page = await client.get("/app/review?kind=email.send", headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fapp%2Freview%3Fkind%3Demail.send"
    live = await client.get("/app/live", headers={"Accept": "application/json"})
    assert live.status_code == 401 and live.json()["error"] == "SignInRequiredError"

    await give_password(services, "dana")
    done = await sign_in(client, "dana")
    assert done.headers["location"] == "/app/inbox"
    inbox = await client.get("/app/inbox", headers=HTML)
    assert inbox.status_code == 200 and "<h1>Inbox</h1>" in inbox.text

    # signed out: the session ends server-side, the pages ask for a sign-in again
    await client.post("/auth/logout", data={"csrf": csrf_of(inbox)})
    assert (await client.get("/app/inbox", headers=HTML)).status_code == 303


async def test_a_fresh_app_includes_the_rooms_with_their_first_request(web: Web) -> None:
    # The rooms' routes join the app on the first request under /app (assistant.web), before
    # it is routed: the first requests, even together and to different rooms, are answered
    # by their rooms, not 404.
    client, services = web
    await give_password(services, "dana")
    await sign_in(client, "dana")  # /auth: the rooms are not needed yet
    routes = len(client.app.routes)  # type: ignore[attr-defined]
    inbox, review, meetings = await asyncio.gather(
        client.get("/app/inbox", headers=HTML),
        client.get("/app/review", headers=HTML),
        client.get("/app/meetings", headers=HTML),
    )
    assert inbox.status_code == 200 and "<h1>Inbox</h1>" in inbox.text
    assert review.status_code == 200 and meetings.status_code == 200
    with_rooms = len(client.app.routes)  # type: ignore[attr-defined]
    assert with_rooms > routes
    assert (await client.get("/app/history", headers=HTML)).status_code == 200
    assert len(client.app.routes) == with_rooms  # type: ignore[attr-defined]  # included once


async def test_expired_session_asks_for_sign_in(web: Web) -> None:
    from sqlalchemy import update

    from assistant.auth.models import WebSession
    from assistant.core.clock import utcnow

    client, services = web
    await _dana(client, services)
    async with services.sessions() as session:
        await session.execute(update(WebSession).values(expires_at=utcnow()))
        await session.commit()
    page = await client.get("/app/inbox", headers=HTML)
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


async def test_commit_happens_before_the_response_is_sent(web: Web) -> None:
    """A browser follows a 303 at once: the state it reads next must be committed already
    (FastAPI's default commits request-scoped dependencies after sending the response)."""
    from sqlalchemy import func

    from assistant.auth.models import WebSession

    client, services = web
    await give_password(services, "dana")
    app = client.app  # type: ignore[attr-defined]
    seen: list[int] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start" and scope["path"] == "/auth/password":
                async with services.sessions() as session:
                    seen.append(int(await session.scalar(select(func.count(WebSession.id))) or 0))
            await send(message)

        await app(scope, receive, watch)

    spied = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=spy, raise_app_exceptions=False),
        base_url="http://testserver",
    )
    async with spied:
        await sign_in(spied, "dana")
    assert seen == [1]


async def test_security_headers_and_no_inline_script_or_style(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    for path in ("/app/inbox", "/app/review", "/app/meetings", "/app/history"):
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), path
        assert " style=" not in page.text and "<style" not in page.text, path
        assert not re.search(r"<[^>]+\son[a-z]+=", page.text), path  # no inline handlers
    asset = await client.get("/app/static/app.js")
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]


async def test_the_site_root_leads_to_the_web_app(web: Web) -> None:
    client, services = web
    anonymous = await client.get("/", headers=HTML)
    assert (anonymous.status_code, anonymous.headers["location"]) == (307, "/app")
    await add_user(services, "ada", Role.ADMIN, email="ada@northwind.example")
    await sign_in(client, "ada")
    followed = await client.get("/", headers=HTML, follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url).endswith("/app/admin/connectors")
    # Only GET: the root takes no writes, and it is not part of the API's document.
    assert (await client.post("/", headers=HTML)).status_code == 405
    assert "/" not in (await client.get("/openapi.json")).json()["paths"]


async def test_navigation_follows_roles(web: Web) -> None:
    client, services = web
    await add_user(services, "ada", Role.ADMIN, email="ada@northwind.example")
    await sign_in(client, "ada")
    landing = await client.get("/app", headers=HTML)
    assert landing.headers["location"] == "/app/admin/connectors"  # her own room
    nobody = await client.get("/app/nobody", headers=HTML)
    assert 'href="/app/inbox"' not in nobody.text and 'href="/app/review"' not in nobody.text
    refused = await client.get("/app/inbox", headers=HTML)
    assert refused.status_code == 403 and "PermissionDeniedError" in refused.text
    async with services.sessions() as session:
        denied = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
        )
    assert denied is not None and denied.actor_id != ""


# ---------------------------------------------------------------------------- scope


async def test_an_executive_sees_only_her_own_mail_and_actions(web: Web) -> None:
    client, services = web
    await add_user(services, "eve", Role.EXECUTIVE, email="eve@northwind.example")
    await sign_in(client, "eve")
    inbox = await client.get("/app/inbox", headers=HTML)
    assert "0 messages" in inbox.text
    api = await client.get("/api/v1/triage/inbox")
    assert api.status_code == 200 and api.json() == []

    row = await _undecided(services)
    refused = await _correct(client, row, "ignore")
    assert refused.status_code == 404 and "NotFoundError" in refused.text
    opened = await client.get(
        "/app/inbox/message", params={"id": row.message_id, "mailbox": row.mailbox}, headers=HTML
    )
    assert opened.status_code == 404

    # Dana's draft: Eve can neither see it nor approve it
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    await sign_in(client, "eve")
    review = await client.get("/app/review", headers=HTML)
    assert draft.id not in review.text
    approve = await client.post(
        f"/app/review/{draft.id}/approve", data={"csrf": csrf_of(review)}, headers=HTML
    )
    assert approve.status_code == 404
    assert await _state(services, draft.id) == "pending_review"


async def _grant(services: Any, executive: str, delegate: str, scopes: list[str] | None) -> None:
    from assistant.auth import users
    from assistant.core.principal import Principal

    async with services.sessions() as session:
        found = {u.username: u for u in await users.list_users(session, "default")}
        boss = found[executive]
        await users.grant_delegation(
            session,
            Principal(user_id=boss.id, tenant_id="default", roles=frozenset({Role.EXECUTIVE})),
            executive=boss,
            delegate=found[delegate],
            scopes=scopes,
        )
        await session.commit()


async def test_no_room_shows_another_executives_items_not_even_by_id(web: Web) -> None:
    """Eve (an executive whose mailbox is not connected) meets Dana's mail, drafts, history
    and meetings nowhere: not in a room, not by id, not through the API or the agent."""
    from assistant.agent.scope import resolve_scope
    from assistant.auth.principal import AuthenticatedPrincipal

    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)  # Dana's, from a correction
    meeting_mail = await _undecided(services)
    assert (await _correct(client, meeting_mail, "schedule")).status_code == 303
    async with services.sessions() as session:
        event = await session.scalar(select(Action).where(Action.kind == "calendar.event.create"))
        audit_ids = list((await session.execute(select(AuditEvent.event_id))).scalars())
    assert event is not None
    mail = await _undecided(services)

    eve_id = await add_user(services, "eve", Role.EXECUTIVE, email="eve@northwind.example")
    await sign_in(client, "eve")
    rooms = {
        room: (await client.get(f"/app/{room}", headers=HTML)).text
        for room in ("inbox", "review", "history", "meetings")
    }
    assert "0 messages" in rooms["inbox"] and mail.message_id not in rooms["inbox"]
    for text in rooms.values():
        assert draft.id not in text and event.id not in text
        assert not any(i in text for i in audit_ids)
    csrf = csrf_of(await client.get("/app/review", headers=HTML))
    by_id = [
        ("get", "/app/inbox/message", {"id": mail.message_id, "mailbox": mail.mailbox}),
        ("post", "/app/inbox/correct", {"pick": f"{mail.id}:ignore"}),
        ("post", f"/app/review/{draft.id}/approve", {}),
        ("post", f"/app/review/{draft.id}/edit", {"body_text": "mine now"}),
        ("post", f"/app/review/{draft.id}/reject", {"reason": "no"}),
        ("post", f"/app/review/{draft.id}/revise", {"instructions": "shorter"}),
        ("post", f"/app/actions/{draft.id}/undo", {}),
        ("post", f"/app/actions/{draft.id}/rollback", {}),
        ("post", f"/app/meetings/{event.id}/choose", {}),
        ("post", f"/app/meetings/{event.id}/duration", {"minutes": "30"}),
    ]
    for method, url, data in by_id:
        if method == "get":
            answer = await client.get(url, params=data, headers=HTML)
        else:
            answer = await client.post(url, data={"csrf": csrf, **data}, headers=HTML)
        assert answer.status_code == 404, (url, answer.status_code)
    # bulk approve refuses another's card alone (audited), not the whole form
    bulk = await client.post(
        "/app/review/bulk", data={"csrf": csrf, "action_id": draft.id}, headers=HTML
    )
    assert bulk.status_code == 303 and bulk.headers["location"].endswith("done=bulk-partial")
    assert await _state(services, draft.id) == "pending_review"
    assert await _state(services, event.id) == "pending_review"

    # the API and the chat agent draw the same line
    assert (await client.get("/api/v1/triage/inbox")).json() == []
    assert draft.id not in (await client.get("/api/v1/review")).text
    assert (await client.get(f"/api/v1/review/{draft.id}")).status_code in {403, 404}
    eve = AuthenticatedPrincipal(
        user_id=eve_id, tenant_id="default", roles=frozenset({Role.EXECUTIVE})
    )
    async with services.sessions() as session:
        scope = await resolve_scope(session, eve, services.connectors)
    assert scope.mailbox is None and scope.calendar is None


async def test_the_web_app_the_api_and_the_agent_agree_on_her_mailbox(web: Web) -> None:
    from assistant.agent.scope import resolve_scope
    from assistant.auth.principal import AuthenticatedPrincipal
    from assistant.web.scope import executives_for

    client, services = web
    dana_id = await _dana(client, services)
    dana = AuthenticatedPrincipal(
        user_id=dana_id, tenant_id="default", roles=frozenset({Role.EXECUTIVE})
    )
    async with services.sessions() as session:
        (web_view,) = await executives_for(session, dana, services.connectors)
        agent = await resolve_scope(session, dana, services.connectors)
    api = (await client.get("/api/v1/triage/inbox", params={"limit": 500})).json()
    assert agent.mailbox is not None
    assert web_view.mailboxes == {m["mailbox"] for m in api} == {agent.mailbox.connector.mailbox}
    page = (await client.get("/app/inbox", headers=HTML)).text
    assert f"{len(api)} messages" in page


async def test_a_delegate_acts_only_within_her_grants_scopes(web: Web) -> None:
    """Jordan may read Dana's triaged mail (triage.read, mail.read) and nothing else."""
    client, services = web
    dana_id = await _dana(client, services)
    draft = await _pending_draft(client, services)
    await add_user(services, "jordan", Role.DELEGATE, email="jordan@northwind.example")
    await _grant(services, "dana", "jordan", ["triage.read", "mail.read"])
    await sign_in(client, "jordan")
    inbox = await client.get("/app/inbox", headers=HTML)
    assert inbox.status_code == 200 and "0 messages" not in inbox.text
    assert 'href="/app/review"' not in inbox.text  # the navigation offers what she may do
    mail = await _undecided(services)
    opened = await client.get(
        "/app/inbox/message", params={"id": mail.message_id, "mailbox": mail.mailbox}, headers=HTML
    )
    assert opened.status_code == 200
    csrf = csrf_of(inbox)
    for url, data in [
        ("/app/inbox/correct", {"pick": f"{mail.id}:ignore"}),
        (f"/app/review/{draft.id}/approve", {}),
        (f"/app/review/{draft.id}/revise", {"instructions": "shorter"}),
    ]:
        answer = await client.post(url, data={"csrf": csrf, **data}, headers=HTML)
        assert answer.status_code == 403, url
    for room in ("review", "history", "meetings"):
        assert (await client.get(f"/app/{room}", headers=HTML)).status_code == 403, room
    acting = {"X-On-Behalf-Of": dana_id}
    assert (await client.get("/api/v1/triage/inbox", headers=acting)).status_code == 200
    assert (await client.get("/api/v1/review", headers=acting)).status_code == 403
    assert await _state(services, draft.id) == "pending_review"


async def test_a_delegate_serves_only_executives_who_granted_her(web: Web) -> None:
    from assistant.auth import users
    from assistant.core.principal import Principal

    client, services = web
    dana_id = await give_password(services, "dana")
    other_id = await add_user(services, "otto", Role.EXECUTIVE, email="otto@northwind.example")
    await add_user(services, "jordan", Role.DELEGATE, email="jordan@northwind.example")
    async with services.sessions() as session:
        dana = await users.get_user(session, "default", dana_id)
        jordan = next(
            u for u in await users.list_users(session, "default") if u.username == "jordan"
        )
        await users.grant_delegation(
            session,
            Principal(user_id=dana_id, tenant_id="default", roles=frozenset({Role.EXECUTIVE})),
            executive=dana,
            delegate=jordan,
            scopes=None,
        )
        await session.commit()
    await sign_in(client, "jordan")
    inbox = await client.get("/app/inbox", headers=HTML)
    assert inbox.status_code == 200 and "Working for <strong>dana" in inbox.text
    assert "0 messages" not in inbox.text
    acting = {"X-On-Behalf-Of": dana_id}  # the API's way for a delegate
    assert (await client.get("/api/v1/triage/inbox")).status_code == 403  # acting for nobody
    api = await client.get("/api/v1/triage/inbox", params={"category": "notify"}, headers=acting)
    assert api.status_code == 200 and api.json()
    assert {item["category"] for item in api.json()} == {"notify"}

    switch = await client.post(
        "/app/serve", data={"csrf": csrf_of(inbox), "executive": other_id}, headers=HTML
    )
    assert switch.status_code == 403
    assert (
        await client.get("/api/v1/triage/inbox", headers={"X-On-Behalf-Of": other_id})
    ).status_code == 403

    # what Jordan corrects is recorded as Jordan's, for Dana's mailbox
    row = await _undecided(services)
    assert (await _correct(client, row, "notify", "FYI only")).status_code == 303
    async with services.sessions() as session:
        correction = await session.scalar(select(TriageCorrectionRow))
    assert correction is not None
    assert correction.corrected_by != dana_id and correction.on_behalf_of == dana_id
    assert correction.note == "FYI only"


async def test_inbox_api_rejects_bad_filters(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    bad = await client.get("/api/v1/triage/inbox", params={"category": "urgent-ish"})
    assert bad.status_code == 422 and bad.json()["error"] == "RequestValidationError"
    assert (await client.get("/api/v1/triage/inbox", params={"limit": 100000})).status_code == 422


# ---------------------------------------------------------------------------- CSRF


async def test_forms_without_the_session_csrf_token_are_refused_and_audited(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    row = await _undecided(services)
    form = {"pick": f"{row.id}:ignore"}
    missing = await client.post("/app/inbox/correct", data=form, headers=HTML)
    assert missing.status_code == 403 and "CsrfRejectedError" in missing.text
    forged = await client.post("/app/inbox/correct", data=form | {"csrf": "0" * 32})
    assert forged.status_code == 403 and forged.json()["error"] == "CsrfRejectedError"
    # another session's token is worthless here
    page = await client.get("/app/inbox", headers=HTML)
    token = csrf_of(page)
    await sign_in(client, "dana")
    stale = await client.post("/app/inbox/correct", data=form | {"csrf": token})
    assert stale.status_code == 403
    async with services.sessions() as session:
        assert await session.scalar(select(TriageCorrectionRow)) is None
        denied = list(
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
                )
            ).scalars()
        )
    assert len(denied) == 3 and all(e.payload["needed"] == ["csrf"] for e in denied)


async def test_cross_site_form_posts_are_refused(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    page = await client.get("/app/inbox", headers=HTML)
    row = await _undecided(services)
    attack = await client.post(
        "/app/inbox/correct",
        data={"csrf": csrf_of(page), "pick": f"{row.id}:ignore"},
        headers={"Origin": "https://evil.example", **HTML},
    )
    assert attack.status_code == 403 and "cross-site request refused" in attack.text
    async with services.sessions() as session:
        assert await session.scalar(select(TriageCorrectionRow)) is None


# ---------------------------------------------------------------------------- inbox


async def test_inbox_groups_with_reasons_stages_and_search(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    inbox = await client.get("/app/inbox", headers=HTML)
    text = inbox.text
    needs, notify, ignore = (
        text.index("Needs your decision"),
        text.index(">Notify<"),
        text.index(">Ignore<"),
    )
    assert needs < notify < ignore
    assert "decided by a rule" in text and "Why:" in text and "rule automated.notification" in text
    api = (await client.get("/api/v1/triage/inbox")).json()
    dates = [i["message_date"] for i in api]
    assert dates == sorted(dates, reverse=True)
    subject = next(i["subject"] for i in api if i["category"] == "notify")
    found = await client.get("/app/inbox", params={"q": subject[:20]}, headers=HTML)
    assert subject in found.text and "1 message," in found.text or "messages," in found.text
    none = await client.get("/app/inbox", params={"q": "zz-no-such-thing-zz"}, headers=HTML)
    assert "0 messages" in none.text


async def test_correcting_a_triage_records_the_note_and_proposes_a_reply(web: Web) -> None:
    client, services = web
    dana_id = await _dana(client, services)
    row = await _undecided(services)
    done = await _correct(client, row, "respond", "needs my answer today")
    assert done.headers["location"] == "/app/inbox?done=corrected"
    async with services.sessions() as session:
        correction = await session.scalar(select(TriageCorrectionRow))
        stored = await session.get(TriageResultRow, row.id)
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "triage.corrected")
        )
        draft = await session.scalar(select(Action).where(Action.kind == "email.draft.create"))
    assert correction is not None and correction.note == "needs my answer today"
    assert correction.corrected_by == dana_id and correction.original_category is None
    assert stored is not None and stored.category == "respond" and stored.stage == "human"
    # she acts for herself: nobody else's behalf
    assert event is not None and event.actor_id == dana_id and event.on_behalf_of is None
    # the assistant proposes the reply (never the person who will review it)
    assert draft is not None and draft.state == "pending_review"
    assert draft.actor_id == "pipeline" and draft.on_behalf_of == dana_id


async def test_a_corrected_message_says_who_corrected_it_by_name_with_her_note(
    web: Web,
) -> None:
    """The inbox's "Why" of a corrected message named the person by her user id (a hex
    string) and dropped the note she typed; it names her and quotes the note."""
    client, services = web
    dana_id = await _dana(client, services)
    row = await _undecided(services)
    assert (await _correct(client, row, "notify", "FYI only")).status_code == 303
    page = await client.get("/app/inbox", params={"category": "notify"}, headers=HTML)
    item = page.text.split(f'id="s-{row.id}"')[1].split("</li>")[0]
    why = item.split("Why:</span>")[1].split('<span class="stage')[0]
    assert "corrected by dana: FYI only" in why
    assert dana_id not in why


async def test_a_bad_category_is_a_typed_error_and_changes_nothing(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    row = await _undecided(services)
    bad = await _correct(client, row, "delete-everything")
    assert bad.status_code == 422
    async with services.sessions() as session:
        assert await session.scalar(select(TriageCorrectionRow)) is None


async def test_opened_mail_is_sanitized_and_loads_nothing_remote(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    row = await _undecided(services)
    page = await client.get(
        "/app/inbox/message", params={"id": row.message_id, "mailbox": row.mailbox}, headers=HTML
    )
    assert page.status_code == 200 and "Back to the inbox" in page.text
    dirty = (
        '<p onclick="x()">Hi<script>alert(1)</script><img src="https://track.example/p.gif">'
        '<a href="javascript:alert(1)">a</a><a href="https://ok.example">b</a>'
        '<style>p{}</style><iframe src="https://x.example"></iframe></p>'
    )
    clean = sanitize_mail_html(dirty)
    assert "<script" not in clean and "<img" not in clean and "<iframe" not in clean
    assert "onclick" not in clean and "javascript:" not in clean and "<style" not in clean
    assert 'href="https://ok.example"' in clean and "noopener" in clean


# ---------------------------------------------------------------------------- review


async def test_approve_then_undo_inside_the_hold_window(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    review = await client.get("/app/review", headers=HTML)
    assert draft.id in review.text and "Why it waits:" in review.text
    approved = await client.post(
        f"/app/review/{draft.id}/approve", data={"csrf": csrf_of(review)}, headers=HTML
    )
    assert approved.headers["location"] == "/app/review?done=approved"
    assert await _state(services, draft.id) == "scheduled"
    after = await client.get("/app/review", headers=HTML)
    assert "s left to undo" in after.text and "data-deadline" in after.text
    undone = await client.post(
        f"/app/actions/{draft.id}/undo", data={"csrf": csrf_of(after)}, headers=HTML
    )
    assert undone.headers["location"] == "/app/review?done=undone"
    assert await _state(services, draft.id) == "cancelled"
    again = await client.post(
        f"/app/actions/{draft.id}/undo", data={"csrf": csrf_of(after)}, headers=HTML
    )
    assert again.status_code == 409 and "IllegalTransitionError" in again.text


async def test_a_decided_reply_is_listed_by_the_subject_it_answers(web: Web) -> None:
    """A reply draft has no subject of its own: the "Decided in the last day" list named
    it by the answered message's provider id (two replies to one mail read the same);
    it shows "Re: <the mail's subject>" as the card did."""
    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    replied = draft.arguments["reply_to_id"]
    from assistant.core.clock import utcnow
    from assistant.ingestion.models import TriageQueueItem

    async with services.sessions() as session:
        message = await session.scalar(
            select(TriageQueueItem.message).where(TriageQueueItem.provider_id == replied)
        )
    subject = (message or {}).get("subject")
    assert subject
    # Another mailbox holds a message with the same provider id (ids are unique per
    # connector only): its subject must not name Dana's reply.
    async with services.sessions() as session:
        session.add(
            TriageQueueItem(
                tenant_id="default",
                connector=f"{draft.connector}-of-someone-else",
                folder="inbox",
                provider_id=replied,
                message={"subject": "Erin's confidential merger"},
                enqueued_at=utcnow(),
            )
        )
        await session.commit()
    review = await client.get("/app/review", headers=HTML)
    approved = await client.post(
        f"/app/review/{draft.id}/approve", data={"csrf": csrf_of(review)}, headers=HTML
    )
    assert approved.status_code == 303
    after = await client.get("/app/review", headers=HTML)
    decided = after.text.split('id="recent-h"')[1]
    line = decided.split(f'data-action="{draft.id}"')[1].split("</li>")[0]
    expected = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    assert f"email.draft.create: {expected}" in html.unescape(line)
    assert replied not in line
    assert "merger" not in after.text


async def test_reject_needs_a_reason_and_keeps_it(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    review = await client.get("/app/review", headers=HTML)
    empty = await client.post(
        f"/app/review/{draft.id}/reject",
        data={"csrf": csrf_of(review), "reason": "  "},
        headers=HTML,
    )
    assert empty.status_code == 422 and "ValidationFailedError" in empty.text
    assert await _state(services, draft.id) == "pending_review"
    done = await client.post(
        f"/app/review/{draft.id}/reject",
        data={"csrf": csrf_of(review), "reason": "I will call him instead"},
        headers=HTML,
    )
    assert done.status_code == 303 and await _state(services, draft.id) == "rejected"
    history = await client.get("/app/history", params={"q": "call him"}, headers=HTML)
    assert "I will call him instead" in history.text and "rejected" in history.text
    event_id = re.search(r'data-event="([0-9a-f]+)"', history.text)
    assert event_id is not None
    async with services.sessions() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.event_id == event_id.group(1))
        )
    assert event is not None and event.action == "action.rejected"


async def test_edit_then_approve_changes_the_text(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    review = await client.get("/app/review", headers=HTML)
    done = await client.post(
        f"/app/review/{draft.id}/edit",
        data={"csrf": csrf_of(review), "body_text": "Thanks, will do.\r\nDana"},
        headers=HTML,
    )
    assert done.headers["location"] == "/app/review?done=edited"
    unchanged = await client.post(  # an empty box (no script filled it) keeps the text
        f"/app/review/{draft.id}/edit", data={"csrf": csrf_of(review), "body_text": ""}
    )
    assert unchanged.status_code == 409  # it was approved by the edit above
    async with services.sessions() as session:
        action = await session.get(Action, draft.id)
    assert action is not None and action.arguments["body_text"] == "Thanks, will do.\nDana"
    assert action.state == "scheduled"

    # the card of the decided action and the history show the original against the edit
    after = (await client.get("/app/review", headers=HTML)).text
    card = after[after.index(f'data-action="{draft.id}" data-state="scheduled"') :]
    card = card[: card.index("</li>")]
    assert "What you changed" in card
    assert "<ins>+ Thanks, will do.</ins>" in card and "<del>- " in card
    history = (await client.get("/app/history", params={"q": draft.id}, headers=HTML)).text
    edited = next(r for r in history.split("<tr ")[1:] if "edited and approved" in r)
    assert "Original against edited text" in edited and "<ins>+ Dana</ins>" in edited
    assert "<q>" in edited  # the subject of the mail the draft answers


async def test_bulk_approve_of_the_ticked_cards(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    first = await _pending_draft(client, services)
    await _correct(client, await _undecided(services), "respond")
    async with services.sessions() as session:
        pending = list(
            (
                await session.execute(select(Action).where(Action.state == "pending_review"))
            ).scalars()
        )
    assert len(pending) >= 2 and first.id in {a.id for a in pending}
    review = await client.get("/app/review", headers=HTML)
    done = await client.post(
        "/app/review/bulk",
        data={"csrf": csrf_of(review), "action_id": [a.id for a in pending]},
        headers=HTML,
    )
    assert done.headers["location"] == "/app/review?done=bulk"
    for action in pending:
        assert await _state(services, action.id) == "scheduled"
    empty = await client.post("/app/review/bulk", data={"csrf": csrf_of(review)}, headers=HTML)
    assert empty.status_code == 422


async def test_bulk_approve_refuses_a_card_that_is_not_hers_alone_and_audits_it(web: Web) -> None:
    from governance.audit_models import AuditEvent

    client, services = web
    dana_id = await _dana(client, services)
    mine = await _pending_draft(client, services)
    review = await client.get("/app/review", headers=HTML)
    # A forged form: her card, and an id that is no card of hers (another executive's
    # action looks the same: absent).
    done = await client.post(
        "/app/review/bulk",
        data={"csrf": csrf_of(review), "action_id": [mine.id, "someone-elses-action"]},
        headers=HTML,
    )
    assert done.headers["location"] == "/app/review?done=bulk-partial"
    assert await _state(services, mine.id) == "scheduled"
    async with services.sessions() as session:
        refused = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action == "governance.refused")
            )
        )
    assert [(e.actor_id, e.resource_id, e.payload["error"]) for e in refused] == [
        (dana_id, "someone-elses-action", "NotFoundError")
    ]


@pytest.mark.parametrize("path", ["/app/meetings", "/app/history", "/app/review"])
async def test_rooms_render_for_the_executive(web: Web, path: str) -> None:
    client, services = web
    await _dana(client, services)
    page = await client.get(path, headers=HTML)
    assert page.status_code == 200 and 'aria-current="page"' in page.text


async def test_history_names_who_acted_instead_of_their_user_ids(web: Web) -> None:
    """The "Who" column showed the audit row's user ids; it names the people (ids stay in
    the audit log and in the event id column)."""
    client, services = web
    dana_id = await _dana(client, services)
    assert (await _correct(client, await _undecided(services), "ignore")).status_code == 303
    async with services.sessions() as session:
        event = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "triage.corrected")
        )
    assert event is not None and event.actor_id == dana_id
    history = await client.get("/app/history", headers=HTML)
    row = history.text.split(f'data-event="{event.event_id}"')[1].split("</tr>")[0]
    cells = re.findall(r"<td>(.*?)</td>", row, re.S)
    assert cells[3] == "dana", cells
    assert dana_id not in row


async def test_a_history_cursor_past_64_bits_is_a_typed_422_not_a_500(web: Web) -> None:
    """`before` is compared with a 64-bit column: one past its end used to raise
    OverflowError in the database driver (a 500); the largest one still pages."""
    client, services = web
    await _dana(client, services)
    too_far = await client.get("/app/history", params={"before": str(2**63)})
    assert too_far.status_code == 422
    assert too_far.json()["error"] == "RequestValidationError" and too_far.json()["errors"]
    last = await client.get("/app/history", params={"before": str(2**63 - 1)}, headers=HTML)
    assert last.status_code == 200


async def test_a_malformed_page_request_shows_browsers_the_error_page_not_json(
    web: Web,
) -> None:
    """A search longer than the inbox's limit (its box has no limit of its own before
    this) answered the browser with the API's raw JSON; a browser gets the error page
    naming the typed error and the problem, without echoing the input; a script still
    gets the JSON."""
    client, services = web
    await _dana(client, services)
    long = "<b>" + "x" * 300
    page = await client.get("/app/inbox", params={"q": long}, headers=HTML)
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "RequestValidationError" in page.text and "q: " in page.text
    assert "x" * 300 not in page.text and "<b>x" not in page.text
    assert "content-security-policy" in page.headers
    script = await client.get("/app/inbox", params={"q": long})
    assert script.status_code == 422 and script.json()["error"] == "RequestValidationError"
    api = await client.get("/api/v1/triage/inbox", params={"limit": "0"}, headers=HTML)
    assert api.status_code == 422 and api.json()["error"] == "RequestValidationError"
    box = (await client.get("/app/inbox", headers=HTML)).text
    assert 'name="q" type="search"' in box and 'maxlength="200"' in box.split('id="q"')[1][:200]


async def test_live_fingerprint_changes_when_an_action_changes(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    before = (await client.get("/app/live", headers={"Accept": "application/json"})).json()
    draft = await _pending_draft(client, services)
    after = (await client.get("/app/live", headers={"Accept": "application/json"})).json()
    assert after["version"] != before["version"] and after["pending"] == before["pending"] + 1
    review = await client.get("/app/review", headers=HTML)
    await client.post(f"/app/review/{draft.id}/approve", data={"csrf": csrf_of(review)})
    approved = (await client.get("/app/live", headers={"Accept": "application/json"})).json()
    assert approved["version"] != after["version"] and approved["pending"] == before["pending"]


# ---------------------------------------------------------------------------- meetings


async def test_a_meeting_request_is_proposed_chosen_and_resized(web: Web) -> None:
    client, services = web
    dana_id = await _dana(client, services)
    row = await _undecided(services)
    assert (await _correct(client, row, "schedule")).status_code == 303
    async with services.sessions() as session:
        event = await session.scalar(select(Action).where(Action.kind == "calendar.event.create"))
    page = await client.get("/app/meetings", headers=HTML)
    assert page.status_code == 200
    assert event is not None, "the sandbox calendar has a free slot for it"
    assert event.on_behalf_of == dana_id and event.actor_id == "pipeline"
    assert "Choose this time" in page.text and "Asked for" in page.text
    bad = await client.post(
        f"/app/meetings/{event.id}/duration", data={"csrf": csrf_of(page), "minutes": "9999"}
    )
    assert bad.status_code == 422
    others = await client.get(f"/app/meetings/{event.id}/alternatives", headers=HTML)
    assert others.status_code == 200 and "Other times" in others.text
    resized = await client.post(
        f"/app/meetings/{event.id}/duration",
        data={"csrf": csrf_of(page), "minutes": "45"},
        headers=HTML,
    )
    assert resized.headers["location"] == "/app/meetings?done=adjusted"
    async with services.sessions() as session:
        changed = await session.get(Action, event.id)
    assert changed is not None and changed.state in {"approved", "scheduled"}
    from datetime import datetime

    start = datetime.fromisoformat(changed.arguments["start"])
    end = datetime.fromisoformat(changed.arguments["end"])
    assert (end - start).total_seconds() == 45 * 60


async def test_the_proposed_meeting_time_is_shown_in_the_events_zone_not_as_utc(
    web: Web,
) -> None:
    """The event's start is stored in UTC with the zone it was planned in: the card shows
    it in that zone (as the review card and the reply draft do), not the UTC digits
    labelled with the zone's name."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    client, services = web
    event = await _dana_schedules_a_meeting(client, services)
    start = datetime.fromisoformat(event.arguments["start"])
    zone = event.arguments["timezone"]
    local = start.astimezone(ZoneInfo(zone)).strftime("%a %d %b %H:%M")
    as_utc = start.astimezone(ZoneInfo("UTC")).strftime("%a %d %b %H:%M")
    assert local != as_utc, "the sandbox executive's zone is not UTC"
    page = await client.get("/app/meetings", headers=HTML)
    assert f"<strong>{local} {zone}</strong>" in page.text
    assert as_utc not in page.text


async def test_other_times_read_her_own_calendar_never_another_executives(web: Web) -> None:
    """The scheduler behind "Other times" reads the calendar that serves her (as the
    schedule API does): once the tenant's calendar serves another executive instead, her
    page answers the typed 409 rather than free times from the other executive's calendar
    with that executive as the organizer."""
    from assistant.connector_store import set_executives
    from assistant.core.principal import Principal

    client, services = web
    event = await _dana_schedules_a_meeting(client, services)
    mine = await client.get(f"/app/meetings/{event.id}/alternatives", headers=HTML)
    assert mine.status_code == 200 and "Use this time" in mine.text
    erin = await add_user(services, "erin", Role.EXECUTIVE, email="erin@northwind.example")
    admin = Principal(user_id="ada", tenant_id="default", roles=frozenset({Role.ADMIN}))
    async with services.sessions() as session:
        await set_executives(
            session,
            admin,
            services.connectors,
            tenant_id="default",
            connector="sandbox-calendar",
            executive_ids=[erin],
        )
        await session.commit()
    theirs = await client.get(f"/app/meetings/{event.id}/alternatives")
    assert theirs.status_code == 409, theirs.text
    assert theirs.json()["error"] == "NoConnectorForExecutiveError"
    assert "Use this time" not in theirs.text


async def test_choosing_a_meeting_approves_the_event_and_its_reply(web: Web) -> None:
    client, services = web
    event = await _dana_schedules_a_meeting(client, services)
    page = await client.get("/app/meetings", headers=HTML)
    chosen = await client.post(
        f"/app/meetings/{event.id}/choose", data={"csrf": csrf_of(page)}, headers=HTML
    )
    assert chosen.headers["location"] == "/app/meetings?done=chosen"
    async with services.sessions() as session:
        states = {
            a.kind: a.state
            for a in (
                await session.execute(
                    select(Action).where(Action.correlation_id == event.correlation_id)
                )
            ).scalars()
        }
    assert states["calendar.event.create"] in {"approved", "scheduled"}
    assert states["email.draft.create"] in {"approved", "scheduled"}


# ------------------------------------------------------------------- answer with instructions


@pytest.fixture
async def web_with_model(triaged_template: Any, data_dir: Any, openai_server: Any) -> Any:
    """The web app on a private copy of the triaged sandbox, drafting with the scripted
    model (tests/fakes/openai_server.py)."""
    import shutil

    from assistant.app import create_app
    from assistant.core.settings import Settings
    from assistant.services import Services
    from tests.fixtures.web import web_settings
    from tests.unit.llm.conftest import fake_llm

    shutil.copyfile(triaged_template, data_dir / "assistant.db")
    base = web_settings(data_dir)
    settings = Settings(**{**base.model_dump(), "llm": fake_llm(openai_server).model_dump()})
    services = await Services.build(settings)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, services, openai_server
    await services.aclose()


FIRST = "Hi,\n\nThank you. I will send the figures on Monday.\n\nBest,\nDana"
SECOND = "Hi,\n\nFigures on Thursday.\n\nDana"
INSTRUCTIONS = "shorter, and propose Thursday instead"


async def test_a_delegate_does_not_approve_the_draft_she_had_redrafted(
    web_with_model: Any,
) -> None:
    """Jordan (Dana's delegate, allowed to propose and decide) re-drafts on her own
    instructions: the new draft is the assistant's at Jordan's request, so Jordan cannot
    approve it (refused, audited); Dana can."""
    from assistant.auth.models import User
    from tests.fakes.openai_server import Answer

    client, services, model = web_with_model
    dana_id = await _dana(client, services)
    model.script(Answer(content=FIRST))
    draft = await _pending_draft(client, services)
    await add_user(services, "jordan", Role.DELEGATE, email="jordan@northwind.example")
    await _grant(
        services,
        "dana",
        "jordan",
        ["mail.read", "triage.read", "actions.propose", "review.read", "review.decide"],
    )
    await sign_in(client, "jordan")
    review = await client.get("/app/review", headers=HTML)
    model.script(Answer(content=SECOND))
    done = await client.post(
        f"/app/review/{draft.id}/revise",
        data={"csrf": csrf_of(review), "instructions": INSTRUCTIONS},
        headers=HTML,
    )
    assert done.status_code == 303, done.text
    async with services.sessions() as session:
        revised = await session.scalar(select(Action).where(Action.parent_id == draft.id))
        jordan = await session.scalar(select(User).where(User.username == "jordan"))
    assert revised is not None and jordan is not None
    assert revised.requested_by == jordan.id and revised.actor_type == "agent"
    review = await client.get("/app/review", headers=HTML)
    refused = await client.post(
        f"/app/review/{revised.id}/approve", data={"csrf": csrf_of(review)}, headers=HTML
    )
    assert refused.status_code == 403, refused.text
    assert await _state(services, revised.id) == "pending_review"
    async with services.sessions() as session:
        audited = await session.scalar(
            select(AuditEvent).where(
                AuditEvent.action == "governance.refused", AuditEvent.actor_id == jordan.id
            )
        )
    assert audited is not None
    await sign_in(client, "dana")
    review = await client.get("/app/review", headers=HTML)
    approved = await client.post(
        f"/app/review/{revised.id}/approve", data={"csrf": csrf_of(review)}, headers=HTML
    )
    assert approved.status_code == 303, approved.text
    assert await _state(services, revised.id) != "pending_review"
    assert dana_id


async def test_answer_with_instructions_redrafts_for_review(web_with_model: Any) -> None:
    from tests.fakes.openai_server import Answer

    client, services, model = web_with_model
    dana_id = await _dana(client, services)
    model.script(Answer(content=FIRST))
    draft = await _pending_draft(client, services)
    assert draft.arguments["body_text"].startswith("Hi,\n\nThank you.")
    review = await client.get("/app/review", headers=HTML)
    assert "Answer with instructions" in review.text

    model.script(Answer(content=SECOND))
    done = await client.post(
        f"/app/review/{draft.id}/revise",
        data={"csrf": csrf_of(review), "instructions": INSTRUCTIONS},
        headers=HTML,
    )
    assert done.status_code == 303 and done.headers["location"] == "/app/review?done=revised"
    # the instructions went to the model as trusted text; the draft and the mail as data
    user = model.last["messages"][-1]["content"]
    assert INSTRUCTIONS in user.split("<untrusted_data")[0]
    assert "I will send the figures on Monday." in user.split("<untrusted_data", 1)[1]

    async with services.sessions() as session:
        original = await session.get(Action, draft.id)
        revised = await session.scalar(select(Action).where(Action.parent_id == draft.id))
        audit = await session.scalar(
            select(AuditEvent).where(AuditEvent.action == "action.revised")
        )
    assert original is not None and original.state == "cancelled"
    assert revised is not None and revised.state == "pending_review"
    # proposed by the assistant at her request (she may approve what she asked it for)
    assert (revised.actor_type, revised.actor_id) == ("agent", "agent")
    assert revised.requested_by == dana_id and revised.on_behalf_of == dana_id
    assert revised.arguments["body_text"].startswith("Hi,\n\nFigures on Thursday.")
    assert revised.arguments["reply_to_id"] == draft.arguments["reply_to_id"]
    assert audit is not None and audit.actor_id == dana_id and audit.action_id == draft.id
    assert audit.payload["revised_action_id"] == revised.id
    assert audit.payload["instruction_chars"] == len(INSTRUCTIONS)
    # no text of the draft, the new draft or the instructions in the audit row
    stored = audit.payload_json + (audit.reason or "")
    for text in ("Thursday", "Monday", "figures", "shorter"):
        assert text.lower() not in stored.lower()

    page = (await client.get("/app/review", headers=HTML)).text
    card = page[page.index(f'data-action="{revised.id}"') :]
    assert "What changed from the earlier draft" in card.split("</article>")[0]
    assert "<del>- Thank you. I will send the figures on Monday.</del>" in card
    assert "<ins>+ Figures on Thursday.</ins>" in card
    history = (await client.get("/app/history", headers=HTML)).text
    assert "re-drafted on instructions" in history

    # the re-drafted draft is decided like any other; an empty instruction is refused
    again = await client.post(
        f"/app/review/{revised.id}/revise",
        data={"csrf": csrf_of(review), "instructions": "  "},
        headers=HTML,
    )
    assert again.status_code == 422 and "ValidationFailedError" in again.text
    retired = await client.post(
        f"/app/review/{draft.id}/revise",
        data={"csrf": csrf_of(review), "instructions": INSTRUCTIONS},
        headers=HTML,
    )
    assert retired.status_code == 422  # it no longer waits: nothing re-drafted


async def test_instructions_on_another_executives_draft_are_refused(
    web_with_model: Any,
) -> None:
    from tests.fakes.openai_server import Answer

    client, services, model = web_with_model
    await _dana(client, services)
    model.script(Answer(content=FIRST))
    draft = await _pending_draft(client, services)
    await add_user(services, "eve", Role.EXECUTIVE, email="eve@northwind.example")
    await sign_in(client, "eve")
    review = await client.get("/app/review", headers=HTML)
    refused = await client.post(
        f"/app/review/{draft.id}/revise",
        data={"csrf": csrf_of(review), "instructions": INSTRUCTIONS},
        headers=HTML,
    )
    assert refused.status_code == 404
    assert await _state(services, draft.id) == "pending_review"
    assert len(model.requests) == 1  # the model was never asked


async def test_instructions_without_a_model_change_nothing(web: Web) -> None:
    client, services = web
    await _dana(client, services)
    draft = await _pending_draft(client, services)
    review = await client.get("/app/review", headers=HTML)
    refused = await client.post(
        f"/app/review/{draft.id}/revise",
        data={"csrf": csrf_of(review), "instructions": INSTRUCTIONS},
        headers=HTML,
    )
    assert refused.status_code == 422 and "needs a language model" in refused.text
    assert await _state(services, draft.id) == "pending_review"
