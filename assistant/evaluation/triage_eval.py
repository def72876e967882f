"""`assistant eval triage`: the configured triage pipeline over a labelled corpus.

Reports accuracy, per-class precision / recall / F1, the confusion matrix (rows: expected,
columns: predicted, ``undecided`` for mail sent to a person without a category), the share
decided by rules, by the learned stage, by the model and left to a person, each stage's
precision on what it decided with a 95% Wilson interval (small samples get honest, wide
intervals) beside a baseline on the same mails (always the corpus's most common class: a
stage that only picks easy mails shows up as a high baseline), each rule's precision,
tokens and cost per message (from the API's usage blocks, via the metering
records), and per-message latency p50 / p95.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.evaluation.corpus import LabelMapping, context_for, to_message
from assistant.evaluation.stats import wilson
from assistant.llm.errors import LLMError
from assistant.llm.metering import LLMCallRecord
from assistant.triage.cascade import TriageCascade
from assistant.triage.models import Category, Priority

CLASSES = [c.value for c in Category]
UNDECIDED = "undecided"
ERROR = "error"


@dataclass
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class StageScore:
    """How often a stage was right on the messages it decided."""

    decided: int
    correct: int
    precision: float
    ci_low: float
    ci_high: float


def stage_score(correct: int, decided: int) -> StageScore:
    low, high = wilson(correct, decided)
    return StageScore(
        decided=decided,
        correct=correct,
        precision=round(correct / decided, 4) if decided else 0.0,
        ci_low=round(low, 4),
        ci_high=round(high, 4),
    )


@dataclass
class EvalReport:
    dataset: str
    mapping: str
    mapping_lines: list[str]
    provider: str
    model: str | None
    prompt: str | None
    messages: int
    accuracy: float
    accuracy_strict: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: dict[str, dict[str, int]]
    decided_by: dict[str, int]
    share: dict[str, float]
    needs_human: int
    errors: int
    urgent_recall: float | None
    llm_calls: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms_p50: float
    latency_ms_p95: float
    tokens_per_message: float = 0.0
    cost_per_message_usd: float = 0.0
    split: str = "all"
    per_stage: dict[str, StageScore] = field(default_factory=dict)
    per_rule: dict[str, StageScore] = field(default_factory=dict)
    # Every stage that decided, together (rules, learned stage, model): what reaches a
    # person already categorised, and how often that category is right.
    together: StageScore | None = None
    learned: str | None = None
    baseline_class: str = ""
    baseline_per_stage: dict[str, StageScore] = field(default_factory=dict)
    phishing_flags_on_own_domain: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["per_class"] = {k: dict(v.__dict__) for k, v in self.per_class.items()}
        for name in ("per_stage", "per_rule", "baseline_per_stage"):
            data[name] = {k: dict(v.__dict__) for k, v in getattr(self, name).items()}
        data["together"] = dict(self.together.__dict__) if self.together else None
        return data


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _scores(pairs: list[tuple[str, str]]) -> dict[str, ClassScores]:
    scores = {}
    for cls in CLASSES:
        tp = sum(1 for e, p in pairs if e == cls and p == cls)
        predicted = sum(1 for _, p in pairs if p == cls)
        support = sum(1 for e, _ in pairs if e == cls)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[cls] = ClassScores(round(precision, 4), round(recall, 4), round(f1, 4), support)
    return scores


def _macro_f1(per_class: dict[str, ClassScores]) -> float:
    """Mean F1 over the classes the corpus has (a class with no support has no recall)."""
    present = [s.f1 for s in per_class.values() if s.support]
    return round(sum(present) / len(present), 4) if present else 0.0


async def evaluate(
    records: list[dict[str, Any]],
    mapping: LabelMapping,
    cascade: TriageCascade,
    *,
    calls: list[LLMCallRecord],
    dataset: str = "",
    provider: str = "none",
    model: str | None = None,
    prompt: str | None = None,
    split: str = "all",
    learned: str | None = None,
) -> EvalReport:
    """Run ``cascade`` over ``records``. ``calls`` is the list a MemoryMeter fills: the
    report reads tokens and cost from it."""
    pairs: list[tuple[str, str]] = []
    strict_hits = 0
    decided_by: Counter[str] = Counter()
    stage_hits: Counter[str] = Counter()
    rule_decided: Counter[str] = Counter()
    rule_hits: Counter[str] = Counter()
    decided_stage: list[str] = []  # per record, the stage that decided (or undecided/error)
    own_domain_flags = 0
    latencies: list[float] = []
    needs_human = errors = 0
    urgent_total = urgent_hit = 0
    first_call = len(calls)
    for record in records:
        message = to_message(record)
        expected = mapping.expected(record).value
        started = time.perf_counter()
        try:
            result = await cascade.triage(message, context_for(message))
        except LLMError:
            # Transport failures: counted, never guessed.
            latencies.append((time.perf_counter() - started) * 1000)
            errors += 1
            decided_by[ERROR] += 1
            pairs.append((expected, ERROR))
            decided_stage.append(ERROR)
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        raw = result.category.value if result.category else UNDECIDED
        predicted = mapping.scored(raw)
        needs_human += result.needs_human
        stage = result.provenance.stage if result.category else UNDECIDED
        decided_by[stage] += 1
        stage_hits[stage] += predicted == expected
        decided_stage.append(stage)
        if stage == "rule":
            rule = result.provenance.rule_id or "rule"
            rule_decided[rule] += 1
            rule_hits[rule] += predicted == expected
        pairs.append((expected, predicted))
        strict_hits += raw == mapping.expected(record, strict=True).value
        sender_domain = message.sender.domain if message.sender else ""
        context = context_for(message)
        if result.flags.phishing and sender_domain and context.is_internal(sender_domain):
            own_domain_flags += 1
        target = mapping.labels.get(record.get("category", ""))
        if target is not None and target.priority is Priority.URGENT:
            urgent_total += 1
            urgent_hit += result.priority in (Priority.URGENT, Priority.HIGH)

    total = len(records)
    per_class = _scores(pairs)
    columns = [*CLASSES, UNDECIDED] + ([ERROR] if errors else [])
    confusion = {
        e: {p: sum(1 for x, y in pairs if x == e and y == p) for p in columns} for e in CLASSES
    }
    # The baseline: always answer the most common expected class of these records.
    counts = Counter(e for e, _ in pairs)
    baseline = counts.most_common(1)[0][0] if counts else ""
    baseline_per_stage = {
        stage: stage_score(
            sum(
                e == baseline for (e, _), s in zip(pairs, decided_stage, strict=True) if s == stage
            ),
            decided_by[stage],
        )
        for stage in sorted(decided_by)
        if stage not in (UNDECIDED, ERROR)
    }
    mine = calls[first_call:]
    tokens_in = sum(c.usage.input for c in mine)
    tokens_cached = sum(c.usage.cached for c in mine)
    tokens_out = sum(c.usage.output for c in mine)
    cost = round(sum(c.cost_usd for c in mine), 6)
    return EvalReport(
        dataset=dataset,
        mapping=mapping.name,
        mapping_lines=mapping.describe(),
        provider=provider,
        model=model,
        prompt=prompt,
        messages=total,
        accuracy=round(sum(e == p for e, p in pairs) / total, 4) if total else 0.0,
        accuracy_strict=round(strict_hits / total, 4) if total else 0.0,
        macro_f1=_macro_f1(per_class),
        per_class=per_class,
        confusion=confusion,
        decided_by=dict(decided_by),
        share={k: round(v / total, 4) for k, v in decided_by.items()} if total else {},
        needs_human=needs_human,
        errors=errors,
        urgent_recall=round(urgent_hit / urgent_total, 4) if urgent_total else None,
        llm_calls=len(mine),
        input_tokens=tokens_in,
        cached_tokens=tokens_cached,
        output_tokens=tokens_out,
        cost_usd=cost,
        latency_ms_p50=round(percentile(latencies, 50), 3),
        latency_ms_p95=round(percentile(latencies, 95), 3),
        tokens_per_message=round((tokens_in + tokens_out) / total, 2) if total else 0.0,
        cost_per_message_usd=round(cost / total, 8) if total else 0.0,
        split=split,
        per_stage={
            stage: stage_score(stage_hits[stage], decided_by[stage])
            for stage in sorted(decided_by)
            if stage not in (UNDECIDED, ERROR)
        },
        per_rule={
            rule: stage_score(rule_hits[rule], n) for rule, n in sorted(rule_decided.items())
        },
        together=stage_score(
            sum(stage_hits[s] for s in decided_by if s not in (UNDECIDED, ERROR)),
            sum(n for s, n in decided_by.items() if s not in (UNDECIDED, ERROR)),
        ),
        baseline_class=baseline,
        learned=learned,
        baseline_per_stage=baseline_per_stage,
        phishing_flags_on_own_domain=own_domain_flags,
    )


def _score(score: StageScore) -> str:
    return (
        f"{score.correct}/{score.decided} = {score.precision:.4f} "
        f"[{score.ci_low:.4f}, {score.ci_high:.4f}]"
    )


def render_text(report: EvalReport) -> str:
    """The report as aligned plain text."""
    out = [
        f"dataset: {report.dataset} (split {report.split}: {report.messages} messages)",
        f"pipeline: provider={report.provider}"
        + (f" model={report.model} prompt={report.prompt}" if report.model else "")
        + (f"; learned stage {report.learned}" if report.learned else "")
        + ("" if report.model or report.learned else " (rules only)"),
        f"label mapping ({report.mapping}): " + "; ".join(report.mapping_lines),
        "",
        f"accuracy {report.accuracy:.4f}  (label mapping only, phishing not overridden: "
        f"{report.accuracy_strict:.4f})  macro-F1 {report.macro_f1:.4f} (classes present)",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
    ]
    for cls, s in report.per_class.items():
        out.append(f"{cls:<10}{s.precision:>10.4f}{s.recall:>8.4f}{s.f1:>8.4f}{s.support:>9}")
    columns = list(next(iter(report.confusion.values())).keys())
    out += [
        "",
        "confusion (rows expected, columns predicted)",
        f"{'':<10}" + "".join(f"{c:>10}" for c in columns),
    ]
    for expected, row in report.confusion.items():
        out.append(f"{expected:<10}" + "".join(f"{row[c]:>10}" for c in columns))
    share = ", ".join(
        f"{k} {v * 100:.1f}% ({report.decided_by[k]})" for k, v in sorted(report.share.items())
    )
    out += [
        "",
        "precision of each stage on what it decided (95% Wilson interval); baseline: always "
        f"{report.baseline_class!r} (the most common expected class) on the same mails",
    ]
    for stage, score in report.per_stage.items():
        base = report.baseline_per_stage.get(stage)
        out.append(
            f"  {stage:<8} {_score(score):<34}"
            + (f" baseline {_score(base)}" if base is not None else "")
        )
        if stage == "rule":
            for rule, rule_score in report.per_rule.items():
                out.append(f"    {rule:<30} {_score(rule_score)}")
    if report.together is not None and len(report.per_stage) > 1:
        out.append(f"  {'together':<8} {_score(report.together)}")
    out.append(
        f"phishing flags on mail from the own organisation: {report.phishing_flags_on_own_domain}"
    )
    out += [
        "",
        f"decided by: {share}",
        f"needs a person: {report.needs_human}; errors: {report.errors}",
    ]
    if report.urgent_recall is not None:
        out.append(f"URGENT records given priority urgent or high: {report.urgent_recall:.4f}")
    out += [
        f"model calls {report.llm_calls}; tokens in {report.input_tokens} (cached "
        f"{report.cached_tokens}) out {report.output_tokens}; per message "
        f"{report.tokens_per_message:.1f} tokens, ${report.cost_per_message_usd:.6f}; "
        f"total ${report.cost_usd:.6f}",
        f"latency per message: p50 {report.latency_ms_p50:.3f} ms, "
        f"p95 {report.latency_ms_p95:.3f} ms",
    ]
    return "\n".join(out)
