"""Deterministic first stage of triage: decide only when confident, otherwise return None.

The rules use only signals that hold in any organisation's mailbox: what the receiving
server says about the sender (authentication results), the organisation's own domains
(and their subdomains, trusted), look-alikes of them and of mail providers, borrowed
identities, list and bulk-mailer headers, the footer the law requires of bulk mail,
mailing platforms, calendar MIME parts, automatic-reply headers and server labels,
automated senders, requests to meet written in the text, and a colleague's mail to the
executive that puts a question to her or says nothing is expected of her. What a text
asks for counts toward phishing with a fact about the sender, or alone only as scam bait,
a lure and a link together in unsolicited mail. Content judgements (is this spam, is this
a sales push) are the learned stage's and the model's: phrases that fit one corpus do not
carry to the next mailbox, and a confidently wrong rule is worse than none.

Order matters. Safety checks run first (phishing, then prompt injection) so that neither
an admin rule nor a header can lend trust to a forged or hostile message. Then admin
rules, then what mail headers say about themselves (calendar, auto-reply, bulk), then
automated senders, then bulk footers on unsolicited mail, then meeting requests, then
colleagues' questions and notes. VIP status is a modifier: it raises priority on whatever
was decided and never decides alone.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from assistant.scheduling.text import detect_meeting_request
from assistant.triage import patterns as lex
from assistant.triage.authentication import AuthVerdict, parse_authentication
from assistant.triage.config import SenderRule, TriageRulesConfig
from assistant.triage.lookalike import (
    lookalike,
    lookalike_reason,
    registrable,
    same_organisation,
    split_domain,
)
from assistant.triage.models import (
    Category,
    MeetingConstraints,
    Priority,
    Provenance,
    TriageFlags,
    TriageResult,
)
from integrations.base import EmailMessage, FolderRole

# Only the head of a body is scanned: signals sit at the top, and a 5 MB newsletter must
# not cost 5 MB of regex work.
MAX_SCAN = 20_000
JUNK_FOLDERS = frozenset({FolderRole.JUNK.value, "junkemail", "junk e-mail", "spam", "bulk mail"})


class RuleId(StrEnum):
    """Stable ids of the built-in rules, as written in provenance (admin rules: 'admin:<id>')."""

    PHISHING_LOOKALIKE = "phishing.lookalike_domain"
    PHISHING_IMPERSONATION = "phishing.display_name"
    PHISHING_LURE = "phishing.lure_link"
    PHISHING_ADVANCE_FEE = "phishing.advance_fee"
    PHISHING_COMBINED = "phishing.combined"
    PHISHING_SPOOFED = "phishing.spoofed_own_domain"
    PHISHING_PROVIDER = "phishing.provider_lookalike"
    PHISHING_SCAM = "phishing.scam_text"
    INJECTION = "injection"
    CALENDAR_REQUEST = "calendar.request"
    CALENDAR_UPDATE = "calendar.update"
    AUTO_REPLY = "auto_reply"
    BULK_JUNK = "bulk.junk_folder"
    BULK_HEADERS = "bulk.headers"
    BULK_MARKETING = "bulk.marketing_sender"
    BULK_FOOTER = "bulk.unsubscribe_footer"
    AUTOMATED = "automated.notification"
    MEETING_TEXT = "meeting.text_request"
    COLLEAGUE_QUESTION = "respond.colleague_question"
    COLLEAGUE_NO_ACTION = "notify.colleague_no_action"
    UNDECIDED = "undecided"


# --------------------------------------------------------------------------- context


def _fold(text: str) -> str:
    """Lower-case ASCII letters and single spaces: 'José  Núñez' -> 'jose nunez'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(re.findall(r"[a-z]+", text))


