"""Request detection on sentence-level intent data (Parakweet's EmailIntentDataSet format).

Each line is ``Yes`` or ``No``, a tab, and a sentence from a business mail: ``Yes`` when the
sentence makes a request or proposal. The detector scored is the product's own,
:func:`assistant.scheduling.text.is_request`; with ``meetings=True`` it is the narrower
"asks or proposes to meet" (a request that also names a way of meeting).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from assistant.core.errors import ConfigurationError
from assistant.evaluation.stats import wilson
from assistant.scheduling.text import MEET, is_request


@dataclass
class IntentReport:
    dataset: str
    sentences: int
    positives: int
    predicted: int
    true_positives: int
    precision: float
    precision_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]
    f1: float


def load_intent(path: str | Path) -> list[tuple[bool, str]]:
    """(label, sentence) pairs; a line without a Yes/No label is a configuration error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}", problems=[f"{path}: {exc}"]) from exc
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        label, _, sentence = line.partition("\t")
        if label.strip() not in ("Yes", "No"):
            raise ConfigurationError(f"{path}:{number}: expected 'Yes' or 'No', a tab, a sentence")
        pairs.append((label.strip() == "Yes", sentence.strip()))
    return pairs


def evaluate_intent(
    pairs: list[tuple[bool, str]], *, dataset: str = "", meetings: bool = False
) -> IntentReport:
    def detect(sentence: str) -> bool:
        return is_request(sentence) and (not meetings or MEET.search(sentence) is not None)

    predictions = [(label, detect(sentence)) for label, sentence in pairs]
    positives = sum(label for label, _ in predictions)
    predicted = sum(guess for _, guess in predictions)
    tp = sum(label and guess for label, guess in predictions)
    precision = tp / predicted if predicted else 0.0
    recall = tp / positives if positives else 0.0
    return IntentReport(
        dataset=dataset,
        sentences=len(pairs),
        positives=positives,
        predicted=predicted,
        true_positives=tp,
        precision=round(precision, 4),
        precision_ci=tuple(round(x, 4) for x in wilson(tp, predicted)),  # type: ignore[arg-type]
        recall=round(recall, 4),
        recall_ci=tuple(round(x, 4) for x in wilson(tp, positives)),  # type: ignore[arg-type]
        f1=round(2 * precision * recall / (precision + recall), 4) if tp else 0.0,
    )


def render_intent(report: IntentReport, label: str = "requests and proposals") -> str:
    return (
        f"{label} on {report.dataset} ({report.sentences} sentences, {report.positives} Yes): "
        f"precision {report.true_positives}/{report.predicted} = {report.precision:.4f} "
        f"[{report.precision_ci[0]:.4f}, {report.precision_ci[1]:.4f}], recall "
        f"{report.true_positives}/{report.positives} = {report.recall:.4f} "
        f"[{report.recall_ci[0]:.4f}, {report.recall_ci[1]:.4f}], F1 {report.f1:.4f}"
    )
