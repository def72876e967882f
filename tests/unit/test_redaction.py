"""Log lines carrying a JWT, a bearer header, a password or a client secret contain none."""

from __future__ import annotations

import logging

import jwt
import pytest
import structlog

from assistant.core.logging import configure_logging, redact_text

SECRET_JWT = jwt.encode({"sub": "dana", "roles": ["Executive"]}, "k" * 32, algorithm="HS256")
PASSWORD = "hunter2-Correct-Horse"  # noqa: S105
CLIENT_SECRET = "cs~8Q~verysecretvalue_1234567890"  # noqa: S105
API_KEY = "sk-proj-abcdefghijklmnopqrstuvwx"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_secrets_never_reach_log_lines(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", fmt)
    log = structlog.stdlib.get_logger("test")
    log.info("auth.header_seen", authorization=f"Bearer {SECRET_JWT}")
    log.info("user.login", username="dana", password=PASSWORD)
    log.info("msal.config", client_secret=CLIENT_SECRET, settings={"api_key": API_KEY})
    log.info(f"free text with token {SECRET_JWT} and Bearer {CLIENT_SECRET}")
    log.warning("nested", payload={"headers": {"Authorization": f"Basic {PASSWORD}"}})
    # third-party lines through the stdlib, formatted with %-args
    logging.getLogger("httpx").info(
        "GET %s?client_secret=%s", "https://login.example/token", CLIENT_SECRET
    )
    logging.getLogger("msal").info("token response: access_token=%s", SECRET_JWT)
    try:
        raise RuntimeError(f"db failed: postgresql://app:{PASSWORD}@db/prod")
    except RuntimeError:
        log.exception("db.failed")
    err = capsys.readouterr().err
    assert "user.login" in err and "nested" in err and "login.example" in err
    for secret in (SECRET_JWT, PASSWORD, CLIENT_SECRET, API_KEY):
        assert secret not in err, secret
    assert "[REDACTED]" in err


def test_redact_text_keeps_ordinary_words() -> None:
    text = "The token budget for the quarterly passwordless rollout is fine."
    assert redact_text(text) == text


def test_redaction_stays_linear_on_long_words() -> None:
    # A 200 KB run of letters once made the URL-credential pattern backtrack for minutes.
    # Not a timing assertion: a quadratic pattern would not finish within the suite at all.
    text = "a" * 200_000 + " postgresql://app:s3cret@db/prod"
    redacted = redact_text(text)
    assert "s3cret" not in redacted and redacted.startswith("a" * 1000)


@pytest.mark.parametrize(
    "text",
    [
        f"header {SECRET_JWT} seen",
        f"BEARER {CLIENT_SECRET}",
        f"basic {PASSWORD}",
        f'{{"client_secret": "{CLIENT_SECRET}"}}',
        f"db_password={PASSWORD}&x=1",
        f"Api-Key: {API_KEY}",
        f"postgresql://app:{PASSWORD}@db/prod",
        f"HTTPS://user:{PASSWORD}@host",
        f"key {API_KEY}",
        "ea_abcdef_0123456789abcdefXYZ",
    ],
)
def test_the_quick_check_lets_every_secret_through_to_the_patterns(text: str) -> None:
    """redact_text skips text its one search finds nothing in: that search must find every
    pattern's match (the patterns' flags kept), or a secret would be kept."""
    from assistant.core.logging import _VALUE_PATTERNS

    expected = text
    for pattern, replacement in _VALUE_PATTERNS:
        expected = pattern.sub(replacement, expected)
    assert expected != text  # the sample holds a secret
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"header {SECRET_JWT} seen",
        f"BEARER {CLIENT_SECRET}",
        f"basic {PASSWORD}",
        "Negotiate YIIabcdefghijkl",
        f'{{"CLIENT_SECRET": "{CLIENT_SECRET}"}}',
        f"db_PASSWD={PASSWORD}&x=1",
        f"my-Token: {PASSWORD}",
        f"Api-Key: {API_KEY}",
        f"ApiKey={PASSWORD}",
        f"postgresql://app:{PASSWORD}@db/prod",
        f"HTTPS://user:{PASSWORD}@host",
        f"key {API_KEY}",
        "ea_abcdef_0123456789abcdefXYZ",
        # beyond ASCII: IGNORECASE lets the long s and the Kelvin sign match s and k
        f"db_pa\u017f\u017fword={PASSWORD}",
        f"api_\u212aey={PASSWORD}",
    ],
)
def test_the_substring_check_lets_every_secret_through_to_the_patterns(text: str) -> None:
    """redact_text searches only text holding one of the parts every match contains
    (_may_hold_secret): for every text a pattern matches, it must say so."""
    from assistant.core.logging import _VALUE_PATTERNS, _may_hold_secret

    assert any(pattern.search(text) for pattern, _ in _VALUE_PATTERNS)
    assert _may_hold_secret(text)
    assert redact_text(text) != text


def test_every_value_pattern_is_covered_by_the_substring_check() -> None:
    """_REQUIRED_PARTS is written for these patterns: a new or changed one needs its parts
    there (and a sample above), or the check would keep its secrets from the search."""
    from assistant.core.logging import _VALUE_PATTERNS

    assert [pattern.pattern for pattern, _ in _VALUE_PATTERNS] == [
        r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        r"(?i)\b(bearer|basic|negotiate)\s+[A-Za-z0-9._~+/=-]{8,}",
        r"(?i)\b([A-Za-z_-]*(?:password|passwd|secret|token|api[_-]?key|apikey|client_secret)"
        r"[A-Za-z_-]*)(\"?\s*[=:]\s*\"?)([^\s\"'&,;}]+)",
        r"(?i)\b([a-z][a-z0-9+.-]{0,31}://[^:/@\s]+):([^@\s]+)@",
        r"\b(sk-[A-Za-z0-9_-]{16,}|ea_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,})",
    ]


def test_the_substring_check_passes_ordinary_text() -> None:
    from assistant.core.logging import _may_hold_secret

    for text in ("external-mail-needs-review", "dana.whitfield@northwind.example", "approved"):
        assert not _may_hold_secret(text)