@dataclass(frozen=True)
class _Derived:
    """Lookups a context derives from its fields: brand names, known names, own addresses."""

    domains: frozenset[str]
    people: dict[str, str]
    brands: tuple[tuple[str, re.Pattern[str]], ...]
    names: dict[str, frozenset[str]]
    own_address: re.Pattern[str]

    @classmethod
    def build(cls, domains: frozenset[str], people: dict[str, str]) -> _Derived:
        brand_names = sorted({name for name, _ in map(split_domain, domains) if len(name) >= 3})
        brands = tuple(
            (name, re.compile(r"(?:^|[^a-z0-9])" + re.escape(name) + r"(?:[^a-z0-9]|$)"))
            for name in brand_names
        )
        owners: dict[str, set[str]] = {}
        for address, name in people.items():
            folded = _fold(name)
            if len(folded.split()) >= 2:  # a first name alone is no evidence
                owners.setdefault(folded, set()).add(address.lower())
        alternatives = "|".join(re.escape(d) for d in sorted(domains)) or "(?!)"
        return cls(
            domains=domains,
            people=people,
            brands=brands,
            names={name: frozenset(addrs) for name, addrs in owners.items()},
            own_address=re.compile(r"[\w.+-]+@(?:[\w-]+\.)*(?:" + alternatives + r")\b"),
        )


class TriageContext(BaseModel):
    """Whose mailbox this is and what the admin configured; built once, shared by calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    executive: str = Field(description="Address of the executive whose mail is triaged.")
    internal_domains: frozenset[str] = Field(
        default=frozenset(),
        description="Own domains, subdomains included; default: the executive's domain.",
    )
    vips: frozenset[str] = Field(default=frozenset(), description="VIP sender addresses.")
    people: dict[str, str] = Field(
        default_factory=dict,
        description="Known people (colleagues, VIPs): address -> name. "
        "Mail using one of these names from another address is flagged as impersonation.",
    )
    timezone: str = Field(default="UTC", description="IANA zone of the executive.")
    rules: tuple[SenderRule, ...] = ()
    # Out-of-office replies carry a return date and a stand-in that scheduling can use, so
    # by default they are surfaced (low) rather than dropped; IGNORE files them away.
    auto_reply_category: Category = Field(
        default=Category.NOTIFY, description="notify or ignore: automatic (out-of-office) replies."
    )

    _derived: _Derived | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _default_domains(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and not data.get("internal_domains")
            and "@" in str(data.get("executive", ""))
        ):
            data = {**data, "internal_domains": {str(data["executive"]).rsplit("@", 1)[1]}}
        return data

    @field_validator("executive")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip().lower()
        if "@" not in value:
            raise ValueError("not an email address")
        return value

    @field_validator("internal_domains", "vips", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(v).strip().lower().lstrip("@") for v in value)
        return value

    @field_validator("auto_reply_category")
    @classmethod
    def _quiet(cls, value: Category) -> Category:
        if value not in (Category.NOTIFY, Category.IGNORE):
            raise ValueError("auto-replies can only be notify or ignore")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone: {value!r}") from None
        return value

    def _lookups(self) -> _Derived:
        # Derived from the fields on first use and rebuilt if model_copy(update=...) swapped
        # them: model_copy skips validation, so nothing computed at init can be trusted.
        derived = self._derived
        if (
            derived is None
            or derived.domains is not self.internal_domains
            or derived.people is not self.people
        ):
            derived = _Derived.build(self.internal_domains, self.people)
            self._derived = derived
        return derived

    @classmethod
    def from_config(
        cls,
        config: TriageRulesConfig,
        *,
        executive: str,
        timezone: str = "UTC",
        internal_domains: frozenset[str] | set[str] = frozenset(),
        people: dict[str, str] | None = None,
    ) -> TriageContext:
        """Context from the admin's YAML plus what the deployment knows about the mailbox."""
        directory = dict(people or {})
        for vip in config.vips:
            if vip.name:
                directory.setdefault(vip.address, vip.name)
        return cls(
            executive=executive,
            internal_domains=frozenset(internal_domains) | frozenset(config.internal_domains),
            vips=frozenset(v.address for v in config.vips),
            people=directory,
            timezone=timezone,
            rules=config.rules,
            auto_reply_category=config.auto_replies,
        )

    def is_internal(self, domain: str) -> bool:
        """The organisation's own: an internal domain, its parent, siblings or children."""
        return same_organisation(domain, self.internal_domains)

    def impersonates(self, display_name: str, address: str) -> tuple[str, bool] | None:
        """(reason, strong) when an external sender's name borrows a known identity."""
        lookups = self._lookups()
        lowered = display_name.lower()
        local_part = address.split("@", 1)[0]
        if lookups.own_address.search(lowered):
            return "display name carries an internal address", True
        owners = lookups.names.get(_fold(display_name))
        if owners and address.lower() not in owners:
            return f"display name {display_name!r} belongs to another address", True
        for brand, pattern in lookups.brands:
            if pattern.search(lowered) or pattern.search(local_part):
                return f"sender name uses the organisation's name {brand!r}", False
        return None


