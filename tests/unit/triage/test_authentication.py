"""Authentication-Results verdicts: what our own mail server said about the sender."""

from __future__ import annotations

import pytest

from assistant.triage.authentication import parse_authentication

PASS = (
    "mx.acme.com; dkim=pass header.i=@acme.com; spf=pass smtp.mailfrom=x@acme.com;"
    " dmarc=pass (p=NONE) header.from=acme.com"
)


@pytest.mark.parametrize(
    ("value", "failed", "passed"),
    [
        (PASS, False, True),
        (
            "mx.acme.com; spf=fail smtp.mailfrom=e.example; dmarc=fail header.from=acme.com",
            True,
            False,
        ),
        # No DMARC result: SPF and DKIM must both fail (or DKIM be absent).
        ("mx.acme.com; spf=softfail smtp.mailfrom=e.example; dkim=none", True, False),
        (
            "mx.acme.com; spf=fail smtp.mailfrom=e.example; dkim=pass header.d=e.example",
            False,
            True,
        ),
        ("mx.acme.com; spf=none smtp.mailfrom=e.example", False, False),
        # DMARC decides over SPF when both are there.
        (
            "mx.acme.com; spf=fail smtp.mailfrom=e.example; dmarc=pass header.from=e.example",
            False,
            True,
        ),
    ],
)
def test_verdicts(value: str, failed: bool, passed: bool) -> None:
    verdict = parse_authentication({"authentication-results": value})
    assert verdict is not None
    assert verdict.failed is failed
    assert verdict.passed is passed


def test_header_from_and_description() -> None:
    verdict = parse_authentication({"authentication-results": PASS})
    assert verdict is not None and verdict.header_from == "acme.com"
    assert verdict.describe() == "dmarc=pass, spf=pass, dkim=pass"


@pytest.mark.parametrize(
    "headers", [{}, {"authentication-results": ""}, {"authentication-results": ";;; ==="}]
)
def test_no_or_unreadable_header_is_no_evidence(headers: dict[str, str]) -> None:
    assert parse_authentication(headers) is None
