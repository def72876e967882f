"""What the receiving mail server said about a message's origin (RFC 8601 headers).

The ``Authentication-Results`` header is written by the organisation's own mail server,
so it is the one header a sender cannot forge in a way that holds: an attacker can add
their own copy, but the receiving server's line comes first (it is prepended). Only the
first header is read for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import authres

# Results that mean the check ran and the message failed it (RFC 8601 section 2.7).
_FAILED = frozenset({"fail", "softfail", "permerror"})


@dataclass(frozen=True)
class AuthVerdict:
    """DMARC, SPF and DKIM outcomes for the From domain, as the receiving server saw them."""

    dmarc: str | None = None
    spf: str | None = None
    dkim: str | None = None
    header_from: str | None = None

    @property
    def failed(self) -> bool:
        """DMARC failed, or (no DMARC result) SPF and DKIM both failed or were missing."""
        if self.dmarc is not None:
            return self.dmarc in _FAILED
        spf_bad = self.spf in _FAILED
        dkim_bad = self.dkim in _FAILED or self.dkim == "none"
        return spf_bad and dkim_bad

    @property
    def passed(self) -> bool:
        return self.dmarc == "pass" or (self.dmarc is None and "pass" in (self.spf, self.dkim))

    def describe(self) -> str:
        parts = [f"{name}={value}" for name, value in self._items() if value is not None]
        return ", ".join(parts) or "no results"

    def _items(self) -> tuple[tuple[str, str | None], ...]:
        return (("dmarc", self.dmarc), ("spf", self.spf), ("dkim", self.dkim))


def parse_authentication(headers: dict[str, str]) -> AuthVerdict | None:
    """The verdict of the ``authentication-results`` header, or None when there is none or
    it does not parse (an unreadable header is no evidence either way)."""
    value = headers.get("authentication-results")
    if not value:
        return None
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(value)
    except (authres.AuthResError, ValueError, IndexError):
        return None
    found: dict[str, str] = {}
    header_from = None
    for result in parsed.results:
        method = str(result.method).lower()
        # The first result of a method wins: a second DKIM signature that passes does not
        # undo the first one's failure for this purpose, and vice versa.
        found.setdefault(method, str(result.result).lower())
        if method == "dmarc":
            for prop in result.properties:
                if prop.type == "header" and prop.name == "from":
                    header_from = str(prop.value).lower()
    if not found:
        return None
    return AuthVerdict(
        dmarc=found.get("dmarc"),
        spf=found.get("spf"),
        dkim=found.get("dkim"),
        header_from=header_from,
    )
