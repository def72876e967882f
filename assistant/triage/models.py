"""What triage says about one message, whichever stage (rules, model, human) said it."""

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SUMMARY_MAX = 200


class Category(StrEnum):
    """What the executive (or the assistant on their behalf) should do with the message."""

    RESPOND = "respond"
    SCHEDULE = "schedule"
    NOTIFY = "notify"
    IGNORE = "ignore"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    def raised(self) -> "Priority":
        """One step up, capped at urgent."""
        order = _PRIORITY_ORDER
        return order[max(order.index(self) - 1, 0)]


_PRIORITY_ORDER = [Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW]


class _Model(BaseModel):
    # Built with the first triage (or the first route that returns one), not at start-up.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TriageFlags(_Model):
    """Facts about the message that hold whatever the category."""

    phishing: bool = False
    external: bool = False
    has_deadline: bool = False
    prompt_injection: bool = Field(
        default=False, description="The content tries to instruct an AI; it must not drive actions."
    )


class MeetingConstraints(_Model):
    """What a meeting request asks for, for the scheduler to solve."""

    participants: list[str] = Field(default_factory=list, description="Email addresses.")
    duration_minutes: int | None = Field(default=None, gt=0)
    window_description: str | None = Field(default=None, description="As written: 'next week'.")
    window_start: datetime | None = None
    window_end: datetime | None = None
    timezone: str | None = Field(default=None, description="IANA zone the window is written in.")


class Provenance(_Model):
    """Which stage decided, under which rule or which model and prompt version."""

    stage: Literal["rule", "learned", "model", "human"]
    rule_id: str | None = None
    model: str | None = None
    prompt_version: str | None = None


class TriageResult(_Model):
    """The triage of one message. ``category`` is None only when nobody could decide."""

    message_id: str = Field(description="Provider id of the message (EmailMessage.id).")
    category: Category | None
    priority: Priority = Priority.NORMAL
    flags: TriageFlags = Field(default_factory=TriageFlags)
    summary: str = Field(default="", description="One line.")
    reason: str = ""
    requested_actions: list[str] = Field(default_factory=list)
    meeting: MeetingConstraints | None = None
    provenance: Provenance
    confidence: float = Field(ge=0.0, le=1.0)
    needs_human: bool = False

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Summaries land in list views and audit lines; newlines would break both.
        value = " ".join(value.split())
        return value if len(value) <= SUMMARY_MAX else value[: SUMMARY_MAX - 1] + "…"

    @model_validator(mode="after")
    def _undecided_goes_to_human(self) -> "TriageResult":
        if self.category is None and not self.needs_human:
            raise ValueError("a result without a category must set needs_human")
        return self
