"""Email triage: deterministic rules first, then a classifier, then a person.

The names below load with their module on first use (PEP 562): the service's routes need
only ``assistant.triage.store`` and ``models``, and importing the rules (their patterns,
the Public Suffix List) with the package was a sizeable share of `assistant serve`'s start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.core.lazy import lazy_exports

if TYPE_CHECKING:
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

_MODULE_OF = {
    "TriageCascade": "cascade",
    "TriageClassifier": "cascade",
    "SenderRule": "config",
    "TriageRulesConfig": "config",
    "VipEntry": "config",
    "load_triage_rules": "config",
    "parse_triage_rules": "config",
    "Category": "models",
    "MeetingConstraints": "models",
    "Priority": "models",
    "Provenance": "models",
    "TriageFlags": "models",
    "TriageResult": "models",
    "MessageSignals": "rules",
    "RuleId": "rules",
    "RuleTriage": "rules",
    "TriageContext": "rules",
}

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


__getattr__ = lazy_exports(__name__, _MODULE_OF)
