"""The admin's and the auditor's rooms over HTTP: who reaches what, the forms' typed errors,
what lands in the stores and the audit log, exports and their proof."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from assistant.connector_models import StoredConnector
from assistant.core.principal import Principal, Role
from governance.audit_models import AuditEvent
from governance.policy import default_policy_path
from tests.fixtures.web import (
    DANA,
    HTML,
    PASSWORD,
    add_user,
    csrf_of,
    give_password,
    sign_in,
    triaged_template,
    web_settings,
)

__all__ = ["triaged_template"]  # fixtures

Console = tuple[httpx.AsyncClient, Any]

#: Every state-changing route of the admin rooms, with a form that would otherwise pass.
BASE = "/api/v1/admin/connectors"

ADMIN_WRITES = [
    ("/app/admin/connectors", {"slug": "sandbox.email", "name": "x-mail", "enabled": "on"}),
    ("/app/admin/connectors/x-mail", {"enabled": "on", "reason": "r"}),
    ("/app/admin/connectors/x-mail/test", {}),
    ("/app/admin/connectors/x-mail/enabled", {"enabled": "off", "reason": "r"}),
    ("/app/admin/governance/rollback", {"version": "policy@1", "reason": "r"}),
    ("/app/admin/operations/exceptions/x/retry", {"reason": "r"}),
    ("/app/admin/operations/exceptions/x/cancel", {"reason": "r"}),
    ("/app/admin/operations/exceptions/x/assign", {"owner": "o", "reason": "r"}),
    ("/app/admin/operations/drill", {}),
    ("/app/admin/operations/killswitch", {"enabled": "on", "reason": "r"}),
    ("/app/admin/people", {"username": "mallory", "roles": "admin"}),
    ("/app/admin/people/x/roles", {"roles": "admin"}),
    ("/app/admin/people/x/disabled", {"disabled": "true"}),
    ("/app/admin/people/api-keys", {"name": "k", "roles": "admin"}),
    ("/app/admin/people/api-keys/x/revoke", {}),
    ("/app/admin/people/delegations/x/revoke", {}),
]


@pytest.fixture
async def console(triaged_template: Path, data_dir: Path) -> AsyncIterator[Console]:
    """(client, services) on a private copy of the triaged sandbox, with a private policy
    file (rollbacks rewrite it) and people: an admin, an auditor, an executive."""
    from assistant.app import create_app
    from assistant.services import Services

    shutil.copyfile(triaged_template, data_dir / "assistant.db")
    policy = data_dir / "policies.yaml"
    shutil.copyfile(default_policy_path(), policy)
    services = await Services.build(web_settings(data_dir, policy_file=policy))
    await add_user(services, "ada", Role.ADMIN, email="ada@northwind.example")
    await add_user(services, "otto", Role.AUDITOR, email="otto@northwind.example")
    await give_password(services, "dana")
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http, services
    await services.aclose()


async def _events(services: Any, action: str) -> list[AuditEvent]:
    async with services.sessions() as session:
        rows = await session.execute(select(AuditEvent).where(AuditEvent.action == action))
        return list(rows.scalars())


async def _add_sandbox_mail(client: httpx.AsyncClient, name: str = "dana-mail") -> httpx.Response:
    form = await client.get("/app/admin/connectors/new", params={"slug": "sandbox.email"})
    assert form.status_code == 200, form.text
    return await client.post(
        "/app/admin/connectors",
        data={
            "csrf": csrf_of(form),
            "slug": "sandbox.email",
            "name": name,
            "config.mailbox": DANA,
            "enabled": "on",
            "owner.person": "Ada",
            "owner.role": "IT",
            "owner.contact": "ada@northwind.example",
            "reason": "Dana's mailbox",
        },
    )


async def test_sign_in_lands_admins_and_auditors_in_their_rooms(console: Console) -> None:
    client, _ = console
    await sign_in(client, "ada")
    assert (await client.get("/app", headers=HTML)).headers["location"] == "/app/admin/connectors"
    await sign_in(client, "otto")
    assert (await client.get("/app", headers=HTML)).headers["location"] == "/app/audit"


async def test_admin_adds_a_connector_from_its_generated_form(console: Console) -> None:
    client, services = console
    await sign_in(client, "ada")
    form = await client.get("/app/admin/connectors/new", params={"slug": "sandbox.email"})
    assert 'name="config.mailbox"' in form.text and 'name="config.seed_dir"' in form.text
    done = await _add_sandbox_mail(client)
    assert done.status_code == 303, done.text
    page = await client.get("/app/admin/connectors", headers=HTML)
    assert "dana-mail" in page.text
    assert 'data-connector="dana-mail"' in page.text
    async with services.sessions() as session:
        row = (
            await session.execute(
                select(StoredConnector).where(StoredConnector.name == "dana-mail")
            )
        ).scalar_one()
        assert row.config["mailbox"] == DANA
    created = await _events(services, "connector.created")
    assert [e.actor_id for e in created if e.resource_id == "dana-mail"]


async def test_admin_binds_a_connector_to_an_executive_whose_data_then_comes_from_it(
    console: Console,
) -> None:
    """Eve, a new executive, is served by no mailbox: her inbox is empty over the API. The
    admin adds a connector to the shared mailbox bound to her (a shared mailbox names its
    executives), and her inbox is that mailbox's; unbound again, it is empty again."""
    client, services = console
    eve_id = await add_user(services, "eve", Role.EXECUTIVE, email="eve@northwind.example")
    eve = await sign_in(client, "eve")
    assert eve.status_code in (302, 303)
    assert (await client.get("/api/v1/triage/inbox")).json() == []

    await sign_in(client, "ada")
    form = await client.get("/app/admin/connectors/new", params={"slug": "sandbox.email"})
    assert 'name="executives"' in form.text
    assert f'name="executives" value="{eve_id}"' in form.text
    fields = {
        "csrf": csrf_of(form),
        "slug": "sandbox.email",
        "name": "dana-mail",
        "config.mailbox": DANA,
        "enabled": "on",
    }
    # a user who is no executive of this tenant is refused, with nothing kept
    refused = await client.post(
        "/app/admin/connectors", data={**fields, "executives": "not-a-user"}, headers=HTML
    )
    assert refused.status_code == 422 and "ValidationFailedError" in refused.text
    assert "dana-mail" not in {c["name"] for c in (await client.get(BASE)).json()}

    done = await client.post("/app/admin/connectors", data={**fields, "executives": eve_id})
    assert done.status_code == 303, done.text
    listing = await client.get("/app/admin/connectors", headers=HTML)
    row = listing.text.split('data-connector="dana-mail"')[1].split("</tr>")[0]
    assert "Eve" in row.split("data-serves>")[1].split("</td>")[0]
    assert "missing" in row.split("data-owner>")[1].split("</td>")[0]
    updated = await _events(services, "connector.updated")
    assert [e.payload for e in updated if e.resource_id == "dana-mail"] == [
        {"bound_executive": eve_id}
    ]

    await sign_in(client, "eve")
    inbox = (await client.get("/api/v1/triage/inbox")).json()
    assert inbox and {item["mailbox"] for item in inbox} == {DANA.lower()}

    # edit: the form shows the stored config and the binding; unticking her unbinds
    await sign_in(client, "ada")
    edit = await client.get("/app/admin/connectors/dana-mail/edit", headers=HTML)
    assert edit.status_code == 200 and f'value="{DANA}"' in edit.text
    assert f'value="{eve_id}" checked' in edit.text
    saved_owner = await client.post(
        "/app/admin/connectors/dana-mail",
        data={
            "csrf": csrf_of(edit),
            "enabled": "on",
            "executives": eve_id,
            "owner.person": "Ada",
            "owner.role": "IT",
            "owner.contact": "https://hooks.example/T0K3N-secret-path",
        },
    )
    assert saved_owner.status_code == 303, saved_owner.text
    listing = await client.get("/app/admin/connectors", headers=HTML)
    row = listing.text.split('data-connector="dana-mail"')[1].split("</tr>")[0]
    assert "Ada (IT)" in row.split("data-owner>")[1].split("</td>")[0]
    edit = await client.get("/app/admin/connectors/dana-mail/edit", headers=HTML)
    assert "Ada (IT), reached by webhook" in edit.text
    assert "T0K3N" not in edit.text  # a webhook's path may be a token: never shown
    saved = await client.post(
        "/app/admin/connectors/dana-mail",
        data={"csrf": csrf_of(edit), "enabled": "on", "reason": "serves nobody now"},
    )
    assert saved.status_code == 303, saved.text
    await sign_in(client, "eve")
    assert (await client.get("/api/v1/triage/inbox")).json() == []


