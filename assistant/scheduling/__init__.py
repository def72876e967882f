"""Deterministic meeting scheduling: find slots that fit everyone's calendar and rules."""

from assistant.scheduling.engine import find_slots
from assistant.scheduling.models import (
    BusyInterval,
    CandidateSlot,
    DailyWindow,
    LocalSlot,
    Participant,
    Preferences,
    Relaxation,
    RelaxationKind,
    SchedulingRequest,
    SchedulingResult,
    ShowAs,
    TimeRule,
)

__all__ = [
    "BusyInterval",
    "CandidateSlot",
    "DailyWindow",
    "LocalSlot",
    "Participant",
    "Preferences",
    "Relaxation",
    "RelaxationKind",
    "SchedulingRequest",
    "SchedulingResult",
    "ShowAs",
    "TimeRule",
    "find_slots",
]
