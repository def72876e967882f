"""The transition table and the compare-and-set on the version column."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

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
    Move,
    arguments_digest,
    can_move,
    decide_new,
    transition,
    transition_through,
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


async def test_moves_in_a_row_are_one_compare_and_set_with_an_event_each(
    seeded_template: Path, tmp_path: Path
) -> None:
    engine = create_engine(copy_template(seeded_template, tmp_path))
    sessions = create_session_factory(engine)
    updates: list[str] = []

    def count_updates(*args: object) -> None:
        statement = str(args[2])
        if statement.startswith("UPDATE governed_actions"):
            updates.append(statement)

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
        running = Move(S.EXECUTING, actor, values={"attempts": 1})
        done = Move(S.SUCCEEDED, actor, values={"finished_at": FIXED_NOW}, reason="sent")
        # A move the lifecycle refuses anywhere in the row: nothing is written.
        event.listen(engine.sync_engine, "before_cursor_execute", count_updates)
        with pytest.raises(IllegalTransitionError):
            async with sessions() as session, session.begin():
                await transition_through(
                    session, first, [running, Move(S.PENDING_REVIEW, actor)], now=FIXED_NOW
                )
        assert updates == []
        async with sessions() as session, session.begin():
            await transition_through(session, first, [running, done], now=FIXED_NOW)
        event.remove(engine.sync_engine, "before_cursor_execute", count_updates)
        assert len(updates) == 1
        row = await harness.load(action.id)
        assert (row.state, row.version, row.attempts) == (S.SUCCEEDED, stale.version + 2, 1)
        async with sessions() as session:
            events = list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.action_id == action.id)
                    .order_by(AuditEvent.seq)
                )
            )
        assert len(events) == row.version
        last_two = [
            (e.action, e.payload["from"], e.payload["to"], e.payload["version"])
            for e in events[-2:]
        ]
        assert last_two == [
            ("action.executing", "scheduled", "executing", stale.version + 1),
            ("action.succeeded", "executing", "succeeded", stale.version + 2),
        ]
        assert events[-1].reason == "sent"
        # The copy read before the moves is stale: its compare-and-set fails.
        with pytest.raises(ConflictError):
            async with sessions() as session, session.begin():
                await transition_through(session, stale, [running], now=FIXED_NOW)
    finally:
        await engine.dispose()


def test_only_a_new_proposed_action_is_decided_before_it_is_stored() -> None:
    action = Action(id="a" * 32, kind="email.send", state=S.PROPOSED.value, version=1)
    action.arguments = {}
    event_in = decide_new(action, S.PENDING_REVIEW, now=FIXED_NOW, reason="external")
    assert (action.state, action.version) == (S.PENDING_REVIEW, 2)
    assert event_in.payload["from"] == "proposed" and event_in.payload["version"] == 2
    with pytest.raises(IllegalTransitionError):
        decide_new(action, S.APPROVED, now=FIXED_NOW)  # decided already
