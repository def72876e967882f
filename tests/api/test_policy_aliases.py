"""Issue 17 follow-up: the policy knows an executive by every name she has.

Actions are filed under her generated user id; the policy file names her by address (its
``timezones:``) or by a glob in a rule's ``on_behalf_of``. On the triaged sandbox (the
mailbox and calendar bound to ``dana``), with the example policy whose default zone is made
to differ from hers, her zone and her rules must still apply, and nobody else's actions may
pick up her names.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from assistant.auth import users
from assistant.connector_store import bind_executive
from assistant.core.principal import Principal, Role, system_principal
from governance.models import Action
from governance.service import Proposal
from integrations.errors import ConnectorError
from tests.fixtures.web import DANA, triaged_template, web_settings

__all__ = ["triaged_template"]  # fixture

REPO = Path(__file__).resolve().parents[2]
TENANT = "default"
OPERATOR = Principal(user_id="test-operator", tenant_id=TENANT, roles=frozenset({Role.ADMIN}))

#: Rules naming dana by her mailbox address and by her user name, above the example's.
DANA_RULES = """rules:
  - id: dana-drafts-by-address
    when: {kinds: [email.draft.create], on_behalf_of: ["dana.whitfield@*"]}
    decision: deny
    reason: dana's drafts are named by her address
  - id: dana-meetings-by-user-name
    when: {kinds: [calendar.event.create], recipients: external, on_behalf_of: [dana]}
    decision: deny
    reason: dana's meetings with outsiders are named by her user name
