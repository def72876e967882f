"""MIME parsing under hostile structure (issue 15, finding 11).

Deep nesting and huge part counts are refused with a typed error, quickly and without a
RecursionError; huge HTML is converted in bounded time; and for any bytes at all the parser
either returns a message or raises that typed error, within a time and memory bound.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.errors import MalformedContentError
from integrations.mime import MAX_BODY_CHARS, MAX_DEPTH, MAX_PARTS, parse_message


def _nested_multiparts(levels: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello" + closing


def _nested_rfc822(levels: int) -> bytes:
    inner = b"From: a@example.com\r\nSubject: core\r\n\r\nhello\r\n"
    for _ in range(levels):
        inner = b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n" + inner
    return inner


def _many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count)
    )
    return (
        b"From: a@example.com\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    )


def _parse(raw: bytes) -> object:
    return parse_message(raw, id="1", folder="INBOX")


@pytest.mark.parametrize(
    "raw",
    [_nested_multiparts(1000), _nested_rfc822(1000), _many_parts(10_000)],
    ids=["1000-nested-multiparts", "1000-nested-rfc822", "10000-parts"],
)
def test_hostile_structures_raise_a_typed_error_quickly(raw: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(MalformedContentError):
        _parse(raw)
    # Generous for a loaded two-core machine; these took 76 s or hit RecursionError before.
    assert time.perf_counter() - started < 10


def test_structures_within_the_limits_still_parse() -> None:
    assert "hello" in _parse(_nested_multiparts(MAX_DEPTH - 2)).text  # type: ignore[attr-defined]
    message = _parse(_many_parts(MAX_PARTS // 2))
    assert message.text.count("part ") == MAX_PARTS // 2  # type: ignore[attr-defined]


def test_depth_just_past_the_limit_is_refused() -> None:
    with pytest.raises(MalformedContentError):
        _parse(_nested_multiparts(MAX_DEPTH + 2))


def test_megabytes_of_html_convert_in_bounded_time() -> None:
    row = b"<tr><td><a href='https://example.com/x'>cell</a></td><td><b>bold</b></td></tr>\n"
    html = b"<html><body><table>" + row * (12 * 1024 * 1024 // len(row)) + b"</table></body></html>"
    raw = (
        b"From: a@example.com\r\nSubject: big\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + html
    )
    started = time.perf_counter()
    message = _parse(raw)
    assert time.perf_counter() - started < 30  # over 60 s before
    assert message.text and len(message.text) <= MAX_BODY_CHARS  # type: ignore[attr-defined]
    assert message.html is not None and len(message.html) <= MAX_BODY_CHARS  # type: ignore[attr-defined]


# ------------------------------------------------------------------ property-based

_header_names = st.sampled_from(
    [
        "From",
        "To",
        "Subject",
        "Date",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Message-ID",
        "References",
        "X-Thing",
    ]
)
_content_types = st.sampled_from(
    [
        b"text/plain",
        b"text/html",
        b"multipart/mixed; boundary=b",
        b"multipart/alternative; boundary=b",
        b'multipart/related; boundary="c"',
        b"message/rfc822",
        b"application/octet-stream; name*=utf-8''%ff%fe",
        b"text/plain; charset=klingon",
    ]
)


@st.composite
def mime_like(draw: st.DrawFn) -> bytes:
    """Bytes shaped like mail: headers, boundaries, nested containers, junk in between."""
    chunks: list[bytes] = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            name = draw(_header_names).encode()
            value = draw(st.binary(max_size=40))
            chunks.append(name + b": " + value + b"\r\n")
        elif kind == 1:
            chunks.append(b"Content-Type: " + draw(_content_types) + b"\r\n\r\n")
        elif kind == 2:
            chunks.append(draw(st.sampled_from([b"--b\r\n", b"--b--\r\n", b"--c\r\n", b"\r\n"])))
        elif kind == 3:
            chunks.append(draw(st.binary(max_size=200)))
        else:
            chunks.append(b"=?utf-8?b?" + draw(st.binary(max_size=20)) + b"?=\r\n")
    return b"".join(chunks)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=st.one_of(mime_like(), st.binary(max_size=2000)))
def test_any_bytes_parse_or_raise_the_typed_error_within_bounds(raw: bytes) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        _parse(raw)
    except MalformedContentError:
        pass
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 5, f"{elapsed:.1f} s for {len(raw)} bytes"
    assert peak < 50 * 1024 * 1024, f"{peak} bytes for {len(raw)} bytes of input"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(MAX_DEPTH + 1, 3000), rfc822=st.booleans())
def test_any_nesting_past_the_limit_is_refused_in_bounded_time_and_memory(
    depth: int, rfc822: bool
) -> None:
    raw = _nested_rfc822(depth) if rfc822 else _nested_multiparts(depth)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(MalformedContentError):
            _parse(raw)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < 10
    assert peak < 100 * 1024 * 1024
