"""`assistant eval triage`: the harness, the label mapping, the CLI on the GAIA corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from assistant.cli import app
from assistant.core.errors import ConfigurationError
from assistant.evaluation.corpus import (
    load_mapping,
    select_split,
    split_headers,
    split_of,
    to_message,
)
from assistant.evaluation.stats import wilson
from assistant.evaluation.triage_eval import evaluate, percentile, render_text
from assistant.llm import LLMClient, MemoryMeter
from assistant.triage import Category, TriageCascade
from assistant.triage.llm_stage import LLMTriageClassifier
from tests.fakes.openai_server import Answer, FakeOpenAI
from tests.unit.llm.conftest import fake_llm
from tests.unit.triage.factory import triage_answer

GAIA = Path(__file__).resolve().parents[4] / "shared" / "data" / "triage" / "gaia_corpus.jsonl"


def record(i: int, label: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"r{i}",
        "sender": "Pat <pat@partner.example>",
        "to": ["ceo@acme.com"],
        "cc": None,
        "subject": f"Subject {i}",
        "date": "2026-05-07T09:15:00Z",
        "body": body,
        "category": label,
        "is_phishing": False,
        **extra,
    }


RECORDS = [
    record(
        1,
        "PROMOTIONAL",
        "List-Unsubscribe: <mailto:u@shop.example>\nPrecedence: bulk\n\nDeals of the week",
    ),
    record(2, "NEEDS_RESPONSE", "Could you send me the contract by Friday?"),
    record(3, "FYI", "The office is closed on Monday."),
]


def test_mapping_and_conversion(tmp_path: Path) -> None:
    mapping = load_mapping()
    assert mapping.expected({"category": "URGENT"}) is Category.RESPOND
    assert mapping.expected({"category": "FYI", "is_phishing": True}) is Category.IGNORE
    assert (
        mapping.expected({"category": "FYI", "is_phishing": True}, strict=True) is Category.NOTIFY
    )
    custom = tmp_path / "m.yaml"
    custom.write_text(
        "name: custom\nlabels:\n  FYI: {category: ignore}\nphishing: null\n", encoding="utf-8"
    )
    other = load_mapping(custom)
    assert other.expected({"category": "FYI", "is_phishing": True}) is Category.IGNORE
    with pytest.raises(ConfigurationError):
        other.expected({"category": "URGENT"})
    custom.write_text("labels:\n  FYI: {category: later}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError):
        load_mapping(custom)
    headers, body = split_headers(RECORDS[0]["body"])
    assert headers == {"list-unsubscribe": "<mailto:u@shop.example>", "precedence": "bulk"}
    message = to_message(RECORDS[0])
    assert message.list_unsubscribe and body.strip() == message.text.strip() == "Deals of the week"


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


async def test_rules_only_report() -> None:
    report = await evaluate(RECORDS, load_mapping(), TriageCascade(), calls=[])
    assert report.messages == 3
    assert report.confusion["ignore"]["ignore"] == 1  # the bulk header rule
    assert report.decided_by["rule"] == 1 and report.decided_by["undecided"] == 2
    assert report.per_class["ignore"].precision == 1.0
    assert report.accuracy == pytest.approx(1 / 3, abs=1e-4)
    assert report.llm_calls == 0 and report.cost_usd == 0


async def test_model_report_counts_tokens(openai_server: FakeOpenAI) -> None:
    meter = MemoryMeter()
    classifier = LLMTriageClassifier(LLMClient(fake_llm(openai_server), meter), tenant_id="e")
    openai_server.script(
        Answer(
            arguments=triage_answer(category="respond", requested_actions=[], confidence=0.9),
            prompt_tokens=1000,
            completion_tokens=50,
        ),
        Answer(
            arguments=triage_answer(category="notify", requested_actions=[], confidence=0.9),
            prompt_tokens=1000,
            completion_tokens=50,
        ),
    )
    report = await evaluate(
        RECORDS,
        load_mapping(),
        TriageCascade(classifier=classifier),
        calls=meter.calls,
        provider="openai_compatible",
        model="fake-model",
        prompt="triage@1",
    )
    assert report.accuracy == 1.0 and report.decided_by == {"rule": 1, "model": 2}
    # Rules and model together: every categorised mail, and how often it was right.
    assert report.together is not None
    assert (report.together.correct, report.together.decided) == (3, 3)
    assert "  together 3/3 = 1.0000" in render_text(report)
    assert (report.llm_calls, report.input_tokens, report.output_tokens) == (2, 2000, 100)
    assert report.tokens_per_message == pytest.approx(2100 / 3, abs=0.01)
    assert report.cost_usd == pytest.approx((2000 * 1.0 + 100 * 2.0) / 1e6)


def test_cli_on_the_gaia_corpus() -> None:
    if not GAIA.is_file():
        # An external data set, not a server or a package: it lives outside the repository
        # (../shared/data, never copied in) and the suite must pass without it, so this skip
        # stays a skip under CI=true. The harness itself is covered above on inline records.
        pytest.skip(f"the shared GAIA corpus is not at {GAIA}")
    result = CliRunner().invoke(app, ["eval", "triage", "--dataset", str(GAIA), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["messages"] == 307 and report["provider"] == "none"
    assert sum(report["decided_by"].values()) == 307
    assert set(report["confusion"]) == {"respond", "schedule", "notify", "ignore"}
    assert report["llm_calls"] == 0
    text = CliRunner().invoke(app, ["eval", "triage", "--dataset", str(GAIA), "--limit", "20"])
    assert text.exit_code == 0 and "confusion" in text.output and "p95" in text.output


def test_cli_json_report_stays_parseable_while_model_calls_log(
    openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    """A real process: stdout carries only the JSON; log lines go, redacted, to stderr."""
    import os
    import subprocess
    import sys

    dataset = tmp_path / "corpus.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    openai_server.script(
        Answer(arguments=triage_answer(category="respond", requested_actions=[], confidence=0.9)),
        Answer(arguments=triage_answer(category="notify", requested_actions=[], confidence=0.9)),
    )
    api_key = "sk-test-DO-NOT-LOG-0123456789"
    env = {
        **os.environ,
        "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
        "ASSISTANT_LLM__PROVIDER": "openai_compatible",
        "ASSISTANT_LLM__BASE_URL": f"{openai_server.base_url}/v1",
        "ASSISTANT_LLM__MODEL": "fake-model",
        "ASSISTANT_LLM__API_KEY": api_key,
    }
    done = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "eval", "triage", "--dataset", str(dataset)]
        + ["--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)  # nothing but the report
    assert report["llm_calls"] == 2 and report["accuracy"] == 1.0
    assert "llm.call" in done.stderr  # the model calls were logged, on stderr
    assert api_key not in done.stdout + done.stderr


# --------------------------------------------------------------------------- honest figures


def test_wilson_interval() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(13, 13)
    assert low == pytest.approx(0.7719, abs=1e-4) and high == 1.0
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_split_is_fixed_disjoint_and_order_free() -> None:
    records = [record(i, "FYI", "x") for i in range(200)]
    dev, held = select_split(records, "dev"), select_split(records, "heldout")
    assert {r["id"] for r in dev}.isdisjoint({r["id"] for r in held})
    assert len(dev) + len(held) == 200 and 70 < len(held) < 130
    assert [r["id"] for r in select_split(list(reversed(records)), "heldout")] == [
        r["id"] for r in reversed(held)
    ]
    assert all(split_of(r) == "heldout" for r in held)
    assert select_split(records, "all") == records
    with pytest.raises(ConfigurationError):
        select_split(records, "test")


async def test_per_stage_precision_and_schedule_scored_as_respond() -> None:
    meeting = record(
        4,
        "NEEDS_RESPONSE",
        "Can we meet Tuesday at 3 to go through the numbers?",
        sender="Jane <jane@acme.com>",  # a colleague: the rules decide requests to meet
    )
    report = await evaluate([*RECORDS, meeting], load_mapping(), TriageCascade(), calls=[])
    assert report.decided_by["rule"] == 2
    assert report.per_stage["rule"].decided == 2 and report.per_stage["rule"].correct == 2
    assert report.per_stage["rule"].ci_low == pytest.approx(wilson(2, 2)[0], abs=1e-4)
    assert report.confusion["respond"]["respond"] == 1  # schedule, scored as respond
    assert report.accuracy_strict == pytest.approx(1 / 4)  # strict: schedule is not respond
    assert report.phishing_flags_on_own_domain == 0
    assert report.together == report.per_stage["rule"]  # one stage: no separate line
    assert "precision of each stage" in render_text(report)
    assert "together" not in render_text(report)


async def test_each_rule_and_a_baseline_on_the_same_mails() -> None:
    auto_reply = record(
        6, "FYI", "Auto-Reply: Out of Office\n\nBack on Monday.", sender="Jo <jo@acme.com>"
    )
    report = await evaluate(
        [*RECORDS, auto_reply, record(7, "NEEDS_RESPONSE", "Can you call me?")],
        load_mapping(),
        TriageCascade(),
        calls=[],
    )
    assert {rule: (s.correct, s.decided) for rule, s in report.per_rule.items()} == {
        "auto_reply": (1, 1),
        "bulk.headers": (1, 1),
    }
    # respond is the most common expected class; the rules decided none of them.
    assert report.baseline_class == "respond"
    assert (
        report.baseline_per_stage["rule"].correct,
        report.baseline_per_stage["rule"].decided,
    ) == (0, 2)
    text = render_text(report)
    assert "baseline 0/2 = 0.0000" in text and "bulk.headers" in text
    assert json.loads(json.dumps(report.as_dict()))["per_rule"]["auto_reply"]["decided"] == 1


def test_cli_learned_stage_needs_the_other_half(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in RECORDS), encoding="utf-8")
    for split in ("dev", "all"):
        result = CliRunner().invoke(
            app,
            ["eval", "triage", "--dataset", str(corpus), "--split", split, "--learned-from", "dev"],
        )
        assert result.exit_code == 2, result.output
        assert "other half" in result.output


async def test_phishing_flags_on_own_domain_are_counted() -> None:
    forged = record(
        5,
        "URGENT",
        "Authentication-Results: mx.acme.com; spf=fail smtp.mailfrom=e.example; dmarc=fail "
        "header.from=acme.com\nContent-Type: text/plain\n\nWire the money today.",
        sender="CFO <cfo@acme.com>",
        is_phishing=True,
    )
    report = await evaluate([forged], load_mapping(), TriageCascade(), calls=[])
    # Forged own-domain mail is flagged and counted, so that genuine own-domain flags show.
    assert report.phishing_flags_on_own_domain == 1


def test_cli_eval_requests(tmp_path: Path) -> None:
    data = tmp_path / "intent.txt"
    data.write_text(
        "Yes\tCan we meet on Thursday?\nNo\tThe report is attached.\n"
        "Yes\tPlease send the file.\nNo\tHe will be here on Monday.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["eval", "requests", "--dataset", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["true_positives"], report["predicted"], report["positives"]) == (2, 2, 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("Maybe\tsomething\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", "requests", "--dataset", str(bad)])
    assert result.exit_code == 2
