"""Metering into the ledger and the audit log; `triage run` over the sandbox inbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.settings import ModelPrice, Settings
from assistant.demo import sandbox_context
from assistant.llm import DatabaseMeter, LLMClient, Usage, cost_usd, load_prompt
from assistant.llm.metering import spend
from assistant.llm.models import LLMCallRow
from assistant.services import Services
from assistant.triage.pipeline import run_triage
from assistant.triage.store import TriageResultRow
from governance.audit_models import AuditEvent
from tests.fakes.openai_server import Answer, FakeOpenAI
from tests.unit.llm.conftest import fake_llm
from tests.unit.triage.factory import triage_answer

SECRET_BODY = "the merger code name is BLUEBIRD"


def test_cost_from_the_price_table() -> None:
    prices = {
        "gpt-4o-mini": ModelPrice(input=0.15, cached_input=0.075, output=0.6),
        "plain": ModelPrice(input=1.0, output=2.0),
    }
    usage = Usage(input=10_000, cached=4_000, output=1_000)
    assert cost_usd(prices, "gpt-4o-mini", usage) == round(
        (6_000 * 0.15 + 4_000 * 0.075 + 1_000 * 0.6) / 1e6, 8
    )
    # a dated model name falls back to its listed prefix; no cached price: the input price
    assert cost_usd(prices, "gpt-4o-mini-2024-07-18", usage) == cost_usd(
        prices, "gpt-4o-mini", usage
    )
    assert cost_usd(prices, "plain", usage) == (10_000 * 1.0 + 1_000 * 2.0) / 1e6
    assert cost_usd(prices, "unknown", usage) is None


async def test_ledger_row_and_audit_event_without_content(
    openai_server: FakeOpenAI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    llm = LLMClient(fake_llm(openai_server), DatabaseMeter(sessions))
    openai_server.script(
        Answer(content="Draft reply", prompt_tokens=500, cached_tokens=100, completion_tokens=42)
    )
    async with llm:
        await llm.text(
            load_prompt("triage@1"),
            {"context": "c", "email": SECRET_BODY},
            task="drafting",
            tenant_id="acme",
            correlation_id="req-42",
        )
    async with sessions() as session:
        row = (await session.execute(select(LLMCallRow))).scalar_one()
        assert (row.input_tokens, row.cached_tokens, row.output_tokens) == (500, 100, 42)
        assert (row.provider, row.model, row.task) == (
            "openai_compatible",
            "fake-model",
            "drafting",
        )
        assert (row.prompt_name, row.prompt_version) == ("triage", "triage@1")
        assert row.correlation_id == "req-42" and row.outcome == "ok"
        assert row.cost_usd == (400 * 1.0 + 100 * 0.5 + 42 * 2.0) / 1e6
        event = (
            await session.execute(select(AuditEvent).where(AuditEvent.action == "llm.call"))
        ).scalar_one()
        assert event.tenant_id == "acme" and event.correlation_id == "req-42"
        assert event.payload["input_tokens"] == 500 and event.payload["call_id"] == row.id
        assert event.actor_type == "system"
        stored = json.dumps([event.payload, event.reason, row.error_type])
        assert "BLUEBIRD" not in stored and "Draft reply" not in stored
        total = await spend(session, "acme")
        assert (total.calls, total.input_tokens, total.output_tokens) == (1, 500, 42)


async def _run(settings: Settings, **kwargs: Any) -> Any:
    services = await Services.build(settings)
    try:
        return await run_triage(
            services, tenant_id="default", context_for=lambda _: sandbox_context(settings), **kwargs
        )
    finally:
        await services.aclose()


async def test_triage_run_rules_only(
    settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    report = await _run(settings)
    assert report.synced and report.synced[0]["queued"] == report.claimed > 0
    assert report.triaged == report.claimed and report.failed == 0
    assert set(report.by_stage) <= {"rule"}
    # undecided mail, plus rule decisions a person must confirm (injection)
    assert report.needs_human >= report.by_category["undecided"] > 0
    async with seeded() as session:
        rows = list((await session.execute(select(TriageResultRow))).scalars())
        assert len(rows) == report.triaged
        assert all(r.mailbox == "dana.whitfield@northwind.example" for r in rows)
        decided = (
            (await session.execute(select(AuditEvent).where(AuditEvent.action == "triage.decided")))
            .scalars()
            .all()
        )
        assert len(decided) == report.triaged
    again = await _run(settings)
    assert again.claimed == 0 and again.triaged == 0  # nothing new, nothing twice


async def test_triage_run_with_the_model(
    openai_server: FakeOpenAI, settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    with_llm = settings.model_copy(update={"llm": fake_llm(openai_server)})
    openai_server.default = Answer(
        arguments=triage_answer(
            category="respond",
            priority="normal",
            requested_actions=["reply"],
            confidence=0.9,
        ),
        prompt_tokens=300,
        completion_tokens=30,
    )
    report = await _run(with_llm, drafting=False)  # triage calls only (drafting: own tests)
    assert report.by_stage["model"] == len(openai_server.requests) > 0
    async with seeded() as session:
        calls = list((await session.execute(select(LLMCallRow))).scalars())
        assert len(calls) == report.by_stage["model"]
        assert {c.output_tokens for c in calls} == {30}
        [run_id] = {c.correlation_id for c in calls}  # one id ties the run together
        assert run_id is not None and run_id.startswith("triage-run-")
        model_rows = (
            (await session.execute(select(TriageResultRow).where(TriageResultRow.stage == "model")))
            .scalars()
            .all()
        )
        assert {r.prompt_version for r in model_rows} == {"triage@1"}
        assert {r.model for r in model_rows} == {"fake-model"}


async def test_triage_run_keeps_failed_and_older_mail_queued(
    openai_server: FakeOpenAI, settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    down = settings.model_copy(update={"llm": fake_llm(openai_server, max_retries=0)})
    openai_server.default = Answer.server_error()
    report = await _run(down)
    assert report.failed > 0 and report.by_stage["model"] == 0
    # the provider is back: the failed messages are triaged on the next run
    openai_server.default = Answer(
        arguments=triage_answer(
            category="notify",
            priority="low",
            requested_actions=[],
            confidence=0.9,
        )
    )
    later = await _run(down)
    assert later.by_stage["model"] == report.failed and later.failed == 0
    future = await _run(settings, since=datetime(2100, 1, 1, tzinfo=UTC))
    assert future.triaged == 0
