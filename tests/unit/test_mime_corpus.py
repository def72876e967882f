"""Awkward MIME parses without error and without losing the text.

Small samples live in tests/fixtures/mime/; the 20 MB attachment is built at test time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path

import pytest

from integrations.base import DraftMode, EmailAddress
from integrations.mime import (
    build_message,
    for_transmission,
    parse_message,
    parse_mime,
    reply_recipients,
    reply_threading,
    to_bytes,
)

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "mime"


def _parse(name: str) -> object:
    return parse_message((CORPUS / name).read_bytes(), id=name, folder="INBOX")


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.eml")))
def test_every_sample_parses(name: str) -> None:
    message = parse_message((CORPUS / name).read_bytes(), id=name, folder="INBOX")
    assert message.text.strip(), "the text was lost"
    assert message.date is None or message.date.tzinfo is not None


def test_rfc2047_headers_and_list_headers() -> None:
    m = parse_message((CORPUS / "rfc2047_headers.eml").read_bytes(), id="1", folder="INBOX")
    assert m.subject == "Réunion de budget — jeudi"
    assert m.sender is not None and m.sender.name == "José García"
    assert [(a.address, a.name) for a in m.to] == [
        ("elody@example.com", "Élody Müller"),
        ("ops@example.com", "Team, Ops"),
    ]
    assert m.cc == []  # "undisclosed-recipients:;" is a group with nobody in it
    assert "réunion budgétaire est déplacée à jeudi — merci" in m.text
    assert m.in_reply_to == "<root@example.com>"
    assert m.references == ["<root@example.com>", "<second@example.com>"]
    assert m.thread_id == "<root@example.com>"
    assert m.list_unsubscribe and "mailto:leave@exemple.fr" in m.list_unsubscribe
    assert m.list_id == "Budget <budget.exemple.fr>"
    assert (m.auto_submitted, m.precedence) == ("no", "list")
    assert m.headers["x-mailer"] == "Handmade 1.0"
    assert m.date == datetime(2026, 11, 24, 8, 15, tzinfo=UTC)


def test_nested_multipart_keeps_both_bodies_and_lists_attachments() -> None:
    m = parse_message((CORPUS / "nested_multipart.eml").read_bytes(), id="2", folder="INBOX")
    assert m.text == "The plain version: numbers attached."
    assert m.html is not None and "<b>HTML</b>" in m.html
    assert "forwarded text" not in m.text
    kinds = {(a.content_type, a.filename, a.is_inline) for a in m.attachments}
    assert ("image/png", None, True) in kinds
    assert ("application/pdf", "q3.pdf", False) in kinds
    assert any(a.content_type == "message/rfc822" for a in m.attachments)
    logo = next(a for a in m.attachments if a.content_type == "image/png")
    assert logo.content_id == "logo@x" and logo.size == 70


def test_html_only_mail_becomes_clean_text() -> None:
    m = parse_message((CORPUS / "html_only.eml").read_bytes(), id="3", folder="INBOX")
    assert "Weekly digest" in m.text and "Prices rise 5€ per unit & more." in m.text
    assert "alert(1)" not in m.text and "color: red" not in m.text
    assert "https://vendor.example/unsub" in m.text


def test_wrong_missing_unknown_charsets_and_a_malformed_date() -> None:
    m = parse_message((CORPUS / "wrong_charsets_bad_date.eml").read_bytes(), id="4", folder="INBOX")
    assert "naïve UTF-8 inside" in m.text
    assert "Unknown charset, still readable text." in m.text
    assert "Straße München" in m.text
    assert m.date is None  # malformed: dropped, not an exception
    assert m.message_id == "<not-bracketed@old.example>"
    assert m.subject == "Café raw 8-bit subject"
    m.model_dump_json()  # no surrogate escapes left anywhere
    assert [a.filename for a in m.attachments] == ["data.bin"]


def test_truncated_multipart_and_broken_encoded_words() -> None:
    m = parse_message(
        (CORPUS / "truncated_multipart.eml").read_bytes(),
        id="5",
        folder="INBOX",
        received=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert "survives a boundary that never closes" in m.text
    assert m.date is not None and m.date.tzinfo is not None


def test_a_20_mb_attachment(tmp_path: Path) -> None:
    message = MimeMessage()
    message["From"] = "big@vendor.example"
    message["To"] = "exec@example.com"
    message["Subject"] = "Large drawing"
    message.set_content("The drawings are attached.")
    payload = os.urandom(20 * 1024 * 1024)
    message.add_attachment(
        payload, maintype="application", subtype="octet-stream", filename="drawings.dwg"
    )
    raw = message.as_bytes()
    (tmp_path / "big.eml").write_bytes(raw)
    parsed = parse_message((tmp_path / "big.eml").read_bytes(), id="6", folder="INBOX")
    assert parsed.text == "The drawings are attached."
    assert [(a.filename, a.size) for a in parsed.attachments] == [("drawings.dwg", len(payload))]


def test_build_reply_threading_round_trip() -> None:
    original = parse_message((CORPUS / "rfc2047_headers.eml").read_bytes(), id="1", folder="INBOX")
    in_reply_to, references = reply_threading(original)
    to, cc = reply_recipients(original, DraftMode.REPLY_ALL, "elody@example.com")
    assert [a.address for a in to] == ["jose@exemple.fr"]
    assert [a.address for a in cc] == ["ops@example.com"]
    built = build_message(
        sender=EmailAddress(address="elody@example.com", name="Élody Müller"),
        to=to,
        cc=cc,
        bcc=[EmailAddress(address="secret@example.com")],
        subject="Re: Réunion",
        body_text="Confirmé — à jeudi.",
        body_html="<p>Confirmé — à jeudi.</p>",
        in_reply_to=in_reply_to,
        references=references,
        extra_headers={"X-Assistant-Idempotency-Key": "k1"},
    )
    again = parse_message(to_bytes(built), id="r", folder="Drafts")
    assert again.in_reply_to == "<rfc2047-1@exemple.fr>"
    assert again.references == [
        "<root@example.com>",
        "<second@example.com>",
        "<rfc2047-1@exemple.fr>",
    ]
    assert again.subject == "Re: Réunion" and again.text == "Confirmé — à jeudi."
    assert again.sender is not None and again.sender.name == "Élody Müller"
    assert [a.address for a in again.bcc] == ["secret@example.com"]
    wire = parse_mime(to_bytes(for_transmission(built)))
    assert wire["Bcc"] is None and wire["X-Assistant-Idempotency-Key"] is None
    assert b"\r\n" in to_bytes(built)
