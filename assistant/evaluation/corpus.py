"""Labelled triage corpora: the label mapping and the record -> EmailMessage conversion.

Records are JSON lines with ``id``, ``sender``, ``to``, ``cc``, ``subject``, ``date``,
``body``, a corpus ``category`` label and ``is_phishing`` (the GAIA corpus's fields). They
carry no mail headers: when a body starts with an RFC 5322 header block, it is parsed, so
that header-driven rules can fire.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.core.errors import ConfigurationError
from assistant.triage.models import Category, Priority
from assistant.triage.rules import TriageContext
from integrations.base import EmailAddress, EmailMessage

DEFAULT_MAPPING = Path(__file__).resolve().parent / "gaia_mapping.yaml"
# The development / held-out split of a corpus: fixed, so that every run, bench and person
# sees the same held-out records. Rules and thresholds are tuned on ``dev`` only.
SPLIT_SEED = "triage-split-1"
HELDOUT_SHARE = 0.5
SPLITS = ("all", "dev", "heldout")


class LabelTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    priority: Priority | None = None


class LabelMapping(BaseModel):
    """Corpus label -> our category (and priority where the corpus implies one)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "mapping"
    labels: dict[str, LabelTarget]
    phishing: Category | None = Field(
        default=Category.IGNORE, description="Expected category of is_phishing records."
    )
    counts_as: dict[Category, Category] = Field(
        default_factory=dict,
        description="A predicted category scored as another, for a class the corpus lacks "
        "(schedule -> respond: a meeting request is answered with proposed times).",
    )

    def scored(self, predicted: str) -> str:
        """The predicted category as scored under ``counts_as``."""
        try:
            return self.counts_as.get(Category(predicted), Category(predicted)).value
        except ValueError:
            return predicted  # undecided, error

    def expected(self, record: dict[str, Any], *, strict: bool = False) -> Category:
        """The category a record should get; ``strict`` ignores the phishing override."""
        if record.get("is_phishing") and self.phishing is not None and not strict:
            return self.phishing
        label = record.get("category")
        if label not in self.labels:
            raise ConfigurationError(f"label {label!r} is not in mapping {self.name!r}")
        return self.labels[label].category

    def describe(self) -> list[str]:
        lines = [
            f"{label} -> {t.category.value}" + (f"/{t.priority.value}" if t.priority else "")
            for label, t in self.labels.items()
        ]
        if self.phishing is not None:
            lines.append(f"is_phishing -> {self.phishing.value} (whatever the label)")
        for ours, scored in self.counts_as.items():
            lines.append(f"predicted {ours.value} scored as {scored.value}")
        return lines


def load_mapping(path: str | Path | None = None) -> LabelMapping:
    """A mapping from YAML (default: the GAIA mapping shipped with the package)."""
    path = Path(path) if path else DEFAULT_MAPPING
    try:
        return LabelMapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}", problems=[f"{path}: {exc}"]) from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(
            f"invalid label mapping {path}", problems=[f"{path}: {exc}"]
        ) from exc


def split_of(record: dict[str, Any], *, seed: str = SPLIT_SEED) -> str:
    """'dev' or 'heldout', from a hash of the seed and the record's id (stable across runs,
    machines and the order of the file)."""
    digest = hashlib.sha256(f"{seed}:{record['id']}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < HELDOUT_SHARE else "dev"


def select_split(
    records: list[dict[str, Any]], split: str, *, seed: str = SPLIT_SEED
) -> list[dict[str, Any]]:
    """The records of ``split`` ('all', 'dev' or 'heldout')."""
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    if split == "all":
        return list(records)
    return [r for r in records if split_of(r, seed=seed) == split]


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """JSON lines; blank lines skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}", problems=[f"{path}: {exc}"]) from exc
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise ConfigurationError(f"{path}:{number}: not JSON") from exc
    return records


_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]{1,40}):[ \t]*(.*)$")
_KNOWN = {
    "authentication-results",
    "list-unsubscribe",
    "list-id",
    "precedence",
    "auto-submitted",
    "reply-to",
    "content-type",
    "in-reply-to",
    "references",
    "message-id",
    "from",
    "to",
    "cc",
    "subject",
    "date",
}


def split_headers(body: str) -> tuple[dict[str, str], str]:
    """A leading RFC 5322 header block, if the body starts with one, and the rest."""
    lines = body.splitlines()
    headers: dict[str, str] = {}
    end = len(lines)
    for index, line in enumerate(lines):
        if not line.strip():
            end = index + 1
            break
        m = _HEADER_LINE.match(line)
        if m:
            headers[m.group(1).lower()] = m.group(2).strip()
        elif line[:1] in " \t" and headers:
            last = next(reversed(headers))
            headers[last] += " " + line.strip()
        else:
            return {}, body
    # Two known header names at least, so that "Note: ..." openings are not taken as headers.
    if sum(name in _KNOWN or name.startswith("x-") for name in headers) < 2:
        return {}, body
    return headers, "\n".join(lines[end:])


def _address(raw: str) -> EmailAddress | None:
    name, addr = parseaddr(raw)
    return EmailAddress(address=addr, name=name or None) if "@" in addr else None


def _addresses(raw: Any) -> list[EmailAddress]:
    if not raw:
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [EmailAddress(address=a, name=n or None) for n, a in getaddresses(items) if "@" in a]


def _body(raw: str) -> str:
    """Some records hold the body as a JSON list of strings (a dataset artefact): join it."""
    if raw.startswith('["'):
        try:
            parts = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return raw


def to_message(record: dict[str, Any]) -> EmailMessage:
    """A corpus record as the EmailMessage a connector would return."""
    headers, body = split_headers(_body(record.get("body") or ""))
    sender = _address(headers.pop("from", "") or record.get("sender") or "")
    date = datetime.fromisoformat(record["date"]) if record.get("date") else None
    return EmailMessage(
        id=record["id"],
        folder="inbox",
        subject=headers.pop("subject", record.get("subject") or ""),
        sender=sender,
        reply_to=_addresses(headers.pop("reply-to", None)),
        to=_addresses(record.get("to")),
        cc=_addresses(record.get("cc")),
        date=date if date is None or date.tzinfo else None,
        text=body,
        in_reply_to=headers.pop("in-reply-to", None),
        list_unsubscribe=headers.pop("list-unsubscribe", None),
        list_id=headers.pop("list-id", None),
        auto_submitted=headers.pop("auto-submitted", None),
        precedence=headers.pop("precedence", None),
        headers=headers,
    )


def context_for(message: EmailMessage) -> TriageContext:
    """The executive is the first ``to`` address; internal domains are its domain."""
    executive = message.to[0].address if message.to else "executive@example.com"
    return TriageContext(executive=executive)
