"""Benchmark: what hostile MIME costs, with the structure limits and without them.

Each input is parsed by ``integrations.mime.parse_message`` (limits: a linear pre-scan,
then refusal) and by the same parse without the limits (the standard library parser and
our body walk, as before issue 15); seconds and the ratio are printed side by side.

    .venv/bin/python -m bench.hostile_mime [--parts 2000] [--depth 900] [--html-mib 4]

The baseline of 10,000 parts took over a minute, hence the smaller default; the inputs
are generated here (no data set is involved).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from email import policy
from email.parser import BytesParser

from integrations import mime
from integrations.errors import MalformedContentError


def _nested(levels: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(levels)
    )
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return b"From: a@example.com\r\nSubject: deep\r\n" + opening + b"\r\nhello" + closing


def _parts(count: int) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(count))
    return (
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + body
        + b"--b--\r\n"
    )


def _html(mib: int) -> bytes:
    row = b"<tr><td><a href='https://example.com/x'>cell</a></td><td><b>bold</b></td></tr>\n"
    html = b"<table>" + row * (mib * 1024 * 1024 // len(row)) + b"</table>"
    return b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html


def _unlimited(raw: bytes) -> None:
    """The parse as it was: the standard parser, the body walk, all the HTML converted."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    bodies = mime._Bodies()
    bodies.walk(message)
    if bodies.html and not any(t.strip() for t in bodies.text):
        import html2text

        converter = html2text.HTML2Text()
        converter.body_width = 0
        converter.handle("\n".join(bodies.html))


def _limited(raw: bytes) -> None:
    with contextlib.suppress(MalformedContentError):
        mime.parse_message(raw, id="1", folder="INBOX")


def _time(parse: Callable[[bytes], None], raw: bytes) -> str:
    started = time.perf_counter()
    try:
        parse(raw)
    except RecursionError:
        return f"RecursionError after {time.perf_counter() - started:.2f} s"
    return f"{time.perf_counter() - started:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=900)
    parser.add_argument("--html-mib", type=int, default=4)
    args = parser.parse_args()
    sys.setrecursionlimit(1000)  # the interpreter's default, as in the service
    cases = [
        (f"{args.parts} parts", _parts(args.parts)),
        (f"{args.depth} nested multiparts", _nested(args.depth)),
        (f"{args.html_mib} MiB of HTML", _html(args.html_mib)),
    ]
    print(f"{'input':<28}{'without limits':>34}{'with limits':>16}{'ratio':>8}")
    for name, raw in cases:
        started = time.perf_counter()
        before = _time(_unlimited, raw)
        before_s = time.perf_counter() - started
        started = time.perf_counter()
        after = _time(_limited, raw)
        after_s = time.perf_counter() - started
        print(f"{name:<28}{before:>34}{after:>16}{before_s / max(after_s, 1e-6):>7.0f}x")


if __name__ == "__main__":
    main()
