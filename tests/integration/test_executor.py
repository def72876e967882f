"""The executor and compensation on the real sandbox connectors (SQLite, seeded week)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Role, system_principal
from governance.executor import SWITCH_RECHECK_SECONDS
from governance.killswitch import set_switch
from governance.models import ActionException
from governance.state import ActionState, execution_key
from integrations.base import InviteResponse, ResponseStatus
from integrations.errors import RetriableConnectorError
from integrations.sandbox.models import SandboxEvent, SandboxMessage
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    COLLEAGUE,
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    Harness,
    SandboxResolver,
    build_harness,
    person,
    seeded_db,
    seeded_template,
)

__all__ = ["seeded_db", "seeded_template"]  # fixtures

S = ActionState


@pytest.fixture
def clock() -> Clock:
    return Clock(FIXED_NOW)


@pytest.fixture
def harness(seeded_db: async_sessionmaker[AsyncSession], clock: Clock) -> Harness:
    return build_harness(seeded_db, clock)


def internal_mail(subject: str = "Standup notes", **extra: Any) -> dict[str, Any]:
    return {
        "to": [{"address": COLLEAGUE}],
        "subject": subject,
        "body_text": "Notes attached.",
        **extra,
    }


def meeting(subject: str = "Ops sync", hours: int = 30) -> dict[str, Any]:
    start = FIXED_NOW + timedelta(hours=hours)
    return {
        "subject": subject,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=30)).isoformat(),
        "timezone": "America/New_York",
        "attendees": [{"address": COLLEAGUE}],
    }


async def messages_with_key(
    sessions: async_sessionmaker[AsyncSession], action_id: str
) -> list[SandboxMessage]:
    async with sessions() as session:
        return list(
            (
                await session.execute(
                    select(SandboxMessage).where(
                        SandboxMessage.idempotency_key == execution_key(action_id)
                    )
                )
            ).scalars()
        )


async def events_for(
    sessions: async_sessionmaker[AsyncSession], action_id: str, suffix: str = ""
) -> list[SandboxEvent]:
    uid = f"{execution_key(action_id)}{suffix}@assistant"
    async with sessions() as session:
        return list(
            (await session.execute(select(SandboxEvent).where(SandboxEvent.uid == uid))).scalars()
        )


async def seeded_message(sessions: async_sessionmaker[AsyncSession], key: str) -> SandboxMessage:
    async with sessions() as session:
        row = (
            await session.execute(select(SandboxMessage).where(SandboxMessage.seed_key == key))
        ).scalar_one()
        return row


async def test_allowed_send_waits_out_the_hold_window_then_sends(
    harness: Harness, clock: Clock
) -> None:
    action = await harness.propose("email.send", internal_mail())
    assert action.state == S.SCHEDULED
    assert action.policy_rule_id == "internal-mail"
    assert action.policy_version.startswith("test-1@sha256:")
    assert action.not_before == FIXED_NOW + timedelta(seconds=30)

    assert await harness.executor.run_due() == 0  # still inside the hold window
    assert await messages_with_key(harness.sessions, action.id) == []

    clock.advance(31)
    assert await harness.executor.run_due() == 1
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED
    sent = await messages_with_key(harness.sessions, action.id)
    assert [m.folder for m in sent] == ["sent"]
    assert done.external_ids["sent_id"] == sent[0].id
    # one audit event per transition: proposed, approved, scheduled, executing, succeeded
    assert await harness.audit_count(action.id) == done.version == 5
    assert await harness.audit_actions(action.id) == [
        "action.proposed",
        "action.approved",
        "action.scheduled",
        "action.executing",
        "action.succeeded",
    ]


async def test_undo_inside_the_window_reaches_no_connector(harness: Harness, clock: Clock) -> None:
    mail = await harness.propose("email.send", internal_mail())
    event = await harness.propose("calendar.event.create", meeting())
    assert event.state == S.SCHEDULED  # due now (0 s hold), but no worker ran yet
    executive = person(EXECUTIVE, Role.EXECUTIVE)
    async with harness.sessions() as session, session.begin():
        await harness.actions.undo(session, executive, mail.id)
        await harness.actions.undo(session, executive, event.id)
    clock.advance(3600)
    assert await harness.executor.run_due() == 0
    for action_id in (mail.id, event.id):
        assert (await harness.load(action_id)).state == S.CANCELLED
    assert await messages_with_key(harness.sessions, mail.id) == []
    assert await events_for(harness.sessions, event.id) == []
    async with harness.sessions() as session:
        drafts = (
            (
                await session.execute(
                    select(SandboxMessage).where(
                        SandboxMessage.folder.in_(["drafts", "sent"]),
                        SandboxMessage.seed_key.is_(None),
                    )
                )
            )
            .scalars()
            .all()
        )
    assert drafts == []


async def test_undo_after_execution_is_refused(harness: Harness, clock: Clock) -> None:
    action = await harness.propose("email.draft.create", internal_mail())
    await harness.executor.run_due()
    async with harness.sessions() as session:
        with pytest.raises(Exception, match="roll it back"):
            await harness.actions.undo(session, person(EXECUTIVE, Role.EXECUTIVE), action.id)


async def test_replaying_an_approved_action_five_times_has_one_effect(
    harness: Harness, clock: Clock
) -> None:
    action = await harness.propose("email.send", internal_mail())
    clock.advance(31)
    # Five deliveries of the same job, at once and then again.
    ran = await asyncio.gather(*(harness.executor.run_action(action.id) for _ in range(5)))
    assert sum(ran) == 1
    for _ in range(5):
        assert await harness.executor.run_action(action.id) is False
        assert await harness.executor.run_due() == 0
    assert len(await messages_with_key(harness.sessions, action.id)) == 1
    assert (await harness.audit_actions(action.id)).count("action.executing") == 1
    # And the effect itself is idempotent under the action's key: five more sends of the
    # same kind with the same key (a worker that died after the effect) change nothing.
    kind = harness.actions.kinds.get("email.send")
    args = kind.args_model.model_validate((await harness.load(action.id)).arguments)
    for _ in range(5):
        draft = await harness.resolver.email.create_draft(args.request(execution_key(action.id)))
        await harness.resolver.email.send_draft(draft.id)
    rows = await messages_with_key(harness.sessions, action.id)
    assert len(rows) == 1 and rows[0].folder == "sent"


class FlakyEmail:
    """A mailbox that answers 429 with Retry-After a number of times (a throttled provider)."""

    def __init__(self, inner: Any, failures: int, retry_after: float | None) -> None:
        self.inner, self.failures, self.retry_after = inner, failures, retry_after
        self.mailbox = inner.mailbox
        self.calls = 0

    async def create_draft(self, request: Any) -> Any:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise RetriableConnectorError("429 Too Many Requests", retry_after=self.retry_after)
        return await self.inner.create_draft(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FlakyResolver(SandboxResolver):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], failures: int, retry_after: float | None
    ) -> None:
        super().__init__(sessions)
        self.email = FlakyEmail(self.email, failures, retry_after)  # type: ignore[assignment]


async def test_retriable_errors_back_off_and_honour_retry_after(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock
) -> None:
    resolver = FlakyResolver(seeded_db, failures=2, retry_after=120)
    harness = build_harness(seeded_db, clock, resolver=resolver, max_attempts=5)
    action = await harness.propose("email.draft.create", internal_mail())
    assert await harness.executor.run_due() == 1
    retry = await harness.load(action.id)
    assert retry.state == S.SCHEDULED and retry.attempts == 1
    assert retry.not_before == FIXED_NOW + timedelta(seconds=120)  # Retry-After beats 1 s
    clock.advance(60)
    assert await harness.executor.run_due() == 0
    clock.advance(61)
    assert await harness.executor.run_due() == 1
    clock.advance(121)
    assert await harness.executor.run_due() == 1
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED and done.attempts == 3
    assert (await harness.audit_actions(action.id)).count("action.retry_scheduled") == 2
    assert await harness.audit_count(action.id) == done.version


async def test_after_max_attempts_the_action_fails_into_the_exception_queue(
    seeded_db: async_sessionmaker[AsyncSession], clock: Clock
) -> None:
    resolver = FlakyResolver(seeded_db, failures=10, retry_after=None)
    harness = build_harness(seeded_db, clock, resolver=resolver, max_attempts=3)
    action = await harness.propose("email.draft.create", internal_mail())
    delays = []
    for _ in range(3):
        clock.advance(3600)
        await harness.executor.run_due()
        row = await harness.load(action.id)
        if row.state == S.SCHEDULED:
            delays.append((row.not_before - clock.now).total_seconds())
    failed = await harness.load(action.id)
    assert failed.state == S.FAILED and failed.attempts == 3
    assert delays == [1.0, 2.0]  # exponential backoff from backoff_initial_seconds
    assert resolver.email.calls == 3
    async with harness.sessions() as session:
        routed = (
            await session.execute(
                select(ActionException).where(ActionException.action_id == action.id)
            )
        ).scalar_one()
    assert routed.owner == "unassigned"  # routing to owners: tests/integration/test_owners.py
    assert routed.state == "failed" and "RetriableConnectorError" in (routed.error or "")
    assert await harness.audit_count(action.id) == failed.version


async def test_fatal_error_fails_at_once(harness: Harness, clock: Clock) -> None:
    action = await harness.propose(
        "email.move", {"message_id": "no-such-message", "folder": "archive"}
    )
    await harness.executor.run_due()
    failed = await harness.load(action.id)
    assert failed.state == S.FAILED and failed.attempts == 1
    assert "ConnectorNotFoundError" in (failed.last_error or "")


async def test_kill_switch_holds_actions_in_scheduled_without_losing_them(
    harness: Harness, clock: Clock
) -> None:
    admin = person("ops-admin", Role.ADMIN)
    mail = await harness.propose("email.draft.create", internal_mail())
    event = await harness.propose("calendar.event.create", meeting())
    async with harness.sessions() as session, session.begin():
        await set_switch(session, admin, enabled=True, now=clock.now, reason="incident 42")
    assert await harness.executor.run_due() == 0
    assert (await harness.load(mail.id)).state == S.SCHEDULED

    # Narrow it to the mail connector of this tenant: the calendar runs, the mail waits.
    async with harness.sessions() as session, session.begin():
        await set_switch(session, admin, enabled=False, now=clock.now)
        await set_switch(
            session, admin, enabled=True, now=clock.now, tenant_id=TENANT, connector="email"
        )
    assert await harness.executor.run_due() == 1
    assert (await harness.load(event.id)).state == S.SUCCEEDED
    assert (await harness.load(mail.id)).state == S.SCHEDULED

    async with harness.sessions() as session, session.begin():
        await set_switch(
            session, admin, enabled=False, now=clock.now, tenant_id=TENANT, connector="email"
        )
    assert await harness.executor.run_due() == 1
    assert (await harness.load(mail.id)).state == S.SUCCEEDED


async def test_expired_lease_is_recovered_and_runs_once(harness: Harness, clock: Clock) -> None:
    action = await harness.propose("email.draft.create", internal_mail())
    claimed = await harness.executor._claim()
    assert claimed is not None and claimed.id == action.id
    # The worker "dies" here: nothing is recorded. Another worker recovers after the lease.
    other = build_harness(harness.sessions, clock, worker_id="worker-2")
    assert await other.executor.run_due() == 0
    clock.advance(harness.settings.lease_seconds + 1)
    assert await other.executor.run_due() == 1
    done = await harness.load(action.id)
    assert done.state == S.SUCCEEDED and done.attempts == 2
    assert len(await messages_with_key(harness.sessions, action.id)) == 1
    assert "action.retry_scheduled" in await harness.audit_actions(action.id)


async def test_a_worker_dying_after_a_batch_claim_leaves_every_action_to_run_once(
    harness: Harness, clock: Clock
) -> None:
    """A batch is claimed in one transaction; the worker runs part of it and dies. The
    rest is recovered after the lease and runs once; what ran is not run again."""
    # A connector not measured yet is claimed for only as far as it runs at once.
    harness = build_harness(harness.sessions, clock, connector_concurrency=5)
    actions = [
        await harness.propose("email.draft.create", internal_mail(f"n{i}")) for i in range(5)
    ]
    checked, claimed = await harness.executor._claim_batch(5)
    assert sorted(a.id for a in claimed) == sorted(a.id for a in actions)
    # One claim, one audit event per action (its version counts its events).
    for action in claimed:
        assert action.state == S.EXECUTING and action.attempts == 1
        assert await harness.audit_count(action.id) == action.version
    await asyncio.gather(*(harness.executor._start(a, checked) for a in claimed[:2]))
    # The worker dies here: claimed[2:] stay EXECUTING under its lease.
    other = build_harness(harness.sessions, clock, worker_id="worker-2")
    assert await other.executor.run_due() == 0
    clock.advance(harness.settings.lease_seconds + 1)
    assert await other.executor.run_due() == 3
    for action in actions:
        done = await harness.load(action.id)
        assert done.state == S.SUCCEEDED
        assert len(await messages_with_key(harness.sessions, action.id)) == 1
        assert await harness.audit_count(action.id) == done.version
    assert {(await harness.load(a.id)).attempts for a in claimed[2:]} == {2}


async def test_a_kill_switch_stops_claimed_actions_that_have_not_started(
    harness: Harness, clock: Clock
) -> None:
    """Claimed ahead of its connector, an action that waited re-reads the switches before
    it starts: one that went on meanwhile gives it back, unexecuted, with its attempt."""
    admin = person("ops-admin", Role.ADMIN)
    mail = await harness.propose("email.draft.create", internal_mail())
    _, claimed = await harness.executor._claim_batch(1)
    assert [a.id for a in claimed] == [mail.id]
    async with harness.sessions() as session, session.begin():
        await set_switch(
            session, admin, enabled=True, now=clock.now, tenant_id=TENANT, connector="email"
        )
    # Claimed (switches read) longer ago than the recheck period.
    stale = time.monotonic() - SWITCH_RECHECK_SECONDS - 1
    await harness.executor._start(claimed[0], stale)
    released = await harness.load(mail.id)
    assert released.state == S.SCHEDULED and released.attempts == 0
    assert released.claimed_by is None
    assert await messages_with_key(harness.sessions, mail.id) == []
    assert (await harness.audit_actions(mail.id))[-1] == "action.retry_scheduled"
    assert await harness.audit_count(mail.id) == released.version

    async with harness.sessions() as session, session.begin():
        await set_switch(
            session, admin, enabled=False, now=clock.now, tenant_id=TENANT, connector="email"
        )
    clock.advance(SWITCH_RECHECK_SECONDS + 1)
    assert await harness.executor.run_due() == 1
    done = await harness.load(mail.id)
    assert done.state == S.SUCCEEDED and done.attempts == 1
    assert len(await messages_with_key(harness.sessions, mail.id)) == 1


async def test_rollback_of_a_correlation_id_in_reverse_order(
    harness: Harness, clock: Clock
) -> None:
    inbox = await seeded_message(harness.sessions, "m02")
    draft = await harness.propose("email.draft.create", internal_mail(), correlation_id="c-1")
    await harness.executor.run_due()
    clock.advance(1)
    event = await harness.propose("calendar.event.create", meeting(), correlation_id="c-1")
    await harness.executor.run_due()
    clock.advance(1)
    move = await harness.propose(
        "email.move", {"message_id": inbox.id, "folder": "archive"}, correlation_id="c-1"
    )
    await harness.executor.run_due()
    for action in (draft, event, move):
        assert (await harness.load(action.id)).state == S.SUCCEEDED
    assert (await harness.resolver.email.get_message(inbox.id)).folder == "archive"

    outcomes = await harness.compensation.rollback_correlation(
        person(EXECUTIVE, Role.EXECUTIVE), "c-1"
    )
    assert [o.action_id for o in outcomes] == [move.id, event.id, draft.id]  # newest first
    assert all(o.ok and o.effect_undone for o in outcomes)
    for action in (draft, event, move):
        row = await harness.load(action.id)
        assert row.state == S.COMPENSATED
        assert await harness.audit_count(action.id) == row.version
    # draft deleted, event cancelled, message back where it was
    assert await messages_with_key(harness.sessions, draft.id) == []
    assert [e.cancelled for e in await events_for(harness.sessions, event.id)] == [True]
    assert (await harness.resolver.email.get_message(inbox.id)).folder == inbox.folder


async def test_rolling_back_a_sent_email_proposes_a_follow_up(
    harness: Harness, clock: Clock
) -> None:
    action = await harness.propose("email.send", internal_mail(subject="Budget"))
    clock.advance(31)
    await harness.executor.run_due()
    outcome = await harness.compensation.rollback(person(EXECUTIVE, Role.EXECUTIVE), action.id)
    assert outcome.ok and outcome.effect_undone is False
    row = await harness.load(action.id)
    assert row.state == S.COMPENSATED
    assert row.compensation_result["note"] == "a sent email cannot be unsent"
    follow_up = await harness.load(outcome.follow_up_action_id)
    assert follow_up.kind == "email.draft.create" and follow_up.parent_id == action.id
    assert follow_up.arguments["to"] == [{"address": COLLEAGUE}]
    assert follow_up.arguments["subject"] == "Correction: Budget"
    assert follow_up.state == S.SCHEDULED  # drafts are allowed by the test policy
    # still one sent message: nothing was unsent
    assert len(await messages_with_key(harness.sessions, action.id)) == 1


async def test_update_cancel_and_respond_are_compensated(harness: Harness, clock: Clock) -> None:
    created = await harness.propose("calendar.event.create", meeting("Board prep"))
    await harness.executor.run_due()
    event_id = (await harness.load(created.id)).external_ids["event_id"]
    calendar = harness.resolver.calendar
    original = await calendar.get_event(event_id)

    new_start = original.start + timedelta(hours=2)
    update = await harness.propose(
        "calendar.event.update",
        {
            "event_id": event_id,
            "subject": "Board prep (moved)",
            "start": new_start.isoformat(),
            "end": (new_start + timedelta(minutes=45)).isoformat(),
        },
    )
    await harness.executor.run_due()
    assert (await calendar.get_event(event_id)).subject == "Board prep (moved)"
    assert (await harness.load(update.id)).snapshot["event"]["subject"] == "Board prep"
    result = await harness.compensation.rollback(person(EXECUTIVE, Role.EXECUTIVE), update.id)
    assert result.ok
    restored = await calendar.get_event(event_id)
    assert (restored.subject, restored.start, restored.end) == (
        original.subject,
        original.start,
        original.end,
    )

    # cancel needs two approvers (four-eyes rule of the test policy)
    cancel = await harness.propose("calendar.event.cancel", {"event_id": event_id})
    assert cancel.state == S.PENDING_REVIEW and cancel.approvals_required == 2
    async with harness.sessions() as session, session.begin():
        await harness.review.approve(session, person(EXECUTIVE, Role.EXECUTIVE), cancel.id)
    async with harness.sessions() as session, session.begin():
        await harness.review.approve(
            session, person("jordan", Role.DELEGATE, on_behalf_of=EXECUTIVE), cancel.id
        )
    await harness.executor.run_due()
    assert (await calendar.get_event(event_id)).is_cancelled
    result = await harness.compensation.rollback(person(EXECUTIVE, Role.EXECUTIVE), cancel.id)
    assert result.ok
    recreated = await calendar.get_event(result.result["recreated_event_id"])
    assert not recreated.is_cancelled and recreated.subject == original.subject
    assert recreated.start == original.start

    # respond: Dana declines Raj's weekly, then the rollback accepts again
    async with harness.sessions() as session:
        weekly = (
            await session.execute(select(SandboxEvent).where(SandboxEvent.seed_key == "e06"))
        ).scalar_one()
    respond = await harness.propose(
        "calendar.invite.respond", {"event_id": weekly.id, "response": InviteResponse.DECLINE.value}
    )
    await harness.executor.run_due()

    def dana(event: Any) -> ResponseStatus:
        return next(a.response for a in event.attendees if a.address == EXECUTIVE)

    assert dana(await calendar.get_event(weekly.id)) is ResponseStatus.DECLINED
    assert (await harness.compensation.rollback(person(EXECUTIVE, Role.EXECUTIVE), respond.id)).ok
    assert dana(await calendar.get_event(weekly.id)) is ResponseStatus.ACCEPTED


async def test_failed_compensation_goes_to_the_exception_queue(
    harness: Harness, clock: Clock
) -> None:
    draft = await harness.propose("email.draft.create", internal_mail())
    await harness.executor.run_due()
    draft_id = (await harness.load(draft.id)).external_ids["draft_id"]
    await harness.resolver.email.send_draft(draft_id)  # someone sent it by hand meanwhile
    outcome = await harness.compensation.rollback(person(EXECUTIVE, Role.EXECUTIVE), draft.id)
    assert not outcome.ok
    row = await harness.load(draft.id)
    assert row.state == S.COMPENSATION_FAILED
    async with harness.sessions() as session:
        routed = (
            await session.execute(
                select(ActionException).where(ActionException.action_id == draft.id)
            )
        ).scalar_one()
    assert routed.state == "compensation_failed"
    assert routed.owner == "unassigned"  # routing to owners: tests/integration/test_owners.py
    assert await harness.audit_count(draft.id) == row.version


async def test_external_reply_recipients_come_from_the_original(
    harness: Harness, clock: Clock
) -> None:
    original = await seeded_message(harness.sessions, "m02")
    action = await harness.propose(
        "email.send", {"mode": "reply", "reply_to_id": original.id, "body_text": "Thanks, will do."}
    )
    sender = original.data["sender"]["address"]
    assert action.arguments["to"][0]["address"] == sender
    expected_rule = "internal-mail" if sender.endswith("@northwind.example") else "external-mail"
    assert action.policy_rule_id == expected_rule


@pytest.fixture
def log_buffer() -> Any:
    """The app's logging pipeline (JSON, INFO as in production), written to a buffer."""
    import io
    import logging

    from assistant.core.logging import configure_logging

    configure_logging("INFO", "json")
    root = logging.getLogger()
    handler = next(h for h in root.handlers if getattr(h, "_assistant_handler", False))
    buffer = io.StringIO()
    handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.removeHandler(handler)


