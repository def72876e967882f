"""Triage on held-out mail: the rules, the learned stage's learning curve, tokens saved.

Run by hand:  .venv/bin/python bench/triage.py [--data-dir ../shared/data] [--rounds 5]

Data (``--data-dir``, default ``../shared/data``):
- ``triage/gaia_corpus.jsonl``: 307 labelled business emails (MIT, amd/gaia), split by
  ``assistant.evaluation.corpus.split_of`` into a development half and a held-out half
  (fixed seed, a hash of each record id). Nothing here was tuned on the held-out half.
- ``intent/*.txt``: Parakweet's request/proposal sentences (Apache-2.0): the train file is
  the development set of the request detector, the test file its held-out set.

Label mapping (``assistant/evaluation/gaia_mapping.yaml``): URGENT -> respond/urgent,
NEEDS_RESPONSE -> respond, FYI -> notify, PROMOTIONAL -> ignore, PERSONAL -> respond,
is_phishing -> ignore whatever the label; a predicted ``schedule`` is scored as respond (the
corpus has no meeting class; our meeting flow answers with proposed times). Context per
record: the executive is the first ``to`` address, internal domains are that address's
domain, no VIPs, no admin rules.

Printed, each beside its baseline:
1. Rules on dev and on held-out: share decided, precision with a 95% Wilson interval,
   beside the baseline of always answering the dev half's majority class on the same
   mails; each rule's precision; phishing flags on mail from the organisation's own
   domains (must be 0).
2. Request detection on Parakweet train (dev) and test (held-out), any request and
   requests to meet.
3. The learned stage's learning curve: trained on 0, 25, 50, 100, 200 labelled dev mails
   (a fixed shuffle; the dev half has 156, so 200 is capped and says so), scored on the
   held-out mails the rules leave: share it decides, precision there (Wilson interval),
   its accuracy if it answered every one of them (no threshold), and, as the baseline,
   the accuracy of always answering the majority class of the training mails; tokens it
   saves the model stage (prompt tokens estimated as len/4 of
   sender + subject + body, the prompt's fixed part excluded); then rules and the stage
   trained on every dev mail together on the held-out half.
4. The cascade's own overhead per message (rules + learned stage, no model).

Embedding the corpus takes minutes on a busy 2-core machine; the figures do not depend
on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.evaluation.corpus import (  # noqa: E402
    context_for,
    load_mapping,
    load_records,
    select_split,
    to_message,
)
from assistant.evaluation.intent_eval import (  # noqa: E402
    evaluate_intent,
    load_intent,
    render_intent,
)
from assistant.evaluation.stats import wilson  # noqa: E402
from assistant.triage import RuleTriage, TriageCascade  # noqa: E402
from assistant.triage.learned import (  # noqa: E402
    LabelledExample,
    LearnedTriage,
    default_embedder,
    message_text,
)
from integrations.base import EmailMessage  # noqa: E402

DEFAULT_DATA = ROOT / ".." / "shared" / "data"
CURVE = (0, 25, 50, 100, 200)
MAPPING = load_mapping()


def prompt_tokens(message: EmailMessage) -> float:
    sender = message.sender.formatted() if message.sender else ""
    return len(f"From: {sender}\nSubject: {message.subject}\n\n{message.text}") / 4


def interval(hits: int, total: int) -> str:
    low, high = wilson(hits, total)
    share = hits / total if total else 0.0
    return f"{hits}/{total} = {share:.3f} [{low:.3f}, {high:.3f}]"


def expected(record: dict[str, Any]) -> str:
    return MAPPING.expected(record).value


def rules_figures(
    records: list[dict[str, Any]], rules: RuleTriage, majority: str
) -> tuple[list[str], list[int]]:
    """Lines to print and the indexes of the records the rules leave. ``majority``: the
    baseline class, always answered, scored on the same mails the rules decided."""
    decided = hits = own_flags = base_hits = 0
    per_rule: dict[str, list[int]] = {}
    undecided: list[int] = []
    for index, record in enumerate(records):
        message = to_message(record)
        context = context_for(message)
        result = rules.decide(message, context)
        domain = message.sender.domain if message.sender else ""
        if result is not None and result.flags.phishing and context.is_internal(domain):
            own_flags += 1
        if result is None or result.category is None:
            undecided.append(index)
            continue
        decided += 1
        right = MAPPING.scored(result.category.value) == expected(record)
        hits += right
        base_hits += expected(record) == majority
        tally = per_rule.setdefault(result.provenance.rule_id or "rule", [0, 0])
        tally[0] += right
        tally[1] += 1
    share = decided / len(records) if records else 0.0
    lines = [
        f"decided {decided}/{len(records)} ({share:.1%}); precision {interval(hits, decided)}; "
        f"phishing flags on own-domain mail: {own_flags}",
        f"baseline, always {majority!r} on the same mails: {interval(base_hits, decided)}",
    ]
    lines += [f"  {rule:<30} {interval(*tally)}" for rule, tally in sorted(per_rule.items())]
    return lines, undecided


def _with_context(record: dict[str, Any]) -> tuple[EmailMessage, Any]:
    message = to_message(record)
    return message, context_for(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds")
    parser.add_argument("--target-precision", type=float, default=0.9)
    args = parser.parse_args()
    data = args.data_dir

    records = load_records(data / "triage" / "gaia_corpus.jsonl")
    dev, held = select_split(records, "dev"), select_split(records, "heldout")
    rules = RuleTriage()
    print(f"GAIA corpus: {len(records)} mails; dev {len(dev)}, held-out {len(held)}")
    print("label mapping: " + "; ".join(MAPPING.describe()))

    dev_majority = Counter(expected(r) for r in dev).most_common(1)[0][0]
    print("\n1. rules (precision on what they decide, 95% Wilson interval; per rule below)")
    left: list[int] = []
    rule_hits = 0
    for split_name, split_records in (("dev", dev), ("held-out", held)):
        lines, undecided = rules_figures(split_records, rules, dev_majority)
        print(f"  {split_name:<9} " + "\n            ".join(lines))
        if split_records is held:
            left = undecided
            rule_hits = int(lines[0].split("precision ")[1].split("/")[0])

    print("\n2. request detection (assistant.scheduling.text), Parakweet sentences")
    for name, part in (("Ask0729-fixed.txt", "dev"), ("testSet-qualifiedBatch-fixed.txt", "test")):
        pairs = load_intent(data / "intent" / name)
        print(f"  {part:<5}" + render_intent(evaluate_intent(pairs, dataset=name)))
        meetings = evaluate_intent(pairs, dataset=name, meetings=True)
        print("       " + render_intent(meetings, "requests to meet"))

    print("\n3. learned stage: learning curve on the held-out mails the rules leave")
    embedder = default_embedder()
    started = time.perf_counter()
    pool = list(dev)
    random.Random(16).shuffle(pool)  # the order in which "people review" the dev mails
    pool_vectors = embedder.encode([message_text(to_message(r)) for r in pool])
    targets = [held[i] for i in left]
    target_messages = [to_message(r) for r in targets]
    target_vectors = embedder.encode([message_text(m) for m in target_messages])
    embed_s = time.perf_counter() - started
    tokens = [prompt_tokens(m) for m in target_messages]
    truth = [expected(r) for r in targets]
    print(
        f"  {len(targets)} held-out mails reach the stage; model-stage input "
        f"{sum(tokens):.0f} tokens for them (estimate); embedding {embed_s:.1f} s for "
        f"{len(pool) + len(targets)} mails"
    )
    print(
        f"  {'labelled':>8} {'used':>5} {'threshold':>9} {'decided':>8}  "
        f"{'precision on decided [95% CI]':<34} {'acc. all':>8} {'majority':>8} "
        f"{'tokens saved':>13}"
    )
    for wanted in CURVE:
        n = min(wanted, len(pool))
        labelled = [
            LabelledExample(message_text(to_message(r)), MAPPING.expected(r)) for r in pool[:n]
        ]
        stage = LearnedTriage.train(
            labelled,
            embedder,
            vectors=pool_vectors[:n],
            target_precision=args.target_precision,
        )
        majority = Counter(e.category.value for e in labelled).most_common(1)
        base = sum(t == majority[0][0] for t in truth) / len(truth) if majority and truth else 0.0
        decided = hits = 0
        saved = 0.0
        forced = 0.0
        if stage is not None:
            answers = stage.predict_vectors(np.asarray(target_vectors))
            forced = sum(
                MAPPING.scored(c.value) == t for (c, _), t in zip(answers, truth, strict=True)
            ) / len(truth)
        if stage is not None and stage.calibration.threshold is not None:
            for vector, answer, cost in zip(target_vectors, truth, tokens, strict=True):
                verdict = stage.decide_vector(np.asarray(vector))
                if verdict is None:
                    continue
                decided += 1
                hits += MAPPING.scored(verdict[0].value) == answer
                saved += cost
        threshold = (
            f"{stage.calibration.threshold:.2f}"
            if stage is not None and stage.calibration.threshold is not None
            else "abstains"
        )
        capped = f"{n}*" if n < wanted else str(n)
        share = decided / len(targets) if targets else 0.0
        print(
            f"  {wanted:>8} {capped:>5} {threshold:>9} {share:>7.1%}  "
            f"{interval(hits, decided):<34} {forced:>8.3f} {base:>8.3f} "
            f"{saved:>7.0f} ({saved / sum(tokens):.0%})"
        )
    if len(pool) < max(CURVE):
        print(f"  * capped: the dev half has {len(pool)} labelled mails")
    together = len(held) - len(targets) + decided
    print(
        f"  rules + learned stage ({len(pool)} labelled) on the {len(held)} held-out mails: "
        f"decide {together} ({together / len(held):.1%}), precision "
        f"{interval(rule_hits + hits, together)}"
    )

    print(
        "\n  within the dev half (4-fold cross-validation, 3 shuffles; scored on the dev mails"
        " the rules leave): how the calibration holds where it was made"
    )
    dev_left = {i for i, r in enumerate(pool) if rules.decide(*_with_context(r)) is None}
    cv_decided = cv_hits = cv_total = 0
    for shuffle in range(3):
        for train_idx, test_idx in KFold(4, shuffle=True, random_state=shuffle).split(pool):
            fold_stage = LearnedTriage.train(
                [
                    LabelledExample(message_text(to_message(pool[i])), MAPPING.expected(pool[i]))
                    for i in train_idx
                ],
                embedder,
                vectors=pool_vectors[train_idx],
                target_precision=args.target_precision,
            )
            scored = [i for i in test_idx if i in dev_left]
            cv_total += len(scored)
            if fold_stage is None:
                continue
            for i in scored:
                verdict = fold_stage.decide_vector(np.asarray(pool_vectors[i]))
                if verdict is not None:
                    cv_decided += 1
                    cv_hits += MAPPING.scored(verdict[0].value) == expected(pool[i])
    print(
        f"  dev CV: decides {cv_decided}/{cv_total} ({cv_decided / max(cv_total, 1):.1%}), "
        f"precision {interval(cv_hits, cv_decided)}"
    )

    print("\n4. overhead per message (rules + learned stage trained on all dev mails; no model)")
    stage = LearnedTriage.train(
        [LabelledExample(message_text(to_message(r)), MAPPING.expected(r)) for r in pool],
        embedder,
        vectors=pool_vectors,
        target_precision=args.target_precision,
    )
    timed = [(m, context_for(m)) for m in (to_message(r) for r in held)]
    for label, cascade in (
        ("rules only", TriageCascade(rules)),
        ("rules + learned", TriageCascade(rules, learned=stage)),
    ):

        async def run(cascade: TriageCascade = cascade) -> None:
            for message, context in timed:
                await cascade.triage(message, context)

        timings = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            asyncio.run(run())
            timings.append((time.perf_counter() - start) * 1000 / len(timed))
        print(f"  {label:<16} {statistics.median(timings):.2f} ms/message (median of rounds)")


if __name__ == "__main__":
    main()
