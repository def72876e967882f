"""Group commit of proposals (governance.proposals), on SQLite and PostgreSQL.

Callers started together (asyncio.gather, each with its own session as a request has): the
first finds nobody storing and stores its proposal alone; the others queue meanwhile (they
run before its first database answer comes back) and the next of them to run stores them
all as one batch. Deterministic, no timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.clock import utcnow
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import Principal, system_principal
from governance.audit_models import AuditEvent
from governance.audit_verify import verify_chain
from governance.models import Action
from governance.proposals import ProposalCommitter
from governance.service import PreparedProposal, Proposal
from governance.state import ActionState
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    Harness,
    build_harness,
    seeded_db,
    seeded_template,
)
from tests.fixtures.postgres import ADMIN_URL, _admin, async_url, require_or_skip

__all__ = ["seeded_db", "seeded_template"]  # fixtures

S = ActionState
PROPOSER = system_principal(TENANT, "pipeline")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def sessions(
    request: pytest.FixtureRequest, seeded_db: async_sessionmaker[AsyncSession]
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if request.param == "sqlite":
        yield seeded_db
        return
    name = f"assistant_batch_{uuid.uuid4().hex[:10]}"
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError) as exc:
        require_or_skip(f"PostgreSQL is not reachable at {ADMIN_URL}: {exc}")
    engine = create_engine(async_url(ADMIN_URL.rsplit("/", 1)[0] + "/" + name), pool_size=5)
    try:
        await upgrade(engine)
        yield create_session_factory(engine)
    finally:
        await engine.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def harness(sessions: async_sessionmaker[AsyncSession]) -> Harness:
    return build_harness(sessions, Clock(utcnow()))


def committer(harness: Harness, max_batch: int = 64) -> ProposalCommitter:
    return ProposalCommitter(harness.actions, max_batch=max_batch)


async def submit(
    harness: Harness, batcher: ProposalCommitter, prepared: PreparedProposal
) -> Action:
    """What the propose route does after ``prepare``: store through the committer with the
    request's own session (committed there when this caller leads a batch)."""
    async with harness.sessions() as session:
        return await batcher.store(session, prepared)


async def submit_all(
    harness: Harness, batcher: ProposalCommitter, prepared: list[PreparedProposal]
) -> list[Any]:
    return await asyncio.gather(
        *(submit(harness, batcher, p) for p in prepared), return_exceptions=True
    )


def external_mail(i: int) -> dict[str, Any]:
    """Held for review by the test policy."""
    return {"to": [{"address": OUTSIDER}], "subject": f"Offer {i}", "body_text": "Hello."}


def draft(i: int) -> dict[str, Any]:
    """Allowed by the test policy: approved and scheduled at once."""
    return {"to": [{"address": COLLEAGUE}], "subject": f"Draft {i}", "body_text": "Hi."}


async def prepare(
    harness: Harness,
    kind: str,
    arguments: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    principal: Principal = PROPOSER,
) -> PreparedProposal:
    async with harness.sessions() as session:
        prepared = await harness.actions.prepare(
            session,
            principal,
            Proposal(kind=kind, arguments=arguments, on_behalf_of=EXECUTIVE, dedupe_key=dedupe_key),
        )
    assert isinstance(prepared, PreparedProposal)
    return prepared


async def stored_actions(harness: Harness) -> list[Action]:
    async with harness.sessions() as session:
        return list((await session.scalars(select(Action).order_by(Action.created_at))).all())


async def event_count(harness: Harness) -> int:
    async with harness.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.tenant_id == TENANT)
        )
    return int(count or 0)


async def chain_ok(harness: Harness) -> None:
    async with harness.sessions() as session:
        report = await verify_chain(session, TENANT)
    assert report.ok, report.to_dict()