async def test_a_bad_connector_form_lists_every_problem_keeps_nothing_and_is_audited(
    console: Console,
) -> None:
    client, services = console
    await sign_in(client, "ada")
    form = await client.get("/app/admin/connectors/new", params={"slug": "imap.email"})
    answer = await client.post(
        "/app/admin/connectors",
        data={
            "csrf": csrf_of(form),
            "slug": "imap.email",
            "name": "broken-imap",
            "config.imap_port": "99999",
            "config.password": "s3cret-never-shown",
            "enabled": "on",
        },
        headers=HTML,
    )
    assert answer.status_code == 422
    assert "ValidationFailedError" in answer.text
    assert "address" in answer.text and "imap_host" in answer.text and "imap_port" in answer.text
    assert "s3cret-never-shown" not in answer.text
    async with services.sessions() as session:
        assert (await session.execute(select(StoredConnector))).first() is None
    refused = await _events(services, "connector.created")
    assert [e.outcome for e in refused] == ["failure"]
    assert "s3cret-never-shown" not in str([e.payload for e in refused])


async def test_a_secret_is_write_only(console: Console) -> None:
    client, _ = console
    await sign_in(client, "ada")
    form = await client.get("/app/admin/connectors/new", params={"slug": "imap.email"})
    assert 'type="password"' in form.text
    answer = await client.post(
        "/app/admin/connectors",
        data={
            "csrf": csrf_of(form),
            "slug": "imap.email",
            "name": "secret-imap",
            "config.address": "dana@northwind.example",
            "config.imap_host": "127.0.0.1",
            "config.imap_port": "1",
            "config.password": "s3cret-never-shown",
            "enabled": "on",
        },
    )
    assert answer.status_code == 303, answer.text
    listing = await client.get("/app/admin/connectors", headers=HTML)
    assert "secret-imap" in listing.text and "s3cret-never-shown" not in listing.text


async def test_a_dead_connector_shows_down(console: Console) -> None:
    """Asked now: an IMAP server that does not answer is down, whatever it said before."""
    from tests.fakes.serving import free_port

    client, services = console
    await sign_in(client, "ada")
    form = await client.get("/app/admin/connectors/new", params={"slug": "imap.email"})
    done = await client.post(
        "/app/admin/connectors",
        data={
            "csrf": csrf_of(form),
            "slug": "imap.email",
            "name": "dead-imap",
            "config.address": "dana@northwind.example",
            "config.imap_host": "127.0.0.1",
            "config.imap_port": str(free_port()),
            "config.password": "pw",
            "enabled": "on",
        },
    )
    assert done.status_code == 303, done.text
    # What the instance remembered from its build, as the admin API lists it today.
    live = services.connectors.instances[("default", "dead-imap")]
    from integrations.base import ConnectorHealth, ConnectorStatus

    live.health = ConnectorHealth(status=ConnectorStatus.OK, detail="remembered")
    listing = await client.get("/app/admin/connectors", headers=HTML)
    row = listing.text.split('data-connector="dead-imap"')[1].split("</tr>")[0]
    assert 'data-health="down"' in row
    sandbox = listing.text.split('data-connector="sandbox-mail"')[1].split("</tr>")[0]
    assert 'data-health="ok"' in sandbox
    # The admin API asks the same way (one function for the page and the API).
    listed = {c["name"]: c for c in (await client.get("/api/v1/admin/connectors")).json()}
    assert listed["dead-imap"]["status"] == "down", listed["dead-imap"]
    assert listed["sandbox-mail"]["status"] == "ok"


