"""MIME shared by email connectors: parse RFC 5322 bytes, build drafts, HTML to text.

Parsing and building use the standard library's ``email`` package with
``policy.default``; this module only adds tolerance (wrong or missing charsets, broken
headers, malformed dates) and maps the result onto :class:`integrations.base.EmailMessage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.message import Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from typing import Any

from pydantic import ValidationError

from integrations.base import Attachment, DraftMode, EmailAddress, EmailMessage
from integrations.errors import MalformedContentError

#: Header of drafts created by the assistant, so that a retried create finds its draft.
IDEMPOTENCY_HEADER = "X-Assistant-Idempotency-Key"

_MSGID = re.compile(r"<[^<>\s]+>")
_WS = re.compile(r"\s+")
# Headers modelled as fields of EmailMessage; everything else worth keeping goes to headers.
_MODELLED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "list-unsubscribe",
        "list-id",
        "auto-submitted",
        "precedence",
    }
)
_KEPT = frozenset(
    {
        "content-type",
        "return-path",
        "sender",
        "authentication-results",
        "received-spf",
        "arc-authentication-results",
        "feedback-id",
        "list-post",
        "list-help",
        "list-archive",
        "list-unsubscribe-post",
        "importance",
        "priority",
        "thread-topic",
        "thread-index",
        "delivered-to",
        "organization",
        "user-agent",
        "mime-version",
    }
)
_MAX_HEADER_VALUE = 500
_MAX_KEPT_HEADERS = 60
_MAX_REFERENCES = 20
_FALLBACK_CHARSETS = ("utf-8", "cp1252")

#: Containers (multipart/*, message/rfc822) nested deeper than this are refused: the
#: standard parser recurses once per level and ends in RecursionError.
MAX_DEPTH = 20
#: Parts of one message. Real mail has a few dozen at most; ten thousand took 76 s.
MAX_PARTS = 1000
#: HTML converted to text, in characters; the rest is cut (html2text is slow on megabytes).
MAX_HTML_TO_TEXT = 128 * 1024
#: Text and HTML kept per message, in characters.
MAX_BODY_CHARS = 1024 * 1024

# Both scans are linear and run before the standard parser: a declared container, and a
# line that can open or close a part (a MIME boundary delimiter starts with two hyphens).
_CONTAINER = re.compile(rb"^content-type:\s*(?:multipart/|message/rfc822)", re.I | re.M)
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]{1,200})', re.I)
_DELIMITER = re.compile(rb"^--([^\r\n]{1,200}?)(?:--)?[ \t]*\r?$", re.M)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body (links kept, images and styling dropped).

    Only the first :data:`MAX_HTML_TO_TEXT` characters are converted."""
    import html2text  # with the first HTML body, not at the service's start

    html = html[:MAX_HTML_TO_TEXT]
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.single_line_break = False
    return converter.handle(html).strip()


# --------------------------------------------------------------------------- headers


