"""Domains that imitate the organisation's own: homoglyphs, typos, TLD swaps, brand embedding."""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList


@cache
def _public_suffixes() -> PublicSuffixList:
    """The Public Suffix List shipped inside the package (no download): it knows co.uk,
    com.au and the private suffixes (github.io, azurewebsites.net) where every name is
    another owner. Parsed on first use, not at import: it is a sizeable share of the
    service's start-up, and only triage needs it."""
    return PublicSuffixList()


# Characters that render like Latin letters: Cyrillic, Greek, Armenian and small-capital
# letters (escaped, so that this file does not itself confuse a reader), digits, symbols.
# Lower case is applied first, so "I" for "l" folds through "i".
_CONFUSABLES = str.maketrans(
    {
        "\u0430": "a",
        "\u0435": "e",
        "\u043e": "o",
        "\u0440": "p",
        "\u0441": "c",
        "\u0443": "y",
        "\u0445": "x",
        "\u0456": "l",
        "\u0458": "j",
        "\u0455": "s",
        "\u0501": "d",
        "\u04bb": "h",
        "\u04cf": "l",
        "\u0261": "g",
        "\u0578": "n",
        "\u057d": "u",
        "\u1d20": "v",
        "\u051d": "w",
        "\u03b1": "a",
        "\u03bf": "o",
        "\u03bd": "v",
        "\u03c1": "p",
        "\u03c4": "t",
        "\u03ba": "k",
        "\u03b9": "l",
        "\u03b5": "e",
        "0": "o",
        "1": "l",
        "3": "e",
        "5": "s",
        "7": "t",
        "|": "l",
        "i": "l",
        "-": "",
        "_": "",
    }
)
_MULTI = (("rn", "m"), ("vv", "w"), ("cl", "d"))


@lru_cache(maxsize=4096)
def split_domain(domain: str) -> tuple[str, str]:
    """(registrable name, public suffix): 'mail.acme.co.uk' -> ('acme', 'co.uk')."""
    domain = domain.lower().rstrip(".")
    suffix = _public_suffixes().publicsuffix(domain) or ""
    if suffix and domain != suffix and domain.endswith("." + suffix):
        return domain[: -len(suffix) - 1].rsplit(".", 1)[-1], suffix
    labels = domain.split(".")
    return (labels[-2], labels[-1]) if len(labels) >= 2 else (labels[0], "")


@lru_cache(maxsize=4096)
def registrable(domain: str) -> str:
    """The domain an organisation registers: 'eu.mail.acme.co.uk' -> 'acme.co.uk'."""
    name, suffix = split_domain(domain)
    return f"{name}.{suffix}" if suffix else name


def same_organisation(domain: str, own: frozenset[str] | set[str]) -> bool:
    """``domain`` is under the registrable domain of one of ``own``: the parent, a sibling
    or a child of an own domain belongs to the same owner (acme.com, eu.acme.com)."""
    if not domain:
        return False
    mine = registrable(domain)
    return any(registrable(d) == mine for d in own)


def _decode(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except UnicodeError:
            return label
    return label


@lru_cache(maxsize=4096)
def skeleton(label: str) -> str:
    """A label folded so that visually confusable spellings compare equal."""
    text = unicodedata.normalize("NFKC", _decode(label)).lower()
    # Accents are a classic trick ("amazön"): drop combining marks.
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.translate(_CONFUSABLES)
    for pair, single in _MULTI:
        text = text.replace(pair, single)
    return text


def edit_distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (adjacent transpositions), stopping early above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def is_within(domain: str, parents: frozenset[str] | set[str]) -> bool:
    """The domain is one of ``parents`` or a subdomain of one."""
    return any(domain == p or domain.endswith("." + p) for p in parents)


def lookalike(
    domain: str, internal: frozenset[str], *, typos: bool = True
) -> tuple[str, bool] | None:
    """(reason, strong) when ``domain`` imitates one of ``internal``, else None.

    Strong: a homoglyph or typo of the name, the name embedded in another domain, or the
    name under a confusable suffix (acme.co for acme.com). Weak: the same name under an
    unrelated suffix (acme.org), which is as often another organisation as an attack.
    ``typos=False`` skips the edit-distance test, for lists (such as free-mail providers)
    whose honest neighbours are many ("email.com" is one typo from "gmail.com").
    """
    if not domain or same_organisation(domain, internal):
        return None
    name, suffix = split_domain(domain)
    name_skel = skeleton(name)
    tokens = {_decode(t) for t in domain.lower().replace("-", ".").split(".")[:-1]}
    weak: tuple[str, bool] | None = None
    for own in sorted(internal):
        own_name, own_suffix = split_domain(own)
        if len(own_name) < 3:
            continue
        if name == own_name and suffix != own_suffix:
            if edit_distance(suffix, own_suffix, 1) <= 1:
                return f"{domain} swaps the suffix of {own}", True
            weak = weak or (f"{domain} has the name of {own} under another suffix", False)
            continue
        if skeleton(own_name) == name_skel:
            return f"{domain} is a homoglyph spelling of {own}", True
        # Short names have too many honest neighbours ("amd"/"amc") for an edit distance.
        if typos and len(own_name) >= 5:
            limit = 1 if len(own_name) < 8 else 2
            if edit_distance(name, own_name, limit) <= limit:
                return f"{domain} is one typo away from {own}", True
        if own_name in tokens:
            return f"{domain} embeds the name {own_name!r} of {own}", True
    return weak


def lookalike_reason(domain: str, internal: frozenset[str], *, typos: bool = True) -> str | None:
    """Why ``domain`` strongly imitates one of ``internal``, or None."""
    found = lookalike(domain, internal, typos=typos)
    return found[0] if found and found[1] else None
