"""Phishing: look-alike domains, borrowed identities, lures. Always ignore/high, never answered."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.triage import Category, Priority, RuleId, RuleTriage, SenderRule, TriageContext
from assistant.triage.lookalike import (
    edit_distance,
    lookalike,
    same_organisation,
    skeleton,
    split_domain,
)
from tests.unit.triage.factory import CONTEXT, decide, message

# Internal: acme.com (short name: no edit distance) and globexcorp.com (long name).
LOOKALIKES: list[tuple[str, bool | None]] = [
    ("acrne.com", True),  # rn for m
    ("\u0430cme.com", True),  # Cyrillic a
    ("xn--cme-5cd.com", True),  # the same, as punycode
    ("acme.co", True),  # confusable suffix
    ("acme-security.com", True),  # name embedded
    ("acme.com.login-check.ru", True),
    ("gl0bexcorp.com", True),  # zero for o
    ("globexcrop.com", True),  # transposition
    ("globexxcorp.com", True),  # insertion
    ("acme.org", False),  # same name, unrelated suffix: weak only
    ("acme.com", None),
    ("eu.acme.com", None),
    ("partner.example", None),
    ("acne.com", None),  # short names have honest neighbours
    ("acmeist.com", None),
    ("globex.com", None),
    ("gmail.com", None),
]


@pytest.mark.parametrize(("domain", "strong"), LOOKALIKES, ids=[d for d, _ in LOOKALIKES])
def test_lookalike_domains(domain: str, strong: bool | None) -> None:
    found = lookalike(domain, frozenset(CONTEXT.internal_domains))
    assert (found[1] if found else None) is strong


def test_lookalike_helpers() -> None:
    assert split_domain("mail.acme.co.uk") == ("acme", "co.uk")
    assert skeleton("paypa1") == skeleton("paypal") == skeleton("PAYPAI".lower())
    assert edit_distance("globexcorp", "globexcrop", 2) == 1
    assert edit_distance("abc", "xyz", 1) == 2  # stops early, above the limit


PHISHING_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "look-alike sender",
        {"sender": "IT Desk <it@acrne.com>", "text": "New policy attached."},
        RuleId.PHISHING_LOOKALIKE,
    ),
    (
        "look-alike reply-to",
        {"reply_to": ["billing@acme-payments.com"], "text": "Invoice."},
        RuleId.PHISHING_LOOKALIKE,
    ),
    (
        "internal person's name, outside address",
        {"sender": "Jane Doe <jane.doe.acme@gmail.com>", "text": "Are you at your desk?"},
        RuleId.PHISHING_IMPERSONATION,
    ),
    (
        "VIP's name, another address",
        {"sender": "Ada Lovelace <ada.l@outlook.com>", "text": "Quick favour."},
        RuleId.PHISHING_IMPERSONATION,
    ),
    (
        "internal address in the display name",
        {"sender": '"jane.doe@acme.com" <x@mailer.example>', "text": "See attached."},
        RuleId.PHISHING_IMPERSONATION,
    ),
    (
        "credential lure with link",
        {
            "sender": "Security <sec@mail-service.example>",
            "subject": "Account suspended",
            "text": "Your account has been suspended. Verify your account at https://x.example/login",
            "headers": {
                "authentication-results": "mx.acme.com; spf=fail smtp.mailfrom=mail-service.example"
                "; dkim=none; dmarc=fail header.from=mail-service.example"
            },
        },
        RuleId.PHISHING_LURE,
    ),
    (
        "payment lure with link",
        {
            "sender": "Billing <billing@invoices.example>",
            "subject": "Overdue",
            "text": "Invoice INV-1 is now overdue. Click here to settle the balance.",
            "reply_to": ["pay@collections.example"],
        },
        RuleId.PHISHING_LURE,
    ),
    (
        "gift cards",
        {
            "sender": "Jane Doe <boss.private@protonmail.com>",
            "text": "Buy gift cards for the team, send codes: www.example.com",
        },
        RuleId.PHISHING_IMPERSONATION,
    ),
    (
        "advance fee",
        {
            "sender": "Dr X <x@trust.example>",
            "subject": "Inheritance",
            "text": "You are the beneficiary of an unclaimed inheritance. "
            "Reply with your bank details.",
            "reply_to": ["x@claims.example"],
        },
        RuleId.PHISHING_ADVANCE_FEE,
    ),
    (
        "prize with link",
        {
            "sender": "Prizes <p@win.example>",
            "text": "Congratulations, you have been selected as grand prize "
            "winner! http://claim.example",
            "headers": {
                "authentication-results": "mx.acme.com; spf=softfail smtp.mailfrom=win.example;"
                " dkim=fail header.d=win.example"
            },
        },
        RuleId.PHISHING_ADVANCE_FEE,
    ),
    (
        "brand in name, reply-to elsewhere",
        {
            "sender": "ACME Payroll <payroll@hr-portal.example>",
            "reply_to": ["a@other.example"],
            "text": "Please review the attached payslip.",
        },
        RuleId.PHISHING_COMBINED,
    ),
    (
        "own domain, forged: our server's DMARC check failed",
        {
            "sender": "CFO <cfo@acme.com>",
            "text": "Wire the payment today.",
            "headers": {
                "authentication-results": "mx.acme.com; spf=fail smtp.mailfrom=evil.example;"
                " dkim=none; dmarc=fail (p=reject) header.from=acme.com"
            },
        },
        RuleId.PHISHING_SPOOFED,
    ),
    # Negatives.
    (
        "own domain, authentication passed",
        {
            "sender": "CFO <cfo@acme.com>",
            "text": "Wire the payment today: https://bank.example",
            "headers": {
                "authentication-results": "mx.acme.com; spf=pass smtp.mailfrom=acme.com;"
                " dkim=pass header.d=acme.com; dmarc=pass header.from=acme.com"
            },
        },
        None,
    ),
    (
        "forwarded news article about a breach, with a link",
        {
            "sender": "Reuters Alerts <alerts@news.example>",
            "subject": "Bank accounts suspended after breach",
            "text": "Thousands of accounts were suspended. Customers were told to verify "
            "your account details. Read more: https://news.example/story",
        },
        None,
    ),
    (
        "payment lure and link, nothing wrong with the sender",
        {
            "sender": "Billing <billing@invoices.example>",
            "subject": "Overdue",
            "text": "Invoice INV-1 is now overdue. Click here to settle the balance.",
        },
        None,
    ),
    (
        "same lure from inside",
        {
            "sender": "it@acme.com",
            "subject": "Password",
            "text": "Your password expires in 3 days: https://sso.acme.com",
        },
        None,
    ),
    (
        "name collision, different person",
        {"sender": "Jane Smith <jane@gmail.com>", "text": "Lunch?"},
        None,
    ),
    (
        "the VIP from their own address",
        {"sender": "Ada Lovelace <chair@board.example.org>", "text": "Board pack attached."},
        None,
    ),
    (
        "brand in name only",
        {"sender": "ACME Alumni <hello@alumni.example>", "text": "Reunion photos are up."},
        None,
    ),
    (
        "reply-to elsewhere only",
        {
            "sender": "pat@partner.example",
            "reply_to": ["pat@partner-mail.example"],
            "text": "Notes.",
        },
        None,
    ),
    (
        "lure words without a link",
        {"sender": "pat@partner.example", "text": "Did you verify your account on the new portal?"},
        None,
    ),
    ("same name, other suffix only", {"sender": "info@acme.org", "text": "Annual report."}, None),
    # A mailbox provider's name in someone else's domain.
    (
        "provider name embedded",
        {"sender": "Omari <omari@hotmail-net.example>", "text": "Low rates, see www.x.example"},
        RuleId.PHISHING_PROVIDER,
    ),
    (
        "provider homoglyph",
        {"sender": "support@gmai1.com", "text": "Hello."},
        RuleId.PHISHING_PROVIDER,
    ),
    ("the provider itself", {"sender": "kim@gmail.com", "text": "Dinner?"}, None),
    ("the provider abroad", {"sender": "kim@hotmail.co.uk", "text": "Dinner?"}, None),
    ("a provider's own company", {"sender": "sam@yahoo-inc.com", "text": "Agenda."}, None),
    ("an ordinary word", {"sender": "ed@outlookindia.com", "text": "Interview?"}, None),
    # A top-level domain abuse trackers rank high: a weak fact, never alone.
    (
        "lure and link from an abused TLD",
        {
            "sender": "billing@pay-desk.top",
            "text": "Your payment details need an update, click here.",
        },
        RuleId.PHISHING_LURE,
    ),
    (
        "bait and link from an abused TLD",
        {"sender": "desk@rewards.ru", "text": "You have been selected: https://x.example"},
        RuleId.PHISHING_ADVANCE_FEE,
    ),
    (
        "abused TLD with a link only",
        {"sender": "dev@kernel-hacker.xyz", "text": "Patch v2: https://git.example/p"},
        None,
    ),
    (
        "abused TLD is not a second fact",
        {"sender": "ACME Fans <fans@club.top>", "text": "Meet-up photos."},
        None,
    ),
    # Scam text alone: bait, a lure and a link, unsolicited.
    (
        "scam text from a stranger",
        {
            "sender": "claims@rewards.example",
            "subject": "Your unclaimed funds",
            "text": "You won the lottery. Send your banking details at https://x.example",
        },
        RuleId.PHISHING_SCAM,
    ),
    (
        "scam text without a link",
        {"sender": "claims@rewards.example", "text": "You won the lottery. Send bank details."},
        None,
    ),
    (
        "scam text without a lure",
        {"sender": "news@paper.example", "text": "Lottery results: https://paper.example/draw"},
        None,
    ),
    (
        "selected, payment details, link: an honorarium, not bait",
        {
            "sender": "events@conf.example",
            "text": "You have been selected for the panel. Payment details: https://conf.example",
        },
        None,
    ),
    (
        "scam warning as list mail",
        {
            "sender": "security@bank.example",
            "list_id": "<alerts.bank.example>",
            "text": "Lottery scams ask for bank details. Learn more: https://bank.example",
        },
        None,
    ),
    (
        "scam warning with an unsubscribe footer",
        {
            "sender": "security@bank.example",
            "text": "Lottery scams ask for bank details. See https://bank.example\nUnsubscribe",
        },
        None,
    ),
    (
        "scam text in a thread",
        {
            "sender": "pat@partner.example",
            "in_reply_to": "<1@partner.example>",
            "text": "Got this lottery mail asking for bank details: https://x.example, fake?",
        },
        None,
    ),
    (
        "scam text from a known person",
        {
            "sender": "Ada Lovelace <chair@board.example.org>",
            "text": "An inheritance mail wants my bank details via https://x.example: beware",
        },
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "expected"), PHISHING_CASES, ids=[c[0] for c in PHISHING_CASES]
)
def test_phishing(case: str, fields: dict[str, Any], expected: str | None) -> None:
    result = decide(message(**fields))
    if expected is None:
        assert result is None or not result.flags.phishing
        return
    assert result is not None
    assert result.provenance.rule_id == expected
    assert result.flags.phishing and result.flags.external
    assert (result.category, result.priority) == (Category.IGNORE, Priority.HIGH)
    # Never answered: no reply among the requested actions, whatever the rule.
    assert not any("reply" in action or "respond" in action for action in result.requested_actions)


def test_admin_trust_does_not_cover_forged_identity() -> None:
    trusted = SenderRule(
        id="vendor", domains=("mailer.example",), category="respond", priority="high"
    )
    ctx = CONTEXT.model_copy(update={"rules": (trusted,)})
    forged = message(sender='"jane.doe@acme.com" <x@mailer.example>', text="Wire the funds.")
    honest = message(sender="ops@mailer.example", text="Statement attached.")
    forged_result, honest_result = decide(forged, ctx), decide(honest, ctx)
    assert forged_result is not None and forged_result.flags.phishing
    assert honest_result is not None
    assert honest_result.provenance.rule_id == "admin:vendor"


def test_phishing_to_a_vip_is_not_raised_or_lowered() -> None:
    msg = message(sender="Ada Lovelace <ada.l@outlook.com>", text="Quick favour.")
    ctx = TriageContext(
        executive="chair@board.example.org",
        internal_domains={"acme.com"},
        people=dict(CONTEXT.people),
    )
    result = decide(msg, ctx)
    assert result is not None and result.priority is Priority.HIGH


# --------------------------------------------------------------------------- own organisation

OWN_ORGANISATION: list[tuple[str, frozenset[str], bool]] = [
    ("acme.com", frozenset({"eu.acme.com"}), True),  # the parent of the executive's domain
    ("us.acme.com", frozenset({"eu.acme.com"}), True),  # a sibling subdomain
    ("mail.eu.acme.com", frozenset({"eu.acme.com"}), True),  # a child
    ("hq.acme.co.uk", frozenset({"acme.co.uk"}), True),  # under a two-level suffix
    ("acme-eu.com", frozenset({"eu.acme.com"}), False),
    ("other.co.uk", frozenset({"acme.co.uk"}), False),  # only the public suffix is shared
    ("evil.github.io", frozenset({"acme.github.io"}), False),  # a private suffix: other owners
]


@pytest.mark.parametrize(
    ("domain", "own", "same"), OWN_ORGANISATION, ids=[d for d, _, _ in OWN_ORGANISATION]
)
def test_same_organisation(domain: str, own: frozenset[str], same: bool) -> None:
    assert same_organisation(domain, own) is same
    if same:
        assert lookalike(domain, own) is None


def test_parent_domain_is_no_lookalike_of_a_subsidiary() -> None:
    # The finding: lookalike("acme.com", {"eu.acme.com"}) was a strong match.
    assert lookalike("acme.com", frozenset({"eu.acme.com"})) is None
    assert lookalike("acme.com", frozenset({"eu.acme.com", "us.acme.com"})) is None


@pytest.mark.parametrize("sender", ["CFO <cfo@acme.com>", "Ops <ops@us.acme.com>"])
def test_mail_from_the_own_organisation_is_never_phishing(sender: str) -> None:
    context = TriageContext(executive="ceo@eu.acme.com", people={"cfo@acme.com": "Cfo Person"})
    lure = "Your account has been suspended. Verify your account at https://sso.acme.com/x"
    msg = message(sender=sender, subject="Account suspended", text=lure)
    result = RuleTriage().decide(msg, context)
    assert result is None or not result.flags.phishing
    assert RuleTriage().signals(msg, context).external is False