# --------------------------------------------------------------------------- signals


@dataclass(frozen=True)
class MessageSignals:
    """What the rules noticed about one message; later stages may use it as input."""

    sender: str
    domain: str
    external: bool
    vip: bool
    has_deadline: bool
    obligation: bool
    injection: str | None
    phishing: tuple[RuleId, str] | None
    auth: AuthVerdict | None = None

    def flags(self) -> TriageFlags:
        return TriageFlags(
            phishing=self.phishing is not None,
            external=self.external,
            has_deadline=self.has_deadline,
            prompt_injection=self.injection is not None,
        )


@dataclass(frozen=True)
class _Text:
    raw: str  # head of the body as written (case matters for calendars and shouting)
    subject: str  # the rest are lower-cased
    body: str
    fresh: str  # the body above the first quoted reply
    raw_fresh: str  # the same, as written
    full: str  # subject and body


def _text_of(message: EmailMessage) -> _Text:
    raw = message.text[:MAX_SCAN]
    if not raw.strip() and message.html:
        raw = lex.TAG.sub(" ", message.html[: MAX_SCAN * 2])[:MAX_SCAN]
    quote = lex.QUOTE_START.search(raw)
    fresh = raw[: quote.start()] if quote else raw
    subject = _lower(message.subject or "")
    body = _lower(raw)
    return _Text(
        raw=raw,
        subject=subject,
        body=body,
        fresh=_lower(fresh),
        raw_fresh=fresh,
        full=f"{subject}\n{body}",
    )


def _lower(text: str) -> str:
    # Curly apostrophes would defeat "i'm" and "won't" in every pattern.
    return text.lower().replace("\u2019", "'")


