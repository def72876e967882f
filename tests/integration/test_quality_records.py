"""Quality, cost and the gate computed from prepared records, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.ids import new_id
from assistant.core.principal import Principal, Role, system_principal
from assistant.core.settings import QualitySettings, Settings
from assistant.llm.models import LLMCallRow
from assistant.quality import monitor
from assistant.quality.gate import Decision, Verdict, gate_report, gather
from assistant.quality.metrics import measure
from assistant.quality.period import Period, parse_period
from assistant.triage.store import TriageCorrectionRow, TriageResultRow
from governance import audit
from governance.audit import AuditAction, AuditEventIn
from governance.audit_models import AuditEvent
from governance.models import Action, ActionEdit, ActionException
from governance.production_models import DrillRecord
from tests.conftest import FIXED_NOW

NOW = FIXED_NOW
DAY = timedelta(days=1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(db_url)
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def tenant() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


def action_row(
    tenant: str,
    kind: str,
    state: str,
    *,
    decision: str = "require_approval",
    approved: bool = False,
    created_at: datetime = NOW - DAY,
) -> Action:
    return Action(
        id=new_id(),
        tenant_id=tenant,
        kind=kind,
        capability="email",
        connector=None,
        risk="reversible",
        state=state,
        version=1,
        arguments={"subject": "x"},
        actor_id="pipeline",
        actor_type="system",
        autonomy="suggest",
        decision=decision,
        approvals_required=1,
        approver_roles=["executive"],
        approved_at=created_at + timedelta(minutes=5) if approved else None,
        hold_seconds=0,
        attempts=0,
        external_ids={},
        created_at=created_at,
        updated_at=created_at,
    )


async def prepare(
    sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    plan: dict[str, list[tuple[str, dict[str, Any]]]],
) -> dict[str, list[str]]:
    """Insert actions by kind: (outcome, options) pairs; returns ids by outcome."""
    actor = system_principal(tenant, "test")
    ids: dict[str, list[str]] = {}
    async with sessions() as session, session.begin():
        for kind, items in plan.items():
            for outcome, options in items:
                state, extra = {
                    "approved_unedited": ("succeeded", {"approved": True}),
                    "approved_edited": ("succeeded", {"approved": True}),
                    "auto_approved": ("succeeded", {"approved": True, "decision": "allow"}),
                    "rejected": ("rejected", {}),
                    "expired": ("expired", {}),
                    "cancelled": ("cancelled", {}),
                    "failed": ("failed", {"approved": True}),
                    "pending": ("pending_review", {}),
                }[outcome]
                row = action_row(
                    tenant,
                    kind,
                    options.get("state", state),
                    **{
                        **extra,
                        **{k: v for k, v in options.items() if k in {"created_at", "decision"}},
                    },
                )
                session.add(row)
                await session.flush()
                ids.setdefault(outcome, []).append(row.id)
                if outcome == "approved_edited":
                    session.add(
                        ActionEdit(
                            id=new_id(),
                            tenant_id=tenant,
                            action_id=row.id,
                            editor_id="dana",
                            created_at=row.created_at,
                            patch=[{"op": "replace", "path": "/subject", "value": "y"}],
                        )
                    )
                    await audit.record(
                        session,
                        actor,
                        AuditEventIn(
                            action=AuditAction.ACTION_EDITED,
                            action_id=row.id,
                            occurred_at=row.created_at,
                            payload={"edit_distance": options.get("distance", 0.5)},
                        ),
                    )
                if outcome == "rejected":
                    await audit.record(
                        session,
                        actor,
                        AuditEventIn(
                            action=AuditAction.ACTION_REJECTED,
                            action_id=row.id,
                            occurred_at=row.created_at,
                            reason=options.get("reason", "Wrong tone"),
                        ),
                    )
                if outcome == "failed":
                    session.add(
                        ActionException(
                            id=new_id(),
                            tenant_id=tenant,
                            action_id=row.id,
                            kind=kind,
                            state="failed",
                            owner="ops@northwind.example",
                            error="boom",
                            status="open",
                            created_at=row.created_at,
                        )
                    )
    return ids


async def triage_rows(
    sessions: async_sessionmaker[AsyncSession],
    tenant: str,
    predicted: list[str | None],
    corrections: dict[int, str],
) -> None:
    async with sessions() as session, session.begin():
        rows = []
        for index, category in enumerate(predicted):
            row = TriageResultRow(
                id=new_id(),
                tenant_id=tenant,
                mailbox="dana@northwind.example",
                message_id=f"<m{index}@x>",
                category=category,
                priority="normal",
                needs_human=category is None,
                confidence=0.9,
                stage="rules",
                result={},
                created_at=NOW - DAY,
                updated_at=NOW - DAY,
            )
            rows.append(row)
            session.add(row)
        await session.flush()
        for index, corrected in corrections.items():
            row = rows[index]
            session.add(
                TriageCorrectionRow(
                    id=new_id(),
                    tenant_id=tenant,
                    result_id=row.id,
                    mailbox=row.mailbox,
                    message_id=row.message_id,
                    corrected_by="dana",
                    created_at=NOW - DAY / 2,
                    original_category=row.category,
                    original_priority="normal",
                    original_stage="rules",
                    category=corrected,
                    priority="normal",
                )
            )


def period(days: int = 30) -> Period:
    return parse_period(f"{days}d", NOW)


async def test_rates_edit_distance_reasons_and_confusion(
    db: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    await prepare(
        db,
        tenant,
        {
            "email.draft.create": [("approved_unedited", {})] * 5
            + [("approved_edited", {"distance": 0.2}), ("approved_edited", {"distance": 0.4})]
            + [
                ("rejected", {"reason": "Wrong tone."}),
                ("rejected", {"reason": "wrong  TONE"}),
                ("rejected", {"reason": "not needed"}),
            ]
            + [("expired", {}), ("cancelled", {}), ("auto_approved", {}), ("pending", {})],
            "calendar.event.create": [("approved_unedited", {}), ("failed", {})],
            # outside the period: counted nowhere
            "email.send": [("rejected", {"created_at": NOW - 40 * DAY})],
        },
    )
    await triage_rows(
        db,
        tenant,
        ["respond", "respond", "schedule", "notify", None, "ignore"],
        {0: "schedule", 2: "schedule", 3: "ignore"},
    )
    async with db() as session:
        report = await measure(session, tenant, period())
    drafts = report.kinds["email.draft.create"].to_dict()
    assert drafts["reviewed"] == 12  # 5 + 2 + 3 + 1 + 1 (auto and pending are not reviewed)
    assert drafts["acceptance_rate"] == pytest.approx(5 / 12, abs=1e-6)
    assert drafts["edit_rate"] == pytest.approx(2 / 12, abs=1e-6)
    assert drafts["rejection_rate"] == pytest.approx(3 / 12, abs=1e-6)
    assert drafts["expiry_rate"] == drafts["cancel_rate"] == pytest.approx(1 / 12, abs=1e-6)
    assert drafts["counts"]["auto_approved"] == 1 and drafts["counts"]["pending"] == 1
    assert drafts["edit_distance"] == {"edits_measured": 2, "mean": 0.3, "median": 0.3, "max": 0.4}
    assert "email.send" not in report.kinds
    data = report.to_dict()
    assert data["rejection_reasons"] == [
        {"reason": "wrong tone", "count": 2},
        {"reason": "not needed", "count": 1},
    ]
    triage = data["triage"]
    # one deferred to a person; one "correction" keeping the category is no correction
    assert (triage["results"], triage["decided"], triage["deferred"]) == (6, 5, 1)
    assert triage["corrected"] == 2 and triage["accuracy"] == pytest.approx(0.6)
    assert {(c["predicted"], c["corrected_to"], c["count"]) for c in triage["confusion"]} == {
        ("respond", "schedule", 1),
        ("notify", "ignore", 1),
    }
    respond = next(c for c in triage["by_category"] if c["category"] == "respond")
    assert respond == {
        "category": "respond",
        "predicted": 2,
        "corrected": 1,
        "correction_rate": 0.5,
    }
    execution = data["execution"]
    assert execution["executed"] == 10 and execution["failed"] == 1  # 5+2+1 drafts, 2 calendar
    assert execution["exceptions"] == 1
    assert report.handled_items == 6 + 16


async def test_spot_check_sampling_is_deterministic_and_follows_the_share(
    db: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    ids = await prepare(
        db, tenant, {"email.move": [("auto_approved", {})] * 200 + [("approved_unedited", {})] * 20}
    )
    admin = Principal(user_id="admin-1", tenant_id=tenant, roles=frozenset({Role.ADMIN}))
    settings = QualitySettings(spot_check_share=0.25)
    async with db() as session, session.begin():
        first = await monitor.sample_spot_checks(session, settings, admin, period(), now=NOW)
    chosen = {row.action_id for row in first}
    assert chosen <= set(ids["auto_approved"])  # only auto-approved actions are sampled
    expected = {i for i in ids["auto_approved"] if monitor.sample_bucket(tenant, i) < 0.25}
    assert chosen == expected
    assert 30 <= len(chosen) <= 70  # ~50 of 200 by the hash
    async with db() as session, session.begin():
        again = await monitor.sample_spot_checks(session, settings, admin, period(), now=NOW)
        wider = await monitor.sample_spot_checks(
            session, QualitySettings(spot_check_share=0.5), admin, period(), now=NOW
        )
    assert again == []  # reproducible: nothing new on a second run
    assert chosen.isdisjoint({r.action_id for r in wider})  # a larger share only adds
    check = first[0]
    async with db() as session, session.begin():
        checked = await monitor.record_verdict(
            session, admin, check.id, monitor.SpotVerdict.WRONG, "wrong recipient", now=NOW
        )
        assert checked.status == "checked" and checked.checked_by == "admin-1"
    from assistant.core.errors import ConflictError, NotFoundError

    async with db() as session:
        with pytest.raises(ConflictError):
            await monitor.record_verdict(
                session, admin, check.id, monitor.SpotVerdict.OK, None, now=NOW
            )
        other = Principal(user_id="x", tenant_id="elsewhere", roles=frozenset({Role.ADMIN}))
        with pytest.raises(NotFoundError):
            await monitor.record_verdict(
                session, other, check.id, monitor.SpotVerdict.OK, None, now=NOW
            )
        audited = (
            await session.execute(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant,
                    AuditEvent.action == AuditAction.QUALITY_SPOT_CHECK_RECORDED.value,
                )
            )
        ).scalar_one()
        assert audited == 1


async def test_drift_alert_fires_past_the_threshold_and_not_at_it(
    db: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    settings = QualitySettings(
        window_days=7, min_samples=10, max_rejection_rate=0.2, max_edit_rate=1.0
    )
    actor = system_principal(tenant, "quality-check")
    # exactly at the threshold: 2 of 10 rejected -> no alert
    await prepare(
        db, tenant, {"email.send": [("rejected", {})] * 2 + [("approved_unedited", {})] * 8}
    )
    async with db() as session, session.begin():
        assert await monitor.evaluate_alerts(session, settings, actor, now=NOW) == []
    # one more rejection: 3 of 11 (0.27) -> raised, once
    await prepare(db, tenant, {"email.send": [("rejected", {})]})
    async with db() as session, session.begin():
        changes = await monitor.evaluate_alerts(session, settings, actor, now=NOW)
        assert [(c.change, c.alert.metric, c.alert.kind) for c in changes] == [
            ("raised", "rejection_rate", "email.send")
        ]
        assert changes[0].alert.value == pytest.approx(3 / 11, abs=1e-6)
    async with db() as session, session.begin():
        assert await monitor.evaluate_alerts(session, settings, actor, now=NOW) == []
    # rejections outside the rolling window do not count: the alert resolves
    later = NOW + timedelta(days=8)
    await prepare(
        db, tenant, {"email.send": [("approved_unedited", {"created_at": later - DAY})] * 10}
    )
    async with db() as session, session.begin():
        changes = await monitor.evaluate_alerts(session, settings, actor, now=later)
        assert [c.change for c in changes] == ["resolved"]
    async with db() as session:
        events = list(
            (
                await session.execute(
                    select(AuditEvent.action)
                    .where(
                        AuditEvent.tenant_id == tenant, AuditEvent.action.like("quality.alert.%")
                    )
                    .order_by(AuditEvent.seq)
                )
            ).scalars()
        )
        assert events == ["quality.alert.raised", "quality.alert.resolved"]
        assert len(await monitor.list_alerts(session, tenant, status="resolved")) == 1


async def test_too_few_samples_raise_no_alert(
    db: async_sessionmaker[AsyncSession], tenant: str
) -> None:
    settings = QualitySettings(min_samples=10, max_rejection_rate=0.2)
    await prepare(db, tenant, {"email.send": [("rejected", {})] * 9})
    async with db() as session, session.begin():
        assert (
            await monitor.evaluate_alerts(session, settings, system_principal(tenant), now=NOW)
            == []
        )


async def test_gate_from_records_every_criterion(
    db: async_sessionmaker[AsyncSession], tenant: str, tmp_path: Path
) -> None:
    await prepare(
        db, tenant, {"email.draft.create": [("approved_unedited", {})] * 9 + [("rejected", {})]}
    )
    await triage_rows(db, tenant, ["respond"] * 10, {0: "notify"})
    async with db() as session, session.begin():
        session.add(
            LLMCallRow(
                id=new_id(),
                tenant_id=tenant,
                occurred_at=NOW - DAY,
                provider="openai",
                model="m",
                task="triage",
                prompt_name="triage",
                prompt_version="1",
                input_tokens=10,
                cached_tokens=0,
                output_tokens=5,
                latency_ms=1.0,
                cost_usd=2.0,
                attempts=1,
                outcome="ok",
                over_limit=False,
            )
        )
        session.add(
            DrillRecord(
                id=new_id(),
                tenant_id=tenant,
                started_at=NOW - 2 * DAY,
                finished_at=NOW - 2 * DAY,
                passed=True,
                summary="2 kinds",
                results=[],
                started_by="ops",
            )
        )
    settings = Settings(
        data_dir=tmp_path,
        costs={"infrastructure_monthly": 0.0, "target_monthly_items": 100},
        gate={
            "min_volume": 20,
            "min_triage_accuracy": 0.9,
            "min_action_acceptance": 0.9,
            "max_cost_per_item": 0.1,
            "max_monthly_run_rate": 10.0,
        },
    )
    async with db() as session, session.begin():
        evidence = await gather(session, settings, tenant, period())
        report = await gate_report(
            session, settings, system_principal(tenant, "t"), period(), now=NOW
        )
    assert evidence.audit_ok and evidence.drill_passed is True
    by_name = {c.name: c for c in report.criteria}
    assert by_name["volume"].value == 20 and by_name["volume"].verdict is Verdict.PASS
    assert by_name["triage_accuracy"].value == 0.9  # exactly at the minimum: passes
    assert by_name["triage_accuracy"].verdict is Verdict.PASS
    assert by_name["action_acceptance"].value == 0.9
    assert by_name["action_acceptance"].verdict is Verdict.PASS
    assert by_name["cost_per_item"].value == 0.1  # 2.0 USD / 20 items, at the maximum
    assert by_name["cost_per_item"].verdict is Verdict.PASS
    assert by_name["monthly_run_rate"].value == pytest.approx(10.0)  # 0.1 x 100
    assert by_name["error_rate"].verdict is Verdict.PASS
    assert by_name["rollback_drill"].verdict is Verdict.PASS
    assert by_name["audit_chain"].verdict is Verdict.PASS
    # every criterion passes but the owners one, which depends on the owners configured
    assert all(c.verdict is Verdict.PASS for c in report.criteria if c.name != "owners_named")
    assert report.decision is (Decision.NO_GO if evidence.missing_owners else Decision.GO)
    assert set(by_name) == {c.name for c in report.criteria} and len(by_name) == 11
    async with db() as session:
        gate_events = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant, AuditEvent.action == "gate.reported"
                )
            )
        ).scalars()
        payloads = [e.payload for e in gate_events]
    assert payloads and payloads[0]["decision"] == report.decision.value


async def test_alerts_are_routed_to_the_exception_queue_owner(
    db: async_sessionmaker[AsyncSession], tenant: str, tmp_path: Path
) -> None:
    ops = {"person": "Olu Ops", "role": "IT lead", "contact": "ops@northwind.example"}
    named = Settings(
        data_dir=tmp_path, owners={"exceptions": ops, "deployment": {**ops, "person": "Dee"}}
    )
    unnamed = Settings(data_dir=tmp_path)
    await prepare(db, tenant, {"email.send": [("rejected", {})] * 5})
    async with db() as session, session.begin():
        assert await monitor.alert_owner(session, unnamed, tenant) is None
        owner = await monitor.alert_owner(session, named, tenant)
        assert owner == "Olu Ops"
        changes = await monitor.evaluate_alerts(
            session, QualitySettings(min_samples=5), system_principal(tenant), now=NOW, owner=owner
        )
    assert [c.alert.routed_to for c in changes] == ["Olu Ops"]
    async with db() as session:
        event = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.tenant_id == tenant, AuditEvent.action == "quality.alert.raised"
                )
            )
        ).scalar_one()
    assert event.payload["routed_to"] == "Olu Ops"


async def test_a_raised_alert_reaches_its_owner_after_commit_and_the_delivery_is_audited(
    db: async_sessionmaker[AsyncSession], tenant: str, tmp_path: Path
) -> None:
    from governance.aftercommit import drain_notifications
    from governance.owners import OwnerRouter
    from tests.fixtures.webhook import SECRET_PATH, Hook

    await prepare(db, tenant, {"email.send": [("rejected", {})] * 5})
    quality = QualitySettings(min_samples=5)
    with Hook([(503, {"Retry-After": "2"}), (200, {})]) as hook:
        ops = {"person": "Olu Ops", "role": "IT lead", "contact": hook.url}
        settings = Settings(data_dir=tmp_path, owners={"exceptions": ops})
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        router = OwnerRouter(db, settings, sleep=sleep)
        # a transaction that rolls back notifies nobody
        async with db() as session:
            changes = await monitor.evaluate_alerts(
                session, quality, system_principal(tenant), now=NOW, owner="Olu Ops"
            )
            router.notify_after_commit(session, monitor.alert_notice(changes[0].alert, settings))
            await session.rollback()
        await drain_notifications()
        assert hook.received == []
        async with db() as session, session.begin():
            changes = await monitor.evaluate_alerts(
                session, quality, system_principal(tenant), now=NOW, owner="Olu Ops"
            )
            [alert] = [c.alert for c in changes]
            router.notify_after_commit(session, monitor.alert_notice(alert, settings))
        await drain_notifications()
    assert len(hook.received) == 2 and waits == [2.0]  # the 503's Retry-After was honoured
    delivered = hook.received[-1]
    assert delivered["key"] == f"quality-alert-{alert.id}" == hook.received[0]["key"]
    document = delivered["json"]
    assert document["event"] == "quality.alert.raised" and document["alert_id"] == alert.id
    assert document["metric"] == "rejection_rate" and document["kind"] == "email.send"
    assert document["owner"] == {"person": "Olu Ops", "role": "IT lead"}
    assert "rejection rate for email.send" in document["subject"]
    async with db() as session:
        [event] = (
            (
                await session.execute(
                    select(AuditEvent).where(
                        AuditEvent.tenant_id == tenant, AuditEvent.action == "owner.notified"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert event.outcome == "success" and event.resource_type == "quality_alert"
    assert event.resource_id == alert.id and event.payload["attempts"] == 2
    assert event.payload["metric"] == "rejection_rate" and event.payload["channel"] == "webhook"
    assert SECRET_PATH not in event.payload_json and "abc123" not in event.payload_json