async def test_a_lone_proposal_is_stored_at_once_alone(harness: Harness) -> None:
    batcher = committer(harness)
    together = 0
    store_batch = harness.actions.store_batch

    async def counting(*args: Any, **kwargs: Any) -> list[Action]:
        nonlocal together
        together += 1
        return await store_batch(*args, **kwargs)

    harness.actions.store_batch = counting  # type: ignore[method-assign]
    prepared = await prepare(harness, "email.send", external_mail(1))
    action = await submit(harness, batcher, prepared)
    # Committed when answered: another session sees the row and both its events.
    assert (await harness.load(action.id)).state == S.PENDING_REVIEW
    assert await harness.audit_actions(action.id) == ["action.proposed", "action.pending_review"]
    assert (batcher.batches, batcher.stored, together) == (1, 1, 0)
    await chain_ok(harness)


async def test_proposals_waiting_together_are_stored_in_one_transaction(harness: Harness) -> None:
    batcher = committer(harness)
    prepared = [await prepare(harness, "email.send", external_mail(i)) for i in range(6)]
    prepared += [await prepare(harness, "email.draft.create", draft(i)) for i in range(4)]
    actions = await submit_all(harness, batcher, prepared)
    # The first alone, the nine that queued meanwhile in one transaction.
    assert (batcher.batches, batcher.stored) == (2, 10)
    assert [a.id for a in actions] == [p.columns["id"] for p in prepared]
    assert [a.state for a in actions] == [S.PENDING_REVIEW] * 6 + [S.SCHEDULED] * 4
    for action in actions:
        # One event per version: proposed, decided (and scheduled for the drafts).
        assert await harness.audit_count(action.id) == action.version
        assert (await harness.load(action.id)).version == action.version
    assert await event_count(harness) == 6 * 2 + 4 * 3
    await chain_ok(harness)


async def test_batches_are_bounded(harness: Harness) -> None:
    batcher = committer(harness, max_batch=3)
    prepared = [await prepare(harness, "email.send", external_mail(i)) for i in range(7)]
    await submit_all(harness, batcher, prepared)
    assert (batcher.batches, batcher.stored) == (3, 7)  # 1 + 3 + 3
    assert len(await stored_actions(harness)) == 7
    await chain_ok(harness)


async def test_a_failing_member_fails_alone_and_the_others_are_stored(harness: Harness) -> None:
    batcher = committer(harness)
    taken = await harness.propose("email.send", external_mail(0))
    good = [await prepare(harness, "email.send", external_mail(i)) for i in range(1, 4)]
    # Passed every check, but its row cannot be stored (its id is taken).
    bad = await prepare(harness, "email.send", external_mail(9))
    bad = dataclasses.replace(bad, action=None, columns={**bad.columns, "id": taken.id})
    results = await submit_all(harness, batcher, [good[0], bad, *good[1:]])
    assert isinstance(results[1], IntegrityError)
    stored = [r for i, r in enumerate(results) if i != 1]
    assert all(isinstance(r, Action) for r in stored)
    assert sorted(a.id for a in await stored_actions(harness)) == sorted(
        [taken.id, *(p.columns["id"] for p in good)]
    )
    # Nothing of the failed member, and of the batch's rolled-back attempt, remains.
    assert await event_count(harness) == 2 * 4
    assert (await harness.load(taken.id)).arguments["subject"] == "Offer 0"
    await chain_ok(harness)


async def test_the_same_dedupe_key_twice_in_a_batch_stores_one_action(harness: Harness) -> None:
    batcher = committer(harness)
    first = await prepare(harness, "email.send", external_mail(1), dedupe_key="offer-1")
    second = await prepare(harness, "email.send", external_mail(2), dedupe_key="offer-1")
    other = await prepare(harness, "email.send", external_mail(3), dedupe_key="offer-3")
    lone = await prepare(harness, "email.send", external_mail(4))
    results = await submit_all(harness, batcher, [lone, first, second, other])
    assert results[1].id == results[2].id == first.columns["id"]
    assert results[3].id == other.columns["id"]
    assert (batcher.batches, batcher.stored) == (2, 3)
    assert len(await stored_actions(harness)) == 3
    assert await event_count(harness) == 6
    await chain_ok(harness)


