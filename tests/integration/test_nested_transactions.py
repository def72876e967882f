"""Nested transactions (SAVEPOINTs) nest on SQLite as on PostgreSQL.

Each test runs one governance step whose work sits in a ``begin_nested()`` block, then
forces a failure in the outer transaction: nothing of the step may survive. On SQLite,
pysqlite used to start the transaction with the SAVEPOINT, so its RELEASE committed the
step and the outer rollback left it behind (a proposal stuck in ``proposed`` forever).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.ids import new_id
from assistant.core.principal import Role, system_principal
from assistant.core.settings import Settings
from governance.audit_models import AuditEvent
from governance.models import Action
from governance.owners import owner_entries
from governance.production_models import OwnerRecord
from governance.review import BulkItem
from governance.service import Proposal
from governance.state import ActionState
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    Harness,
    build_harness,
    person,
)

S = ActionState


class ForcedFailureError(Exception):
    """Raised inside the outer transaction after the nested block has been released."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "sqlite":
        return settings.database_url
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def sessions_on(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def harness(sessions_on: async_sessionmaker[AsyncSession]) -> Harness:
    return build_harness(sessions_on, Clock(FIXED_NOW))


def mail(to: str, subject: str) -> dict[str, Any]:
    return {"to": [{"address": to}], "subject": subject, "body_text": "Hello."}


async def count(sessions: async_sessionmaker[AsyncSession], query: Any) -> int:
    async with sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def test_a_rolled_back_proposal_leaves_no_action_and_no_audit(harness: Harness) -> None:
    subject = f"rolled back {id(harness)}"
    pipeline = system_principal(TENANT, "pipeline")
    with pytest.raises(ForcedFailureError):
        async with harness.sessions() as session, session.begin():
            action = await harness.actions.propose(
                session,
                pipeline,
                Proposal(
                    kind="email.send", arguments=mail(COLLEAGUE, subject), on_behalf_of=EXECUTIVE
                ),
            )
            raise ForcedFailureError
    assert await count(harness.sessions, select(func.count()).where(Action.id == action.id)) == 0
    assert (
        await count(
            harness.sessions,
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action_id == action.id),
        )
        == 0
    )


async def test_a_rolled_back_bulk_review_approves_nothing(harness: Harness) -> None:
    first = await harness.propose("email.send", mail(OUTSIDER, "Quote one"))
    second = await harness.propose("email.send", mail(OUTSIDER, "Quote two"))
    assert first.state == second.state == S.PENDING_REVIEW.value
    executive = person(EXECUTIVE, Role.EXECUTIVE)
    with pytest.raises(ForcedFailureError):
        async with harness.sessions() as session, session.begin():
            results = await harness.review.bulk(
                session,
                executive,
                [
                    BulkItem(action_id=first.id, decision="approve"),
                    BulkItem(action_id="no-such-action", decision="approve"),
                    BulkItem(action_id=second.id, decision="reject", reason="no"),
                ],
            )
            # The failing item rolled back alone; the others went through in this transaction.
            assert [r.ok for r in results] == [True, False, True]
            raise ForcedFailureError
    assert (await harness.load(first.id)).state == S.PENDING_REVIEW.value
    assert (await harness.load(second.id)).state == S.PENDING_REVIEW.value


async def test_a_rolled_back_review_expiry_expires_nothing(harness: Harness) -> None:
    action = await harness.propose("email.send", mail(OUTSIDER, "Late quote"))
    harness.clock.advance(timedelta(hours=5).total_seconds())
    with pytest.raises(ForcedFailureError):
        async with harness.sessions() as session, session.begin():
            assert await harness.review.expire_due(session) >= 1
            raise ForcedFailureError
    assert (await harness.load(action.id)).state == S.PENDING_REVIEW.value
    async with harness.sessions() as session, session.begin():
        assert await harness.review.expire_due(session) >= 1
    assert (await harness.load(action.id)).state == S.EXPIRED.value


async def test_owner_lookups_keep_the_outer_transaction_whole(
    sessions_on: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The owners' nested reads neither commit earlier work nor survive a rollback."""
    tenant = f"owners-{id(sessions_on)}"
    row = OwnerRecord(
        id=new_id(),
        tenant_id=tenant,
        scope="deployment",
        subject="",
        person="Ida",
        role="IT lead",
        contact="ida@northwind.example",
        updated_by="test",
        updated_at=FIXED_NOW,
    )
    with pytest.raises(ForcedFailureError):
        async with sessions_on() as session, session.begin():
            session.add(row)
            await session.flush()
            entries = await owner_entries(session, settings, tenant)
            assert any(e.owner is not None and e.owner.person == "Ida" for e in entries)
            raise ForcedFailureError
    assert (
        await count(
            sessions_on,
            select(func.count()).select_from(OwnerRecord).where(OwnerRecord.tenant_id == tenant),
        )
        == 0
    )