async def test_admin_disables_and_tests_a_connector(console: Console) -> None:
    client, services = console
    await sign_in(client, "ada")
    assert (await _add_sandbox_mail(client)).status_code == 303
    page = await client.get("/app/admin/connectors", headers=HTML)
    tested = await client.post("/app/admin/connectors/dana-mail/test", data={"csrf": csrf_of(page)})
    assert tested.status_code == 303 and "ok" in tested.headers["location"]
    off = await client.post(
        "/app/admin/connectors/dana-mail/enabled",
        data={"csrf": csrf_of(page), "enabled": "off", "reason": "mailbox moved"},
    )
    assert off.status_code == 303
    listing = await client.get("/app/admin/connectors", headers=HTML)
    row = listing.text.split('data-connector="dana-mail"')[1].split("</tr>")[0]
    assert "(disabled)" in row and 'data-health="down"' in row
    bad = await client.post(
        "/app/admin/connectors/dana-mail/enabled",
        data={"csrf": csrf_of(page), "enabled": "maybe", "reason": "x"},
    )
    assert bad.status_code == 422


async def _policy_versions(services: Any) -> None:
    """Two recorded versions of the policy: the file as shipped, then an edit."""
    from assistant.change_control import policy_path, snapshot_policy

    operator = Principal(user_id="ops", tenant_id="default", roles=frozenset({Role.ADMIN}))
    path = policy_path(services.settings)
    async with services.sessions() as session, session.begin():
        await snapshot_policy(session, operator, services.settings, "as shipped")
    path.write_text(path.read_text().replace('version: "2026-11-24.1"', 'version: "2026-12-01.1"'))
    async with services.sessions() as session, session.begin():
        await snapshot_policy(session, operator, services.settings, "new label")


async def test_admin_rolls_the_policy_back_one_version(console: Console) -> None:
    client, services = console
    await _policy_versions(services)
    await sign_in(client, "ada")
    page = await client.get("/app/admin/governance", headers=HTML)
    assert page.status_code == 200
    assert "2026-12-01.1@" in page.text.split('id="policy-in-force"')[1].split("</code>")[0]
    assert "policy@1" in page.text and "What changed" in page.text
    assert "+version: &#34;2026-12-01.1&#34;" in page.text
    done = await client.post(
        "/app/admin/governance/rollback",
        data={"csrf": csrf_of(page), "version": "policy@1", "reason": "the label was wrong"},
    )
    assert done.status_code == 303, done.text
    assert 'version: "2026-11-24.1"' in services.settings.governance.policy_file.read_text()
    rolled = await _events(services, "config.rolled_back")
    assert [e.reason for e in rolled] == ["the label was wrong"]
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.governance.policy.reload()
    after = await client.get("/app/admin/governance", headers=HTML)
    assert "2026-11-24.1@" in after.text.split('id="policy-in-force"')[1].split("</code>")[0]
    assert "policy@3" in after.text
    not_policy = await client.post(
        "/app/admin/governance/rollback",
        data={"csrf": csrf_of(page), "version": "nope@1", "reason": "x"},
        headers=HTML,
    )
    assert not_policy.status_code == 404


