"""Email triage: deterministic rules first, then a classifier, then a person."""

from assistant.triage.cascade import TriageCascade, TriageClassifier
from assistant.triage.config import (
    SenderRule,
    TriageRulesConfig,
    VipEntry,
    load_triage_rules,
    parse_triage_rules,
)
from assistant.triage.models import (
    Category,
    MeetingConstraints,
    Priority,
    Provenance,
    TriageFlags,
    TriageResult,
)
from assistant.triage.rules import MessageSignals, RuleId, RuleTriage, TriageContext

__all__ = [
    "Category",
    "MeetingConstraints",
    "MessageSignals",
    "Priority",
    "Provenance",
    "RuleId",
    "RuleTriage",
    "SenderRule",
    "TriageCascade",
    "TriageClassifier",
    "TriageContext",
    "TriageFlags",
    "TriageResult",
    "TriageRulesConfig",
    "VipEntry",
    "load_triage_rules",
    "parse_triage_rules",
]
