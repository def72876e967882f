"""Reply drafting: bodies in the executive's voice, proposed as governed actions only."""

from assistant.drafting.drafter import (
    TEMPLATE_MARKER,
    DraftProposal,
    NotDraftableError,
    draft_reply,
    redraft_reply,
    template_body,
)
from assistant.drafting.flow import DraftingStep, StepOutcome, propose_draft, propose_revision

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