def _phishing(
    message: EmailMessage,
    text: _Text,
    ctx: TriageContext,
    domain: str,
    external: bool,
    auth: AuthVerdict | None,
) -> tuple[RuleId, str] | None:
    if domain and ctx.is_internal(domain):
        if auth is not None and auth.failed:
            # The organisation's own server says this did not come from the organisation.
            return RuleId.PHISHING_SPOOFED, (
                f"claims to be from {domain}, but our mail server's checks failed "
                f"({auth.describe()})"
            )
        return None
    if not external:
        return None
    similar = lookalike(domain, ctx.internal_domains)
    if similar and similar[1]:
        return RuleId.PHISHING_LOOKALIKE, similar[0]
    for addr in message.reply_to:
        reply_reason = lookalike_reason(addr.domain, ctx.internal_domains)
        if reply_reason:
            return RuleId.PHISHING_LOOKALIKE, f"reply-to: {reply_reason}"
    provider = lookalike(domain, lex.MAILBOX_PROVIDERS, typos=False)
    if provider and provider[1]:
        # "hotmail-net.example" is nobody's mailbox provider: a sender hiding behind one.
        return RuleId.PHISHING_PROVIDER, provider[0].replace(
            "embeds the name", "embeds the mail provider's name"
        )
    impersonation = None
    if message.sender is not None:
        impersonation = ctx.impersonates(message.sender.name or "", message.sender.address)
    if impersonation and impersonation[1]:
        return RuleId.PHISHING_IMPERSONATION, impersonation[0]
    # What the text asks for is never enough alone: news articles, security bulletins and
    # colleagues forwarding a scam all use these words. It counts with a fact about the
    # sender (failed authentication, a borrowed name, replies diverted elsewhere).
    link = lex.LINK.search(text.body) is not None
    lure = lex.CREDENTIAL_LURE.search(text.full) or lex.PAYMENT_LURE.search(text.full)
    fee = lex.ADVANCE_FEE.search(text.full)
    sender_facts: list[str] = [similar[0]] if similar else []
    if impersonation:
        sender_facts.append(impersonation[0])
    # Same registrable domain (news.shop.example -> shop.example) is the same organisation.
    if any(
        registrable(a.domain) != registrable(domain) and not ctx.is_internal(a.domain)
        for a in message.reply_to
    ):
        sender_facts.append("replies go to another domain")
    if auth is not None and auth.failed:
        sender_facts.append(f"the sender's domain failed authentication ({auth.describe()})")
    # Weak: lets a lure or bait count, never decides alone nor as a second fact.
    suffix = domain.rsplit(".", 1)[-1] if domain else ""
    weak_facts = (
        [
            f"the sender's domain is under .{suffix}, a top-level domain abuse trackers rank "
            "among the most abused"
        ]
        if suffix in lex.ABUSED_TLDS
        else []
    )
    facts = sender_facts + weak_facts
    if not facts:
        return _scam(message, text, ctx, lure, link)
    if lure and link:
        return RuleId.PHISHING_LURE, (
            f"asks for credentials or money ({lure.group(0)!r}) with a link, and "
            + "; ".join(facts)
        )
    if fee and (link or lure):
        return RuleId.PHISHING_ADVANCE_FEE, (
            f"prize or inheritance bait ({fee.group(0)!r}), and " + "; ".join(facts)
        )
    if len(sender_facts) >= 2:
        return RuleId.PHISHING_COMBINED, "; ".join(sender_facts)
    return None


def _scam(
    message: EmailMessage,
    text: _Text,
    ctx: TriageContext,
    lure: re.Match[str] | None,
    link: bool,
) -> tuple[RuleId, str] | None:
    """Scam text from a stranger, with no fact about the sender: all three of scam bait
    (an inheritance, a lottery), a credential or payment lure and a link, in unsolicited
    mail. Each alone is in news, security bulletins and forwarded warnings; warnings come
    as list mail or with an unsubscribe footer, forwards from colleagues or in a thread."""
    bait = lex.SCAM_BAIT.search(text.full)
    if bait is None or lure is None or not link:
        return None
    sender = message.sender.address.lower() if message.sender else ""
    solicited = (
        bool(message.in_reply_to or message.references)
        or sender in ctx.vips
        or sender in ctx.people
    )
    listed = bool(message.list_unsubscribe or message.list_id) or (
        (message.precedence or "").strip().lower() in ("bulk", "list")
    )
    if solicited or listed or lex.BULK_FOOTER.search(text.body) is not None:
        return None
    return RuleId.PHISHING_SCAM, (
        f"unsolicited mail from a stranger with scam bait ({bait.group(0)!r}), a request "
        f"for credentials or money ({lure.group(0)!r}) and a link"
    )


def _injection(message: EmailMessage, text: _Text) -> str | None:
    found = lex.INJECTION.search(text.full)
    if found is None and message.html:
        # Hidden HTML (white-on-white, display:none) is where injections like to hide.
        found = lex.INJECTION.search(_lower(lex.TAG.sub(" ", message.html[: MAX_SCAN * 2])))
    return found.group(0) if found else None