async def test_policy_denial_and_secret_arguments_stay_out_of_audit_and_logs(
    harness: Harness, clock: Clock, log_buffer: Any
) -> None:
    from governance.audit_models import AuditEvent

    secret = "zq7-unguessable-token-4f1b9c"  # no pattern a redactor would know
    mass = [{"address": f"person{i}@fabrikam.example"} for i in range(25)]
    denied = await harness.propose(
        "email.send", {"to": mass, "subject": secret, "body_text": f"code {secret}"}
    )
    assert denied.state == S.DENIED and denied.policy_rule_id == "deny-mass-mail"
    pending = await harness.propose(
        "email.send", {"to": [{"address": OUTSIDER}], "subject": "Quote", "body_text": secret}
    )
    assert pending.state == S.PENDING_REVIEW
    async with harness.sessions() as session, session.begin():
        await harness.review.edit(
            session,
            person(EXECUTIVE, Role.EXECUTIVE),
            pending.id,
            {"to": [{"address": OUTSIDER}], "subject": "Quote", "body_text": f"{secret}!"},
        )
    clock.advance(31)
    await harness.executor.run_due()
    bad = await harness.propose("email.move", {"message_id": secret, "folder": "archive"})
    await harness.executor.run_due()
    assert (await harness.load(bad.id)).state == S.FAILED
    async with harness.sessions() as session:
        rows = (await session.execute(select(AuditEvent))).scalars().all()
    assert rows
    for row in rows:
        assert secret not in row.payload_json and secret not in (row.reason or "")
    logged = log_buffer.getvalue()
    assert "action.proposed" in logged
    assert secret not in logged


async def test_system_actor_for_automatic_transitions(harness: Harness) -> None:
    action = await harness.propose(
        "email.draft.create", internal_mail(), actor=system_principal(TENANT, "pipeline")
    )
    await harness.executor.run_due()
    from governance.audit_models import AuditEvent

    async with harness.sessions() as session:
        actors = (
            (
                await session.execute(
                    select(AuditEvent.actor_id)
                    .where(AuditEvent.action_id == action.id)
                    .order_by(AuditEvent.seq)
                )
            )
            .scalars()
            .all()
        )
    assert actors[0] == "pipeline"
    assert actors[1] == "policy"
    assert all(a.startswith("executor:") for a in actors[2:])
