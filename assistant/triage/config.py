"""Admin-configured triage rules (YAML): sender/domain rules, VIPs, internal domains."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from assistant.core.errors import ConfigurationError
from assistant.core.yaml_loading import safe_load
from assistant.triage.models import Category, Priority

_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _address(value: str) -> str:
    value = value.strip().lower()
    local, sep, domain = value.rpartition("@")
    if not sep or not local or not _DOMAIN.match(domain):
        raise ValueError(f"not an email address: {value!r}")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().lstrip("@").rstrip(".")
    if not _DOMAIN.match(value):
        raise ValueError(f"not a domain name: {value!r}")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SenderRule(_Model):
    """Mail from these senders or domains (and, optionally, with this subject) gets a fixed triage.

    Domains match their subdomains too. ``subject`` is a regular expression searched
    case-insensitively. Safety checks (phishing, prompt injection) still run first: a forged
    From header must not inherit the trust an admin gave the real sender.
    """

    id: str = Field(pattern=_ID, description="Stable id; provenance shows it as 'admin:<id>'.")
    description: str = ""
    senders: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    subject: str | None = Field(default=None, description="Regex searched in the subject.")
    category: Category
    priority: Priority = Priority.NORMAL

    @field_validator("senders", mode="before")
    @classmethod
    def _senders(cls, value: Any) -> Any:
        return [_address(v) for v in value] if isinstance(value, list | tuple) else value

    @field_validator("domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        return [_domain(v) for v in value] if isinstance(value, list | tuple) else value

    @field_validator("subject")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _needs_a_sender(self) -> SenderRule:
        if not self.senders and not self.domains:
            raise ValueError("a rule needs at least one of 'senders' or 'domains'")
        return self

    def matches(self, address: str, domain: str, subject: str) -> bool:
        """Sender address or domain (or a subdomain of it) matches, and the subject if set."""
        hit = address in self.senders or any(
            domain == d or domain.endswith("." + d) for d in self.domains
        )
        if not hit:
            return False
        return self.subject is None or _compiled(self.subject).search(subject) is not None


class VipEntry(_Model):
    """A sender whose mail is raised one priority step (a modifier, never a decision)."""

    address: str
    name: str | None = None

    _norm = field_validator("address")(classmethod(lambda cls, v: _address(v)))


class TriageRulesConfig(_Model):
    """The admin's triage configuration file."""

    version: Literal[1] = 1
    internal_domains: tuple[str, ...] = ()
    auto_replies: Literal[Category.NOTIFY, Category.IGNORE] = Field(
        default=Category.NOTIFY, description="Out-of-office replies: notify (low) or ignore."
    )
    vips: tuple[VipEntry, ...] = ()
    rules: tuple[SenderRule, ...] = ()

    @field_validator("internal_domains", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        return [_domain(v) for v in value] if isinstance(value, list | tuple) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> TriageRulesConfig:
        duplicates = _duplicates([r.id for r in self.rules])
        if duplicates:
            raise ValueError(f"duplicate rule ids: {', '.join(duplicates)}")
        return self


def _duplicates(ids: list[Any]) -> list[str]:
    counts = Counter(i for i in ids if isinstance(i, str))
    return sorted(i for i, n in counts.items() if n > 1)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    # Keyed on the text, not stored on the rule: model_copy(update=...) cannot leave a
    # stale compiled pattern behind.
    return re.compile(pattern, re.IGNORECASE)


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        problems.append(f"{where}: {item['msg']}")
    return problems


def parse_triage_rules(raw: Any, *, source: str = "triage rules") -> TriageRulesConfig:
    """Validate already-parsed YAML; one ConfigurationError lists every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigurationError(
            f"{source}: top level is not a mapping",
            problems=[f"{source}: top level is not a mapping"],
        )
    try:
        return TriageRulesConfig.model_validate(raw)
    except ValidationError as exc:
        problems = _problems(exc)
    # The model's duplicate-id check only runs once every field is valid; check the raw
    # mapping too so that one pass reports duplicates alongside the other errors.
    rules = raw.get("rules")
    if isinstance(rules, list) and not any("duplicate rule ids" in p for p in problems):
        duplicates = _duplicates([r.get("id") for r in rules if isinstance(r, dict)])
        if duplicates:
            problems.append(f"rules: duplicate rule ids: {', '.join(duplicates)}")
    problems = [f"{source}: {p}" for p in problems]
    raise ConfigurationError(f"{len(problems)} triage rule error(s)", problems=problems)


def load_triage_rules(path: str | Path) -> TriageRulesConfig:
    """Read and validate a triage rules YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}", problems=[f"{path}: {exc}"]) from exc
    try:
        raw = safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path} is not valid YAML", problems=[f"{path}: {exc}"]) from exc
    return parse_triage_rules(raw, source=str(path))