def _analyze(message: EmailMessage, ctx: TriageContext) -> tuple[MessageSignals, _Text]:
    text = _text_of(message)
    sender = message.sender.address if message.sender else ""
    domain = message.sender.domain if message.sender else ""
    auth = parse_authentication(message.headers)
    external = not (domain and ctx.is_internal(domain))
    head = f"{text.subject}\n{text.fresh}"
    injection = _injection(message, text)
    phishing = _phishing(message, text, ctx, domain, external, auth)
    if phishing is not None and phishing[0] is RuleId.PHISHING_SPOOFED:
        external = True  # forged: nothing from inside about it
    if phishing is None and injection is not None and external:
        # Instructions to an AI from outside are an attack on the mailbox, not mail.
        phishing = RuleId.INJECTION, f"an outside sender instructs an AI: {injection[:80]!r}"
    signals = MessageSignals(
        sender=sender,
        domain=domain,
        external=external,
        vip=sender in ctx.vips,
        has_deadline=lex.DEADLINE.search(head) is not None,
        obligation=lex.OBLIGATION.search(head) is not None,
        injection=injection,
        phishing=phishing,
        auth=auth,
    )
    return signals, text


# --------------------------------------------------------------------------- calendar


def _calendar_method(message: EmailMessage, text: _Text) -> str | None:
    """The iTIP method of an attached invitation ('' if none is named); None: no calendar."""
    found = None
    content_type = message.headers.get("content-type", "")
    if "text/calendar" in content_type.lower():
        m = lex.CT_METHOD.search(content_type)
        found = m.group(1).upper() if m else ""
    for att in message.attachments:
        name = (att.filename or "").lower()
        if att.content_type.lower().startswith(
            ("text/calendar", "application/ics")
        ) or name.endswith(".ics"):
            m = lex.CT_METHOD.search(att.content_type)
            found = m.group(1).upper() if m else (found or "")
    if "BEGIN:VCALENDAR" in text.raw:
        m = lex.ICS_METHOD.search(text.raw)
        found = m.group(1) if m else (found or "")
    return found