"""


def aliases_policy() -> str:
    text = (REPO / "config" / "policies.example.yaml").read_text()
    assert "default_timezone: America/New_York\n" in text and "\nrules:\n" in text
    text = text.replace("default_timezone: America/New_York\n", "default_timezone: Asia/Tokyo\n")
    return text.replace("\nrules:\n", "\n" + DANA_RULES, 1)


@pytest.fixture
async def runtime(triaged_template: Path, data_dir: Path, tmp_path: Path) -> AsyncIterator[Any]:
    from assistant.governance_app import build_governance
    from assistant.services import Services

    shutil.copyfile(triaged_template, data_dir / "assistant.db")
    policy = tmp_path / "policies.yaml"
    policy.write_text(aliases_policy())
    services = await Services.build(web_settings(data_dir, policy_file=policy))
    try:
        yield build_governance(services)
    finally:
        await services.aclose()


async def user_id(runtime: Any, username: str) -> str:
    async with runtime.services.sessions() as session:
        user = await users.find_user(session, TENANT, username)
        assert user is not None, f"no user {username}"
        return str(user.id)


async def propose(runtime: Any, kind: str, arguments: dict[str, Any], executive: str) -> Action:
    async with runtime.services.sessions() as session, session.begin():
        action: Action = await runtime.actions.propose(
            session,
            system_principal(TENANT, "pipeline"),
            Proposal(kind=kind, arguments=arguments, on_behalf_of=executive),
        )
        return action


DRAFT = {"to": [{"address": "raj@northwind.example"}], "subject": "Hi", "body_text": "Body."}
MEETING = {"subject": "Sync", "start": "2026-11-27T15:00:00Z", "end": "2026-11-27T16:00:00Z"}
OUTSIDE_MEETING = {**MEETING, "attendees": [{"address": "greg@fabrikam.example"}]}


async def test_her_meeting_previews_in_her_zone_though_the_policy_names_her_by_address(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dana = await user_id(runtime, "dana")
    event = await propose(runtime, "calendar.event.create", MEETING, dana)
    assert event.policy_rule_id == "internal-meetings" and event.state == "pending_review"
    async with runtime.services.sessions() as session:
        # The calendar server does not answer: the slot is shown in the zone the policy
        # gives her (under her mailbox address), not the tenant default (Asia/Tokyo).
        async def calendar_down() -> Any:
            raise ConnectorError("calendar server unreachable")

        monkeypatch.setattr(runtime.actions.connector_for(event), "list_calendars", calendar_down)
        preview = await runtime.review.preview(session, event)
    assert preview["timezone"] == "America/New_York", preview
    expected = runtime.actions.kinds.get(event.kind).args_model.model_validate(event.arguments)
    assert preview["start"] == expected.start.astimezone(ZoneInfo("America/New_York")).isoformat()


async def test_a_rule_naming_her_address_matches_her_action_filed_under_her_id(
    runtime: Any,
) -> None:
    dana = await user_id(runtime, "dana")
    assert runtime.services.connectors.mailboxes_of(TENANT, dana) == {DANA}
    draft = await propose(runtime, "email.draft.create", DRAFT, dana)
    assert draft.on_behalf_of == dana
    assert (draft.decision, draft.policy_rule_id) == ("deny", "dana-drafts-by-address")


async def test_a_rule_naming_her_user_name_matches_too(runtime: Any) -> None:
    dana = await user_id(runtime, "dana")
    meeting = await propose(runtime, "calendar.event.create", OUTSIDE_MEETING, dana)
    assert (meeting.decision, meeting.policy_rule_id) == ("deny", "dana-meetings-by-user-name")


async def test_another_executive_never_picks_up_her_names(runtime: Any) -> None:
    """Marcus shares dana's mailbox (bound to both): its address names neither of them, so
    her address rule does not catch his draft; her user-name rule does not catch his
    meeting; and his zone is not hers."""
    services = runtime.services
    async with services.sessions() as session, session.begin():
        marcus = await users.create_user(
            session,
            OPERATOR,
            tenant_id=TENANT,
            username="marcus",
            roles=[Role.EXECUTIVE],
            email="marcus.chen@northwind.example",
        )
        marcus_id = str(marcus.id)
        for connector in ("sandbox-mail", "sandbox-calendar"):
            await bind_executive(
                session, OPERATOR, tenant_id=TENANT, connector=connector, executive_id=marcus_id
            )
    await services.connectors.load_bindings()
    assert services.connectors.mailboxes_of(TENANT, marcus_id) == {DANA}

    async with services.sessions() as session:
        names = await runtime.actions.aliases_of(session, TENANT, marcus_id)
    assert names == (marcus_id, "marcus")
    assert runtime.policy.current().timezone_for(names, TENANT).key == "Asia/Tokyo"

    draft = await propose(runtime, "email.draft.create", DRAFT, marcus_id)
    assert draft.policy_rule_id == "drafts-and-filing", draft.explanation
    meeting = await propose(runtime, "calendar.event.create", OUTSIDE_MEETING, marcus_id)
    assert meeting.policy_rule_id == "calendar-changes", meeting.explanation


async def test_an_e_mail_set_to_her_address_names_nobody(runtime: Any) -> None:
    """A person whose e-mail claims dana's address (a claim a directory may let people edit,
    and nothing keeps unique) gets none of her names: not her zone, not her rules."""
    services = runtime.services
    async with services.sessions() as session, session.begin():
        mallory = await users.create_user(
            session,
            OPERATOR,
            tenant_id=TENANT,
            username="mallory",
            roles=[Role.EXECUTIVE],
            email=DANA,
        )
        mallory_id = str(mallory.id)
    async with services.sessions() as session:
        names = await runtime.actions.aliases_of(session, TENANT, mallory_id)
    assert names == (mallory_id, "mallory")
    assert runtime.policy.current().timezone_for(names, TENANT).key == "Asia/Tokyo"


async def test_her_pages_show_the_zone_her_cards_use(
    triaged_template: Path, data_dir: Path, tmp_path: Path
) -> None:
    """The web app's rooms show times in the zone governance gives her cards, also when the
    policy names her zone by her user name (not a mailbox address): the tenant default
    differs, and her actions are filed under her generated id."""
    import httpx

    from assistant.app import create_app
    from assistant.services import Services
    from tests.fixtures.web import HTML, give_password, sign_in

    shutil.copyfile(triaged_template, data_dir / "assistant.db")
    policy = tmp_path / "policies.yaml"
    text = aliases_policy()
    assert "  dana.whitfield@northwind.example: America/New_York\n" in text
    policy.write_text(
        text.replace(
            "  dana.whitfield@northwind.example: America/New_York\n", "  dana: America/Chicago\n"
        )
    )
    services = await Services.build(web_settings(data_dir, policy_file=policy))
    try:
        await give_password(services, "dana")
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await sign_in(client, "dana")
            inbox = await client.get("/app/inbox", headers=HTML)
    finally:
        await services.aclose()
    assert inbox.status_code == 200, inbox.text
    assert "Times in America/Chicago." in inbox.text
