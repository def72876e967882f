"""Metering: every model call becomes one ledger row and one ``llm.call`` audit event.

What is recorded: provider, model, task, prompt name and version, input / cached / output
tokens as the provider's usage block reports them (never estimated), latency, cost from the
price table in the settings, attempts, outcome, and the correlation id. Never prompts,
answers, or provider error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import system_principal
from assistant.core.settings import ModelPrice
from assistant.llm.models import LLMCallRow

log = structlog.stdlib.get_logger(__name__)


class CallOutcome(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"  # the answer did not fit the schema
    TRUNCATED = "truncated"  # cut at the output limit (finish_reason=length)
    OVER_LIMIT = "over_limit"  # usage above the limit: the provider ignored it
    UNAVAILABLE = "unavailable"  # 429/5xx/timeouts after retries
    REFUSED = "refused"  # 4xx: configuration or credentials
    ERROR = "error"  # anything else (logged with its type)


@dataclass(frozen=True)
class Usage:
    """Token counts from the provider's usage block. ``cached`` is part of ``input``."""

    input: int = 0
    cached: int = 0
    output: int = 0


@dataclass(frozen=True)
class LLMCallRecord:
    """One metered call (after its transport retries)."""

    id: str
    tenant_id: str
    occurred_at: datetime
    correlation_id: str | None
    provider: str
    model: str
    task: str
    prompt_name: str
    prompt_version: str
    usage: Usage
    latency_ms: float
    cost_usd: float
    attempts: int
    outcome: CallOutcome
    error_type: str | None = None
    over_limit: bool = False

    def audit_payload(self) -> dict[str, object]:
        """What the audit event carries: counts and names only."""
        return {
            "call_id": self.id,
            "provider": self.provider,
            "model": self.model,
            "task": self.task,
            "prompt": self.prompt_version,
            "input_tokens": self.usage.input,
            "cached_tokens": self.usage.cached,
            "output_tokens": self.usage.output,
            "latency_ms": round(self.latency_ms, 1),
            "cost_usd": self.cost_usd,
            "attempts": self.attempts,
            "outcome": self.outcome.value,
            "error_type": self.error_type,
            "over_limit": self.over_limit,
        }


def price_for(prices: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
    """The model's price; a dated name (gpt-4o-mini-2024-07-18) falls back to the longest
    listed prefix."""
    if model in prices:
        return prices[model]
    candidates = [name for name in prices if model.startswith(name)]
    return prices[max(candidates, key=len)] if candidates else None


def cost_usd(prices: Mapping[str, ModelPrice], model: str, usage: Usage) -> float | None:
    """USD cost of ``usage`` (prices per 1M tokens); None when the model has no price."""
    price = price_for(prices, model)
    if price is None:
        return None
    cached = min(usage.cached, usage.input)
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = (
        (usage.input - cached) * price.input + cached * cached_price + usage.output * price.output
    ) / 1_000_000
    return round(total, 8)


class Meter(Protocol):
    """Where call records go."""

    async def record(self, call: LLMCallRecord) -> None: ...


class MemoryMeter:
    """Keeps records in memory (evaluation runs, the CLI's dry runs)."""

    def __init__(self) -> None:
        self.calls: list[LLMCallRecord] = []

    async def record(self, call: LLMCallRecord) -> None:
        self.calls.append(call)


def _row(call: LLMCallRecord) -> LLMCallRow:
    return LLMCallRow(
        id=call.id,
        tenant_id=call.tenant_id,
        occurred_at=call.occurred_at,
        correlation_id=call.correlation_id,
        provider=call.provider,
        model=call.model,
        task=call.task,
        prompt_name=call.prompt_name,
        prompt_version=call.prompt_version,
        input_tokens=call.usage.input,
        cached_tokens=call.usage.cached,
        output_tokens=call.usage.output,
        latency_ms=call.latency_ms,
        cost_usd=call.cost_usd,
        attempts=call.attempts,
        outcome=call.outcome.value,
        error_type=call.error_type,
        over_limit=call.over_limit,
    )


async def record_in_session(session: AsyncSession, call: LLMCallRecord) -> None:
    """Ledger row and audit event in the caller's transaction (flushes, never commits)."""
    from governance.audit import AuditAction, AuditEventIn, Outcome, record

    session.add(_row(call))
    await session.flush()
    await record(
        session,
        system_principal(call.tenant_id, "llm"),
        AuditEventIn(
            action=AuditAction.LLM_CALL,
            outcome=Outcome.SUCCESS if call.outcome is CallOutcome.OK else Outcome.FAILURE,
            resource_type="llm_call",
            resource_id=call.id,
            correlation_id=call.correlation_id,
            reason=call.outcome.value,
            payload=call.audit_payload(),
            occurred_at=call.occurred_at,
        ),
    )


class DatabaseMeter:
    """Writes each call in its own short transaction: money spent is recorded even when the
    work that asked for it rolls back. Callers must not hold a write transaction open on
    SQLite while calling the model (it would wait on their lock)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def record(self, call: LLMCallRecord) -> None:
        async with self.sessions() as session:
            try:
                await record_in_session(session, call)
                await session.commit()
            except BaseException:
                await session.rollback()
                raise


class FanOutMeter:
    """Sends each record to several meters (the ledger and an evaluation's tally)."""

    def __init__(self, *meters: Meter) -> None:
        self.meters = meters

    async def record(self, call: LLMCallRecord) -> None:
        for meter in self.meters:
            await meter.record(call)


@dataclass(frozen=True)
class SpendSummary:
    calls: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


async def spend(
    session: AsyncSession, tenant_id: str, *, since: datetime | None = None
) -> SpendSummary:
    """Totals of the tenant's ledger (optionally since a time)."""
    query = select(
        func.count(),
        func.coalesce(func.sum(LLMCallRow.input_tokens), 0),
        func.coalesce(func.sum(LLMCallRow.cached_tokens), 0),
        func.coalesce(func.sum(LLMCallRow.output_tokens), 0),
        func.coalesce(func.sum(LLMCallRow.cost_usd), 0.0),
    ).where(LLMCallRow.tenant_id == tenant_id)
    if since is not None:
        query = query.where(LLMCallRow.occurred_at >= since)
    calls, inp, cached, out, cost = (await session.execute(query)).one()
    return SpendSummary(int(calls), int(inp), int(cached), int(out), float(cost))
