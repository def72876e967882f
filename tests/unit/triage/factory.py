"""Messages and a context for the triage tests: real models, built small."""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from assistant.triage import RuleTriage, TriageContext, TriageResult
from assistant.triage.llm_stage import TriageAnswer
from integrations.base import Attachment, EmailAddress, EmailMessage

EXECUTIVE = "ceo@acme.com"

CONTEXT = TriageContext(
    executive=EXECUTIVE,
    internal_domains={"acme.com", "globexcorp.com"},
    vips={"chair@board.example.org", "cfo@acme.com"},
    people={"jane.doe@acme.com": "Jane Doe", "chair@board.example.org": "Ada Lovelace"},
    timezone="Europe/Berlin",
)

RULES = RuleTriage()


def address(raw: str) -> EmailAddress:
    name, addr = parseaddr(raw)
    return EmailAddress(address=addr, name=name or None)


def message(
    sender: str = "Pat Partner <pat@partner.example>",
    subject: str = "Hello",
    text: str = "Hi, see you next week.",
    **fields: Any,
) -> EmailMessage:
    """An inbox message to the executive; ``fields`` override any EmailMessage field."""
    reply_to = [address(a) for a in fields.pop("reply_to", [])]
    return EmailMessage(
        id=fields.pop("id", "msg-1"),
        folder=fields.pop("folder", "inbox"),
        subject=subject,
        sender=address(sender),
        to=[EmailAddress(address=EXECUTIVE)],
        text=text,
        reply_to=reply_to,
        **fields,
    )


def ics(method: str = "REQUEST") -> Attachment:
    return Attachment(
        filename="invite.ics", content_type=f"text/calendar; method={method}", size=900
    )


def decide(msg: EmailMessage, context: TriageContext = CONTEXT) -> TriageResult | None:
    return RULES.decide(msg, context)


def rule_id(msg: EmailMessage, context: TriageContext = CONTEXT) -> str | None:
    result = decide(msg, context)
    return result.provenance.rule_id if result else None


def triage_answer(**overrides: Any) -> dict[str, Any]:
    """A model's triage answer (the tool-call arguments a scripted server returns)."""
    answer: dict[str, Any] = {
        "category": "respond",
        "priority": "normal",
        "summary": "Pat asks for the Q3 numbers",
        "reason": "a direct question",
        "phishing": False,
        "has_deadline": False,
        "prompt_injection": False,
        "requested_actions": ["reply"],
        "meeting": None,
        "confidence": 0.8,
        **overrides,
    }
    TriageAnswer.model_validate(answer)  # the script itself must follow the contract
    return answer