async def _some_action_id(services: Any) -> str:
    """Make a governed action's trail in the audit log: propose a draft for Dana."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(AuditEvent.action_id).where(AuditEvent.action_id.is_not(None)).limit(1)
        )
        found = rows.scalar_one_or_none()
    if found:
        return str(found)
    from governance.audit import AuditAction, AuditEventIn, record

    actor = Principal(user_id="dana", tenant_id="default", roles=frozenset({Role.EXECUTIVE}))
    async with services.sessions() as session, session.begin():
        for step in (AuditAction.ACTION_PROPOSED, AuditAction.ACTION_APPROVED):
            await record(
                session,
                actor,
                AuditEventIn(action=step, resource_type="action", action_id="act-42"),
            )
    return "act-42"


async def test_auditor_filters_exports_and_verifies(console: Console) -> None:
    client, services = console
    action_id = await _some_action_id(services)
    await sign_in(client, "otto")
    page = await client.get("/app/audit", params={"action_id": action_id}, headers=HTML)
    assert page.status_code == 200
    seqs = [int(s) for s in page.text.split('data-seq="')[1:] for s in [s.split('"')[0]]]
    assert seqs and seqs == sorted(seqs)
    async with services.sessions() as session:
        expected = (
            await session.execute(select(AuditEvent.seq).where(AuditEvent.action_id == action_id))
        ).scalars()
        assert sorted(expected) == seqs
    exported = await client.get(
        "/app/audit/export", params={"action_id": action_id, "format": "jsonl"}
    )
    assert exported.status_code == 200
    lines = [orjson.loads(line) for line in exported.content.splitlines()]
    proof = lines[-1]["proof"]
    assert [row["seq"] for row in lines[:-1]] == seqs
    assert proof["chain_ok"] is True and proof["exported"] == len(seqs)
    assert proof["filter"] == {"action_id": action_id}
    as_csv = await client.get("/app/audit/export", params={"action_id": action_id, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [int(r["seq"]) for r in rows] == seqs
    assert orjson.loads(as_csv.headers["x-audit-proof"])["chain_ok"] is True
    exports = await _events(services, "audit.exported")
    assert [e.payload["format"] for e in exports] == ["jsonl", "csv"]
    assert all(e.actor_id for e in exports)
    verified = await client.get("/app/audit/verify", headers=HTML)
    assert 'data-ok="1"' in verified.text
    gate = await client.get("/app/audit/gate", headers=HTML)
    assert gate.status_code == 200 and 'id="gate-decision"' in gate.text
    full = await client.get("/api/v1/gate/report", params={"format": "html"})
    assert full.status_code == 200 and "<svg" in full.text


async def test_the_export_proof_names_the_anchor_and_the_signed_checkpoints_of_its_range(
    console: Console,
) -> None:
    """The proof carries the checkpoint that signs a chain head at or after the range's
    end (its signature checks with the deployment's key) and the anchor verified against;
    the verify page shows that anchor, and refuses to call the chain verified when the
    anchor cannot be read."""
    from governance.checkpoints import create_checkpoint, load_public_key, signature_valid

    client, services = console
    action_id = await _some_action_id(services)
    async with services.sessions() as session, session.begin():
        await create_checkpoint(session, "default")
    await sign_in(client, "otto")
    exported = await client.get(
        "/app/audit/export", params={"action_id": action_id, "format": "jsonl"}
    )
    lines = [orjson.loads(line) for line in exported.content.splitlines()]
    proof = lines[-1]["proof"]
    assert proof["chain_ok"] is True and proof["anchor"].startswith("file ")
    assert proof["anchor_unreadable"] is None and proof["anchored_seq"] >= 1
    covering = proof["range_checkpoints"]["covering"]
    assert covering is not None and covering["seq"] >= proof["last_seq"]
    key = load_public_key(services.settings.audit_key_file)
    assert key is not None and proof["key_fingerprint"]

    class Signed:
        tenant_id = "default"
        seq = covering["seq"]
        row_hash = covering["row_hash"]
        created_at = datetime.fromisoformat(covering["created_at"])
        key_fingerprint = covering["key_fingerprint"]
        signature = covering["signature"]

    assert signature_valid(Signed(), key)
    Signed.row_hash = "0" * 64
    assert not signature_valid(Signed(), key)
    as_csv = await client.get("/app/audit/export", params={"action_id": action_id, "format": "csv"})
    header = orjson.loads(as_csv.headers["x-audit-proof"])
    assert header["range_checkpoints"]["covering"] == covering

    verified = await client.get("/app/audit/verify", headers=HTML)
    shown = verified.text.split('id="verify-anchor">')[1].split("</dd>")[0]
    assert 'data-ok="1"' in verified.text
    assert shown.startswith("file ") and "anchored checkpoint" in shown

    anchor_file = services.settings.audit_anchor_file
    anchor_file.unlink()
    anchor_file.mkdir()  # unreadable as a file: the chain is then not called verified
    unreadable = await client.get("/app/audit/verify", headers=HTML)
    assert 'data-ok="0"' in unreadable.text and "the anchor could not be read" in unreadable.text


async def test_a_bad_audit_filter_is_a_typed_error(console: Console) -> None:
    client, _ = console
    await sign_in(client, "otto")
    answer = await client.get("/app/audit", params={"event": "no.such.event"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "ValidationFailedError"
    wrong_format = await client.get("/app/audit/export", params={"format": "xml"})
    assert wrong_format.status_code == 422


async def test_an_audit_cursor_past_64_bits_is_a_typed_422_not_a_500(console: Console) -> None:
    """`after` is compared with the 64-bit seq column: one past its end used to raise
    OverflowError in the database driver (a 500); the largest one is an empty page."""
    client, _ = console
    await sign_in(client, "otto")
    too_far = await client.get("/app/audit", params={"after": str(2**63)})
    assert too_far.status_code == 422
    assert too_far.json()["error"] == "RequestValidationError" and too_far.json()["errors"]
    last = await client.get("/app/audit", params={"after": str(2**63 - 1)})
    assert last.status_code == 200


async def test_verification_shows_a_broken_chain(console: Console) -> None:
    client, services = console
    await _some_action_id(services)
    async with services.engine.begin() as connection:
        await connection.exec_driver_sql("DROP TRIGGER audit_events_no_update")
        await connection.exec_driver_sql(
            "UPDATE audit_events SET actor_id = 'someone-else' WHERE seq = 1"
        )
    await sign_in(client, "otto")
    verified = await client.get("/app/audit/verify", headers=HTML)
    assert 'data-ok="0"' in verified.text and "broken" in verified.text


async def test_verification_compares_with_the_anchor(console: Console) -> None:
    """The auditor's page checks what `assistant audit verify` checks: a checkpoint deleted
    from the database (owner rights) while the anchor holds it is a broken chain."""
    from governance.aftercommit import drain_notifications
    from governance.checkpoints import create_checkpoint

    client, services = console
    await _some_action_id(services)
    async with services.sessions() as session, session.begin():
        checkpoint = await create_checkpoint(session, "default")
        assert checkpoint is not None
    await drain_notifications()  # appended to the anchor after commit
    await sign_in(client, "otto")
    intact = await client.get("/app/audit/verify", headers=HTML)
    assert 'data-ok="1"' in intact.text
    assert f"up to seq {checkpoint.seq}" in intact.text.split('id="verify-anchor"')[1]
    async with services.engine.begin() as connection:
        await connection.exec_driver_sql("DROP TRIGGER audit_checkpoints_no_delete")
        await connection.exec_driver_sql("DELETE FROM audit_checkpoints")
    broken = await client.get("/app/audit/verify", headers=HTML)
    assert 'data-ok="0"' in broken.text and "checkpoint_missing" in broken.text


@pytest.mark.parametrize(("path", "form"), ADMIN_WRITES)
async def test_an_auditor_reaches_no_admin_write(
    console: Console, path: str, form: dict[str, str]
) -> None:
    client, services = console
    await _policy_versions(services)
    await sign_in(client, "otto")
    page = await client.get("/app/audit", headers=HTML)
    answer = await client.post(path, data={"csrf": csrf_of(page), **form})
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "PermissionDeniedError"
    denied = await _events(services, "auth.access.denied")
    assert any(e.actor_id and e.resource_id == f"POST {path}" for e in denied)
    async with services.sessions() as session:
        assert (await session.execute(select(StoredConnector))).first() is None
    assert await _events(services, "config.rolled_back") == []


async def test_an_auditor_sees_no_write_in_any_room(console: Console) -> None:
    """She reads connectors and the policy (her role's read permissions) but no page she can
    reach offers a form that changes anything, and the admin's forms are refused."""
    client, services = console
    await _policy_versions(services)
    await sign_in(client, "otto")
    rooms = (
        "/app/audit",
        "/app/audit/verify",
        "/app/audit/gate",
        "/app/audit/quality",
        "/app/admin/connectors",
        "/app/admin/governance",
        "/app/admin/operations",
        "/app/admin/people",
        "/app/audit/activity",
        f"/app/audit/activity?executive={await _user_id(services, 'dana')}",
    )
    for path in rooms:
        page = await client.get(path, headers=HTML)
        assert page.status_code == 200, path
        forms = page.text.split("<form")[1:]
        posts = [f for f in forms if 'method="post"' in f.split(">")[0]]
        # Only signing out posts.
        assert posts and all('action="/auth/logout"' in f.split(">")[0] for f in posts), path
        assert "/app/inbox" not in page.text and "/app/review" not in page.text
        assert "Add a connector" not in page.text and "Roll back" not in page.text
    new = await client.get("/app/admin/connectors/new", params={"slug": "sandbox.email"})
    assert new.status_code == 403
    for path in ("/app/inbox", "/app/review", "/app/history", "/app/meetings"):
        answer = await client.get(path, headers=HTML)
        assert answer.status_code in {303, 403}, path
        if answer.status_code == 303:
            assert answer.headers["location"].startswith("/app/nobody"), path


async def test_an_executive_reaches_no_console(console: Console) -> None:
    client, _ = console
    await sign_in(client, "dana")
    for path in ("/app/admin/connectors", "/app/admin/governance", "/app/audit", "/app/audit/gate"):
        assert (await client.get(path, headers=HTML)).status_code == 403, path
    export = await client.get("/app/audit/export")
    assert export.status_code == 403


async def test_quality_and_cost_page(console: Console) -> None:
    client, _ = console
    await sign_in(client, "otto")
    page = await client.get("/app/audit/quality", params={"period": "7d"}, headers=HTML)
    assert page.status_code == 200
    assert 'id="cost"' in page.text and "Actions by kind" in page.text
    bad = await client.get("/app/audit/quality", params={"period": "forever"})
    assert bad.status_code == 422 and bad.json()["error"] == "ValidationFailedError"
    await sign_in(client, "dana")
    assert (await client.get("/app/audit/quality", headers=HTML)).status_code == 403


async def test_governance_shows_missing_owners_and_autonomy_levels(console: Console) -> None:
    from governance import autonomy
    from governance.policy import Autonomy

    client, services = console
    operator = Principal(user_id="ops", tenant_id="default", roles=frozenset({Role.ADMIN}))
    async with services.sessions() as session, session.begin():
        await autonomy.set_level(
            session,
            operator,
            executive=DANA,
            kind="email.send",
            level=Autonomy.SHADOW,
            reason="watch first",
            bar=services.settings.autonomy,
            default=Autonomy.SUGGEST,
        )
    await sign_in(client, "ada")
    page = await client.get("/app/admin/governance", headers=HTML)
    assert page.status_code == 200
    missing = page.text.split('id="owners-missing"')[1].split("</div>")[0]
    assert "Production refuses to start" in missing and "deployment" in missing.lower()
    autonomy_rows = page.text.split('class="history autonomy"')[1].split("</table>")[0]
    assert DANA in autonomy_rows and "shadow" in autonomy_rows
    assert "watch first" in page.text.split("Stored levels")[1]
    row = autonomy_rows.split(f'data-autonomy="{DANA}:email.send"')[1].split("</tr>")[0]
    promotion = row.split("data-promotion>")[1].split("</td>")[0]
    assert promotion.startswith("suggest refused: 0 decision(s)"), promotion

    # raising it without the record is refused (409, audited); lowering is not
    raised = await client.post(
        "/app/admin/governance/autonomy",
        data={
            "csrf": csrf_of(page),
            "executive": DANA,
            "kind": "email.send",
            "level": "suggest",
            "reason": "trust her",
        },
        headers=HTML,
    )
    assert raised.status_code == 409 and "PromotionRefusedError" in raised.text
    [refusal] = await _events(services, "autonomy.promotion_refused")
    assert refusal.payload["requested"] == "suggest" and refusal.actor_id
    # nobody sets their own level
    ada = await _user_id(services, "ada")
    own = await client.post(
        "/app/admin/governance/autonomy",
        data={
            "csrf": csrf_of(page),
            "executive": "ada@northwind.example",
            "kind": "email.send",
            "level": "shadow",
            "reason": "mine",
        },
        headers=HTML,
    )
    assert own.status_code == 403 and "SeparationOfDutiesError" in own.text
    refusals = await _events(services, "autonomy.promotion_refused")
    assert len(refusals) == 2 and refusals[-1].actor_id == ada
    async with services.sessions() as session:
        assert await autonomy.stored_level(session, "default", DANA, "email.send") == (
            Autonomy.SHADOW
        )


async def test_a_level_set_by_user_name_reaches_her_proposals_and_a_stranger_is_refused(
    console: Console,
) -> None:
    """Proposals look their autonomy grant up by the executive's user id. A level typed
    for "dana" used to be stored under the word "dana", shown as set, and never applied:
    the admin lowering her to shadow believed she had. Now the user name is resolved to
    her id, and a name that is nobody's is a typed 422 that stores nothing."""
    from governance import autonomy
    from governance.policy import Autonomy

    client, services = console
    dana = await _user_id(services, "dana")
    await sign_in(client, "ada")
    page = await client.get("/app/admin/governance", headers=HTML)
    form = {"csrf": csrf_of(page), "kind": "email.send", "level": "shadow", "reason": "watch"}
    lowered = await client.post(
        "/app/admin/governance/autonomy", data={**form, "executive": "dana"}, headers=HTML
    )
    assert lowered.status_code == 303, lowered.text
    stranger = await client.post(
        "/app/admin/governance/autonomy", data={**form, "executive": "nobody-at-all"}
    )
    assert stranger.status_code == 422
    assert stranger.json()["error"] == "ValidationFailedError" and stranger.json()["detail"]
    # a user name that is her own is refused as her own
    own = await client.post(
        "/app/admin/governance/autonomy", data={**form, "executive": "ada"}, headers=HTML
    )
    assert own.status_code == 403 and "SeparationOfDutiesError" in own.text
    async with services.sessions() as session:
        assert await autonomy.stored_level(session, "default", dana, "email.send") == (
            Autonomy.SHADOW
        )
        stored = {g.executive for g in await autonomy.grants(session, "default")}
    assert stored == {dana}
    # the room names her (and who set it), not their user ids
    room = await client.get("/app/admin/governance", headers=HTML)
    row = room.text.split(f'data-autonomy="{dana}:email.send">')[1].split("</tr>")[0]
    assert row.startswith("<td>dana</td>"), row
    kept = room.text.split("Stored levels")[1].split("</ul>")[0]
    assert "dana / email.send: shadow, by Ada: watch" in kept and dana not in kept


async def test_operations_shows_switches_and_the_last_drill(console: Console) -> None:
    from assistant.core.clock import utcnow
    from governance.killswitch import set_switch
    from governance.production_models import DrillRecord

    client, services = console
    await sign_in(client, "otto")
    empty = await client.get("/app/admin/operations", headers=HTML)
    assert "No drill has run yet" in empty.text and 'id="no-exceptions"' in empty.text
    operator = Principal(user_id="ops", tenant_id="default", roles=frozenset({Role.ADMIN}))
    now = utcnow()
    async with services.sessions() as session, session.begin():
        await set_switch(
            session, operator, enabled=True, now=now, tenant_id="default", reason="incident 7"
        )
        session.add(
            DrillRecord(
                id="drill-1",
                tenant_id="default",
                started_at=now,
                finished_at=now,
                passed=False,
                summary="email.move did not come back",
                results=[],
                started_by="ops",
            )
        )
    page = await client.get("/app/admin/operations", headers=HTML)
    assert "FAILED" in page.text and "email.move did not come back" in page.text
    assert "ON: tenant default" in page.text and "incident 7" in page.text
    await sign_in(client, "dana")
    assert (await client.get("/app/admin/operations", headers=HTML)).status_code == 403


async def _failed_action(client: httpx.AsyncClient, services: Any) -> tuple[str, str]:
    """A real failure: Dana's assistant files a message that does not exist; the executor
    tries, the sandbox says no such message, the action FAILS into the exception queue.
    Returns (action id, exception id)."""
    from assistant.governance_app import build_governance
    from governance.models import ActionException
    from governance.service import Proposal

    app = client._transport.app  # type: ignore[attr-defined]
    if getattr(app.state, "governance", None) is None:
        app.state.governance = build_governance(services)
    governance = app.state.governance
    dana = Principal(
        user_id=await _user_id(services, "dana"),
        tenant_id="default",
        roles=frozenset({Role.EXECUTIVE}),
    )
    from assistant.core.principal import system_principal

    async with services.sessions() as session, session.begin():
        action = await governance.actions.propose(
            session,
            system_principal("default", "pipeline"),
            Proposal(
                kind="email.move",
                arguments={"message_id": "no-such-message", "folder": "archive"},
                on_behalf_of=dana.user_id,
            ),
        )
    if action.state == "pending_review":
        async with services.sessions() as session, session.begin():
            await governance.review.approve(session, dana, action.id)
    await governance.executor.run_due()
    async with services.sessions() as session:
        routed = (
            await session.execute(
                select(ActionException).where(ActionException.action_id == action.id)
            )
        ).scalar_one()
    assert routed.state == "failed" and routed.status == "open"
    return action.id, routed.id


async def test_admin_assigns_retries_and_cancels_exceptions_through_governance(
    console: Console,
) -> None:
    from governance.models import Action, ActionException

    client, services = console
    action_id, exception_id = await _failed_action(client, services)
    await sign_in(client, "ada")
    page = await client.get("/app/admin/operations", headers=HTML)
    assert f'data-exception="{exception_id}"' in page.text
    base = f"/app/admin/operations/exceptions/{exception_id}"

    assigned = await client.post(
        f"{base}/assign",
        data={"csrf": csrf_of(page), "owner": "it-oncall@northwind.example", "reason": "on call"},
    )
    assert assigned.status_code == 303, assigned.text
    page = await client.get("/app/admin/operations", headers=HTML)
    row = page.text.split(f'data-exception="{exception_id}"')[1].split("</tr>")[0]
    assert "it-oncall@northwind.example" in row
    [event] = await _events(services, "exception.assigned")
    assert event.payload["previous_owner"] == "unassigned" and event.reason == "on call"

    retried = await client.post(
        f"{base}/retry", data={"csrf": csrf_of(page), "reason": "the message is back"}
    )
    assert retried.status_code == 303, retried.text
    [event] = await _events(services, "exception.retried")
    again = event.payload["new_action_id"]
    async with services.sessions() as session:
        new = await session.get(Action, again)
        closed = await session.get(ActionException, exception_id)
    assert new is not None and new.id != action_id and new.kind == "email.move"
    assert new.on_behalf_of == await _user_id(services, "dana")
    assert new.arguments["message_id"] == "no-such-message"
    assert closed is not None and closed.status == "retried" and closed.resolved_by
    # a second retry or a cancel of a closed exception is a typed conflict, nothing changes
    twice = await client.post(
        f"{base}/retry", data={"csrf": csrf_of(page), "reason": "again"}, headers=HTML
    )
    assert twice.status_code == 409 and "ConflictError" in twice.text
    assert len(await _events(services, "exception.retried")) == 1

    # the new attempt is governed like any other: proposed by Ada, so Dana (not Ada)
    # approves it; it fails too, and this time Ada cancels the exception
    governance = client._transport.app.state.governance  # type: ignore[attr-defined]
    dana_id = await _user_id(services, "dana")
    assert new.actor_id != dana_id
    if new.state == "pending_review":
        dana = Principal(user_id=dana_id, tenant_id="default", roles=frozenset({Role.EXECUTIVE}))
        async with services.sessions() as session, session.begin():
            await governance.review.approve(session, dana, again)
    await governance.executor.run_due()
    async with services.sessions() as session:
        second = (
            await session.execute(select(ActionException).where(ActionException.action_id == again))
        ).scalar_one()
    cancelled = await client.post(
        f"/app/admin/operations/exceptions/{second.id}/cancel",
        data={"csrf": csrf_of(page), "reason": "not worth it"},
    )
    assert cancelled.status_code == 303
    page = await client.get("/app/admin/operations", headers=HTML)
    assert 'id="no-exceptions"' in page.text
    [event] = await _events(services, "exception.cancelled")
    assert event.resource_id == second.id and event.reason == "not worth it"
    # another tenant's id, or none, is not found
    missing = await client.post(
        "/app/admin/operations/exceptions/nope/cancel",
        data={"csrf": csrf_of(page), "reason": "x"},
        headers=HTML,
    )
    assert missing.status_code == 404


async def test_an_auditor_cannot_decide_exceptions(console: Console) -> None:
    from governance.models import ActionException

    client, services = console
    _, exception_id = await _failed_action(client, services)
    await sign_in(client, "otto")
    page = await client.get("/app/admin/operations", headers=HTML)
    assert f'data-exception="{exception_id}"' in page.text
    assert "/retry" not in page.text and "Run the rollback drill" not in page.text
    for verb, form in (("retry", {}), ("cancel", {}), ("assign", {"owner": "otto"})):
        refused = await client.post(
            f"/app/admin/operations/exceptions/{exception_id}/{verb}",
            data={"csrf": csrf_of(page), "reason": "mine now", **form},
            headers=HTML,
        )
        assert refused.status_code == 403, verb
    async with services.sessions() as session:
        row = await session.get(ActionException, exception_id)
    assert row is not None and row.status == "open" and row.owner == "unassigned"
    denied = await _events(services, "auth.access.denied")
    assert len(denied) >= 3


async def test_admin_runs_the_rollback_drill_and_sees_workers(console: Console) -> None:
    from assistant.core.clock import utcnow
    from governance.workers import beat

    client, services = console
    now = utcnow()
    await beat(
        services.sessions, "host-1:worker", "procrastinate", now=now, started_at=now, running=2
    )
    await sign_in(client, "ada")
    page = await client.get("/app/admin/operations", headers=HTML)
    row = page.text.split('data-worker="host-1:worker"')[1].split("</tr>")[0]
    assert "procrastinate" in row and 'data-alive="1"' in row
    assert "No drill has run yet" in page.text
    ran = await client.post("/app/admin/operations/drill", data={"csrf": csrf_of(page)})
    assert ran.status_code == 303, ran.text
    assert "drill" in ran.headers["location"]
    after = await client.get("/app/admin/operations", headers=HTML)
    assert 'id="last-drill"' in after.text and "No drill has run yet" not in after.text
    assert "passed" in after.text.split('id="last-drill"')[1].split("</p>")[0], after.text


async def _user_id(services: Any, username: str) -> str:
    from assistant.auth import users

    async with services.sessions() as session:
        user = await users.find_user(session, "default", username)
        assert user is not None
        return str(user.id)


async def test_admin_manages_people_roles_and_accounts(console: Console) -> None:
    from assistant.auth import users

    client, services = console
    await sign_in(client, "ada")
    page = await client.get("/app/admin/people", headers=HTML)
    assert page.status_code == 200
    for name in ("ada", "otto", "dana"):
        assert f'data-user="{name}"' in page.text
    added = await client.post(
        "/app/admin/people",
        data={
            "csrf": csrf_of(page),
            "username": "dan",
            "display_name": "Dan Delegate",
            "email": "dan@northwind.example",
            "roles": "delegate",
            "password": PASSWORD,
        },
    )
    assert added.status_code == 303, added.text
    dan = await _user_id(services, "dan")
    changed = await client.post(
        f"/app/admin/people/{dan}/roles",
        data={"csrf": csrf_of(page), "roles": ["delegate", "auditor"]},
    )
    assert changed.status_code == 303, changed.text
    async with services.sessions() as session:
        assert await users.roles_of(session, "default", dan) == {Role.DELEGATE, Role.AUDITOR}
    bad_role = await client.post(
        f"/app/admin/people/{dan}/roles",
        data={"csrf": csrf_of(page), "roles": "root"},
        headers=HTML,
    )
    assert bad_role.status_code == 422 and "ValidationFailedError" in bad_role.text

    # disabled: her session ends and she cannot sign in; enabled again, she can
    off = await client.post(
        f"/app/admin/people/{dan}/disabled", data={"csrf": csrf_of(page), "disabled": "true"}
    )
    assert off.status_code == 303
    page = await client.get("/app/admin/people", headers=HTML)
    row = page.text.split('data-user="dan"')[1].split("</tr>")[0]
    assert "disabled" in row.split("data-account>")[1].split("</td>")[0]
    with pytest.raises(AssertionError, match="Wrong user name or password"):
        await sign_in(client, "dan")
    await sign_in(client, "ada")
    page = await client.get("/app/admin/people", headers=HTML)
    on = await client.post(
        f"/app/admin/people/{dan}/disabled", data={"csrf": csrf_of(page), "disabled": "false"}
    )
    assert on.status_code == 303
    assert (await sign_in(client, "dan")).headers["location"].startswith("/app")

    # every form is CSRF-protected: without the token nothing changes
    await sign_in(client, "ada")
    forged = await client.post(f"/app/admin/people/{dan}/roles", data={"roles": "admin"})
    assert forged.status_code == 403
    async with services.sessions() as session:
        assert Role.ADMIN not in await users.roles_of(session, "default", dan)


async def test_nobody_edits_their_own_roles_or_disables_themselves(console: Console) -> None:
    from assistant.auth import users

    client, services = console
    await sign_in(client, "ada")
    ada = await _user_id(services, "ada")
    page = await client.get("/app/admin/people", headers=HTML)
    own = page.text.split('data-user="ada"')[1].split("</tr>")[0]
    assert f"/app/admin/people/{ada}/" not in own  # no form offered for herself
    for path, form in (
        (f"/app/admin/people/{ada}/roles", {"roles": "admin"}),  # dropping her other roles
        (f"/app/admin/people/{ada}/roles", {"roles": ["admin", "executive"]}),
        (f"/app/admin/people/{ada}/disabled", {"disabled": "true"}),
    ):
        answer = await client.post(path, data={"csrf": csrf_of(page), **form}, headers=HTML)
        assert answer.status_code == 403 and "SeparationOfDutiesError" in answer.text, path
    async with services.sessions() as session:
        assert await users.roles_of(session, "default", ada) == {Role.ADMIN}
        assert not (await users.get_user(session, "default", ada)).disabled
    denied = [
        e
        for e in await _events(services, "auth.access.denied")
        if e.resource_type == "user" and e.resource_id == ada
    ]
    assert len(denied) == 3 and all(e.actor_id == ada for e in denied)
    # the API follows the same rule for disabling
    api = await client.patch(f"/api/v1/users/{ada}", json={"disabled": True})
    assert api.status_code == 403 and api.json()["error"] == "SeparationOfDutiesError"


async def test_an_api_key_is_shown_once_and_revoked_from_the_page(console: Console) -> None:
    client, services = console
    await sign_in(client, "ada")
    page = await client.get("/app/admin/people", headers=HTML)
    created = await client.post(
        "/app/admin/people/api-keys",
        data={"csrf": csrf_of(page), "name": "ci-reader", "roles": "auditor"},
        headers=HTML,
    )
    assert created.status_code == 200
    key = created.text.split('class="secret-once">')[1].split("</code>")[0]
    assert key.startswith("ea_")
    again = await client.get("/app/admin/people", headers=HTML)
    assert key not in again.text and 'data-key="ci-reader"' in again.text
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as machine:
        assert (
            await machine.get("/api/v1/audit/events", headers={"X-API-Key": key})
        ).status_code == 200
        key_id = again.text.split("/app/admin/people/api-keys/")[1].split("/revoke")[0]
        revoked = await client.post(
            f"/app/admin/people/api-keys/{key_id}/revoke", data={"csrf": csrf_of(again)}
        )
        assert revoked.status_code == 303
        assert (
            await machine.get("/api/v1/audit/events", headers={"X-API-Key": key})
        ).status_code == 401
    assert [e.resource_id for e in await _events(services, "auth.apikey.revoked")] == [key_id]
    secrets_in_audit = [e for e in await _events(services, "auth.apikey.created")]
    assert secrets_in_audit and all(key not in str(e.payload) for e in secrets_in_audit)


async def test_admin_revokes_a_delegation_an_auditor_only_reads_people(console: Console) -> None:
    from assistant.auth import users

    client, services = console
    dan = await add_user(services, "dan", Role.DELEGATE, email="dan@northwind.example")
    dana = await _user_id(services, "dana")
    async with services.sessions() as session, session.begin():
        executive = await users.get_user(session, "default", dana)
        delegate = await users.get_user(session, "default", dan)
        dana_principal = Principal(
            user_id=dana, tenant_id="default", roles=frozenset({Role.EXECUTIVE})
        )
        grant = await users.grant_delegation(
            session, dana_principal, executive=executive, delegate=delegate, scopes=["triage.read"]
        )
        grant_id = grant.id
    await sign_in(client, "otto")
    read = await client.get("/app/admin/people", headers=HTML)
    row = read.text.split(f'data-delegation="{grant_id}"')[1].split("</tr>")[0]
    assert "triage.read" in row and "active" in row and "<form" not in row
    assert "New API key" not in read.text and "Add a user" not in read.text
    await sign_in(client, "ada")
    page = await client.get("/app/admin/people", headers=HTML)
    revoked = await client.post(
        f"/app/admin/people/delegations/{grant_id}/revoke", data={"csrf": csrf_of(page)}
    )
    assert revoked.status_code == 303
    async with services.sessions() as session:
        assert await users.active_delegation(session, "default", dana, dan) is None


async def test_admin_stops_and_resumes_execution_with_a_kill_switch(console: Console) -> None:
    from governance.killswitch import list_switches

    client, services = console
    await sign_in(client, "ada")
    page = await client.get("/app/admin/operations", headers=HTML)
    on = await client.post(
        "/app/admin/operations/killswitch",
        data={"csrf": csrf_of(page), "enabled": "on", "connector": "email", "reason": "incident 9"},
    )
    assert on.status_code == 303, on.text
    async with services.sessions() as session:
        [switch] = await list_switches(session, enabled_only=True)
    assert (switch.tenant_id, switch.connector, switch.reason) == ("default", "email", "incident 9")
    shown = await client.get("/app/admin/operations", headers=HTML)
    assert "ON: tenant default, connector email (incident 9)" in shown.text
    off = await client.post(
        "/app/admin/operations/killswitch",
        data={"csrf": csrf_of(page), "enabled": "off", "connector": "email", "reason": "fixed"},
    )
    assert off.status_code == 303
    async with services.sessions() as session:
        assert await list_switches(session, enabled_only=True) == []
    assert len(await _events(services, "killswitch.enabled")) == 1
    assert len(await _events(services, "killswitch.disabled")) == 1
    unknown = await client.post(
        "/app/admin/operations/killswitch",
        data={
            "csrf": csrf_of(page),
            "enabled": "on",
            "connector": "other-tenant-mail",
            "reason": "x",
        },
        headers=HTML,
    )
    assert unknown.status_code == 422


async def test_an_auditor_sees_what_the_assistant_saw_and_did_for_an_executive(
    console: Console,
) -> None:
    from assistant.triage import store

    client, services = console
    _, _ = await _failed_action(client, services)
    dana = await _user_id(services, "dana")
    async with services.sessions() as session, session.begin():
        [triaged] = await store.list_results(session, "default", limit=1, mailboxes=[DANA.lower()])
        person = Principal(user_id=dana, tenant_id="default", roles=frozenset({Role.EXECUTIVE}))
        await store.correct(
            session,
            person,
            triaged.message_id,
            store.CorrectionIn(category="notify", note="only for my information"),
            mailbox=triaged.mailbox,
        )
    await sign_in(client, "otto")
    room = await client.get("/app/audit/activity", headers=HTML)
    assert room.status_code == 200 and f'value="{dana}"' in room.text
    page = await client.get("/app/audit/activity", params={"executive": dana}, headers=HTML)
    assert page.status_code == 200
    messages = page.text.split('class="history activity-messages"')[1].split("</table>")[0]
    assert (
        messages.count("data-message=") > 1 and f'data-message="{triaged.message_id}"' in messages
    )
    # each message's "Received" cell shows when it arrived (it read a field that does not
    # exist, so the column was blank for every message)
    assert triaged.message_date is not None
    received = messages.split(f'data-message="{triaged.message_id}"><td>')[1].split("</td>")[0]
    assert received == triaged.message_date.strftime("%a %d %b %H:%M") + " UTC"
    corrections = page.text.split('class="history activity-corrections"')[1].split("</table>")[0]
    assert "only for my information" in corrections
    assert (
        "<td>dana</td>" in corrections
    )  # who corrected it (the sandbox's dana has no display name)
    proposals = page.text.split('class="history activity-proposals"')[1].split("</table>")[0]
    # approved by Dana (shown by her user name)
    assert "email.move" in proposals and "failed" in proposals
    assert "<td>dana</td>" in proposals
    assert (
        await client.get("/app/audit/activity", params={"executive": "nobody"}, headers=HTML)
    ).status_code == 404
    # nobody else reads it: neither the executive herself here nor an admin
    for other in ("dana", "ada"):
        await sign_in(client, other)
        refused = await client.get("/app/audit/activity", params={"executive": dana}, headers=HTML)
        assert refused.status_code == 403, other
    denied = await _events(services, "auth.access.denied")
    assert any(e.resource_id == "GET /app/audit/activity" for e in denied)
