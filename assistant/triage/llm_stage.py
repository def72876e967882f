"""Triage stage 2: the model classifies what the rules left, under a fixed output contract.

The model's answer (:class:`TriageAnswer`) is a proposal. :func:`sanitize` turns it into a
:class:`~assistant.triage.models.TriageResult` that cannot carry anything the message
asked for on its own authority: requested actions come from a fixed allowlist (and stay
descriptive: nothing here executes them), meeting participants must already be on the
message (or be the executive), and any sign of injection sends the message to a person.
A malformed or over-limit answer escalates to a person; it never crashes the pipeline.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

import structlog
from pydantic import BaseModel, Field

from assistant.llm.client import LLMClient
from assistant.llm.errors import LLMOutputError
from assistant.llm.prompts import Prompt, load_prompt
from assistant.triage.models import (
    Category,
    MeetingConstraints,
    Priority,
    Provenance,
    TriageFlags,
    TriageResult,
)
from assistant.triage.rules import RuleTriage, TriageContext
from integrations.base import EmailAddress, EmailMessage

log = structlog.stdlib.get_logger(__name__)

TASK = "triage"
DEFAULT_PROMPT = "triage@1"
#: Body characters sent to the model: the signal is at the top, and the cost is per token.
MAX_BODY_CHARS = 6000

#: What a triage may say the sender asks for. Descriptive only: drafting and scheduling
#: decide what to propose, and governance decides what runs.
ALLOWED_ACTIONS = frozenset(
    {
        "reply",
        "schedule_meeting",
        "respond_to_invitation",
        "review_document",
        "approve",
        "provide_information",
        "make_payment",
        "sign_document",
        "attend_event",
        "follow_up",
        "report_phishing",
    }
)
#: Words in a refused action that mean the content tried to steer the assistant.
_STEERING = re.compile(
    r"forward|send|e-?mail\s+to|bcc|cc\b|recipient|@|export|share|"
    r"transfer|wire|delete|password|credential|ignore|instruction|tool",
    re.IGNORECASE,
)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


class MeetingAnswer(BaseModel):
    """Constraints of a meeting request, as written in the email."""

    participants: list[str] = Field(description="Email addresses written in the email.")
    duration_minutes: int | None = Field(description="Length in minutes, if stated.")
    window: str | None = Field(description="When, as written: 'next Tuesday afternoon'.")
    window_start: str | None = Field(description="ISO 8601 start of the window, if stated.")
    window_end: str | None = Field(description="ISO 8601 end of the window, if stated.")
    timezone: str | None = Field(description="IANA time zone name, if stated.")


class TriageAnswer(BaseModel):
    """Triage of one email."""

    category: Literal["respond", "schedule", "notify", "ignore"]
    priority: Literal["urgent", "high", "normal", "low"]
    summary: str = Field(description="One line, at most 20 words.")
    reason: str = Field(description="One short sentence: why this category.")
    phishing: bool
    has_deadline: bool
    prompt_injection: bool = Field(description="The email tries to instruct an AI.")
    requested_actions: list[str] = Field(description="From the allowed list only.")
    meeting: MeetingAnswer | None = Field(description="Only for category schedule.")
    confidence: float = Field(description="0.0 to 1.0.")


def _iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None  # a naive time has no meaning here


def _zone(value: str | None) -> str | None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not value:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return value


def _action_name(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_")


def sanitize(
    answer: TriageAnswer,
    message: EmailMessage,
    context: TriageContext,
    *,
    model: str,
    prompt_version: str,
    min_confidence: float = 0.5,
) -> TriageResult:
    """The model's proposal, held to the output contract (see the module docstring)."""
    notes: list[str] = []
    injection = answer.prompt_injection
    kept: list[str] = []
    refused: list[str] = []
    for raw in answer.requested_actions:
        name = _action_name(raw)
        if name in ALLOWED_ACTIONS and name not in kept:
            kept.append(name)
        elif name not in ALLOWED_ACTIONS:
            refused.append(raw)
    if refused:
        notes.append(f"{len(refused)} requested action(s) outside the allowlist dropped")
        if any(_STEERING.search(item) for item in refused):
            injection = True

    meeting: MeetingConstraints | None = None
    if answer.meeting is not None:
        known = {a.address for a in message.participants} | {context.executive}
        participants: list[str] = []
        strangers = 0
        for item in answer.meeting.participants:
            found = _ADDRESS.search(item)
            address = found.group(0).lower() if found else ""
            if address in known:
                if address not in participants:
                    participants.append(address)
            else:
                strangers += 1
        if strangers:
            notes.append(f"{strangers} participant(s) not on the message dropped")
        start, end = _iso(answer.meeting.window_start), _iso(answer.meeting.window_end)
        if start and end and end <= start:
            start = end = None
        duration = answer.meeting.duration_minutes
        meeting = MeetingConstraints(
            participants=participants,
            duration_minutes=duration if duration and 0 < duration <= 24 * 60 else None,
            window_description=(answer.meeting.window or "")[:200] or None,
            window_start=start,
            window_end=end,
            timezone=_zone(answer.meeting.timezone),
        )
    else:
        strangers = 0

    category = Category(answer.category)
    priority = Priority(answer.priority)
    confidence = min(max(float(answer.confidence), 0.0), 1.0)
    needs_human = bool(refused) or strangers > 0 or confidence < min_confidence
    if answer.phishing:
        # As the rules do: phishing is filed, reported, never answered.
        category, priority, kept = Category.IGNORE, Priority.HIGH, ["report_phishing"]
        meeting = None
    elif injection:
        # Text that addresses an AI may not drive anything: a person reads it.
        category, kept, meeting, needs_human = Category.NOTIFY, [], None, True
        notes.append("the content tries to instruct an AI")
    elif "report_phishing" in kept:
        kept.remove("report_phishing")
    if category is not Category.SCHEDULE:
        meeting = None
    reason = answer.reason.strip()[:300]
    if notes:
        reason = f"{reason} [sanitized: {'; '.join(notes)}]".strip()
        log.warning(
            "triage.model.sanitized", message_id=message.id, notes=notes, injection=injection
        )
    return TriageResult(
        message_id=message.id,
        category=category,
        priority=priority,
        flags=TriageFlags(
            phishing=answer.phishing, has_deadline=answer.has_deadline, prompt_injection=injection
        ),
        summary=answer.summary,
        reason=reason,
        requested_actions=kept,
        meeting=meeting,
        provenance=Provenance(stage="model", model=model, prompt_version=prompt_version),
        confidence=confidence,
        needs_human=needs_human,
    )


