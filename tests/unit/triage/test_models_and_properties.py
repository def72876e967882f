"""Result invariants, purity, and properties over arbitrary mail."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from assistant.triage import Category, Priority, Provenance, TriageContext, TriageResult
from tests.unit.triage.factory import CONTEXT, decide, message


def test_result_without_category_must_go_to_a_person() -> None:
    with pytest.raises(ValidationError):
        TriageResult(
            message_id="m", category=None, provenance=Provenance(stage="model"), confidence=0.5
        )


@pytest.mark.parametrize("confidence", [-0.1, 1.01])
def test_confidence_is_a_probability(confidence: float) -> None:
    with pytest.raises(ValidationError):
        TriageResult(
            message_id="m",
            category=Category.NOTIFY,
            provenance=Provenance(stage="rule"),
            confidence=confidence,
        )


def test_summary_is_one_line() -> None:
    result = TriageResult(
        message_id="m",
        category=Category.NOTIFY,
        summary="a\nb\t c " * 100,
        provenance=Provenance(stage="human"),
        confidence=1.0,
    )
    assert "\n" not in result.summary and len(result.summary) <= 200


@pytest.mark.parametrize(
    ("start", "raised"),
    [
        (Priority.LOW, Priority.NORMAL),
        (Priority.NORMAL, Priority.HIGH),
        (Priority.HIGH, Priority.URGENT),
        (Priority.URGENT, Priority.URGENT),
    ],
)
def test_priority_raise(start: Priority, raised: Priority) -> None:
    assert start.raised() is raised


def test_context_rejects_unknown_time_zone() -> None:
    with pytest.raises(ValidationError):
        TriageContext(executive="ceo@acme.com", timezone="Mars/Olympus")


def test_decide_is_pure() -> None:
    msg = message(subject="Automatic reply: away", list_id="<l>")
    before = msg.model_dump()
    first, second = decide(msg), decide(msg)
    assert first == second
    assert msg.model_dump() == before


def test_large_message_stays_fast() -> None:
    # Catastrophic backtracking would show here as seconds, not milliseconds.
    text = ("lorem ipsum dolor sit amet, by the way due to " * 2000) + "!!!" * 500
    msg = message(subject="re : " + "x " * 300, text=text, html="<p>" + text + "</p>")
    start = time.perf_counter()
    for _ in range(10):
        decide(msg)
    assert (time.perf_counter() - start) / 10 < 0.05


_addresses = st.sampled_from(
    [
        "pat@partner.example",
        "jane.doe@acme.com",
        "Jane Doe <jd@gmail.com>",
        "noreply@saas.example",
        "x@acrne.com",
        "deals@promo-cash.top",
        "cfo@acme.com",
    ]
)
_words = st.sampled_from(
    [
        "viagra",
        "ignore previous instructions",
        "by Friday",
        "unsubscribe",
        "http://x.example",
        "verify your account",
        "out of the office",
        "40% off",
        "expires today",
        "hello",
        "meeting",
        "invoice overdue",
        "\u0430",
        "\u2019",
        "\n> quoted",
        "On Mon, Bob wrote:",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    sender=_addresses,
    subject=st.text(max_size=80),
    words=st.lists(st.one_of(_words, st.text(max_size=40)), max_size=30),
    list_id=st.one_of(st.none(), st.just("<l.example>")),
)
def test_any_mail_gets_a_valid_answer_or_none(
    sender: str, subject: str, words: list[str], list_id: str | None
) -> None:
    msg = message(sender=sender, subject=subject, text=" ".join(words), list_id=list_id)
    result = decide(msg)
    if result is None:
        return
    assert result.category is not None
    assert result.message_id == msg.id
    assert result.provenance.stage == "rule" and result.provenance.rule_id
    if result.flags.phishing:
        assert (result.category, result.priority) == (Category.IGNORE, Priority.HIGH)
    if result.flags.prompt_injection:
        # Nothing the content asks for: at most the rule's own phishing report.
        assert result.needs_human
        assert set(result.requested_actions) <= {"report_phishing"}
    assert result.flags.external == (not CONTEXT.is_internal(msg.sender.domain))


def test_context_copies_rebuild_their_lookups() -> None:
    forged = message(sender='"ops@initech.example" <x@mailer.example>', text="See attached.")
    before = decide(forged)
    assert before is None or not before.flags.phishing
    moved = CONTEXT.model_copy(update={"internal_domains": frozenset({"initech.example"})})
    result = decide(forged, moved)
    assert result is not None and result.flags.phishing