def _unsurrogate(value: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: decode them (UTF-8, else cp1252)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _clean(value: str) -> str:
    return _WS.sub(" ", _unsurrogate(value).replace("\x00", "")).strip()


def _header(msg: Message, name: str) -> str | None:
    """An unstructured header's decoded value (RFC 2047); never raises.

    Decoded from the raw value: the policy's header objects are costly to build, and
    unstructured headers gain nothing from them.
    """
    raw = _raw_header(msg, name)
    if raw is None:
        return None
    return _clean(_decode_raw_header(raw))


def _decode_raw_header(raw: str) -> str:
    from email.header import decode_header, make_header

    if "=?" not in raw:
        return raw
    try:
        return str(make_header(decode_header(raw)))
    except Exception:  # undecodable encoded-words: keep the raw text
        return raw


def _raw_header(msg: Message, name: str) -> str | None:
    lower = name.lower()
    for raw_name, raw_value in msg.raw_items():
        if raw_name.lower() == lower:
            return str(raw_value)
    return None


def _addresses(msg: Message, name: str) -> list[EmailAddress]:
    found: list[tuple[str, str]] = []
    try:
        header = msg.get(name)
        if header is not None and hasattr(header, "addresses"):
            found = [(a.display_name, a.addr_spec) for a in header.addresses]
    except Exception:  # fall back to the permissive legacy parser
        found = []
    if not found:
        raw = _raw_header(msg, name)
        if raw:
            found = getaddresses([_decode_raw_header(raw)])
    result: list[EmailAddress] = []
    seen: set[str] = set()
    for display, spec in found:
        spec = _clean(spec).strip("<>")
        if not spec or spec.lower() in seen:
            continue
        try:
            address = EmailAddress(address=spec, name=_clean(display) or None)
        except ValidationError:
            continue  # "undisclosed-recipients:;" and other non-addresses
        seen.add(address.address)
        result.append(address)
    return result


def _date(msg: Message) -> datetime | None:
    parsed: datetime | None = None
    try:
        header = msg.get("date")
        parsed = getattr(header, "datetime", None)
    except Exception:  # malformed dates are common in spam and old mailers
        parsed = None
    if parsed is None:
        raw = _raw_header(msg, "date")
        if raw:
            try:
                parsed = parsedate_to_datetime(raw.strip())
            except (TypeError, ValueError, IndexError):
                parsed = None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": the zone is unknown; treat as UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def message_ids(value: str | None) -> list[str]:
    """Every ``<msg-id>`` token of a header value, in order."""
    return _MSGID.findall(value or "")


def _message_id(msg: Message) -> str | None:
    raw = _raw_header(msg, "message-id")
    if raw is None:
        return None
    ids = message_ids(raw)
    if ids:
        return ids[0]
    cleaned = _clean(raw)
    return f"<{cleaned}>" if cleaned and " " not in cleaned else None


def _kept_headers(msg: Message) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, _ in msg.raw_items():
        lower = name.lower()
        if lower in kept or lower in _MODELLED:
            continue
        if lower in _KEPT or lower.startswith("x-"):
            value = _header(msg, name)
            if value is not None:
                kept[lower] = value[:_MAX_HEADER_VALUE]
        if len(kept) >= _MAX_KEPT_HEADERS:
            break
    return kept


# --------------------------------------------------------------------------- bodies


def _decode_text(part: Message) -> str:
    """Text of a part, surviving wrong, unknown or missing charsets."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        inner = part.get_payload()
        return inner if isinstance(inner, str) else ""
    declared = part.get_content_charset()
    candidates = [declared] if declared else []
    candidates += [c for c in _FALLBACK_CHARSETS if c != declared]
    for charset in candidates:
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("utf-8", errors="replace")


def _payload_size(part: Message) -> int:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding still has a size on the wire
        payload = None
    if isinstance(payload, bytes):
        return len(payload)
    raw = part.get_payload()
    if isinstance(raw, list):
        return sum(len(p.as_bytes()) for p in raw if isinstance(p, Message))
    return len(raw.encode("utf-8", "replace")) if isinstance(raw, str) else 0


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # broken RFC 2231 parameters
        name = None
    return _clean(name) if name else None


def check_structure(msg: Message) -> None:
    """Refuse a parsed message nested deeper than MAX_DEPTH or with more than MAX_PARTS
    parts (iteratively: the check itself must not recurse)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > MAX_PARTS:
            raise MalformedContentError(f"more than {MAX_PARTS} MIME parts")
        if depth > MAX_DEPTH:
            raise MalformedContentError(f"MIME parts nested deeper than {MAX_DEPTH}")
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in payload if isinstance(sub, Message))