async def test_a_dedupe_key_stored_meanwhile_answers_the_existing_action(
    harness: Harness,
) -> None:
    """Another process stores the key between the request's check and the batch: the batch
    fails on the constraint, its members are stored one by one, the late one gets the
    existing action."""
    batcher = committer(harness)
    late = await prepare(harness, "email.send", external_mail(1), dedupe_key="offer-1")
    others = [await prepare(harness, "email.send", external_mail(i)) for i in range(2, 5)]
    existing = await harness.propose("email.send", external_mail(1), dedupe_key="offer-1")
    results = await submit_all(harness, batcher, [others[0], late, *others[1:]])
    assert results[1].id == existing.id
    assert [r.id for r in [results[0], *results[2:]]] == [p.columns["id"] for p in others]
    assert len(await stored_actions(harness)) == 4
    assert await event_count(harness) == 8
    await chain_ok(harness)


async def test_a_batch_that_fails_at_commit_leaves_nothing_half_stored(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's COMMIT breaks (the chain append, its last step, fails): nothing of the
    batch is stored and every member gets the error; the lone proposal before it stands."""
    from governance import audit

    batcher = committer(harness)
    append = audit._append
    appends = 0

    async def append_breaking_the_second(*args: Any, **kwargs: Any) -> None:
        nonlocal appends
        appends += 1
        if appends == 2:
            raise ConnectionResetError("the database went away")
        await append(*args, **kwargs)

    monkeypatch.setattr(audit, "_append", append_breaking_the_second)
    prepared = [await prepare(harness, "email.send", external_mail(i)) for i in range(1, 4)]
    results = await submit_all(harness, batcher, prepared)
    assert isinstance(results[0], Action)
    assert all(isinstance(r, ConnectionResetError) for r in results[1:])
    assert [a.id for a in await stored_actions(harness)] == [prepared[0].columns["id"]]
    assert await event_count(harness) == 2
    await chain_ok(harness)
    # The committer goes on: the next proposal is stored.
    again = await submit(harness, batcher, await prepare(harness, "email.send", external_mail(5)))
    assert (await harness.load(again.id)).state == S.PENDING_REVIEW
    await chain_ok(harness)


async def test_a_caller_that_goes_away_before_its_batch_takes_its_proposal_along(
    harness: Harness,
) -> None:
    batcher = committer(harness)
    prepared = [await prepare(harness, "email.send", external_mail(i)) for i in range(3)]
    callers = [asyncio.ensure_future(submit(harness, batcher, p)) for p in prepared]
    await asyncio.sleep(0)  # the first is storing, the other two wait
    callers[1].cancel()
    done = await asyncio.gather(*callers, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert sorted(a.id for a in await stored_actions(harness)) == sorted(
        [prepared[0].columns["id"], prepared[2].columns["id"]]
    )
    assert batcher.batches == 2
    await chain_ok(harness)


async def test_preparing_opens_no_transaction_and_decides_as_inside_one(harness: Harness) -> None:
    """``prepare`` on a session that holds no transaction reads the executive's context
    on a pooled connection and leaves the session untouched (a proposal that joins another
    caller's batch has nothing of its own to commit); inside a transaction it reads there.
    Either way the proposal is decided alike."""
    proposal = Proposal(kind="email.send", arguments=external_mail(1), on_behalf_of=EXECUTIVE)
    async with harness.sessions() as session:
        outside = await harness.actions.prepare(session, PROPOSER, proposal)
        assert not session.in_transaction()
    async with harness.sessions() as session, session.begin():
        inside = await harness.actions.prepare(session, PROPOSER, proposal)
    assert isinstance(outside, PreparedProposal) and isinstance(inside, PreparedProposal)
    decided = ("state", "autonomy", "decision", "policy_rule_id", "approvals_required")
    assert [outside.columns[c] for c in decided] == [inside.columns[c] for c in decided]
    assert outside.columns["state"] == S.PENDING_REVIEW
