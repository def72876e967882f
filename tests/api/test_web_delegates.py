"""The executive's delegates room: she grants, narrows and revokes her own delegations, and
nobody else can, not her delegate serving her, not another executive, not an admin."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from assistant.auth import users
from assistant.core.principal import Role
from governance.audit_models import AuditEvent
from tests.fixtures.web import (
    HTML,
    add_user,
    csrf_of,
    give_password,
    sign_in,
    triaged_template,
    web,
)

__all__ = ["triaged_template", "web"]  # fixtures

Web = tuple[httpx.AsyncClient, Any]


async def _delegations(services: Any) -> list[Any]:
    async with services.sessions() as session:
        return await users.list_delegations(session, "default", include_revoked=True)


async def _denials(services: Any) -> list[AuditEvent]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.action == "auth.access.denied")
        )
        return list(rows.scalars())


async def _grant_form(client: httpx.AsyncClient, **form: Any) -> httpx.Response:
    page = await client.get("/app/delegates", headers=HTML)
    assert page.status_code == 200, page.text
    return await client.post("/app/delegates", data={"csrf": csrf_of(page), **form}, headers=HTML)


async def test_an_executive_grants_narrows_and_revokes_her_delegate(web: Web) -> None:
    client, services = web
    dana = await give_password(services, "dana")
    jordan = await add_user(services, "jordan", Role.DELEGATE, email="jordan@northwind.example")
    await add_user(services, "ada", Role.ADMIN)  # not a delegate: not offered
    await sign_in(client, "dana")

    page = await client.get("/app/delegates", headers=HTML)
    assert page.status_code == 200 and "Nobody acts for you." in page.text
    assert 'href="/app/delegates" aria-current="page"' in page.text
    offered = page.text.split('name="delegate"')[1].split("</select>")[0]
    assert f'value="{jordan}"' in offered and "Ada" not in offered and f'"{dana}"' not in offered

    done = await _grant_form(
        client, delegate=jordan, scopes=["triage.read", "mail.read", "review.read"]
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/app/delegates?")
    (grant,) = await _delegations(services)
    assert (grant.executive_id, grant.delegate_id, grant.granted_by) == (dana, jordan, dana)
    assert grant.scopes == ["mail.read", "review.read", "triage.read"] and grant.revoked_at is None
    shown = await client.get("/app/delegates", headers=HTML)
    row = shown.text.split(f'data-delegation="{grant.id}"')[1].split("</tr>")[0]
    assert "read your mail" in row and "active" in row

    # a second grant replaces the first: narrower scopes, the old one revoked
    assert (await _grant_form(client, delegate=jordan, scopes=["triage.read"])).status_code == 303
    grants = {g.id: g for g in await _delegations(services)}
    assert grants[grant.id].revoked_at is not None
    (active,) = [g for g in grants.values() if g.revoked_at is None]
    assert active.scopes == ["triage.read"]

    page = await client.get("/app/delegates", headers=HTML)
    revoked = await client.post(
        f"/app/delegates/{active.id}/revoke", data={"csrf": csrf_of(page)}, headers=HTML
    )
    assert revoked.status_code == 303
    assert all(g.revoked_at is not None for g in await _delegations(services))
    async with services.sessions() as session:
        changes = list(
            (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.action == "auth.role.changed",
                        AuditEvent.resource_type == "delegation",
                    )
                )
            ).scalars()
        )
    assert [e.payload["change"] for e in changes].count("granted") == 2
    assert all(e.actor_id == dana for e in changes)
    assert any(e.payload["change"] == "revoked" for e in changes)


async def test_bad_grants_are_typed_errors_and_store_nothing(web: Web) -> None:
    client, services = web
    await give_password(services, "dana")
    jordan = await add_user(services, "jordan", Role.DELEGATE)
    eve = await add_user(services, "eve", Role.EXECUTIVE)
    ada = await add_user(services, "ada", Role.ADMIN)
    await sign_in(client, "dana")
    async with services.sessions() as session:
        dana = (await users.find_user(session, "default", "dana")).id  # type: ignore[union-attr]
    bad = [
        {"delegate": jordan, "scopes": ["triage.read", "users.manage"]},  # not delegable
        {"delegate": jordan, "scopes": ["delegations.grant"]},  # no re-delegating
        {"delegate": jordan},  # nothing ticked
        {"delegate": eve, "scopes": ["triage.read"]},  # not a delegate
        {"delegate": ada, "scopes": ["triage.read"]},
        {"delegate": dana, "scopes": ["triage.read"]},  # herself
        {"delegate": "no-such-user", "scopes": ["triage.read"]},
        {"scopes": ["triage.read"]},  # nobody chosen
        {"delegate": "x" * 5000, "scopes": ["triage.read"]},
    ]
    for form in bad:
        answer = await _grant_form(client, **form)
        assert answer.status_code == 422, form
        assert "ValidationFailedError" in answer.text
    scripted = await client.post(
        "/app/delegates",
        data={"csrf": csrf_of(await client.get("/app/delegates", headers=HTML)), "scopes": "x"},
        headers={"X-CSRF-Token": "ignored"},
    )
    assert scripted.status_code in {403, 422}  # JSON for scripts, never a 500
    assert scripted.json()["error"] and scripted.json()["detail"]
    assert await _delegations(services) == []


async def test_her_delegate_cannot_open_the_room_or_widen_her_own_grant(web: Web) -> None:
    """Jordan serves Dana with review.read only: the room answers to Jordan's own roles (a
    delegate's), so she can neither read Dana's delegations nor grant herself more."""
    client, services = web
    dana = await give_password(services, "dana")
    jordan = await add_user(services, "jordan", Role.DELEGATE)
    await sign_in(client, "dana")
    assert (await _grant_form(client, delegate=jordan, scopes=["review.read"])).status_code == 303
    (grant,) = await _delegations(services)

    await sign_in(client, "jordan")
    inbox = await client.get("/app/review", headers=HTML)
    assert inbox.status_code == 200 and 'href="/app/delegates"' not in inbox.text
    assert (await client.get("/app/delegates", headers=HTML)).status_code == 403
    before = len(await _denials(services))
    csrf = csrf_of(inbox)
    for url, data in [
        ("/app/delegates", {"delegate": jordan, "scopes": ["review.decide", "mail.read"]}),
        (f"/app/delegates/{grant.id}/revoke", {}),
    ]:
        answer = await client.post(url, data={"csrf": csrf, **data}, headers=HTML)
        assert answer.status_code == 403, url
    denials = await _denials(services)
    assert len(denials) == before + 2 and all(e.actor_id == jordan for e in denials[before:])
    (still,) = await _delegations(services)
    assert still.scopes == ["review.read"] and still.revoked_at is None
    assert still.executive_id == dana


async def test_an_executive_who_also_serves_another_manages_only_her_own(web: Web) -> None:
    """Casey is an executive and Dana's delegate. Serving Dana, the room still shows and
    changes Casey's own delegations, never Dana's."""
    client, services = web
    dana = await give_password(services, "dana")
    casey = await add_user(services, "casey", Role.EXECUTIVE, Role.DELEGATE)
    jordan = await add_user(services, "jordan", Role.DELEGATE)
    await sign_in(client, "dana")
    assert (await _grant_form(client, delegate=casey, scopes=["triage.read"])).status_code == 303
    assert (await _grant_form(client, delegate=jordan, scopes=["mail.read"])).status_code == 303
    danas = {g.delegate_id: g for g in await _delegations(services)}

    await sign_in(client, "casey")
    inbox = await client.get("/app/inbox", headers=HTML)
    serve = await client.post(
        "/app/serve", data={"csrf": csrf_of(inbox), "executive": dana}, headers=HTML
    )
    assert serve.status_code == 303
    page = await client.get("/app/delegates", headers=HTML)
    assert page.status_code == 200 and f'<option value="{dana}" selected' in page.text
    assert danas[jordan].id not in page.text and danas[casey].id not in page.text
    assert (await _grant_form(client, delegate=jordan, scopes=["mail.read"])).status_code == 303
    mine = [g for g in await _delegations(services) if g.executive_id == casey]
    assert len(mine) == 1 and mine[0].delegate_id == jordan and mine[0].granted_by == casey
    # Dana's grant to Jordan is not Casey's to revoke: not found, still active
    refused = await client.post(
        f"/app/delegates/{danas[jordan].id}/revoke", data={"csrf": csrf_of(page)}, headers=HTML
    )
    assert refused.status_code == 404
    current = {g.id: g for g in await _delegations(services)}
    assert current[danas[jordan].id].revoked_at is None


async def test_admins_and_forged_forms_are_refused(web: Web) -> None:
    client, services = web
    await give_password(services, "dana")
    jordan = await add_user(services, "jordan", Role.DELEGATE)
    await add_user(services, "ada", Role.ADMIN, Role.AUDITOR)
    await sign_in(client, "ada")
    people = await client.get("/app/admin/people", headers=HTML)
    assert 'href="/app/delegates"' not in people.text
    assert (await client.get("/app/delegates", headers=HTML)).status_code == 403
    admin_grant = await client.post(
        "/app/delegates",
        data={"csrf": csrf_of(people), "delegate": jordan, "scopes": "triage.read"},
        headers=HTML,
    )
    assert admin_grant.status_code == 403

    await sign_in(client, "dana")
    form = {"delegate": jordan, "scopes": "triage.read"}
    assert (await client.post("/app/delegates", data=form, headers=HTML)).status_code == 403
    forged = await client.post("/app/delegates", data=form | {"csrf": "0" * 32})
    assert forged.status_code == 403 and forged.json()["error"] == "CsrfRejectedError"
    assert await _delegations(services) == []