class _Bodies:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []

    def walk(self, part: Message) -> None:
        content_type = part.get_content_type()
        if part.is_multipart() and content_type != "message/rfc822":
            subparts = part.get_payload()
            if isinstance(subparts, list):
                if content_type == "multipart/alternative":
                    self._alternative([p for p in subparts if isinstance(p, Message)])
                else:
                    for sub in subparts:
                        if isinstance(sub, Message):
                            self.walk(sub)
            return
        disposition = part.get_content_disposition()
        filename = _filename(part)
        is_body = (
            content_type in ("text/plain", "text/html")
            and disposition != "attachment"
            and not (filename and disposition != "inline")
        )
        if is_body:
            text = _decode_text(part)
            (self.text if content_type == "text/plain" else self.html).append(text)
            return
        content_id = part.get("content-id")
        self.attachments.append(
            Attachment(
                filename=filename,
                content_type=content_type,
                size=_payload_size(part),
                content_id=_clean(str(content_id)).strip("<>") or None if content_id else None,
                is_inline=disposition == "inline"
                or (disposition is None and content_id is not None),
            )
        )

    def _alternative(self, parts: list[Message]) -> None:
        # Keep the plain and the HTML version of the same content, and nothing twice.
        plain = [p for p in parts if p.get_content_type() == "text/plain"]
        html = [p for p in parts if p.get_content_type() == "text/html"]
        rest = [p for p in parts if p not in plain and p not in html]
        for part in plain[:1]:
            self.text.append(_decode_text(part))
        for part in html[:1]:
            self.html.append(_decode_text(part))
        if not plain and not html:
            for part in rest[-1:]:  # the richest alternative comes last
                self.walk(part)
        else:
            for part in rest:
                if part.is_multipart():
                    nested = _Bodies()
                    nested.walk(part)
                    if not plain:
                        self.text.extend(nested.text)
                    if not html:
                        self.html.extend(nested.html)
                    self.attachments.extend(nested.attachments)


def _normalise_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").strip()


# --------------------------------------------------------------------------- parse


def _prescan(raw: bytes) -> None:
    # Upper bounds from the raw bytes, before the parser recurses or builds 10,000 parts:
    # every nesting level needs a declared container, every part a delimiter line.
    containers = len(_CONTAINER.findall(raw))
    if containers > MAX_PARTS // 10:
        raise MalformedContentError(f"{containers} nested containers declared")
    boundaries = {b.strip() for b in _BOUNDARY.findall(raw)}
    if boundaries:
        # Only lines that open a part of a declared boundary count (one per part, plus
        # one closing line per container).
        delimiters = sum(1 for b in _DELIMITER.findall(raw) if b.strip() in boundaries)
        if delimiters > MAX_PARTS + containers:
            raise MalformedContentError(f"more than {MAX_PARTS} MIME parts")


def parse_mime(raw: bytes) -> MimeMessage:
    """The stdlib parse of raw RFC 5322 bytes (policy.default), within the structure limits
    (:class:`MalformedContentError` beyond them)."""
    _prescan(raw)
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except RecursionError:  # a structure the scan could not see (for instance no headers)
        raise MalformedContentError("MIME structure nested too deep") from None
    assert isinstance(message, MimeMessage)
    check_structure(message)
    return message


def derive_thread_id(
    message_id: str | None, in_reply_to: str | None, references: Sequence[str]
) -> str | None:
    """Thread root from References (RFC 5322 3.6.4): the first one, else the parent, else self."""
    if references:
        return references[0]
    return in_reply_to or message_id


def parse_message(
    raw: bytes,
    *,
    id: str,
    folder: str,
    flags: Iterable[str] = (),
    thread_id: str | None = None,
    is_draft: bool | None = None,
    received: datetime | None = None,
) -> EmailMessage:
    """An :class:`EmailMessage` from raw RFC 5322 bytes; tolerant of malformed input."""
    msg = parse_mime(raw)
    bodies = _Bodies()
    try:
        bodies.walk(msg)
    except Exception:  # last resort: a structure the walker cannot follow
        bodies = _Bodies()
        bodies.text.append(_decode_text(msg) if not msg.is_multipart() else "")
    html = "\n".join(bodies.html)[:MAX_BODY_CHARS] if bodies.html else None
    text = "\n\n".join(t for t in bodies.text if t.strip())[:MAX_BODY_CHARS]
    if not text.strip() and html:
        text = html_to_text(html)
    message_id = _message_id(msg)
    references = message_ids(_raw_header(msg, "references"))
    in_reply_to_ids = message_ids(_raw_header(msg, "in-reply-to"))
    in_reply_to = in_reply_to_ids[0] if in_reply_to_ids else None
    senders = _addresses(msg, "from") or _addresses(msg, "sender")
    flag_list = list(dict.fromkeys(flags))
    date = _date(msg) or received
    return EmailMessage(
        id=id,
        message_id=message_id,
        thread_id=thread_id or derive_thread_id(message_id, in_reply_to, references),
        folder=folder,
        subject=_header(msg, "subject") or "",
        sender=senders[0] if senders else None,
        reply_to=_addresses(msg, "reply-to"),
        to=_addresses(msg, "to"),
        cc=_addresses(msg, "cc"),
        bcc=_addresses(msg, "bcc"),
        date=date,
        text=_normalise_text(text),
        html=html,
        attachments=bodies.attachments,
        in_reply_to=in_reply_to,
        references=references,
        list_unsubscribe=_header(msg, "list-unsubscribe"),
        list_id=_header(msg, "list-id"),
        auto_submitted=_header(msg, "auto-submitted"),
        precedence=_header(msg, "precedence"),
        headers=_kept_headers(msg),
        flags=flag_list,
        is_draft=is_draft if is_draft is not None else "draft" in flag_list,
    )


