"""Events chained at commit (governance.audit.record_at_commit): in call order, with the
transaction or not at all, and inside a savepoint with the savepoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Principal, Role
from governance.audit import AuditAction, AuditEventIn, record, record_at_commit
from governance.audit_models import EVENTS
from governance.audit_verify import verify_chain
from governance.checkpoints import CheckpointConfig, load_public_key

ACTOR = Principal(user_id="alice", tenant_id="acme", roles=frozenset({Role.EXECUTIVE}))
OTHER = Principal(user_id="bob", tenant_id="globex", roles=frozenset({Role.EXECUTIVE}))


@pytest.fixture
def config(tmp_path: Path) -> CheckpointConfig:
    return CheckpointConfig(key_file=tmp_path / "keys" / "audit.pem", every_events=3)


def event(name: str) -> AuditEventIn:
    return AuditEventIn(action=AuditAction.ACTION_PROPOSED, resource_id=name)


async def chain(sessions: async_sessionmaker[AsyncSession], tenant: str = "acme") -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(EVENTS.c.resource_id).where(EVENTS.c.tenant_id == tenant).order_by(EVENTS.c.seq)
        )
        return [str(r[0]) for r in rows]


async def test_deferred_events_are_chained_at_commit_in_call_order(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    async with sessions() as session:
        await record_at_commit(session, ACTOR, event("a"), checkpoints=config)
        await record_at_commit(session, OTHER, event("x"), checkpoints=config)
        await record_at_commit(session, ACTOR, event("b"), checkpoints=config)
        # Nothing is written (nor locked) before the commit.
        assert await chain(sessions) == []
        # An immediate append keeps its place after the deferred ones.
        stored = await record(session, ACTOR, event("c"), checkpoints=config)
        assert stored.seq == 3
        await record_at_commit(session, ACTOR, event("d"), checkpoints=config)
        await session.commit()
    assert await chain(sessions) == ["a", "b", "c", "d"]
    assert await chain(sessions, "globex") == ["x"]
    async with sessions() as session:
        report = await verify_chain(session, "acme", public_keys=[load_public_key(config.key_file)])
    assert report.ok, report.to_dict()
    assert (report.events, report.checkpoints) == (4, 1)


async def test_a_rolled_back_transaction_chains_nothing_and_the_next_one_starts_clean(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    async with sessions() as session:
        await record_at_commit(session, ACTOR, event("lost"), checkpoints=config)
        await session.rollback()
        # The same session, a new transaction: the dropped event does not come back.
        await record_at_commit(session, ACTOR, event("kept"), checkpoints=config)
        await session.commit()
    assert await chain(sessions) == ["kept"]


async def test_inside_a_savepoint_events_leave_with_the_savepoint(
    sessions: async_sessionmaker[AsyncSession], config: CheckpointConfig
) -> None:
    async with sessions() as session:
        await record_at_commit(session, ACTOR, event("before"), checkpoints=config)
        with pytest.raises(RuntimeError):
            async with session.begin_nested():
                await record_at_commit(session, ACTOR, event("undone"), checkpoints=config)
                raise RuntimeError("roll the savepoint back")
        async with session.begin_nested():
            await record_at_commit(session, ACTOR, event("released"), checkpoints=config)
        await record_at_commit(session, ACTOR, event("after"), checkpoints=config)
        await session.commit()
    # The savepoint's event was appended at once; the deferred ones at commit.
    assert await chain(sessions) == ["released", "before", "after"]
