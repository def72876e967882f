"""Cost and ROI arithmetic; the edit distance; action outcomes."""

from __future__ import annotations

import pytest

from assistant.core.settings import CostSettings
from assistant.quality.cost import cost_report
from assistant.quality.metrics import classify, normalize_reason
from assistant.quality.period import DAYS_PER_MONTH
from governance.edit_distance import flatten, normalized_edit_distance


def test_cost_per_item_run_rate_projection_and_roi() -> None:
    costs = CostSettings(
        infrastructure_monthly=300.0,
        support_monthly=400.0,
        maintenance_monthly=200.0,
        model_updates_monthly=100.0,
        target_monthly_items=5000,
        minutes_saved_per_item=3.0,
        loaded_hourly_cost=120.0,
    )
    assert costs.fixed_monthly == 1000.0
    report = cost_report(costs, period_days=DAYS_PER_MONTH, items=1000, llm_cost=50.0)
    assert report.fixed_cost == pytest.approx(1000.0)  # one month exactly
    assert report.total_cost == pytest.approx(1050.0)
    assert report.cost_per_item == pytest.approx(1.05)
    assert report.monthly_run_rate == pytest.approx(1050.0)
    assert report.projected_monthly_cost == pytest.approx(0.05 * 5000 + 1000.0)
    assert report.hours_saved == pytest.approx(50.0)  # 1000 x 3 min
    assert report.value_saved(report.items) == pytest.approx(6000.0)
    assert report.roi == pytest.approx((6000 - 1050) / 1050)
    assert report.projected_roi == pytest.approx((5000 * 6.0 - 1250.0) / 1250.0)
    data = report.to_dict()
    assert data["currency"] == "USD" and data["cost_per_item"] == 1.05


def test_half_a_month_prorates_fixed_costs_and_doubles_llm_run_rate() -> None:
    costs = CostSettings(infrastructure_monthly=100.0)
    report = cost_report(costs, period_days=DAYS_PER_MONTH / 2, items=10, llm_cost=5.0)
    assert report.fixed_cost == pytest.approx(50.0)
    assert report.monthly_run_rate == pytest.approx(110.0)


def test_no_items_or_no_cost_have_no_ratio() -> None:
    report = cost_report(CostSettings(), period_days=30, items=0, llm_cost=0.0)
    assert report.cost_per_item is None and report.projected_monthly_cost is None
    assert report.roi is None and report.projected_roi is None
    assert report.to_dict()["roi"] is None


def test_edit_distance_is_normalized() -> None:
    draft = {
        "to": [{"address": "a@x.example"}],
        "subject": "Quote",
        "body_text": "Thanks, we will send the quote on Monday.",
    }
    assert normalized_edit_distance(draft, dict(draft)) == 0.0
    small = normalized_edit_distance(draft, {**draft, "subject": "Quote (revised)"})
    large = normalized_edit_distance(draft, {**draft, "body_text": "No."})
    assert 0.0 < small < large < 1.0
    assert normalized_edit_distance({"a": "x"}, {"b": "y"}) > 0.3
    assert normalized_edit_distance({}, {"body": "entirely new text"}) == pytest.approx(
        1.0, abs=0.2
    )
    assert flatten({"b": [1, {"c": None}], "a": "x"}) == ["/a: x", "/b/0: 1", "/b/1/c: "]


@pytest.mark.parametrize(
    ("state", "decision", "approved", "edited", "outcome"),
    [
        ("succeeded", "require_approval", True, False, "approved_unedited"),
        ("scheduled", "require_approval", True, True, "approved_edited"),
        ("succeeded", "allow", True, False, "auto_approved"),
        ("cancelled", "allow", True, False, "undone"),
        ("cancelled", "require_approval", False, False, "cancelled"),
        ("rejected", "require_approval", False, False, "rejected"),
        ("expired", "require_approval", False, False, "expired"),
        ("denied", "deny", False, False, "denied"),
        ("pending_review", "require_approval", False, False, "pending"),
    ],
)
def test_outcomes(state: str, decision: str, approved: bool, edited: bool, outcome: str) -> None:
    from datetime import UTC, datetime

    approved_at = datetime(2026, 1, 1, tzinfo=UTC) if approved else None
    assert classify(state, decision, approved_at, edited) == outcome


def test_reasons_group_by_wording() -> None:
    assert normalize_reason("  Wrong   TONE. ") == "wrong tone"
    assert normalize_reason(None) == normalize_reason("  ") == "(no reason given)"
