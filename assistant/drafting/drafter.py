"""Reply drafts: the body from the model (in the executive's voice) or from a template.

The model writes the body and nothing else. Who the reply goes to is never taken from the
model's answer or from the mail's text: a draft is a reply (``DraftMode.REPLY`` or
``REPLY_ALL`` with ``reply_to_id``), and the recipients are the original message's
participants, filled in by governance from the thread itself. Without a model (provider
``none``), or when the model's answer is unusable, the body is a short acknowledgement
clearly marked as a template, for a person to edit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from assistant.core.errors import ValidationFailedError
from assistant.core.settings import DraftingSettings
from assistant.drafting.limits import MAX_INSTRUCTIONS
from assistant.llm.client import LLMClient
from assistant.llm.errors import LLMError
from assistant.llm.metering import LLMCallRecord, Usage
from assistant.llm.prompts import Prompt, load_prompt
from assistant.triage.llm_stage import render_email
from assistant.triage.models import Category, TriageResult
from governance.actions import EmailDraftArgs
from integrations.base import DraftMode, EmailMessage

log = structlog.stdlib.get_logger(__name__)

TASK = "drafting"
DEFAULT_PROMPT = "drafting@1"
#: First line of every template draft: a person must edit it before it goes anywhere.
TEMPLATE_MARKER = "[TEMPLATE - written without a model: edit before sending]"
_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_HEADER_LINE = re.compile(r"^\s*(subject|to|cc|bcc|from|reply-to)\s*:", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

# Short acknowledgements per language (primary subtag); English otherwise.
_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "en": (
        "Hi {name},",
        "there",
        'Thank you for your message about "{topic}". I will get back to you shortly.',
    ),
    "de": (
        "Hallo {name},",
        "zusammen",
        "vielen Dank für Ihre Nachricht zu „{topic}“. Ich melde mich in Kürze bei Ihnen.",
    ),
    "fr": (
        "Bonjour {name},",
        "à tous",
        "Merci pour votre message concernant « {topic} ». Je reviens vers vous rapidement.",
    ),
    "es": (
        "Hola {name},",
        "a todos",
        "Gracias por su mensaje sobre «{topic}». Le responderé en breve.",
    ),
}


class NotDraftableError(ValidationFailedError):
    """The message may not be answered by a draft (no sender, flagged, wrong category)."""


@dataclass
class DraftProposal:
    """A reply draft ready to be proposed as a governed ``email.draft.create`` action."""

    message_id: str
    args: EmailDraftArgs
    source: Literal["model", "template"]
    subject: str
    model: str | None = None
    prompt_version: str | None = None
    calls: tuple[LLMCallRecord, ...] = ()
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def is_template(self) -> bool:
        return self.source == "template"

    @property
    def usage(self) -> Usage:
        return Usage(
            input=sum(c.usage.input for c in self.calls),
            cached=sum(c.usage.cached for c in self.calls),
            output=sum(c.usage.output for c in self.calls),
        )

    def arguments(self) -> dict[str, Any]:
        """The action's arguments (recipients left to governance: taken from the thread)."""
        return self.args.model_dump(mode="json", exclude_none=True)


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def _language(value: str) -> str:
    return value.strip().lower().replace("_", "-").split("-", 1)[0]


def template_body(message: EmailMessage, voice: DraftingSettings) -> str:
    """A deterministic acknowledgement, marked as a template."""
    greeting, nobody, line = _TEMPLATES.get(_language(voice.language), _TEMPLATES["en"])
    name = (message.sender.name or "").strip().split(" ")[0] if message.sender else ""
    topic = _PREFIX.sub("", message.subject or "").strip()[:120] or "-"
    parts = [
        TEMPLATE_MARKER,
        "",
        greeting.format(name=name or nobody),
        "",
        line.format(topic=topic),
    ]
    if voice.signature.strip():
        parts += ["", voice.signature.strip()]
    return "\n".join(parts)


