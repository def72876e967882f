"""The triage cascade: rules first, then the learned stage, then the classifier (the LLM
stage) for what is left, then a person."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from assistant.triage.models import TriageResult
from assistant.triage.rules import RuleTriage, TriageContext
from integrations.base import EmailMessage

TriageClassifier = Callable[[EmailMessage, TriageContext], Awaitable[TriageResult | None]]
"""``async (message, context) -> TriageResult | None``; None means it could not decide."""


class TriageCascade:
    """Runs the rule engine, then the classifier; undecided mail goes to a person.

    With no classifier (LLM provider ``none``) whatever the rules cannot decide comes back
    with ``needs_human=True`` and no category rather than a guess. Classifier errors
    propagate: the caller's job retries or fails loudly, and no mail is silently filed.
    """

    def __init__(
        self,
        rules: RuleTriage | None = None,
        classifier: TriageClassifier | None = None,
        learned: TriageClassifier | None = None,
    ) -> None:
        self.rules = rules or RuleTriage()
        self.classifier = classifier
        self.learned = learned

    async def triage(self, message: EmailMessage, context: TriageContext) -> TriageResult:
        """Triage one message."""
        decided, signals = self.rules.evaluate(message, context)
        if decided is not None:
            return decided
        # Phishing and injected mail never get here: the rules decide those themselves.
        if self.learned is not None:
            learned = await self.learned(message, context)
            if learned is not None:
                return self.rules.complete(learned, message, context, signals=signals)
        if self.classifier is None:
            return self.rules.undecided(message, context, signals=signals)
        proposed = await self.classifier(message, context)
        if proposed is None:
            return self.rules.undecided(
                message, context, signals=signals, reason="the classifier abstained"
            )
        return self.rules.complete(proposed, message, context, signals=signals)
