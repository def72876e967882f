"""Total cost of the assistant and the time it saves: the figures a stalled pilot never states.

* LLM cost: the sum of the ``llm_calls`` ledger over the period.
* Fixed cost: the configured monthly costs (infrastructure, support, maintenance, model
  updates), prorated to the period's length (a month is 365.25 / 12 days).
* Cost per item: (LLM + prorated fixed) / items handled in the period.
* Monthly run-rate: the period's LLM cost scaled to a month, plus the fixed monthly cost.
* Projection at the target volume: LLM cost per item x target items a month, plus the
  fixed monthly cost.
* Time saved: items x minutes saved per item / 60 x loaded hourly cost.
* ROI: (value of time saved - cost) / cost, for the period and for the projection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.settings import CostSettings
from assistant.llm.models import LLMCallRow
from assistant.quality.period import DAYS_PER_MONTH, Period


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class CostReport:
    """Cost, time saved and ROI over a period, and projected to the target volume."""

    period_days: float
    items: int
    llm_cost: float
    llm_calls: int
    fixed_monthly: float
    target_monthly_items: int
    minutes_saved_per_item: float
    loaded_hourly_cost: float

    @property
    def months(self) -> float:
        return self.period_days / DAYS_PER_MONTH

    @property
    def fixed_cost(self) -> float:
        """Fixed monthly costs prorated to the period."""
        return self.fixed_monthly * self.months

    @property
    def total_cost(self) -> float:
        return self.llm_cost + self.fixed_cost

    @property
    def cost_per_item(self) -> float | None:
        return self.total_cost / self.items if self.items else None

    @property
    def llm_cost_per_item(self) -> float | None:
        return self.llm_cost / self.items if self.items else None

    @property
    def monthly_run_rate(self) -> float:
        """What a month costs at the period's pace."""
        llm_monthly = self.llm_cost / self.months if self.months else 0.0
        return llm_monthly + self.fixed_monthly

    @property
    def projected_monthly_cost(self) -> float | None:
        """What a month costs at the target volume (None: no item measured yet)."""
        per_item = self.llm_cost_per_item
        if per_item is None:
            return None
        return per_item * self.target_monthly_items + self.fixed_monthly

    def value_saved(self, items: float) -> float:
        return items * self.minutes_saved_per_item / 60.0 * self.loaded_hourly_cost

    @property
    def hours_saved(self) -> float:
        return self.items * self.minutes_saved_per_item / 60.0

    @property
    def roi(self) -> float | None:
        """(value saved - cost) / cost over the period (None when nothing was spent)."""
        cost = self.total_cost
        return (self.value_saved(self.items) - cost) / cost if cost else None

    @property
    def projected_roi(self) -> float | None:
        cost = self.projected_monthly_cost
        if cost is None or cost == 0:
            return None
        return (self.value_saved(self.target_monthly_items) - cost) / cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": "USD",
            "period_days": _round(self.period_days),
            "items": self.items,
            "llm_calls": self.llm_calls,
            "llm_cost": _round(self.llm_cost),
            "fixed_monthly": _round(self.fixed_monthly),
            "fixed_cost": _round(self.fixed_cost),
            "total_cost": _round(self.total_cost),
            "cost_per_item": _round(self.cost_per_item),
            "llm_cost_per_item": _round(self.llm_cost_per_item),
            "monthly_run_rate": _round(self.monthly_run_rate),
            "target_monthly_items": self.target_monthly_items,
            "projected_monthly_cost": _round(self.projected_monthly_cost),
            "minutes_saved_per_item": self.minutes_saved_per_item,
            "loaded_hourly_cost": self.loaded_hourly_cost,
            "hours_saved": _round(self.hours_saved),
            "value_saved": _round(self.value_saved(self.items)),
            "roi": _round(self.roi),
            "projected_monthly_value_saved": _round(self.value_saved(self.target_monthly_items)),
            "projected_roi": _round(self.projected_roi),
        }


def cost_report(
    costs: CostSettings, *, period_days: float, items: int, llm_cost: float, llm_calls: int = 0
) -> CostReport:
    """The arithmetic alone, from figures already measured."""
    return CostReport(
        period_days=period_days,
        items=items,
        llm_cost=llm_cost,
        llm_calls=llm_calls,
        fixed_monthly=costs.fixed_monthly,
        target_monthly_items=costs.target_monthly_items,
        minutes_saved_per_item=costs.minutes_saved_per_item,
        loaded_hourly_cost=costs.loaded_hourly_cost,
    )


async def measure_cost(
    session: AsyncSession, costs: CostSettings, tenant_id: str, period: Period, items: int
) -> CostReport:
    """The tenant's cost over ``period`` for ``items`` handled."""
    total, calls = (
        await session.execute(
            select(func.coalesce(func.sum(LLMCallRow.cost_usd), 0.0), func.count()).where(
                LLMCallRow.tenant_id == tenant_id,
                LLMCallRow.occurred_at >= period.start,
                LLMCallRow.occurred_at < period.end,
            )
        )
    ).one()
    return cost_report(
        costs, period_days=period.days, items=items, llm_cost=float(total), llm_calls=int(calls)
    )