def _meeting(message: EmailMessage, text: _Text, ctx: TriageContext) -> MeetingConstraints:
    times: dict[str, datetime] = {}
    zone_name: str | None = None
    for kind, value in lex.ICS_DT.findall(text.raw):
        try:
            stamp = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
        except ValueError:
            continue
        # Times without Z are read in the executive's zone; TZID parameters are not parsed.
        name = "UTC" if value.endswith("Z") else ctx.timezone
        if kind not in times:
            times[kind] = stamp.replace(tzinfo=UTC if name == "UTC" else ZoneInfo(name))
            zone_name = zone_name or name
    start, end = times.get("DTSTART"), times.get("DTEND")
    duration = int((end - start).total_seconds() // 60) if start and end and end > start else None
    return MeetingConstraints(
        participants=[a.address for a in message.participants],
        duration_minutes=duration,
        window_start=start,
        window_end=end,
        timezone=zone_name,
    )


# --------------------------------------------------------------------------- engine


class RuleTriage:
    """The rule engine. Pure: a decision depends only on the message and the context."""

    def decide(self, message: EmailMessage, context: TriageContext) -> TriageResult | None:
        """A confident decision, or None to hand the message to the next stage."""
        return self.evaluate(message, context)[0]

    def evaluate(
        self, message: EmailMessage, context: TriageContext
    ) -> tuple[TriageResult | None, MessageSignals]:
        """The decision (or None) together with the signals it was made from."""
        signals, text = _analyze(message, context)
        result = self._decide(message, context, signals, text)
        if result is not None and signals.vip and result.category is not Category.IGNORE:
            result = result.model_copy(update={"priority": result.priority.raised()})
        return result, signals

    def signals(self, message: EmailMessage, context: TriageContext) -> MessageSignals:
        """What the rules notice about a message, for stages that decide after them."""
        return _analyze(message, context)[0]

    def undecided(
        self,
        message: EmailMessage,
        context: TriageContext,
        *,
        reason: str = "no rule was confident; a person decides",
        signals: MessageSignals | None = None,
    ) -> TriageResult:
        """The result for mail no stage could decide: no category, routed to a person."""
        signals = signals or _analyze(message, context)[0]
        return TriageResult(
            message_id=message.id,
            category=None,
            priority=Priority.HIGH if signals.vip else Priority.NORMAL,
            flags=signals.flags(),
            summary=_summary(message),
            reason=reason,
            provenance=Provenance(stage="rule", rule_id=RuleId.UNDECIDED),
            confidence=0.0,
            needs_human=True,
        )

    def complete(
        self,
        result: TriageResult,
        message: EmailMessage,
        context: TriageContext,
        *,
        signals: MessageSignals | None = None,
    ) -> TriageResult:
        """Fold the rules' facts into a later stage's result: flags OR-ed, VIPs raised."""
        signals = signals or _analyze(message, context)[0]
        flags = result.flags.model_copy(
            update={
                "external": signals.external,
                "has_deadline": result.flags.has_deadline or signals.has_deadline,
            }
        )
        priority = result.priority
        if signals.vip and result.category is not Category.IGNORE and not flags.phishing:
            priority = priority.raised()
        return result.model_copy(
            update={"message_id": message.id, "flags": flags, "priority": priority}
        )

    # ----------------------------------------------------------------- internals

    def _decide(
        self, message: EmailMessage, ctx: TriageContext, s: MessageSignals, text: _Text
    ) -> TriageResult | None:
        def result(
            category: Category,
            priority: Priority,
            rule_id: str,
            reason: str,
            confidence: float,
            **extra: Any,
        ) -> TriageResult:
            return TriageResult(
                message_id=message.id,
                category=category,
                priority=priority,
                flags=s.flags(),
                summary=_summary(message),
                reason=reason,
                provenance=Provenance(stage="rule", rule_id=str(rule_id)),
                confidence=confidence,
                **extra,
            )

        if s.phishing is not None:
            rule_id, why = s.phishing
            # Reporting is the only action, and it is the rule's, not the content's.
            return result(
                Category.IGNORE,
                Priority.HIGH,
                rule_id,
                f"likely phishing: {why}",
                0.9,
                requested_actions=["report_phishing"],
                needs_human=s.injection is not None,
            )
        if s.injection is not None:
            # From inside (a colleague forwarding or discussing one): nothing in it may drive
            # an action, so a person reviews it and the category never asks for a reply.
            return result(
                Category.NOTIFY,
                Priority.NORMAL,
                RuleId.INJECTION,
                f"text tries to instruct an AI assistant: {s.injection[:80]!r}",
                0.9,
                needs_human=True,
            )

        for rule in ctx.rules:
            if rule.matches(s.sender, s.domain, message.subject or ""):
                note = f": {rule.description}" if rule.description else ""
                return result(
                    rule.category,
                    rule.priority,
                    f"admin:{rule.id}",
                    f"admin rule {rule.id}{note}",
                    1.0,
                )

        method = _calendar_method(message, text)
        if method is not None:
            if method in ("", "REQUEST", "ADD", "PUBLISH"):
                return result(
                    Category.SCHEDULE,
                    Priority.NORMAL,
                    RuleId.CALENDAR_REQUEST,
                    "calendar invitation attached",
                    0.95,
                    requested_actions=["respond_to_invitation"],
                    meeting=_meeting(message, text, ctx),
                )
            priority = Priority.NORMAL if method == "CANCEL" else Priority.LOW
            return result(
                Category.NOTIFY,
                priority,
                RuleId.CALENDAR_UPDATE,
                f"calendar {method.lower()}: nothing to answer",
                0.95,
            )

        auto = (message.auto_submitted or "").strip().lower()
        auto_reply = self._auto_reply(message, text, auto)
        if auto_reply is not None:
            return result(
                ctx.auto_reply_category,
                Priority.LOW,
                RuleId.AUTO_REPLY,
                f"automatic reply ({auto_reply})",
                0.95,
            )

        precedence = (message.precedence or "").strip().lower()
        if message.folder.lower() in JUNK_FOLDERS or precedence == "junk":
            return result(
                Category.IGNORE,
                Priority.LOW,
                RuleId.BULK_JUNK,
                "in the junk folder or marked Precedence: junk",
                0.95,
            )
        listed = bool(message.list_unsubscribe or message.list_id) or precedence in ("bulk", "list")
        # Internal lists (team aliases, announcements) can carry real requests: not decided.
        if listed and s.external and not s.obligation:
            return result(
                Category.IGNORE, Priority.LOW, RuleId.BULK_HEADERS, "bulk mail (list headers)", 0.95
            )

        local = s.sender.split("@", 1)[0]
        if (
            s.external
            and not s.obligation
            and lex.MARKETING_LOCAL.fullmatch(local)
            and (
                lex.BULK_FOOTER.search(text.body) is not None
                or any(h in message.headers for h in lex.ESP_HEADERS)
                or _via_mailing_platform(message, s.domain)
            )
        ):
            return result(
                Category.IGNORE,
                Priority.LOW,
                RuleId.BULK_MARKETING,
                "marketing sender with an unsubscribe footer",
                0.9,
            )

        automated = (
            auto.startswith("auto-generated")
            or lex.NO_REPLY_LOCAL.fullmatch(local)
            or "x-auto-response-suppress" in message.headers
        )
        if automated and not s.obligation and not s.has_deadline:
            priority = Priority.NORMAL if lex.ALERT_SUBJECT.search(text.subject) else Priority.LOW
            return result(
                Category.NOTIFY, priority, RuleId.AUTOMATED, "automated notification", 0.85
            )

        in_thread = bool(message.in_reply_to or message.references)
        known_sender = s.vip or s.sender in ctx.people
        footer = lex.BULK_FOOTER.search(text.body)
        # The footer the law requires of bulk mail, on unsolicited mail from outside that
        # asks nothing by a date: a mailing. A reply in a thread or a known sender is
        # correspondence even when a signature carries such a line.
        if (
            footer is not None
            and s.external
            and not (in_thread or known_sender or automated)
            and not (s.obligation or s.has_deadline)
        ):
            return result(
                Category.IGNORE,
                Priority.LOW,
                RuleId.BULK_FOOTER,
                f"unsolicited bulk mail: it carries a mailing list's footer "
                f"({footer.group(0).strip()!r})",
                0.9,
            )

        request = detect_meeting_request(
            message.subject or "", text.raw_fresh, timezone=ctx.timezone, sent=message.date
        )
        # From a stranger, "can we hop on a call Tuesday?" is as often a sales opening as a
        # meeting the executive wants: the rules decide only for colleagues, known people
        # and replies in a thread the executive is part of.
        known = not s.external or known_sender or in_thread
        if request is not None and request.confident and known and not automated:
            return result(
                Category.SCHEDULE,
                Priority.NORMAL,
                RuleId.MEETING_TEXT,
                f"asks to meet: {request.evidence}",
                0.9,
                requested_actions=["propose_meeting_times"],
                meeting=MeetingConstraints(
                    participants=[a.address for a in message.participants],
                    duration_minutes=request.duration_minutes,
                    window_description=request.window_description,
                    window_start=request.window_start,
                    window_end=request.window_end,
                    timezone=request.timezone,
                ),
            )
        return self._colleague(message, ctx, s, text, automated=bool(automated), listed=listed)

    @staticmethod
    def _colleague(
        message: EmailMessage,
        ctx: TriageContext,
        s: MessageSignals,
        text: _Text,
        *,
        automated: bool,
        listed: bool,
    ) -> TriageResult | None:
        """A colleague writing to the executive in person: a question put to her wants an
        answer; a note that says nothing is expected of her is for her information.

        Only from the organisation's own domains (a stranger's "can you confirm by 4pm?"
        is as often a sales push or a fraud as a real question), to her directly (on copy,
        the question is someone else's), from a person (not a no-reply or list address).
        Abstains when the text also asks for credentials or money: a colleague's account
        asking for those is how a compromised mailbox behaves, and a person looks.
        """
        addressed = any(a.address.lower() == ctx.executive for a in message.to)
        if s.external or not addressed or automated or listed:
            return None
        if lex.CREDENTIAL_LURE.search(text.full) or lex.PAYMENT_LURE.search(text.full):
            return None
        question = lex.QUESTION_TO_YOU.search(text.fresh)
        if question is not None:
            # Offsets are the lower-cased text's; as written when lower-casing kept them.
            written = text.raw_fresh if len(text.raw_fresh) == len(text.fresh) else text.fresh
            return TriageResult(
                message_id=message.id,
                category=Category.RESPOND,
                priority=Priority.HIGH if s.has_deadline else Priority.NORMAL,
                flags=s.flags(),
                summary=_summary(message),
                reason="someone at your organisation asks you directly: "
                f"{_sentence(written, question)!r}",
                provenance=Provenance(stage="rule", rule_id=RuleId.COLLEAGUE_QUESTION),
                confidence=0.85,
                requested_actions=["reply"],
            )
        told = lex.NO_ACTION_NEEDED.search(f"{text.subject}\n{text.fresh}")
        if told is not None and not s.has_deadline:
            return TriageResult(
                message_id=message.id,
                category=Category.NOTIFY,
                priority=Priority.LOW,
                flags=s.flags(),
                summary=_summary(message),
                reason="a note from your organisation that says nothing is expected of you "
                f"({told.group(0).strip()!r})",
                provenance=Provenance(stage="rule", rule_id=RuleId.COLLEAGUE_NO_ACTION),
                confidence=0.85,
            )
        return None

    @staticmethod
    def _auto_reply(message: EmailMessage, text: _Text, auto: str) -> str | None:
        """Why the message is an automatic reply, or None."""
        if auto.startswith("auto-replied"):
            return f"Auto-Submitted: {auto}"
        for header in ("x-autoreply", "x-autorespond"):
            if header in message.headers:
                return f"the {header} header"
        # Without headers, only the label servers write counts, on the subject or as the
        # first line of the text: a person's "Out of the office" note, or one saying they
        # are away, is mail to read.
        found = lex.AUTO_REPLY_SUBJECT.match(text.subject)
        if found:
            return f"the subject starts with {found.group(0).strip()!r}"
        found = lex.AUTO_REPLY_SUBJECT.match(text.fresh)
        if found:
            return f"the text opens with {found.group(0).strip()!r}"
        return None


def _via_mailing_platform(message: EmailMessage, domain: str) -> bool:
    """Sent through a bulk-mail platform: the From or the envelope sender is on its domain."""
    senders = [domain]
    for header in ("return-path", "sender"):
        value = message.headers.get(header, "")
        if "@" in value:
            senders.append(value.rsplit("@", 1)[1].strip(" <>").lower())
    return any(registrable(d) in lex.ESP_DOMAINS for d in senders if d)


def _sentence(text: str, found: re.Match[str]) -> str:
    """The whole sentence around a match, as written, on one line, at most 200 characters."""
    start = max(text.rfind(stop, 0, found.start()) for stop in (".", "?", "!", "\n")) + 1
    return " ".join(text[start : found.end()].split())[:200]


def _summary(message: EmailMessage) -> str:
    subject = " ".join((message.subject or "").split()) or "(no subject)"
    who = (message.sender.name or message.sender.address) if message.sender else "unknown sender"
    return f"{who}: {subject}"
