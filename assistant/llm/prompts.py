"""Versioned prompt files: ``prompts/<name>@<version>.yaml``, never rewritten at run time.

A prompt file holds ``name``, ``version``, ``description``, ``variables`` (each ``trusted``
or ``untrusted``), and the ``system`` and ``user`` templates (``string.Template``: ``$name``).
Untrusted variables (mail, event text) are wrapped by :func:`delimit` in markers carrying a
random id that the content cannot guess, and any marker-like text inside is defused. A new
wording is a new file with a higher version; results record ``name@version``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.core.errors import ConfigurationError
from assistant.core.yaml_loading import safe_load

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
_REF = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)(?:@(?P<version>[1-9][0-9]*))?$")
_FILE = re.compile(r"^(?P<name>[a-z][a-z0-9_]*)@(?P<version>[1-9][0-9]*)\.yaml$")
#: Anything that looks like our markers, inside untrusted text, is defused.
_MARKER = re.compile(r"<\s*/?\s*untrusted[_ -]?data[^>]*>", re.IGNORECASE)
UNTRUSTED_TAG = "untrusted_data"


class _PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = ""
    variables: dict[str, Literal["trusted", "untrusted"]] = Field(default_factory=dict)
    system: str
    user: str


@dataclass(frozen=True)
class Prompt:
    """One prompt version. ``ref`` (``name@version``) is what results and the ledger record."""

    name: str
    version: int
    description: str
    variables: dict[str, Literal["trusted", "untrusted"]]
    system: str
    user: str
    sha256: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **values: str) -> list[BaseMessage]:
        """System and user messages, untrusted variables delimited as data."""
        # langchain_core.messages alone takes ~1 s to import: only callers of a model pay it.
        from langchain_core.messages import HumanMessage, SystemMessage

        missing = set(self.variables) - set(values)
        unknown = set(values) - set(self.variables)
        if missing or unknown:
            raise ValueError(
                f"prompt {self.ref}: missing {sorted(missing)}, unknown {sorted(unknown)}"
            )
        nonce = secrets.token_hex(6)
        rendered = {
            key: delimit(value, key, nonce) if self.variables[key] == "untrusted" else value
            for key, value in values.items()
        }
        return [
            SystemMessage(Template(self.system).substitute(rendered)),
            HumanMessage(Template(self.user).substitute(rendered)),
        ]


def delimit(text: str, kind: str, nonce: str | None = None) -> str:
    """``text`` between ``<untrusted_data id=... kind=...>`` markers, marker look-alikes
    inside defused, so that the content cannot close the block early."""
    nonce = nonce or secrets.token_hex(6)
    safe = _MARKER.sub("[marker removed]", text)
    return f'<{UNTRUSTED_TAG} id="{nonce}" kind="{kind}">\n{safe}\n</{UNTRUSTED_TAG} id="{nonce}">'


def _load_file(path: Path) -> Prompt:
    match = _FILE.match(path.name)
    if match is None:
        raise ConfigurationError(f"prompt file name must be name@version.yaml: {path.name}")
    raw_text = path.read_text(encoding="utf-8")
    try:
        data = _PromptFile.model_validate(safe_load(raw_text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(
            f"invalid prompt file {path.name}", problems=[f"{path.name}: {exc}"]
        ) from exc
    if (data.name, data.version) != (match["name"], int(match["version"])):
        raise ConfigurationError(f"{path.name} declares {data.name}@{data.version}")
    for template in (data.system, data.user):
        named = {
            m.group("named") or m.group("braced")
            for m in Template.pattern.finditer(template)
            if m.group("named") or m.group("braced")
        }
        undeclared = named - set(data.variables)
        if undeclared:
            raise ConfigurationError(f"{path.name} uses undeclared variables {sorted(undeclared)}")
    return Prompt(
        name=data.name,
        version=data.version,
        description=data.description,
        variables=data.variables,
        system=data.system,
        user=data.user,
        sha256=hashlib.sha256(raw_text.encode()).hexdigest(),
    )


def available(directory: Path = PROMPTS_DIR) -> list[str]:
    """Every ``name@version`` in ``directory``."""
    return sorted(p.name.removesuffix(".yaml") for p in directory.glob("*@*.yaml"))


@lru_cache(maxsize=64)
def load_prompt(ref: str, directory: Path = PROMPTS_DIR) -> Prompt:
    """``name@version``, or ``name`` for its highest version."""
    match = _REF.match(ref)
    if match is None:
        raise ConfigurationError(f"not a prompt reference: {ref!r} (name or name@version)")
    name, version = match["name"], match["version"]
    if version is None:
        versions = [
            int(m["version"])
            for p in directory.glob(f"{name}@*.yaml")
            if (m := _FILE.match(p.name))
        ]
        if not versions:
            raise ConfigurationError(f"no prompt named {name!r} in {directory}")
        version = str(max(versions))
    path = directory / f"{name}@{version}.yaml"
    if not path.is_file():
        raise ConfigurationError(f"no prompt {name}@{version} in {directory}")
    return _load_file(path)
