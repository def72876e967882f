"""Compiled lexicons of the triage rules. Every text they see is already lower-cased.

Only signals that hold in any organisation's mail live here: no phrase copied from an
evaluation corpus. tests/unit/triage/test_patterns.py gives every pattern, and every
alternative of a guarded pattern, a positive and a negative example of its own.

Python's ``re`` tries every branch of an alternation at every position, so each pattern
carries trigger substrings: literals one of which any match must contain. ``in`` on a str
is a fast C scan, so on most mail most patterns never run. Tests pin each pattern's
positive examples, which is what keeps the triggers honest.
"""

from __future__ import annotations

import re


class Rx:
    """A regex that runs only when one of its trigger substrings occurs in the text."""

    __slots__ = ("flags", "parts", "pattern", "triggers")

    def __init__(self, triggers: tuple[str, ...], *parts: str, flags: int = 0) -> None:
        self.triggers = triggers
        self.parts = parts  # each alternative, kept so that tests can pin every one
        self.flags = flags
        self.pattern = re.compile("|".join(f"(?:{p})" for p in parts), flags)

    def triggered(self, text: str) -> bool:
        # A plain loop: a generator inside any() costs more than the scans themselves.
        for trigger in self.triggers:
            if trigger in text:
                return True
        return not self.triggers

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.triggered(text) else None

    def findall(self, text: str) -> list[str]:
        return [m.group(0) for m in self.pattern.finditer(text)] if self.triggered(text) else []


