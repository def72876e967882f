"""Import every module that defines tables, so that Base.metadata is complete."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "integrations.sandbox.models",
    "assistant.auth.models",
    "governance.audit_models",
    "governance.models",
    "assistant.ingestion.models",
    "assistant.connector_models",
    "assistant.llm.models",
    "assistant.triage.store",
    "assistant.quality.models",
    "governance.production_models",
    "governance.workers",
    "assistant.agent.models",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