def clean_body(text: str, voice: DraftingSettings) -> tuple[str, bool]:
    """The model's answer as a body: fences and header-like lead lines dropped, the
    signature ensured, cut at ``max_body_chars``. Returns (body, was_cut)."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    lines = body.splitlines()
    # Leading header-like lines would suggest recipients the reply does not have.
    while lines and (_HEADER_LINE.match(lines[0]) or not lines[0].strip()):
        lines.pop(0)
    body = "\n".join(lines).strip()
    signature = voice.signature.strip()
    if body and signature and signature not in body:
        body = f"{body}\n\n{signature}"
    cut = len(body) > voice.max_body_chars
    if cut:
        body = body[: voice.max_body_chars].rstrip() + "\n[... cut at the length limit]"
    return body, cut


def _voice(voice: DraftingSettings) -> str:
    return "\n".join(
        [
            f"- Tone: {voice.tone}.",
            f"- Language: {voice.language} (write the whole reply in it).",
            "- Signature to end with: "
            f"{voice.signature.strip() or '(none: end with the greeting)'}",
        ]
    )


def _context(message: EmailMessage, triage: TriageResult) -> str:
    # Only what we decided ourselves; the triage summary came from the mail and stays out.
    actions = ", ".join(triage.requested_actions) or "(none listed)"
    return "\n".join(
        [
            f"Category: {triage.category.value if triage.category else 'undecided'}; "
            f"priority: {triage.priority.value}; deadline mentioned: "
            f"{'yes' if triage.flags.has_deadline else 'no'}",
            f"The sender asks for: {actions}",
            "The reply goes to the thread's participants; you do not choose them.",
        ]
    )


def _check(message: EmailMessage, triage: TriageResult) -> None:
    if triage.message_id != message.id:
        raise NotDraftableError("the triage result is for another message")
    if triage.category is not Category.RESPOND:
        raise NotDraftableError(
            "only mail triaged as respond gets a reply draft", category=triage.category
        )
    if triage.flags.phishing or triage.flags.prompt_injection:
        raise NotDraftableError("the message is flagged as suspicious")
    if message.sender is None:
        raise NotDraftableError("the message has no sender to answer")


async def draft_reply(
    message: EmailMessage,
    triage: TriageResult,
    voice: DraftingSettings,
    llm: LLMClient | None,
    *,
    tenant_id: str,
    correlation_id: str | None = None,
    prompt: Prompt | str = DEFAULT_PROMPT,
) -> DraftProposal:
    """A reply draft for a message triaged ``respond``.

    With ``llm`` (enabled), the model writes the body under ``prompt``; otherwise, or when
    the call fails, the body is :func:`template_body`. Raises NotDraftableError for mail
    that must not be answered. The call is metered by the client (task ``drafting``).
    """
    _check(message, triage)
    mode = DraftMode.REPLY_ALL if voice.reply_all else DraftMode.REPLY
    subject = reply_subject(message.subject)
    notes: list[str] = []
    if llm is not None and llm.enabled:
        loaded = load_prompt(prompt) if isinstance(prompt, str) else prompt
        try:
            answer = await llm.text(
                loaded,
                {
                    "voice": _voice(voice),
                    "context": _context(message, triage),
                    "email": render_email(message),
                },
                task=TASK,
                tenant_id=tenant_id,
                correlation_id=correlation_id,
            )
        except LLMError as exc:
            log.warning("drafting.model_failed", message_id=message.id, error=type(exc).__name__)
            notes.append(f"the model call failed ({type(exc).__name__}): template used")
        else:
            body, cut = clean_body(answer.value, voice)
            if body:
                known = {a.address for a in message.participants}
                strangers = {a.lower() for a in _ADDRESS.findall(body)} - known
                if strangers:
                    notes.append(
                        f"the body names {len(strangers)} address(es) not on the "
                        "thread; they are not recipients"
                    )
                if cut or answer.truncated:
                    notes.append("the model's answer was cut at the length limit")
                log.info(
                    "drafting.drafted",
                    message_id=message.id,
                    source="model",
                    model=answer.model,
                    prompt=answer.prompt,
                    chars=len(body),
                )
                return DraftProposal(
                    message_id=message.id,
                    source="model",
                    subject=subject,
                    args=EmailDraftArgs(mode=mode, reply_to_id=message.id, body_text=body),
                    model=answer.model,
                    prompt_version=answer.prompt,
                    calls=answer.calls,
                    truncated=cut or answer.truncated,
                    notes=notes,
                )
            notes.append("the model's answer was empty: template used")
    log.info("drafting.drafted", message_id=message.id, source="template")
    return DraftProposal(
        message_id=message.id,
        source="template",
        subject=subject,
        notes=notes,
        args=EmailDraftArgs(
            mode=mode, reply_to_id=message.id, body_text=template_body(message, voice)
        ),
    )


REDRAFT_PROMPT = "redrafting@1"
#: The most an instruction may say: a few sentences, not a second email.


async def redraft_reply(
    message: EmailMessage,
    draft: EmailDraftArgs,
    instructions: str,
    voice: DraftingSettings,
    llm: LLMClient | None,
    *,
    tenant_id: str,
    correlation_id: str | None = None,
    prompt: Prompt | str = REDRAFT_PROMPT,
) -> DraftProposal:
    """``draft`` (a reply to ``message``) rewritten by the model as the executive's
    ``instructions`` say. Only the body changes: mode, thread and any recipients stay those
    of ``draft``. Needs a model: without one (or when it fails or answers nothing), raises
    NotDraftableError, and the draft under review stays as it was."""
    instructions = instructions.strip()
    if not instructions:
        raise NotDraftableError("say how the draft should change")
    if len(instructions) > MAX_INSTRUCTIONS:
        raise NotDraftableError(f"instructions are at most {MAX_INSTRUCTIONS} characters")
    if llm is None or not llm.enabled:
        raise NotDraftableError("re-drafting on instructions needs a language model")
    loaded = load_prompt(prompt) if isinstance(prompt, str) else prompt
    try:
        answer = await llm.text(
            loaded,
            {
                "voice": _voice(voice),
                "instructions": instructions,
                "draft": draft.body_text,
                "email": render_email(message),
            },
            task=TASK,
            tenant_id=tenant_id,
            correlation_id=correlation_id,
        )
    except LLMError as exc:
        log.warning("drafting.redraft_failed", message_id=message.id, error=type(exc).__name__)
        raise NotDraftableError(
            f"the model could not re-draft it ({type(exc).__name__}); the draft is unchanged"
        ) from exc
    body, cut = clean_body(answer.value, voice)
    if not body:
        raise NotDraftableError("the model's answer was empty; the draft is unchanged")
    notes = []
    known = {a.address for a in message.participants}
    if {a.lower() for a in _ADDRESS.findall(body)} - known:
        notes.append("the body names address(es) not on the thread; they are not recipients")
    if cut or answer.truncated:
        notes.append("the model's answer was cut at the length limit")
    log.info(
        "drafting.redrafted",
        message_id=message.id,
        model=answer.model,
        prompt=answer.prompt,
        chars=len(body),
        instruction_chars=len(instructions),
    )
    return DraftProposal(
        message_id=message.id,
        source="model",
        subject=draft.subject or reply_subject(message.subject),
        args=draft.model_copy(update={"body_text": body}),
        model=answer.model,
        prompt_version=answer.prompt,
        calls=answer.calls,
        truncated=cut or answer.truncated,
        notes=notes,
    )
