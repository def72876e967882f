"""Reply drafting: bodies in the executive's voice, proposed as governed actions only.

The names below load with their module on first use (PEP 562): the web app's review room
imports only ``limits`` at start-up, and the drafter pulls in the model client and the triage
rules, which `assistant serve` does not need until the first draft.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from assistant.core.lazy import lazy_exports

if TYPE_CHECKING:
    from assistant.drafting.drafter import (
        TEMPLATE_MARKER,
        DraftProposal,
        NotDraftableError,
        draft_reply,
        redraft_reply,
        template_body,
    )
    from assistant.drafting.flow import (
        DraftingStep,
        StepOutcome,
        propose_draft,
        propose_revision,
    )

_MODULE_OF = {
    "TEMPLATE_MARKER": "drafter",
    "DraftProposal": "drafter",
    "NotDraftableError": "drafter",
    "draft_reply": "drafter",
    "redraft_reply": "drafter",
    "template_body": "drafter",
    "DraftingStep": "flow",
    "StepOutcome": "flow",
    "propose_draft": "flow",
    "propose_revision": "flow",
}

__all__ = [
    "TEMPLATE_MARKER",
    "DraftProposal",
    "DraftingStep",
    "NotDraftableError",
    "StepOutcome",
    "draft_reply",
    "propose_draft",
    "propose_revision",
    "redraft_reply",
    "template_body",
]

__getattr__ = lazy_exports(__name__, _MODULE_OF)
