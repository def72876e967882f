"""The transition table and the compare-and-set on the version column."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assistant.core.db import create_engine, create_session_factory
from assistant.core.errors import ConflictError
from assistant.core.principal import system_principal
from governance.audit_models import AuditEvent
from governance.models import Action
from governance.state import (
    TERMINAL,
    TRANSITIONS,
    ActionState,
    IllegalTransitionError,
    arguments_digest,
    can_move,
    transition,
)
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import Clock, build_harness, copy_template, seeded_template

__all__ = ["seeded_template"]  # fixture

S = ActionState


def test_every_state_is_in_the_table_and_reachable_from_proposed() -> None:
    assert set(TRANSITIONS) == set(ActionState)
    seen, queue = {S.PROPOSED}, deque([S.PROPOSED])
    while queue:
        for nxt in TRANSITIONS[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    assert seen == set(ActionState)


def test_the_lifecycle_of_the_design() -> None:
    assert {S.DENIED, S.REJECTED, S.EXPIRED, S.CANCELLED, S.FAILED, S.COMPENSATED} == TERMINAL
    assert TRANSITIONS[S.PROPOSED] == {S.DENIED, S.PENDING_REVIEW, S.APPROVED}
    assert TRANSITIONS[S.APPROVED] == {S.SCHEDULED}
    assert TRANSITIONS[S.SCHEDULED] == {S.EXECUTING, S.CANCELLED}
    assert TRANSITIONS[S.SUCCEEDED] == {S.COMPENSATING}
    # nothing that ran can be cancelled, nothing cancelled can run
    assert not can_move(S.SUCCEEDED, S.CANCELLED)
    assert not can_move(S.CANCELLED, S.SCHEDULED)
    assert not can_move(S.DENIED, S.APPROVED)
    assert not can_move(S.PENDING_REVIEW, S.EXECUTING)


def test_arguments_digest_is_canonical() -> None:
    assert arguments_digest({"a": 1, "b": [2]}) == arguments_digest({"b": [2], "a": 1})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 2})


async def test_compare_and_set_refuses_a_stale_version(
    seeded_template: Path, tmp_path: Path
) -> None:
    engine = create_engine(copy_template(seeded_template, tmp_path))
    sessions = create_session_factory(engine)
    try:
        harness = build_harness(sessions, Clock(FIXED_NOW))
        action = await harness.propose(
            "email.draft.create",
            {"to": [{"address": "raj.patel@northwind.example"}], "body_text": "x"},
        )
        assert action.state == S.SCHEDULED
        first = await harness.load(action.id)
        stale = await harness.load(action.id)
        actor = system_principal("default", "test")
        async with sessions() as session, session.begin():
            await transition(session, first, S.CANCELLED, actor=actor, now=FIXED_NOW)
        assert first.state == S.CANCELLED and first.version == stale.version + 1
        # the other copy still says SCHEDULED at the old version: its move must fail
        with pytest.raises(ConflictError) as caught:
            async with sessions() as session, session.begin():
                await transition(session, stale, S.EXECUTING, actor=actor, now=FIXED_NOW)
        assert not isinstance(caught.value, IllegalTransitionError)
        with pytest.raises(IllegalTransitionError):
            async with sessions() as session, session.begin():
                await transition(session, first, S.EXECUTING, actor=actor, now=FIXED_NOW)
        row = await harness.load(action.id)
        assert (row.state, row.version) == (S.CANCELLED, first.version)
        async with sessions() as session:
            events = (
                await session.execute(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(AuditEvent.action_id == action.id)
                )
            ).scalar_one()
            assert events == row.version
            assert (await session.get(Action, action.id)) is not None
    finally:
        await engine.dispose()
