"""Each built-in rule kind: when it decides, what it decides, and when it must not."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.triage import Category, Priority, RuleId, TriageContext, load_triage_rules
from tests.conftest import REPO_ROOT
from tests.unit.triage.factory import (
    CONTEXT,
    EXECUTIVE,
    RULES,
    address,
    decide,
    ics,
    message,
    rule_id,
)

EXAMPLE_RULES = REPO_ROOT / "config" / "triage_rules.example.yaml"
ADMIN = TriageContext.from_config(load_triage_rules(EXAMPLE_RULES), executive="ceo@example.com")

# --------------------------------------------------------------------------- admin rules

ADMIN_CASES: list[tuple[str, dict[str, Any], str | None, Category | None, Priority | None]] = [
    (
        "exact sender",
        {"sender": "secretary@board.example.org", "subject": "Papers"},
        "admin:board-secretary",
        Category.RESPOND,
        Priority.HIGH,
    ),
    (
        "domain",
        {"sender": "run@payroll-provider.example"},
        "admin:payroll-reports",
        Category.NOTIFY,
        Priority.LOW,
    ),
    (
        "subdomain",
        {"sender": "eu@mail.payroll-provider.example"},
        "admin:payroll-reports",
        Category.NOTIFY,
        Priority.LOW,
    ),
    (
        "subject regex hit",
        {"sender": "a@auditfirm.example", "subject": "PBC list for Q3"},
        "admin:auditor-requests",
        Category.RESPOND,
        Priority.HIGH,
    ),
    (
        "subject regex miss",
        {"sender": "a@auditfirm.example", "subject": "Lunch?"},
        None,
        None,
        None,
    ),
    ("other sender at the domain owner", {"sender": "other@board.example.org"}, None, None, None),
    (
        "look-alike of a listed domain",
        {"sender": "x@payroll-provider.example.net"},
        None,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "expected_id", "category", "priority"),
    ADMIN_CASES,
    ids=[c[0] for c in ADMIN_CASES],
)
def test_admin_rules(
    case: str,
    fields: dict[str, Any],
    expected_id: str | None,
    category: Category | None,
    priority: Priority | None,
) -> None:
    result = decide(message(**fields), ADMIN)
    if expected_id is None:
        assert result is None
        return
    assert result is not None
    assert (result.provenance.stage, result.provenance.rule_id) == ("rule", expected_id)
    assert (result.category, result.priority, result.confidence) == (category, priority, 1.0)


# --------------------------------------------------------------------------- bulk mail

BULK_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("list-unsubscribe", {"list_unsubscribe": "<mailto:u@shop.example>"}, RuleId.BULK_HEADERS),
    ("list-id", {"list_id": "<weekly.shop.example>"}, RuleId.BULK_HEADERS),
    ("precedence bulk", {"precedence": "bulk"}, RuleId.BULK_HEADERS),
    ("precedence list", {"precedence": "list"}, RuleId.BULK_HEADERS),
    ("precedence junk", {"precedence": "junk"}, RuleId.BULK_JUNK),
    ("junk folder", {"folder": "junk"}, RuleId.BULK_JUNK),
    (
        "marketing sender with footer",
        {"sender": "newsletter@shop.example", "text": "Our spring range.\nUnsubscribe here."},
        RuleId.BULK_MARKETING,
    ),
    (
        "marketing sender, ESP header",
        {"sender": "news@shop.example", "headers": {"x-campaign": "spring"}},
        RuleId.BULK_MARKETING,
    ),
    # Negatives: internal lists carry real requests; an obligation needs a reader.
    ("internal list", {"sender": "team@acme.com", "list_id": "<team.acme.com>"}, None),
    (
        "list with an obligation",
        {"list_id": "<club.example>", "text": "Please confirm your attendance by Friday."},
        None,
    ),
    ("marketing sender, no bulk evidence", {"sender": "news@shop.example"}, None),
    ("plain mail", {}, None),
]


@pytest.mark.parametrize(("case", "fields", "expected"), BULK_CASES, ids=[c[0] for c in BULK_CASES])
def test_bulk_mail(case: str, fields: dict[str, Any], expected: str | None) -> None:
    result = decide(message(**fields))
    assert (result.provenance.rule_id if result else None) == expected
    if result is not None:
        assert (result.category, result.priority) == (Category.IGNORE, Priority.LOW)


# --------------------------------------------------------------------------- auto-replies

_OOO = (
    "I am currently out of the office and will return on June 2. For urgent matters "
    "please contact Sam (sam@partner.example)."
)
AUTO_REPLY_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("auto-submitted header", {"auto_submitted": "auto-replied"}, True),
    ("x-autoreply header", {"headers": {"x-autoreply": "yes"}}, True),
    ("subject automatic reply", {"subject": "Automatic reply: Budget"}, True),
    ("german server prefix", {"subject": "Automatische Antwort: Budget"}, True),
    ("subject auto-reply", {"subject": "Auto-Reply: Q3 numbers"}, True),
    (
        "text opens with the server's label",
        {"subject": "Re: Find a time", "text": "Auto-Reply: Out of Office\n\n" + _OOO},
        True,
    ),
    # Negatives: without headers or a server's subject prefix, a person wrote it.
    ("personal note titled out of the office", {"subject": "Out of the office"}, False),
    (
        "out of office with a colon, typed by a person",
        {"subject": "Out of Office: back Monday"},
        False,
    ),
    ("body formula only", {"subject": "Re: Budget", "text": _OOO}, False),
    (
        "label further down the text",
        {"text": "Thanks, noted.\nAutomatic reply: my assistant set it up for the trip."},
        False,
    ),
    ("person out tomorrow", {"text": "I'm out of the office tomorrow, can we meet Friday?"}, False),
    (
        "quoted auto-reply",
        {
            "subject": "Re: Find a time",
            "text": "Tuesday works.\n\nOn Mon, 2 Jun 2025, Bob wrote:\n> " + _OOO,
        },
        False,
    ),
    ("auto-submitted no", {"auto_submitted": "no"}, False),
]


@pytest.mark.parametrize(
    ("case", "fields", "is_auto"), AUTO_REPLY_CASES, ids=[c[0] for c in AUTO_REPLY_CASES]
)
def test_auto_replies(case: str, fields: dict[str, Any], is_auto: bool) -> None:
    result = decide(message(**fields))
    if not is_auto:
        assert result is None or result.provenance.rule_id != RuleId.AUTO_REPLY
        return
    assert result is not None
    assert result.provenance.rule_id == RuleId.AUTO_REPLY
    assert result.reason.startswith("automatic reply (")  # names what gave it away
    # Surfaced, not dropped: the return date and stand-in matter to scheduling.
    assert (result.category, result.priority) == (Category.NOTIFY, Priority.LOW)


def test_auto_replies_can_be_filed_away() -> None:
    quiet = CONTEXT.model_copy(update={"auto_reply_category": Category.IGNORE})
    result = decide(message(auto_submitted="auto-replied"), quiet)
    assert result is not None
    assert (result.category, result.priority) == (Category.IGNORE, Priority.LOW)
    with pytest.raises(ValueError, match="notify or ignore"):
        TriageContext(executive=EXECUTIVE, auto_reply_category=Category.RESPOND)


# --------------------------------------------------------------------------- automated

AUTOMATED_CASES: list[tuple[str, dict[str, Any], Priority | None]] = [
    (
        "auto-generated",
        {"auto_submitted": "auto-generated", "subject": "Weekly report"},
        Priority.LOW,
    ),
    (
        "no-reply sender",
        {"sender": "no-reply@saas.example", "subject": "Your export is ready"},
        Priority.LOW,
    ),
    ("noreply sender", {"sender": "noreply@saas.example", "subject": "Receipt"}, Priority.LOW),
    (
        "notifications sender",
        {"sender": "notifications@git.example", "subject": "New comment"},
        Priority.LOW,
    ),
    (
        "auto-response-suppress",
        {"headers": {"x-auto-response-suppress": "All"}, "subject": "Build finished"},
        Priority.LOW,
    ),
    (
        "alert subject",
        {"sender": "alerts@monitor.example", "subject": "Backup FAILED"},
        Priority.NORMAL,
    ),
    ("internal robot", {"sender": "noreply@acme.com", "subject": "Expense approved"}, Priority.LOW),
    (
        "order confirmation",
        {"sender": "orders@shop.example", "subject": "Your order has shipped"},
        Priority.LOW,
    ),
    # Negatives: an automated mail that asks for something is left to the next stage.
    (
        "no-reply with a deadline",
        {
            "sender": "noreply@training.example",
            "subject": "Courses",
            "text": "Compliance training must be done by June 30.",
        },
        None,
    ),
    (
        "no-reply with consequences",
        {"sender": "alerts@bank.example", "text": "Review your transactions to avoid a fee."},
        None,
    ),
    ("person", {"sender": "sam@partner.example", "subject": "Report"}, None),
]


@pytest.mark.parametrize(
    ("case", "fields", "priority"), AUTOMATED_CASES, ids=[c[0] for c in AUTOMATED_CASES]
)
def test_automated_notifications(
    case: str, fields: dict[str, Any], priority: Priority | None
) -> None:
    result = decide(message(**fields))
    if priority is None:
        assert result is None
        return
    assert result is not None
    assert result.provenance.rule_id == RuleId.AUTOMATED
    assert (result.category, result.priority) == (Category.NOTIFY, priority)


# --------------------------------------------------------------------------- calendar

_ICS_BODY = (
    "BEGIN:VCALENDAR\nMETHOD:REQUEST\nBEGIN:VEVENT\nDTSTART:20260602T130000Z\n"
    "DTEND:20260602T133000Z\nSUMMARY:Sync\nEND:VEVENT\nEND:VCALENDAR\n"
)
CALENDAR_CASES: list[tuple[str, dict[str, Any], str | None, Category | None, Priority | None]] = [
    (
        "ics attachment request",
        {"attachments": [ics("REQUEST")]},
        RuleId.CALENDAR_REQUEST,
        Category.SCHEDULE,
        Priority.NORMAL,
    ),
    (
        "ics without method",
        {"attachments": [ics("").model_copy(update={"content_type": "application/ics"})]},
        RuleId.CALENDAR_REQUEST,
        Category.SCHEDULE,
        Priority.NORMAL,
    ),
    (
        "content-type header",
        {"headers": {"content-type": "text/calendar; method=REQUEST"}},
        RuleId.CALENDAR_REQUEST,
        Category.SCHEDULE,
        Priority.NORMAL,
    ),
    (
        "ics in the body",
        {"text": _ICS_BODY},
        RuleId.CALENDAR_REQUEST,
        Category.SCHEDULE,
        Priority.NORMAL,
    ),
    (
        "cancel",
        {"attachments": [ics("CANCEL")]},
        RuleId.CALENDAR_UPDATE,
        Category.NOTIFY,
        Priority.NORMAL,
    ),
    (
        "reply (accepted)",
        {"subject": "Accepted: Sync", "attachments": [ics("REPLY")]},
        RuleId.CALENDAR_UPDATE,
        Category.NOTIFY,
        Priority.LOW,
    ),
    (
        "invitation in words: a request to meet, read from the text",
        {"sender": "jane.doe@acme.com", "subject": "Invitation: lunch next week?"},
        RuleId.MEETING_TEXT,
        Category.SCHEDULE,
        Priority.NORMAL,
    ),
    (
        "pdf attachment",
        {
            "attachments": [
                ics().model_copy(update={"filename": "a.pdf", "content_type": "application/pdf"})
            ]
        },
        None,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "expected", "category", "priority"),
    CALENDAR_CASES,
    ids=[c[0] for c in CALENDAR_CASES],
)
def test_calendar_invitations(
    case: str,
    fields: dict[str, Any],
    expected: str | None,
    category: Category | None,
    priority: Priority | None,
) -> None:
    result = decide(message(**fields))
    assert (result.provenance.rule_id if result else None) == expected
    if result is not None:
        assert (result.category, result.priority) == (category, priority)


def test_invitation_carries_meeting_constraints() -> None:
    result = decide(message(text=_ICS_BODY, cc=[]))
    assert result is not None and result.meeting is not None
    assert result.meeting.duration_minutes == 30
    assert result.meeting.timezone == "UTC"
    assert result.meeting.window_start is not None
    assert result.meeting.window_start.isoformat() == "2026-06-02T13:00:00+00:00"
    assert set(result.meeting.participants) == {"pat@partner.example", EXECUTIVE}
    assert result.requested_actions == ["respond_to_invitation"]


# --------------------------------------------------------------------------- VIPs


def test_vip_raises_priority_of_a_decision() -> None:
    plain = decide(message(attachments=[ics()]))
    vip = decide(message(sender="Ada Lovelace <chair@board.example.org>", attachments=[ics()]))
    assert plain is not None and vip is not None
    assert (plain.priority, vip.priority) == (Priority.NORMAL, Priority.HIGH)


@pytest.mark.parametrize("sender", ["Ada Lovelace <chair@board.example.org>", "cfo@acme.com"])
def test_vip_alone_decides_nothing(sender: str) -> None:
    assert decide(message(sender=sender, subject="Thoughts?", text="Can we talk?")) is None


def test_vip_does_not_raise_ignored_mail() -> None:
    result = decide(message(sender="chair@board.example.org", list_unsubscribe="<mailto:x>"))
    assert result is not None and result.priority is Priority.LOW


# --------------------------------------------------------------------------- content alone

# Spam and sales pushes are judged by the learned stage and the model: the rules abstain on
# content alone, because phrases that fit one corpus misfire on the next mailbox.
CONTENT_ONLY: list[tuple[str, dict[str, Any]]] = [
    (
        "pharma spam, no header evidence",
        {
            "sender": "Mo <mo@pills-deals.biz>",
            "subject": "cheap meds",
            "text": "Buy viagra, cialis and xanax online, no prescription needed! "
            "Click here: http://x.example",
        },
    ),
    (
        "sales under pressure",
        {
            "sender": "sam@tools.example",
            "subject": "2 hours left",
            "text": "Our suite is 40% off until noon. Lock in your rate before it resets.",
        },
    ),
    (
        "trade newsletter without list headers",
        {
            "sender": "editor@trade-weekly.example",
            "subject": "This week in logistics",
            "text": "Freight rates fell 4% this week. Read the full analysis online.",
        },
    ),
]


@pytest.mark.parametrize(("case", "fields"), CONTENT_ONLY, ids=[c[0] for c in CONTENT_ONLY])
def test_rules_abstain_on_content_alone(case: str, fields: dict[str, Any]) -> None:
    assert decide(message(**fields)) is None


def test_the_same_newsletter_with_list_headers_is_bulk() -> None:
    result = decide(
        message(
            sender="editor@trade-weekly.example",
            subject="This week in logistics",
            text="Freight rates fell 4% this week.",
            list_id="<weekly.trade-weekly.example>",
        )
    )
    assert result is not None and result.provenance.rule_id == RuleId.BULK_HEADERS


# --------------------------------------------------------------------------- flags

DEADLINES = [
    ("Can you send it by Friday?", True),
    ("Need this by EOD.", True),
    ("The deadline is next week.", True),
    ("Payment due June 5.", True),
    ("Reply no later than the 3rd.", True),
    ("Please confirm by 3pm.", True),
    ("Decision needed by 14:00.", True),
    ("Before 11 AM please.", True),
    ("by end of day", True),
    ("within 2 hours", True),
    ("By the way, nice talk.", False),
    ("Delayed due to the weather.", False),
    ("Friday was great.", False),
    ("Sent by Sam.", False),
]


@pytest.mark.parametrize(("text", "expected"), DEADLINES, ids=[d[0] for d in DEADLINES])
def test_has_deadline(text: str, expected: bool) -> None:
    assert RULES.signals(message(text=text), CONTEXT).has_deadline is expected


EXTERNAL = [
    ("pat@partner.example", True),
    ("jane.doe@acme.com", False),
    ("ops@eu.acme.com", False),
    ("bob@globexcorp.com", False),
]


@pytest.mark.parametrize(("sender", "external"), EXTERNAL, ids=[e[0] for e in EXTERNAL])
def test_external_flag(sender: str, external: bool) -> None:
    assert RULES.signals(message(sender=sender), CONTEXT).flags().external is external


def test_executive_domain_is_internal_by_default() -> None:
    ctx = TriageContext(executive="Boss@Initech.example")
    assert ctx.internal_domains == {"initech.example"}
    assert rule_id(message(sender="x@initech.example", list_id="<l>"), ctx) is None


# --------------------------------------------------------------------------- meetings in words

MEETING_TEXT_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("colleague", {"sender": "jane.doe@acme.com", "text": "Can we meet Tuesday at 3?"}, True),
    (
        "colleague at a sibling subdomain",
        {"sender": "ops@eu.acme.com", "text": "Could we sync tomorrow at 10am?"},
        True,
    ),
    (
        "known person outside",
        {"sender": "Ada Lovelace <chair@board.example.org>", "text": "Lunch on Friday?"},
        True,
    ),
    (
        "reply in a thread",
        {
            "sender": "pat@partner.example",
            "in_reply_to": "<a@b>",
            "text": "Works for us. How about a call next week?",
        },
        True,
    ),
    # Negatives: a stranger's cold opening, no time named, a meeting without a request.
    (
        "stranger's cold call request",
        {"sender": "rep@saas.example", "text": "Can we hop on a 15 minute call Tuesday?"},
        False,
    ),
    (
        "no time named",
        {"sender": "jane.doe@acme.com", "text": "Could we set up a call about the budget?"},
        False,
    ),
    (
        "reporting on a meeting",
        {"sender": "jane.doe@acme.com", "text": "The meeting on Tuesday went well."},
        False,
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "schedules"), MEETING_TEXT_CASES, ids=[c[0] for c in MEETING_TEXT_CASES]
)
def test_requests_to_meet_in_words(case: str, fields: dict[str, Any], schedules: bool) -> None:
    result = decide(message(subject="Hello", **fields))
    if not schedules:
        assert result is None or result.provenance.rule_id != RuleId.MEETING_TEXT
        return
    assert result is not None and result.provenance.rule_id == RuleId.MEETING_TEXT
    assert result.category is Category.SCHEDULE
    assert result.meeting is not None and result.meeting.window_description
    assert "asks to meet" in result.reason


# --------------------------------------------------------------------------- colleagues

COLLEAGUE_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (
        "colleague asks her a question",
        {"sender": "jane.doe@acme.com", "text": "Can you review the logs and advise?"},
        RuleId.COLLEAGUE_QUESTION,
    ),
    (
        "colleague at a subsidiary asks",
        {"sender": "ops@eu.acme.com", "text": "Draft attached.\nAre you happy with section 2?"},
        RuleId.COLLEAGUE_QUESTION,
    ),
    (
        "reply in a thread, question above the quote",
        {
            "sender": "jane.doe@acme.com",
            "in_reply_to": "<a@b>",
            "text": "Which option do you prefer?\n\nOn Mon, Bob wrote:\n> Two options.",
        },
        RuleId.COLLEAGUE_QUESTION,
    ),
    (
        "colleague says no action is needed",
        {"sender": "jane.doe@acme.com", "text": "The build passed. No action needed."},
        RuleId.COLLEAGUE_NO_ACTION,
    ),
    (
        "colleague's FYI subject",
        {"sender": "jane.doe@acme.com", "subject": "FYI: new office hours", "text": "See below."},
        RuleId.COLLEAGUE_NO_ACTION,
    ),
    # Negatives: a stranger's question; a question only in the quoted mail; a rhetorical
    # "did you know"; a question to nobody in particular; credentials asked of her; a
    # no-reply or list address; "no action needed" beside a date; a stranger's FYI.
    (
        "stranger asks",
        {"sender": "rep@saas.example", "text": "Can you confirm the renewal by 4pm?"},
        None,
    ),
    (
        "question only in the quoted mail",
        {
            "sender": "jane.doe@acme.com",
            "in_reply_to": "<a@b>",
            "text": "Thanks, noted.\n\nOn Mon, Bob wrote:\n> Can you send the deck?",
        },
        None,
    ),
    (
        "rhetorical did you know",
        {"sender": "jane.doe@acme.com", "text": "Did you know the canteen opens at 8?"},
        None,
    ),
    ("question to nobody", {"sender": "jane.doe@acme.com", "text": "Is the build green?"}, None),
    (
        "credentials asked by a colleague's address",
        {
            "sender": "jane.doe@acme.com",
            "text": "Can you confirm your account password with the link below?",
        },
        None,
    ),
    (
        "internal no-reply address asks",
        {"sender": "noreply@acme.com", "text": "Can you rate the training?"},
        None,
    ),
    (
        "internal list asks",
        {"sender": "team@acme.com", "list_id": "<team.acme.com>", "text": "Can you join us?"},
        None,
    ),
    (
        "no action needed, but a date",
        {"sender": "jane.doe@acme.com", "text": "No action needed until the deadline Friday."},
        None,
    ),
    ("stranger's FYI", {"sender": "pat@partner.example", "subject": "FYI: our prices"}, None),
]


@pytest.mark.parametrize(
    ("case", "fields", "expected"), COLLEAGUE_CASES, ids=[c[0] for c in COLLEAGUE_CASES]
)
def test_colleagues_writing_to_her(case: str, fields: dict[str, Any], expected: str | None) -> None:
    result = decide(message(**fields))
    decided_by = result.provenance.rule_id if result else None
    if expected is None:  # another rule may decide (a no-reply address is automated)
        assert decided_by not in (RuleId.COLLEAGUE_QUESTION, RuleId.COLLEAGUE_NO_ACTION)
        return
    assert decided_by == expected
    if expected == RuleId.COLLEAGUE_QUESTION:
        assert result is not None and result.category is Category.RESPOND
        assert result.reason.startswith("someone at your organisation asks you directly: '")
        assert "?" in result.reason  # quotes the question, as written
    elif expected == RuleId.COLLEAGUE_NO_ACTION:
        assert result is not None and (result.category, result.priority) == (
            Category.NOTIFY,
            Priority.LOW,
        )
        assert "nothing is expected of you" in result.reason


def test_a_question_to_someone_else_is_not_hers() -> None:
    """On copy, the question is put to whoever the mail is addressed to."""
    to_someone = message(sender="jane.doe@acme.com", text="Can you send me the deck?")
    to_someone = to_someone.model_copy(
        update={"to": [address("bob@acme.com")], "cc": [address(EXECUTIVE)]}
    )
    assert decide(to_someone) is None


def test_a_colleague_with_a_deadline_is_high_priority() -> None:
    result = decide(message(sender="jane.doe@acme.com", text="Can you sign it by 3pm today?"))
    assert result is not None and result.provenance.rule_id == RuleId.COLLEAGUE_QUESTION
    assert result.priority is Priority.HIGH


# --------------------------------------------------------------------------- bulk footers

FOOTER = "Spring range is in.\n\nManage your email preferences | Unsubscribe"
FOOTER_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("footer from a stranger", {"sender": "hello@shop.example", "text": FOOTER}, "footer"),
    (
        "advertisement notice",
        {"sender": "pat@clinic.example", "text": "Coupon inside. This email is an advertisement."},
        "footer",
    ),
    (
        "marketing sender through a mailing platform",
        {"sender": "news@shop.example", "headers": {"return-path": "<bounce@mcsv.net>"}},
        "marketing",
    ),
    # Negatives: a reply in a thread, a known sender, a colleague, a date to meet, a
    # no-reply service, a platform alone.
    ("reply in a thread", {"text": FOOTER, "in_reply_to": "<a@b>"}, None),
    ("known person", {"sender": "Ada Lovelace <chair@board.example.org>", "text": FOOTER}, None),
    ("colleague", {"sender": "jane.doe@acme.com", "text": FOOTER}, None),
    ("a date to act by", {"text": "Renew by Friday.\n" + FOOTER}, None),
    ("no-reply service", {"sender": "no-reply@bank.example", "text": FOOTER}, "automated"),
    (
        "a person sending through a platform",
        {"sender": "pat@shop.example", "headers": {"return-path": "<b@sendgrid.net>"}},
        None,
    ),
]


@pytest.mark.parametrize(("case", "fields", "kind"), FOOTER_CASES, ids=[c[0] for c in FOOTER_CASES])
def test_bulk_footers_and_mailing_platforms(
    case: str, fields: dict[str, Any], kind: str | None
) -> None:
    expected = {
        "footer": RuleId.BULK_FOOTER,
        "marketing": RuleId.BULK_MARKETING,
        "automated": RuleId.AUTOMATED,
        None: None,
    }[kind]
    result = decide(message(**fields))
    assert (result.provenance.rule_id if result else None) == expected
    if expected in (RuleId.BULK_FOOTER, RuleId.BULK_MARKETING):
        assert result is not None and (result.category, result.priority) == (
            Category.IGNORE,
            Priority.LOW,
        )