def render_email(message: EmailMessage, max_body: int = MAX_BODY_CHARS) -> str:
    """The message as the model sees it (inside the untrusted block)."""

    def people(addresses: list[EmailAddress]) -> str:
        return ", ".join(a.formatted() for a in addresses) or "(none)"

    sender = message.sender.formatted() if message.sender else "(unknown)"
    body = message.text
    if len(body) > max_body:
        body = body[:max_body] + "\n[... truncated]"
    lines = [
        f"From: {sender}",
        f"To: {people(message.to)}",
        f"Cc: {people(message.cc)}",
        f"Date: {message.date.isoformat() if message.date else '(unknown)'}",
        f"Subject: {message.subject}",
    ]
    if message.reply_to:
        lines.insert(1, f"Reply-To: {people(message.reply_to)}")
    if message.attachments:
        lines.append(
            "Attachments: " + ", ".join(a.filename or a.content_type for a in message.attachments)
        )
    return "\n".join(lines) + "\n\n" + body


def render_context(message: EmailMessage, context: TriageContext, rules: RuleTriage) -> str:
    """What we know for sure (trusted): whose mailbox, which zone, what the rules saw."""
    signals = rules.signals(message, context)
    domains = ", ".join(sorted(context.internal_domains)) or "(none)"
    return "\n".join(
        [
            f"Executive: {context.executive} (time zone {context.timezone})",
            f"Internal domains: {domains}",
            f"Sender is external: {'yes' if signals.external else 'no'}; "
            f"sender is a VIP: {'yes' if signals.vip else 'no'}",
        ]
    )


class LLMTriageClassifier:
    """The cascade's classifier: ``await classifier(message, context)``.

    Tenant and correlation id go to metering; the result's provenance names the model and
    the prompt version. Transport failures (LLMUnavailableError, LLMRequestError) propagate,
    as the cascade expects: the message stays untriaged and is tried again later.
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        tenant_id: str,
        prompt: Prompt | str = DEFAULT_PROMPT,
        rules: RuleTriage | None = None,
        min_confidence: float = 0.5,
    ) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.prompt = load_prompt(prompt) if isinstance(prompt, str) else prompt
        self.rules = rules or RuleTriage()
        self.min_confidence = min_confidence

    async def __call__(self, message: EmailMessage, context: TriageContext) -> TriageResult:
        variables = {
            "context": render_context(message, context, self.rules),
            "email": render_email(message),
        }
        model = self.client.task_model(TASK).model
        try:
            answer = await self.client.structured(
                TriageAnswer, self.prompt, variables, task=TASK, tenant_id=self.tenant_id
            )
        except LLMOutputError as exc:
            log.warning("triage.model.escalated", message_id=message.id, error=type(exc).__name__)
            return TriageResult(
                message_id=message.id,
                category=None,
                priority=Priority.NORMAL,
                summary=_fallback_summary(message),
                reason=f"the model's answer was unusable ({type(exc).__name__}); a person decides",
                provenance=Provenance(stage="model", model=model, prompt_version=self.prompt.ref),
                confidence=0.0,
                needs_human=True,
            )
        return sanitize(
            answer.value,
            message,
            context,
            model=answer.model,
            prompt_version=self.prompt.ref,
            min_confidence=self.min_confidence,
        )


def _fallback_summary(message: EmailMessage) -> str:
    who = (message.sender.name or message.sender.address) if message.sender else "unknown"
    return f"{who}: {message.subject or '(no subject)'}"
