"""A hypothesis state machine drives the whole lifecycle on the real sandbox and database.

After every step: each action's audit events chain from PROPOSED through allowed
transitions only, they number exactly the action's version (one per transition), and the
last one names the action's current state. Operations that are not allowed fail without
changing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from assistant.core.db import create_engine, create_session_factory
from assistant.core.errors import AssistantError
from assistant.core.principal import Principal, Role, system_principal
from governance.audit_models import AuditEvent
from governance.killswitch import set_switch
from governance.models import Action
from governance.state import TRANSITIONS, ActionState, IllegalTransitionError, transition
from integrations.sandbox.models import SandboxEvent, SandboxMessage
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    build_harness,
    copy_template,
    person,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture

T = TypeVar("T")
S = ActionState

PEOPLE: dict[str, Principal] = {
    "executive": person(EXECUTIVE, Role.EXECUTIVE),
    "delegate": person("jordan", Role.DELEGATE, on_behalf_of=EXECUTIVE),
    "admin": person("ada", Role.ADMIN),
    "auditor": person("audrey", Role.AUDITOR),
}
PROPOSERS: dict[str, Principal] = {
    "pipeline": system_principal(TENANT, "pipeline"),
    "executive": PEOPLE["executive"],
}


def _mail(to: list[str], subject: str = "Update") -> dict[str, Any]:
    return {"to": [{"address": a} for a in to], "subject": subject, "body_text": "Hi."}


def _meeting() -> dict[str, Any]:
    start = "2026-11-26T15:00:00+00:00"
    return {
        "subject": "Sync",
        "start": start,
        "end": "2026-11-26T15:30:00+00:00",
        "attendees": [{"address": COLLEAGUE}],
    }


class Lifecycle(RuleBasedStateMachine):
    actions = Bundle("actions")

    def __init__(self, template: Path, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.folder = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        self.engine = create_engine(copy_template(template, self.folder))
        self.sessions = create_session_factory(self.engine)
        self.clock = Clock(FIXED_NOW)
        self.h = build_harness(self.sessions, self.clock)
        self.ids: list[str] = []
        self.switch_on = False
        self.seeded = self.run(self._seeded_ids())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _seeded_ids(self) -> dict[str, str]:
        async with self.sessions() as session:
            message = (
                await session.execute(
                    select(SandboxMessage.id).where(SandboxMessage.seed_key == "m02")
                )
            ).scalar_one()
            events = dict(
                (
                    await session.execute(
                        select(SandboxEvent.seed_key, SandboxEvent.id).where(
                            SandboxEvent.seed_key.in_(["e05", "e06"])
                        )
                    )
                ).all()
            )
        return {"message": message, **events}

    def teardown(self) -> None:
        self.run(self.engine.dispose())

    def proposal(self, name: str) -> tuple[str, dict[str, Any]]:
        return {
            "internal-send": ("email.send", _mail([COLLEAGUE])),
            "external-send": ("email.send", _mail([OUTSIDER])),
            "mass-send": ("email.send", _mail([f"p{i}@fabrikam.example" for i in range(25)])),
            "draft": ("email.draft.create", _mail([OUTSIDER])),
            "move": ("email.move", {"message_id": self.seeded["message"], "folder": "archive"}),
            "move-missing": ("email.move", {"message_id": "gone", "folder": "archive"}),
            "meeting": ("calendar.event.create", _meeting()),
            "cancel-event": ("calendar.event.cancel", {"event_id": self.seeded["e05"]}),
            "decline": (
                "calendar.invite.respond",
                {"event_id": self.seeded["e06"], "response": "decline"},
            ),
        }[name]

    async def _version(self, action_id: str) -> tuple[str, int]:
        action = await self.h.load(action_id)
        return action.state, action.version

    def attempt(self, action_id: str, coro: Coroutine[Any, Any, Any]) -> None:
        """Run an operation; if it is refused, the action must be exactly as before."""
        before = self.run(self._version(action_id))
        try:
            self.run(coro)
        except AssistantError:
            assert self.run(self._version(action_id)) == before

    async def _decide(self, method: str, who: Principal, action_id: str, *args: Any) -> None:
        async with self.sessions() as session, session.begin():
            await getattr(self.h.review, method)(session, who, action_id, *args)

    # ------------------------------------------------------------------ rules

    @rule(
        target=actions,
        name=st.sampled_from(
            [
                "internal-send",
                "external-send",
                "mass-send",
                "draft",
                "move",
                "move-missing",
                "meeting",
                "cancel-event",
                "decline",
            ]
        ),
        proposer=st.sampled_from(sorted(PROPOSERS)),
    )
    def propose(self, name: str, proposer: str) -> str:
        kind, arguments = self.proposal(name)
        action = self.run(self.h.propose(kind, arguments, actor=PROPOSERS[proposer]))
        self.ids.append(action.id)
        return action.id

    @rule(action_id=actions, who=st.sampled_from(sorted(PEOPLE)))
    def approve(self, action_id: str, who: str) -> None:
        self.attempt(action_id, self._decide("approve", PEOPLE[who], action_id))

    @rule(action_id=actions, who=st.sampled_from(sorted(PEOPLE)))
    def edit(self, action_id: str, who: str) -> None:
        action = self.run(self.h.load(action_id))
        changed = {**action.arguments}
        if "subject" in changed:
            changed["subject"] = f"{changed['subject']} (edited)"
        self.attempt(action_id, self._decide("edit", PEOPLE[who], action_id, changed))

    @rule(
        action_id=actions,
        who=st.sampled_from(sorted(PEOPLE)),
        how=st.sampled_from(["reject", "cancel", "undo"]),
    )
    def withdraw(self, action_id: str, who: str, how: str) -> None:
        async def undo() -> None:
            async with self.sessions() as session, session.begin():
                await self.h.actions.undo(session, PEOPLE[who], action_id)

        if how == "undo":
            self.attempt(action_id, undo())
        elif how == "reject":
            self.attempt(action_id, self._decide("reject", PEOPLE[who], action_id, "not now"))
        else:
            self.attempt(action_id, self._decide("cancel", PEOPLE[who], action_id))

    @rule(seconds=st.sampled_from([0, 5, 31, 61, 120]))
    def work(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.run(self.h.executor.run_due())

    @rule()
    def work_after_the_hold(self) -> None:
        self.work(31)

    @rule()
    def expire(self) -> None:
        self.clock.advance(5 * 3600)

        async def go() -> None:
            async with self.sessions() as session, session.begin():
                await self.h.review.expire_due(session)

        self.run(go())

    @rule(action_id=actions, who=st.sampled_from(["executive", "admin", "auditor"]))
    def rollback(self, action_id: str, who: str) -> None:
        self.attempt(action_id, self.h.compensation.rollback(PEOPLE[who], action_id))

    @rule(action_id=actions)
    def send_the_draft_by_hand(self, action_id: str) -> None:
        """Someone sends a draft the assistant made: its rollback can no longer delete it."""
        action = self.run(self.h.load(action_id))
        draft_id = (action.external_ids or {}).get("draft_id")
        if action.kind == "email.draft.create" and action.state == S.SUCCEEDED and draft_id:
            with contextlib.suppress(AssistantError):
                self.run(self.h.resolver.email.send_draft(draft_id))

    @rule(action_id=actions)
    def send_the_draft_by_hand_then_roll_back(self, action_id: str) -> None:
        self.send_the_draft_by_hand(action_id)
        self.rollback(action_id, "executive")

    @rule()
    def a_worker_dies_after_claiming(self) -> None:
        """Claim a due action and never finish it; the lease recovers it later."""
        self.run(self.h.executor._claim())

    @rule()
    def toggle_kill_switch(self) -> None:
        self.switch_on = not self.switch_on

        async def go() -> None:
            async with self.sessions() as session, session.begin():
                await set_switch(
                    session,
                    PEOPLE["admin"],
                    enabled=self.switch_on,
                    now=self.clock.now,
                    tenant_id=TENANT,
                )

        self.run(go())

    @rule(action_id=actions, target_state=st.sampled_from(list(ActionState)))
    def force_illegal(self, action_id: str, target_state: ActionState) -> None:
        action = self.run(self.h.load(action_id))
        if target_state in TRANSITIONS[ActionState(action.state)]:
            return

        async def go() -> None:
            async with self.sessions() as session, session.begin():
                await transition(
                    session, action, target_state, actor=PEOPLE["admin"], now=self.clock.now
                )

        with pytest.raises(IllegalTransitionError):
            self.run(go())
        assert self.run(self._version(action_id)) == (action.state, action.version)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def every_transition_is_legal_and_audited_once(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        async with self.sessions() as session:
            actions = {a.id: a for a in (await session.execute(select(Action))).scalars()}
            events = (
                (
                    await session.execute(
                        select(AuditEvent)
                        .where(AuditEvent.action_id.in_(list(actions)))
                        .order_by(AuditEvent.seq)
                    )
                )
                .scalars()
                .all()
            )
        trail: dict[str, list[dict[str, Any]]] = {a: [] for a in actions}
        for event in events:
            trail[event.action_id].append(event.payload)  # type: ignore[index]
        for action_id, action in actions.items():
            steps = trail[action_id]
            assert len(steps) == action.version, (action.kind, steps)
            assert steps[0]["from"] is None and steps[0]["to"] == S.PROPOSED
            for previous, step in zip(steps, steps[1:], strict=False):
                assert step["from"] == previous["to"]
                assert ActionState(step["to"]) in TRANSITIONS[ActionState(step["from"])]
            assert steps[-1]["to"] == action.state


def test_lifecycle_state_machine(seeded_template: Path) -> None:
    loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            lambda: Lifecycle(seeded_template, loop),
            settings=settings(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.close()
