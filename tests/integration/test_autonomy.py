"""Autonomy levels: promotion only on the measured record, demotion at once, both audited;
the stored level is what a proposal gets. On SQLite and PostgreSQL (the record is SQL)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.ids import new_id
from assistant.core.principal import Principal, Role
from assistant.core.settings import AutonomySettings
from governance.audit_models import AuditEvent
from governance.autonomy import (
    PromotionRefusedError,
    measure,
    record_shadow_comparison,
    set_level,
    shadow_summary,
    stored_level,
)
from governance.models import Action, ActionApproval, ActionEdit
from governance.policy import Autonomy
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import seeded_db, seeded_template

__all__ = ["seeded_db", "seeded_template"]  # fixtures

EXEC = "dana.whitfield@northwind.example"
OTHER = "marcus.chen@northwind.example"
KIND = "email.draft.create"
BAR = AutonomySettings(window_days=30, min_decisions=10, min_accepted_unedited=0.9)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def admin() -> Principal:
    return Principal(
        user_id="ada", tenant_id=f"a-{uuid.uuid4().hex[:10]}", roles=frozenset({Role.ADMIN})
    )


async def decisions(
    sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    *,
    unedited: int = 0,
    edited: int = 0,
    rejected: int = 0,
    kind: str = KIND,
    executive: str = EXEC,
    days_ago: float = 1,
) -> None:
    """Prepared records: approved (with or without an edit) and rejected actions."""
    at = FIXED_NOW - timedelta(days=days_ago)
    async with sessions() as session, session.begin():
        plan = (
            [("approved", False)] * unedited
            + [("approved", True)] * edited
            + [("rejected", False)] * rejected
        )
        for state, was_edited in plan:
            action = Action(
                id=new_id(),
                tenant_id=tenant,
                kind=kind,
                capability="email",
                risk="reversible",
                state="succeeded" if state == "approved" else "rejected",
                version=3,
                arguments={},
                actor_id="pipeline",
                actor_type="system",
                on_behalf_of=executive,
                autonomy="suggest",
                approvals_required=1,
                approver_roles=["executive"],
                hold_seconds=0,
                attempts=0,
                external_ids={},
                created_at=at,
                updated_at=at,
            )
            session.add(action)
            await session.flush()
            if state == "approved":
                session.add(
                    ActionApproval(
                        id=new_id(),
                        tenant_id=tenant,
                        action_id=action.id,
                        approver_id=executive,
                        roles=["executive"],
                        created_at=at,
                    )
                )
            if was_edited:
                session.add(
                    ActionEdit(
                        id=new_id(),
                        tenant_id=tenant,
                        action_id=action.id,
                        editor_id=executive,
                        patch=[],
                        created_at=at,
                    )
                )


async def promote(
    sessions: async_sessionmaker[AsyncSession],
    admin: Principal,
    level: Autonomy = Autonomy.AUTO_WITH_UNDO,
    kind: str = KIND,
    default: Autonomy = Autonomy.SUGGEST,
) -> Autonomy:
    async with sessions() as session, session.begin():
        change = await set_level(
            session,
            admin,
            executive=EXEC,
            kind=kind,
            level=level,
            reason="the record is good",
            bar=BAR,
            default=default,
            now=FIXED_NOW,
        )
        return change.level


async def test_promotion_is_refused_below_the_bar_and_allowed_at_it(
    db: async_sessionmaker[AsyncSession], admin: Principal
) -> None:
    tenant = admin.tenant_id
    # 9 decisions, all unedited: too few.
    await decisions(db, tenant, unedited=9)
    with pytest.raises(PromotionRefusedError, match=r"9 decision\(s\) in 30 days \(need 10\)"):
        await promote(db, admin)
    # 10 decisions, 8 unedited (80%): enough decisions, too many edits.
    await decisions(db, tenant, edited=1)
    async with db() as session:
        record = await measure(session, tenant, EXEC, KIND, window_days=30, now=FIXED_NOW)
    assert (record.decisions, record.approved_unedited) == (10, 9)
    await decisions(db, tenant, rejected=1)  # 11 decisions, 9 unedited = 81.8%
    with pytest.raises(PromotionRefusedError) as refused:
        await promote(db, admin)
    assert refused.value.extra["record"]["decisions"] == 11
    # Old decisions outside the window and other kinds / executives do not count.
    await decisions(db, tenant, unedited=50, days_ago=45)
    await decisions(db, tenant, unedited=50, kind="email.move")
    await decisions(db, tenant, unedited=50, executive=OTHER)
    with pytest.raises(PromotionRefusedError):
        await promote(db, admin)
    # Borderline: 20 decisions, 18 unedited = exactly 90% -> allowed.
    await decisions(db, tenant, unedited=9)
    assert await promote(db, admin) is Autonomy.AUTO_WITH_UNDO
    async with db() as session:
        assert await stored_level(session, tenant, EXEC, KIND) is Autonomy.AUTO_WITH_UNDO
        assert await stored_level(session, tenant, OTHER, KIND) is None
        [event] = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant, AuditEvent.action == "autonomy.changed"
                )
            )
        ).scalars()
    payload = json.loads(event.payload_json)
    assert payload["direction"] == "promotion" and payload["record"]["decisions"] == 20
    assert payload["previous"] == "suggest" and payload["level"] == "auto_with_undo"


async def test_a_glob_is_measured_over_every_kind_it_names(
    db: async_sessionmaker[AsyncSession], admin: Principal
) -> None:
    await decisions(db, admin.tenant_id, unedited=6, kind="email.move")
    await decisions(db, admin.tenant_id, unedited=5, kind="email.draft.create")
    await decisions(db, admin.tenant_id, unedited=30, kind="emailxmove")  # '_' is no wildcard
    assert await promote(db, admin, kind="email.*") is Autonomy.AUTO_WITH_UNDO
    async with db() as session:
        record = await measure(
            session, admin.tenant_id, EXEC, "email.*", window_days=30, now=FIXED_NOW
        )
        assert record.decisions == 11
        # The exact kind's grant is more specific than the glob's.
        assert (
            await stored_level(session, admin.tenant_id, EXEC, "email.move")
            is Autonomy.AUTO_WITH_UNDO
        )


async def test_demotion_is_immediate_and_audited(
    db: async_sessionmaker[AsyncSession], admin: Principal
) -> None:
    async with db() as session, session.begin():
        change = await set_level(
            session,
            admin,
            executive=EXEC,
            kind=KIND,
            level=Autonomy.SHADOW,
            reason="a bad week",
            bar=BAR,
            default=Autonomy.AUTO,
            now=FIXED_NOW,
        )
    assert change.direction == "demotion" and change.record is None  # no record needed
    async with db() as session:
        assert await stored_level(session, admin.tenant_id, EXEC, KIND) is Autonomy.SHADOW
        [event] = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == admin.tenant_id, AuditEvent.action == "autonomy.changed"
                )
            )
        ).scalars()
    assert event.reason == "a bad week" and event.actor_id == "ada"
    # Back up from shadow to suggest is a promotion again: refused without a record.
    with pytest.raises(PromotionRefusedError):
        await promote(db, admin, level=Autonomy.SUGGEST)


async def test_shadow_comparisons_are_recorded_and_summarised(
    db: async_sessionmaker[AsyncSession], admin: Principal
) -> None:
    async with db() as session, session.begin():
        await record_shadow_comparison(
            session,
            admin,
            executive=EXEC,
            kind="triage",
            subject_id="m1",
            assistant_output="respond",
            human_output="respond",
        )
        await record_shadow_comparison(
            session,
            admin,
            executive=EXEC,
            kind="triage",
            subject_id="m2",
            assistant_output="ignore",
            human_output="respond",
        )
    async with db() as session:
        [summary] = await shadow_summary(session, admin.tenant_id, EXEC)
    assert summary["comparisons"] == 2 and summary["agreed"] == 1
    assert 0 < summary["mean_distance"] < 1


async def test_a_proposal_gets_the_stored_level_and_shadow_proposes_nothing(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    from assistant.core.errors import AutonomyRaiseError
    from tests.fixtures.governance import (
        EXECUTIVE,
        TENANT,
        Clock,
        SandboxResolver,
        build_harness,
    )

    harness = build_harness(seeded_db, Clock(FIXED_NOW))  # the test policy's default: auto
    admin = Principal(user_id="ada", tenant_id=TENANT, roles=frozenset({Role.ADMIN}))
    async with seeded_db() as session, session.begin():
        await set_level(
            session,
            admin,
            executive=EXECUTIVE,
            kind="email.*",
            level=Autonomy.SHADOW,
            reason="new executive: watch first",
            bar=BAR,
            default=Autonomy.AUTO,
            now=FIXED_NOW,
        )
    mail = {"to": [{"address": EXECUTIVE}], "subject": "Notes", "body_text": "Hello"}
    shadowed = await harness.propose("email.draft.create", mail)
    assert (shadowed.autonomy, shadowed.state) == ("shadow", "denied")
    assert (shadowed.decision_reason or "").startswith(
        "shadow mode: rule 'drafts-and-moves' would have decided allow"
    )
    # Levels are per executive: Marcus (his own mailbox) keeps the policy's default.
    marcus = "marcus.chen@northwind.example"
    his = build_harness(seeded_db, Clock(FIXED_NOW), resolver=SandboxResolver(seeded_db, marcus))
    others = await his.propose("email.draft.create", mail, on_behalf_of=marcus)
    assert (others.autonomy, others.state) == ("auto", "scheduled")
    # Finding 1 of issue 13: a proposal may ask for less autonomy, never for more.
    with pytest.raises(AutonomyRaiseError, match="never more"):
        await harness.propose("email.draft.create", mail, autonomy=Autonomy.SUGGEST)


async def test_shadow_drafts_are_compared_with_what_the_person_sent_and_count_as_record(
    seeded_db: async_sessionmaker[AsyncSession],
) -> None:
    from governance.autonomy import compare_shadow_drafts
    from integrations.base import DraftMode, DraftRequest
    from tests.fixtures.governance import EXECUTIVE, TENANT, Clock, build_harness

    harness = build_harness(seeded_db, Clock(FIXED_NOW))
    admin = Principal(user_id="ada", tenant_id=TENANT, roles=frozenset({Role.ADMIN}))
    async with seeded_db() as session, session.begin():
        await set_level(
            session,
            admin,
            executive=EXECUTIVE,
            kind="email.draft.create",
            level=Autonomy.SHADOW,
            reason="watch first",
            bar=BAR,
            default=Autonomy.SUGGEST,
            now=FIXED_NOW,
        )
    mailbox = harness.resolver.email
    inbox = (await mailbox.sync("inbox")).messages
    first, second = inbox[0], inbox[1]
    for message, body in ((first, "Thanks, Thursday works for me."), (second, "Happy to help.")):
        shadow = await harness.propose(
            "email.draft.create", {"mode": "reply", "reply_to_id": message.id, "body_text": body}
        )
        assert shadow.state == "denied"  # nothing is proposed for execution
    # The person answers the first message themselves, with other words; not the second.
    mine = await mailbox.create_draft(
        DraftRequest(
            mode=DraftMode.REPLY, reply_to_id=first.id, body_text="Thursday is fine, thanks!"
        )
    )
    await mailbox.send_draft(mine.id)

    since = FIXED_NOW - timedelta(days=1)
    assert await compare_shadow_drafts(seeded_db, harness.resolver, admin, since=since) == 1
    assert await compare_shadow_drafts(seeded_db, harness.resolver, admin, since=since) == 0
    async with seeded_db() as session:
        [summary] = await shadow_summary(session, TENANT, EXECUTIVE)
        record = await measure(
            session,
            TENANT,
            EXECUTIVE,
            "email.draft.create",
            window_days=30,
            now=FIXED_NOW + timedelta(days=1),
        )
    assert (summary["comparisons"], summary["agreed"]) == (1, 0)
    assert summary["mean_distance"] > 0.2
    assert (record.decisions, record.shadow_compared, record.approved_unedited) == (1, 1, 0)
