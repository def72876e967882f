"""The learned stage: calibration on the tenant's own data, abstention, the real embedder."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.triage import Category, RuleTriage, TriageCascade
from assistant.triage.learned import (
    LabelledExample,
    LearnedTriage,
    calibrate,
    default_embedder,
    message_text,
)
from tests.unit.triage.factory import CONTEXT, message


def test_calibration_picks_the_lowest_threshold_that_holds() -> None:
    # 40 confident and right, then 20 unsure and half wrong.
    confident = np.array([[0.95, 0.05]] * 40 + [[0.55, 0.45]] * 20)
    truth = np.array([0] * 40 + [0, 1] * 10)
    found = calibrate(confident, truth, target_precision=0.9, min_decided=10, folds=5)
    assert found.threshold == pytest.approx(0.95)
    assert (found.decided, found.correct) == (40, 40)


def test_calibration_abstains_without_enough_evidence() -> None:
    # 9 of 9 right is not yet evidence of 90% (Wilson lower bound 0.70).
    probabilities = np.array([[0.99, 0.01]] * 9)
    truth = np.zeros(9, dtype=int)
    found = calibrate(probabilities, truth, target_precision=0.9, min_decided=5, folds=3)
    assert found.threshold is None


def test_too_few_examples_or_one_class_trains_nothing() -> None:
    class Unused:
        name = "unused"

        def encode(self, texts: object) -> np.ndarray:
            raise AssertionError("no embedding without enough examples")

    few = [LabelledExample("a", Category.NOTIFY)] * 5 + [LabelledExample("b", Category.IGNORE)] * 5
    assert LearnedTriage.train(few, Unused(), min_examples=20) is None
    one_class = [LabelledExample("a", Category.NOTIFY)] * 30
    assert LearnedTriage.train(one_class, Unused(), min_examples=20) is None


NEWSLETTERS = [
    "Weekly digest: ten stories about cloud pricing this week",
    "Our monthly newsletter: product updates and webinars",
    "This week in logistics: freight rates and port delays",
    "Industry roundup: what happened in retail this month",
    "Newsletter: five tips for better spreadsheets",
    "The weekly briefing: markets, rates and commodities",
    "Monthly update from the community: events and releases",
    "Digest: top articles on supply chains this week",
    "Roundup of the week's news in energy markets",
    "Newsletter: new features shipped this month",
    "Weekly market wrap: equities, bonds and currencies",
    "This month in security: advisories and patches roundup",
    "Community digest: the most read posts this week",
    "Webinar series newsletter: upcoming sessions this quarter",
    "Travel industry weekly: airline and hotel news",
]
QUESTIONS = [
    "Could you send me the signed contract by Friday?",
    "Can you review the budget draft and tell me what you think?",
    "Please approve the purchase order for the new laptops",
    "Do you have the figures for the board deck? I need them today",
    "Can you confirm whether we go ahead with the supplier?",
    "Would you sign off on the hiring plan for Q3?",
    "Please let me know if the offer terms are acceptable",
    "Can you call the client back about the late delivery?",
    "Could you check the invoice amounts and reply to finance?",
    "Please send your comments on the strategy memo",
    "Can you decide on the venue for the offsite?",
    "Would you reply to the auditor's questions by tomorrow?",
    "Please review and approve the press release",
    "Could you answer the customer's complaint today?",
    "Can you share the forecast with me before the meeting?",
]


@pytest.fixture(scope="module")
def trained() -> LearnedTriage:
    examples = [LabelledExample(t, Category.NOTIFY) for t in NEWSLETTERS] + [
        LabelledExample(t, Category.RESPOND) for t in QUESTIONS
    ]
    stage = LearnedTriage.train(
        examples, default_embedder(), target_precision=0.8, min_examples=20, min_decided=10
    )
    assert stage is not None
    return stage


def test_real_embedder_learns_and_decides_above_its_threshold(trained: LearnedTriage) -> None:
    assert trained.calibration.threshold is not None
    result = trained.decide(
        message(subject="Weekly roundup", text="This week's digest of industry news and articles")
    )
    assert result is not None and result.category is Category.NOTIFY
    assert result.provenance.stage == "learned"
    assert result.provenance.model == "all-MiniLM-L6-v2+logreg@30"
    # Evidence in words, naming no other mail.
    assert "resembles the 15 reviewed mails filed as notify" in result.reason
    assert "digest" not in result.reason.lower()


async def test_cascade_runs_learned_between_rules_and_model(trained: LearnedTriage) -> None:
    calls: list[str] = []

    async def model(msg: object, context: object) -> None:
        calls.append("model")
        return None

    cascade = TriageCascade(RuleTriage(), classifier=model, learned=trained)
    request = message(subject="Contract", text="Could you send me the signed contract by Friday?")
    result = await cascade.triage(request, CONTEXT)
    assert result.provenance.stage == "learned" and result.category is Category.RESPOND
    assert calls == []
    # Rule decisions never reach it: list mail stays the rules'.
    listed = message(list_id="<weekly.shop.example>", text="Weekly digest of news")
    assert (await cascade.triage(listed, CONTEXT)).provenance.stage == "rule"


def test_message_text_is_subject_and_body_head() -> None:
    text = message_text(message(subject="S", text="x" * 5000))
    assert text.startswith("S\n") and len(text) == 2 + 2000


def test_training_does_not_depend_on_the_order_of_the_examples() -> None:
    # Two overlapping clusters: which mails share a fold moves the out-of-fold confidences,
    # so an order-dependent split would move the threshold for the same examples.
    rng = np.random.default_rng(7)
    centres = {Category.NOTIFY: np.eye(8)[0], Category.RESPOND: np.eye(8)[1]}
    examples, rows = [], []
    for index in range(80):
        category = Category.NOTIFY if index % 2 else Category.RESPOND
        examples.append(LabelledExample(f"mail {index}", category))
        rows.append(centres[category] + rng.normal(scale=0.6, size=8))
    vectors = np.asarray(rows)
    order = rng.permutation(len(examples))

    class Unused:
        name = "unused"

        def encode(self, texts: object) -> np.ndarray:
            raise AssertionError("vectors are given")

    first = LearnedTriage.train(examples, Unused(), vectors=vectors, target_precision=0.7)
    second = LearnedTriage.train(
        [examples[i] for i in order], Unused(), vectors=vectors[order], target_precision=0.7
    )
    assert first is not None and second is not None
    assert first.calibration.threshold is not None
    assert first.calibration == second.calibration