class AnyRx:
    """The first match of several guarded patterns."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Rx) -> None:
        self.parts = parts

    def search(self, text: str) -> re.Match[str] | None:
        for part in self.parts:
            found = part.search(text)
            if found:
                return found
        return None


# --------------------------------------------------------------------------- deadlines

_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_TIME = r"\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|\d{1,2}:\d{2}|noon|midnight"

DEADLINE = AnyRx(
    Rx(
        ("deadline", "no later than", "close of business"),
        r"\bdeadline\b",
        r"\bno later than\b",
        r"\bclose of business\b",
    ),
    Rx(
        ("due",),
        r"\bdue\s+(?:by|on|date|today|tomorrow|tonight|" + _WEEKDAY + "|" + _MONTH + r"\s*\d|\d)",
    ),
    Rx(("eod", "eow", "cob", "eob"), r"\b(?:eod|eow|cob|eob)\b"),
    Rx(("end of",), r"\bend of (?:the )?(?:day|week|month|quarter|business)\b"),
    Rx(
        ("by ",),
        r"\bby (?:this |next )?(?:" + _WEEKDAY + r"|today|tonight|tomorrow|" + _TIME + r")\b",
        r"\bby " + _MONTH + r"\s*\d{1,2}\b",
        r"\bby (?:the )?\d{1,2}(?:st|nd|rd|th)\b",
    ),
    Rx(("before ",), r"\bbefore (?:" + _TIME + r")\b"),
    Rx(("within ",), r"\bwithin (?:the next )?\d+\s*(?:hours?|hrs?|days?|business days)\b"),
)

# Asking the reader to do something, with consequences: an automated mail that says this
# is not a plain notification, and the rules leave it to the next stage.
OBLIGATION = AnyRx(
    Rx(
        ("required", "mandatory", "must", "failure to", "to avoid", "past due", "overdue", "rsvp"),
        r"\brequired\b",
        r"\bmandatory\b",
        r"\bmust\b",
        r"\bfailure to\b",
        r"\bto avoid\b",
        r"\bpast due\b",
        r"\boverdue\b",
        r"\brsvp\b",
    ),
    Rx(
        ("will ",),
        r"\bwill (?:be )?(?:suspended|cancell?ed|terminated|restricted|closed|"
        r"deactivated)\b",
    ),
    Rx(
        ("please ", "confirm "),
        r"\bplease (?:confirm|rsvp|respond|reply|renew|review|approve|"
        r"sign|complete|pay)\b",
        r"\bconfirm (?:your|by|attendance)\b",
    ),
)

# --------------------------------------------------------------------------- injection

INJECTION = AnyRx(
    Rx(
        ("ignore", "disregard", "forget", "override"),
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+|"
        r"my\s+)?(?:previous|prior|above|earlier|preceding|system|original|existing)\s+"
        r"(?:instructions?|prompts?|directions|directives|rules|guidelines|context)",
    ),
    # A salutation to an AI, closed by punctuation: "Dear AI assistant," "Note to the bot:".
    Rx(
        (" ai", "a.i.", "llm", "gpt", "copilot", "language model", "assistant", "bot"),
        r"\b(?:dear|hey|hi|hello|attention|note (?:to|for)|message (?:to|for)|instructions? "
        r"(?:to|for))[ \t,:]+(?:the )?(?:ai|a\.i\.|llm|gpt|chatgpt|copilot|language model|"
        r"(?:ai|email|e-mail|virtual|executive|digital) (?:assistant|agent)|assistant|bot)"
        r"[ \t]*[,:;!.\n-]",
    ),
    Rx(
        ("if you are a",),
        r"\bif you are an? (?:ai|a\.i\.|llm|language model|"
        r"(?:ai |email |virtual )?assistant|bot)\b",
    ),
    Rx(
        (
            "reading this",
            "processing this",
            "summarizing this",
            "summarising this",
            "handling this",
            "triaging this",
        ),
        r"\b(?:ai|llm|language model|automated) (?:assistant|agent|system|model)s? "
        r"(?:reading|processing|summari[sz]ing|handling|triaging) this\b",
    ),
    Rx(
        ("forward ",),
        r"\bforward (?:all|every|each|any|the last \d+)\b.{0,40}?\b(?:e-?mails?|"
        r"messages|mail|correspondence|inbox|attachments|documents)\b",
    ),
    Rx(
        ("prompt", "instructions"),
        r"\b(?:reveal|print|output|repeat|show)\b.{0,20}\b(?:your|the) system prompt\b",
        r"\b(?:reveal|print|output|repeat) (?:me )?your (?:system )?(?:prompt|instructions)\b",
        r"\bnew (?:system )?instructions\s*:",
    ),
    Rx(
        ("do not ",),
        r"\bdo not (?:tell|inform|notify|alert|mention (?:this )?to) (?:the )?"
        r"(?:user|recipient|your (?:user|principal|boss|owner|executive))\b",
    ),
    Rx(
        ("<|", "[inst", "[/inst", "##"),
        r"<\|?(?:system|im_start|im_end|endoftext)\|?>|\[/?inst\]",
        r"^#{2,}\s*(?:system|instructions?)\b",
        flags=re.MULTILINE,
    ),
)

# --------------------------------------------------------------------------- phishing

CREDENTIAL_LURE = AnyRx(
    Rx(
        ("verify", "confirm", "validate", "update", "restore", "reactivate", "unlock"),
        r"\b(?:verify|confirm|validate|update|restore|reactivate|unlock)\s+(?:your\s+)?(?:account|"
        r"identity|credentials|password|login|mailbox|email|payment (?:details|information))\b",
    ),
    Rx(
        (
            "suspended",
            "locked",
            "disabled",
            "flagged",
            "compromised",
            "on hold",
            "deactivated",
            "restricted",
        ),
        r"\baccount\b.{0,30}\b(?:suspended|locked|disabled|flagged|compromised|on hold|"
        r"deactivated|restricted)\b",
        r"\b(?:suspended|locked|disabled|flagged|compromised)\b.{0,30}\baccount\b",
    ),
    Rx(("unusual",), r"\bunusual (?:sign-?in|login|activity)\b"),
    Rx(("password",), r"\bpassword (?:expires|expired|will expire|reset required)\b"),
)
PAYMENT_LURE = AnyRx(
    Rx(
        (
            "wire transfer",
            "gift card",
            "giftcard",
            "routing number",
            "processing fee",
            "social security number",
            "western union",
            "bitcoin wallet",
        ),
        r"\bwire transfer\b",
        r"\bgift ?cards?\b",
        r"\brouting number\b",
        r"\bprocessing fee\b",
        r"\bsocial security number\b",
        r"\bwestern union\b",
        r"\bbitcoin wallet\b",
    ),
    Rx(
        ("bank", "account ", "payment "),
        r"\b(?:bank(?:ing)?|account|payment) (?:details|information|info|routing)\b",
    ),
    Rx(("ssn",), r"\bssn\b"),
    Rx(("overdue", "past due"), r"\b(?:invoice|payment|balance)\b.{0,40}\b(?:overdue|past due)\b"),
    Rx(("settle",), r"\bsettle (?:the |your )?(?:balance|invoice|payment|account)\b"),
)
ADVANCE_FEE = Rx(
    (
        "inheritance",
        "sweepstake",
        "lottery",
        "grand prize",
        "prize ",
        "unclaimed ",
        "dormant ",
        "trust ",
        "beneficiary",
        "you have been ",
        "claim your ",
    ),
    r"\binheritance\b",
    r"\bsweepstakes?\b",
    r"\blottery\b",
    r"\bgrand prize\b",
    r"\bprize (?:money|winner|claim)\b",
    r"\bunclaimed (?:funds?|estate|inheritance|prize)\b",
    r"\b(?:dormant|trust) (?:fund|account)\b",
    r"\bbeneficiary\b",
    r"\byou have been (?:selected|chosen)\b",
    r"\bclaim your (?:prize|winnings|funds|reward)\b",
)
# The bait of advance-fee and prize scams: words that honest business mail does not use
# to a stranger. A subset of ADVANCE_FEE without its ambiguous alternatives ("you have been
# selected" for a panel, a "beneficiary" of a pension, a law firm's "trust account"), so that
# together with a credential or payment lure and a link it can stand without a sender fact.
SCAM_BAIT = Rx(
    (
        "inheritance",
        "sweepstake",
        "lottery",
        "grand prize",
        "prize ",
        "unclaimed ",
        "dormant ",
        "claim your ",
    ),
    r"\binheritance\b",
    r"\bsweepstakes?\b",
    r"\blottery\b",
    r"\bgrand prize\b",
    r"\bprize (?:money|winner|claim)\b",
    r"\bunclaimed (?:funds?|estate|inheritance|prize)\b",
    r"\bdormant (?:fund|account)\b",
    r"\bclaim your (?:prize|winnings|funds|reward)\b",
)
LINK = Rx(
    ("http", "hxxp", "www", "click ", "["),
    r"\b(?:https?|hxxps?)\s*:\s*/\s*/",
    r"\bwww\s*\.\s*\w",
    r"\bclick (?:here|below|the link)\b",
    r"\[(?:link|click here|[a-z0-9-]+\.[a-z]{2,}[^\]]*)\]",
)
# The footer that bulk mail carries: a way to unsubscribe (CAN-SPAM, GDPR and CASL make it
# mandatory), the notice that commercial mail is an advertisement (CAN-SPAM), the link to
# the mailing platform's subscription settings, the web copy of the message, and the
# "you are receiving this because" line that mailing platforms add.
BULK_FOOTER = AnyRx(
    Rx(
        ("subscribe", "opt out", "opt-out", "no longer wish to receive", "stop receiving"),
        r"\bun-?subscribe\b",
        r"\bopt[ -]out\b",
        r"\bno longer wish to receive\b",
        r"\bstop receiving (?:these|this|our)\b",
    ),
    Rx(
        ("advertisement", "solicitation"),
        r"\b(?:this|the) (?:e-?mail|message|mailing) is an? (?:advertisement|solicitation)\b",
    ),
    Rx(
        ("preferences", "subscription"),
        r"\b(?:manage|update|change) (?:your )?(?:e-?mail |subscription |communication |"
        r"mailing )?(?:preferences|subscriptions?)\b",
    ),
    Rx(
        ("browser", "web version", "online version"),
        r"\bview (?:this|it|the)(?: e-?mail| message| newsletter)? (?:in|on) (?:your|a|the) "
        r"(?:web )?browser\b",
        r"\b(?:web|online) version\b.{0,40}\b(?:e-?mail|newsletter|message)\b",
    ),
    Rx(
        ("receiving this", "received this"),
        r"\byou (?:are|were|have been) receiving this (?:e-?mail|message|newsletter)\b",
        r"\byou received this (?:e-?mail|message|newsletter) because\b",
    ),
)

# --------------------------------------------------------------------------- asks and tells

# A question put to the reader: a sentence that names "you" and ends in a question mark
# ("Can you review the logs?", "Are you free Friday?", "What does your team need?").
# "Did you know ...?" is a rhetorical opener of newsletters and adverts, not a question.
# A full stop ends a sentence only before a space: "v2.1" and "acme.com" do not.
QUESTION_TO_YOU = Rx(
    ("?",),
    r"(?<!\bdid )\b(?:you|your|yours)\b(?:[^.?!\n]|[.!](?=\S)){0,200}\?",
)
# The writer says that nothing is expected of the reader.
NO_ACTION_NEEDED = AnyRx(
    Rx(
        ("no action", "no response", "no reply", "no need to"),
        r"\bno action (?:is |will be )?(?:needed|required|necessary)\b",
        r"\bno (?:response|reply) (?:is )?(?:needed|required|necessary|expected)\b",
        r"\bno need to (?:reply|respond|do anything|take any action)\b",
    ),
    Rx(("for your information",), r"\bfor your information\b"),
    Rx(("fyi",), r"^\s*(?:fw:|fwd:|re:|\s)*fyi\b"),
)

# --------------------------------------------------------------------------- auto-replies

# Subject prefixes that mail servers (Exchange, Gmail, Dovecot's vacation, Zimbra) put on
# automatic replies, in the languages they ship. A prefix with its colon: a person's note
# titled "Out of the office" is not one.
# Also read at the very start of a body: some servers and clients write the label as the
# first line of the reply's text rather than (or as well as) into the subject; a person
# does not open a message with "Auto-Reply:".
AUTO_REPLY_SUBJECT = re.compile(
    r"\s*(?:automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|abwesenheitsnotiz"
    r"|automatische antwort|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|risposta automatica)\s*:"
)

# --------------------------------------------------------------------------- senders

NO_REPLY_LOCAL = re.compile(
    r"(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|notifications?|notify|alerts?|"
    r"mailer-daemon|postmaster|bounces?|automated|auto-confirm|"
    # Transactional role accounts of shops and services (order and shipping confirmations,
    # receipts): no person reads replies to them.
    r"orders?|receipts?|shipping|shipments?|tracking)(?:[-_.+].*)?"
)
MARKETING_LOCAL = re.compile(
    r"(?:newsletters?|news|marketing|promo(?:s|tions?)?|offers?|deals?|campaigns?|mailer|"
    r"digest|e-?news)(?:[-_.+].*)?"
)
# Sending domains of bulk-mail platforms (Mailchimp, Mandrill, SendGrid, Amazon SES,
# Mailgun, SparkPost, Marketo, Salesforce Marketing Cloud, HubSpot, Campaign Monitor,
# Constant Contact, Brevo, Klaviyo, Mailjet): a message whose envelope sender (or From)
# is on one of them was sent through a mailing platform. Transactional mail (receipts,
# password resets) goes through the same platforms, so this is evidence of bulk mail
# for a marketing sender, never a decision alone.
ESP_DOMAINS = frozenset(
    {
        "mcsv.net",
        "mcdlv.net",
        "rsgsv.net",
        "list-manage.com",
        "mandrillapp.com",
        "sendgrid.net",
        "amazonses.com",
        "mailgun.org",
        "sparkpostmail.com",
        "mktomail.com",
        "exacttarget.com",
        "hubspotemail.net",
        "cmail19.com",
        "cmail20.com",
        "createsend.com",
        "constantcontact.com",
        "sendinblue.com",
        "brevosend.com",
        "klaviyomail.com",
        "mailjet.com",
    }
)
ESP_HEADERS = (
    "x-campaign",
    "x-campaignid",
    "x-mc-user",
    "x-sg-eid",
    "x-mailgun-tag",
    "x-sfmc-stack",
    "x-marketo-id",
    "x-hs-email",
    "feedback-id",
)
# Top-level domains that abuse trackers rank as the most abused, by the share of their
# registered names seen in spam, phishing and malware: Spamhaus's "most abused TLDs"
# (gTLDs, monthly 2016-2018: top, xyz, click, loan, work, men, download, review, date,
# science, accountant, gdn, stream; ccTLDs, 2024: cn, ru, cc) and Interisle's phishing
# landscape 2021-2024 (bond, cfd, cyou, icu, sbs and the former Freenom ccTLDs ga, ml, tk,
# cf, gq). Plenty of honest senders use them, so this is only ever a weak fact about a
# sender: it never decides alone and never counts as one of two sender facts; it lets a
# credential lure with a link, or scam bait, count.
ABUSED_TLDS = frozenset(
    {
        "top",
        "xyz",
        "click",
        "loan",
        "work",
        "men",
        "download",
        "review",
        "date",
        "science",
        "accountant",
        "gdn",
        "stream",
        "cn",
        "ru",
        "cc",
        "bond",
        "cfd",
        "cyou",
        "icu",
        "sbs",
        "ga",
        "ml",
        "tk",
        "cf",
        "gq",
    }
)
# Mailbox providers whose names scams borrow in their own domains (hotmail-net.example,
# gmail-support.example). Only names that no honest company embeds as a word of its
# domain: "yahoo" is left out (Yahoo's own staff wrote from yahoo-inc.com), "outlook" and
# "live" are ordinary words.
MAILBOX_PROVIDERS = frozenset(
    {"gmail.com", "googlemail.com", "hotmail.com", "icloud.com", "protonmail.com"}
)
ALERT_SUBJECT = re.compile(
    r"\b(?:fail(?:ed|ure)?|error|alert|security|incident|outage|down|"
    r"declined|breach|blocked)\b"
)

# --------------------------------------------------------------------------- structure

QUOTE_START = re.compile(
    r"^\s*(?:On .{0,300}?wrote:|-{2,}\s*Original Message|-{2,}\s*Forwarded message"
    r"|From: .{0,200}\n\s*(?:Sent|Date): |>)",
    re.MULTILINE,
)
TAG = re.compile(r"<[^>]{0,2000}>")
ICS_METHOD = re.compile(r"^METHOD:\s*([A-Z-]+)", re.MULTILINE)
CT_METHOD = re.compile(r"method\s*=\s*\"?([a-z-]+)", re.IGNORECASE)
ICS_DT = re.compile(r"^(DTSTART|DTEND)[^:\n]*:(\d{8}T\d{6}Z?)", re.MULTILINE)