# --------------------------------------------------------------------------- replies


def reply_subject(subject: str) -> str:
    """``Re: <subject>``, without stacking prefixes."""
    stripped = subject.strip()
    return stripped if stripped.lower().startswith("re:") else f"Re: {stripped}"


def reply_threading(original: EmailMessage) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) of a reply to ``original`` (RFC 5322 section 3.6.4)."""
    if not original.message_id:
        return None, list(original.references)
    parents = list(original.references)
    if not parents and original.in_reply_to:
        parents = [original.in_reply_to]
    refs = [r for r in parents if r != original.message_id] + [original.message_id]
    if len(refs) > _MAX_REFERENCES:  # keep the root and the most recent ancestors
        refs = [refs[0], *refs[-(_MAX_REFERENCES - 1) :]]
    return original.message_id, refs


def reply_recipients(
    original: EmailMessage, mode: DraftMode, me: str
) -> tuple[list[EmailAddress], list[EmailAddress]]:
    """(To, Cc) of a reply or reply-all, never including ``me``."""
    me = me.lower()
    to = list(original.reply_to or ([original.sender] if original.sender else []))
    if original.sender and original.sender.address == me and not original.reply_to:
        to = list(original.to)  # replying to one's own sent message goes to its recipients
    to = [a for a in to if a.address != me] or to
    cc: list[EmailAddress] = []
    if mode is DraftMode.REPLY_ALL:
        taken = {a.address for a in to} | {me}
        for address in [*original.to, *original.cc]:
            if address.address not in taken:
                taken.add(address.address)
                cc.append(address)
    return to, cc


# --------------------------------------------------------------------------- build


def _address(value: EmailAddress) -> Address:
    local, _, domain = value.address.rpartition("@")
    return Address(display_name=value.name or "", username=local, domain=domain)


def build_message(
    *,
    sender: EmailAddress,
    to: Sequence[EmailAddress] = (),
    cc: Sequence[EmailAddress] = (),
    bcc: Sequence[EmailAddress] = (),
    subject: str = "",
    body_text: str,
    body_html: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    message_id: str | None = None,
    date: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> MimeMessage:
    """A MIME message (text, plus an HTML alternative when given) with threading headers."""
    message = MimeMessage(policy=policy.SMTP)
    message["From"] = _address(sender)
    if to:
        message["To"] = [_address(a) for a in to]
    if cc:
        message["Cc"] = [_address(a) for a in cc]
    if bcc:
        message["Bcc"] = [_address(a) for a in bcc]
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain=sender.domain)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(body_text)
    if body_html:
        message.add_alternative(body_html, subtype="html")
    return message


def to_bytes(message: MimeMessage) -> bytes:
    """Wire form with CRLF line endings (what IMAP APPEND and SMTP expect)."""
    return message.as_bytes(policy=policy.SMTP)


def for_transmission(message: MimeMessage) -> MimeMessage:
    """A copy without Bcc and the assistant's own headers (the Sent copy keeps them)."""
    copy = parse_mime(to_bytes(message))
    del copy["Bcc"]
    del copy[IDEMPOTENCY_HEADER]
    return copy


__all__: list[Any] = [
    "IDEMPOTENCY_HEADER",
    "build_message",
    "derive_thread_id",
    "for_transmission",
    "html_to_text",
    "message_ids",
    "parse_message",
    "parse_mime",
    "reply_recipients",
    "reply_subject",
    "reply_threading",
    "to_bytes",
]
