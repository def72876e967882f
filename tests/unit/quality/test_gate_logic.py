"""The gate's criteria and verdict from prepared figures: borderlines, hard and soft, no data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assistant.core.errors import ValidationFailedError
from assistant.core.settings import CostSettings, Settings
from assistant.quality.cost import cost_report
from assistant.quality.gate import (
    EXIT_CODES,
    Criterion,
    Decision,
    Evidence,
    GateReport,
    Verdict,
    decide,
    evaluate,
    judge,
)
from assistant.quality.metrics import ExecutionQuality, KindQuality, QualityReport, TriageQuality
from assistant.quality.period import parse_period
from assistant.quality.render import to_html, to_markdown

NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


def quality(
    *,
    unedited: int = 90,
    edited: int = 5,
    rejected: int = 5,
    triaged: int = 100,
    corrected: int = 5,
    executed: int = 100,
    failed: int = 1,
    exceptions: int = 1,
    proposed: int = 100,
) -> QualityReport:
    kind = KindQuality(kind="email.send")
    kind.counts.update(approved_unedited=unedited, approved_edited=edited, rejected=rejected)
    triage = TriageQuality(
        results=triaged, corrected=corrected, predicted=Counter({"respond": triaged})
    )
    return QualityReport(
        period=parse_period("30d", NOW),
        kinds={"email.send": kind},
        rejection_reasons=Counter({"wrong tone <b>": 2}),
        triage=triage,
        execution=ExecutionQuality(
            executed=executed, failed=failed, exceptions=exceptions, proposed=proposed
        ),
    )


def evidence(
    *,
    items: int = 200,
    llm_cost: float = 20.0,
    missing: list[str] | None = None,
    drill_age_days: float | None = 1.0,
    drill_passed: bool = True,
    audit_ok: bool = True,
    costs: CostSettings | None = None,
    **figures: Any,
) -> Evidence:
    report = quality(**figures)
    finished = None if drill_age_days is None else NOW - timedelta(days=drill_age_days)
    return Evidence(
        quality=report,
        cost=cost_report(costs or CostSettings(), period_days=30, items=items, llm_cost=llm_cost),
        missing_owners=missing or [],
        drill_passed=None if finished is None else drill_passed,
        drill_finished_at=finished,
        drill_summary="2 kinds compensated",
        audit_ok=audit_ok,
        audit_events=42,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        gate={
            "min_volume": 200,
            "min_triage_accuracy": 0.95,
            "min_action_acceptance": 0.95,
            "max_error_rate": 0.01,
            "max_exception_rate": 0.01,
            "max_cost_per_item": 0.1,
            "max_monthly_run_rate": 200.0,
            "min_roi": 0.0,
            "drill_max_age_days": 30,
        },
    )


def by_name(settings: Settings, found: Evidence) -> dict[str, Criterion]:
    return {c.name: c for c in evaluate(settings, found, now=NOW)}


def test_all_passing_at_exactly_every_threshold_is_go(settings: Settings) -> None:
    # items 200 = min; accuracy 95/100; acceptance 95/100; errors 1/100; exceptions 1/100;
    # cost 20/200 = 0.1 per item; drill exactly 30 days old
    found = evidence(drill_age_days=30)
    criteria = evaluate(settings, found, now=NOW)
    assert [c.name for c in criteria] == [
        "volume",
        "triage_accuracy",
        "action_acceptance",
        "error_rate",
        "exception_rate",
        "cost_per_item",
        "monthly_run_rate",
        "roi",
        "owners_named",
        "rollback_drill",
        "audit_chain",
    ]
    failing = [(c.name, c.value, c.threshold) for c in criteria if c.verdict is not Verdict.PASS]
    assert failing == []
    assert decide(criteria) is Decision.GO and EXIT_CODES[Decision.GO] == 0


@pytest.mark.parametrize(
    ("figures", "name", "hard"),
    [
        ({"proposed": 99, "exceptions": 0}, "volume", False),
        ({"corrected": 6}, "triage_accuracy", True),
        ({"unedited": 89, "rejected": 6}, "action_acceptance", True),
        ({"failed": 2}, "error_rate", True),
        ({"exceptions": 2}, "exception_rate", False),
        ({"llm_cost": 20.02}, "cost_per_item", False),
        ({"missing": ["deployment owner"]}, "owners_named", True),
        ({"drill_age_days": 30.01}, "rollback_drill", True),
        ({"drill_passed": False}, "rollback_drill", True),
        ({"drill_age_days": None}, "rollback_drill", True),
        ({"audit_ok": False}, "audit_chain", True),
    ],
)
def test_just_past_a_threshold_fails_that_criterion(
    settings: Settings, figures: dict[str, Any], name: str, hard: bool
) -> None:
    criteria = by_name(settings, evidence(**figures))
    assert criteria[name].verdict is Verdict.FAIL, criteria[name]
    assert criteria[name].hard is hard
    others = [
        c.name
        for c in criteria.values()
        if c.verdict is not Verdict.PASS and c.name not in {name, "monthly_run_rate", "roi"}
    ]
    assert others == []
    assert decide(list(criteria.values())) is (Decision.NO_GO if hard else Decision.REVISE)


def test_projection_roi_and_missing_data(settings: Settings) -> None:
    costs = CostSettings(
        infrastructure_monthly=150.0,
        target_monthly_items=1000,
        minutes_saved_per_item=0.06,
        loaded_hourly_cost=100.0,
    )
    # LLM 0.1 per item x 1000 + 150 fixed = 250 > 200; value 1000 x 0.1 = 100 < 250
    criteria = by_name(settings, evidence(costs=costs))
    assert criteria["monthly_run_rate"].value == pytest.approx(250.0)
    assert criteria["monthly_run_rate"].verdict is Verdict.FAIL
    assert criteria["roi"].value == pytest.approx((100 - 250) / 250)
    assert criteria["roi"].verdict is Verdict.FAIL
    # nothing reviewed, nothing executed: no data, never GO, but no NO-GO either
    empty = by_name(settings, evidence(unedited=0, edited=0, rejected=0, executed=0, failed=0))
    assert empty["action_acceptance"].verdict is Verdict.NO_DATA
    assert empty["error_rate"].verdict is Verdict.NO_DATA
    assert decide(list(empty.values())) is Decision.REVISE


def test_hard_list_is_configurable_and_checked(tmp_path: Path) -> None:
    soft = Settings(data_dir=tmp_path, gate={"hard": ["audit_chain"]})
    criteria = by_name(soft, evidence(failed=50))
    assert criteria["error_rate"].verdict is Verdict.FAIL and not criteria["error_rate"].hard
    assert decide(list(criteria.values())) is Decision.REVISE
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown gate criteria"):
        Settings(data_dir=tmp_path, gate={"hard": ["vibes"]})


def test_judge_and_decide() -> None:
    assert judge(0.9, 0.9, ">=") is Verdict.PASS
    assert judge(0.8999, 0.9, ">=") is Verdict.FAIL
    assert judge(0.1, 0.1, "<=") is Verdict.PASS
    assert judge(0.1001, 0.1, "<=") is Verdict.FAIL
    assert judge(None, 0.1, "<=") is Verdict.NO_DATA
    soft_fail = Criterion("volume", 1, 2, ">=", Verdict.FAIL, hard=False)
    hard_fail = Criterion("audit_chain", 0, 1, ">=", Verdict.FAIL, hard=True)
    passing = Criterion("roi", 1, 0, ">=", Verdict.PASS, hard=False)
    assert decide([passing]) is Decision.GO
    assert decide([passing, soft_fail]) is Decision.REVISE
    assert decide([soft_fail, hard_fail]) is Decision.NO_GO
    assert EXIT_CODES == {Decision.GO: 0, Decision.NO_GO: 1, Decision.REVISE: 3}


def test_periods() -> None:
    assert parse_period("30d", NOW).days == 30
    assert parse_period("12h", NOW).days == 0.5
    assert parse_period("2w", NOW).start == NOW - timedelta(weeks=2)
    assert len(parse_period("7d", NOW).buckets()) == 7
    assert len(parse_period("12h", NOW).buckets()) == 12
    assert len(parse_period("70d", NOW).buckets()) == 10
    for bad in ("", "30", "0d", "-1d", "3y", "30d; drop table", "99999d"):
        with pytest.raises(ValidationFailedError):
            parse_period(bad, NOW)


def test_renderings_escape_text_and_draw_charts(settings: Settings) -> None:
    found = evidence(missing=["connector <script>alert(1)</script>"])
    criteria = evaluate(settings, found, now=NOW)
    report = GateReport(
        tenant_id="t<1>",
        period=found.quality.period,
        generated_at=NOW,
        decision=decide(criteria),
        criteria=criteria,
        quality=found.quality,
        cost=found.cost,
    )
    from assistant.quality.metrics import SeriesPoint

    report.series = [
        SeriesPoint(
            start=NOW - timedelta(days=2 - i),
            reviewed=10,
            accepted=9,
            edited=1,
            triaged=5,
            corrected=i,
            llm_cost=float(i),
        )
        for i in range(3)
    ]
    page = to_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<svg") == 3 and "<polyline" in page and "<rect" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "NO-GO" in page and "t&lt;1&gt;" in page
    markdown = to_markdown(report)
    assert markdown.startswith("# Decision gate: NO-GO")
    assert "| Owners named (number missing) | yes | 1 | <= 0 | FAIL |" in markdown
    assert "wrong tone <b> (2)" in markdown
