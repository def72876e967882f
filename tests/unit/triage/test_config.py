"""Admin rules from YAML: the example loads, and a bad file reports every error at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.core.errors import ConfigurationError
from assistant.triage import (
    Category,
    Priority,
    TriageContext,
    TriageRulesConfig,
    load_triage_rules,
    parse_triage_rules,
)
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "config" / "triage_rules.example.yaml"


def test_example_file_loads() -> None:
    config = load_triage_rules(EXAMPLE)
    assert isinstance(config, TriageRulesConfig)
    assert [r.id for r in config.rules] == [
        "board-secretary",
        "auditor-requests",
        "payroll-reports",
        "travel-agency",
        "trade-newsletters",
    ]
    assert config.rules[0].category is Category.RESPOND
    assert config.rules[0].priority is Priority.HIGH
    assert "example.com" in config.internal_domains
    ctx = TriageContext.from_config(
        config, executive="ceo@example.com", internal_domains={"example.net"}
    )
    assert ctx.internal_domains == {"example.com", "example-group.co.uk", "example.net"}
    assert ctx.vips == {"chair@board.example.org", "cfo@example.com"}
    assert ctx.people["cfo@example.com"] == "Grace Hopper"
    assert ctx.auto_reply_category is Category.NOTIFY


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


BAD = """
version: 1
auto_replies: respond
internal_domains: [acme.com, "not a domain"]
vips:
  - address: nobody
rules:
  - id: ok-rule
    senders: [a@b.example]
    category: notify
  - id: Bad Id
    domains: [b.example]
    category: respond
  - id: no-match
    category: notify
  - id: bad-category
    senders: [c@d.example]
    category: delete
    priority: sky-high
  - id: bad-regex
    domains: [e.example]
    subject: "([unclosed"
    category: ignore
  - id: ok-rule
    senders: ["not-an-address"]
    category: notify
    colour: blue
"""

EXPECTED_PROBLEMS = [
    "auto_replies",
    "internal_domains",  # "not a domain"
    "vips.0.address",
    "rules.1.id",  # pattern
    "rules.2",  # needs senders or domains
    "rules.3.category",
    "rules.3.priority",
    "rules.4.subject",  # invalid regex
    "rules.5.senders",
    "rules.5.colour",  # unknown key
    "duplicate rule ids: ok-rule",
]


def test_bad_file_reports_every_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_triage_rules(_write(tmp_path, BAD))
    problems = caught.value.problems
    for expected in EXPECTED_PROBLEMS:
        assert any(expected in p for p in problems), (expected, problems)
    assert all(p.startswith(str(tmp_path)) for p in problems)  # each names the file
    assert len(problems) >= len(EXPECTED_PROBLEMS)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "not a mapping"),
        ("version: 2\n", "version"),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_triage_rules(_write(tmp_path, text))
    assert fragment in caught.value.detail or any(fragment in p for p in caught.value.problems)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        load_triage_rules(tmp_path / "absent.yaml")


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_triage_rules(_write(tmp_path, "")).rules == ()


def test_duplicates_alone_are_reported() -> None:
    raw = {"rules": [{"id": "x", "senders": ["a@b.example"], "category": "notify"}] * 2}
    with pytest.raises(ConfigurationError) as caught:
        parse_triage_rules(raw)
    assert any("duplicate rule ids: x" in p for p in caught.value.problems)


def test_rule_matching() -> None:
    config = parse_triage_rules(
        {
            "rules": [
                {
                    "id": "r",
                    "domains": ["Example.COM"],
                    "subject": "^\\[board\\]",
                    "category": "respond",
                    "priority": "urgent",
                }
            ]
        }
    )
    rule = config.rules[0]
    assert rule.domains == ("example.com",)
    assert rule.matches("x@eu.example.com", "eu.example.com", "[BOARD] minutes")
    assert not rule.matches("x@example.com", "example.com", "minutes [board]")
    assert not rule.matches("x@notexample.com", "notexample.com", "[board] x")
