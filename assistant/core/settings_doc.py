"""The configuration reference, generated from the Settings model (so it cannot drift)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from assistant.core.settings import Settings


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if hasattr(value, "get_secret_value"):
        return "(development placeholder)"
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    if hasattr(value, "value"):
        value = value.value
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if text != "" else '""'


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, f"{prefix}{name}__")
            continue
        description = (field.description or "").replace("|", "\\|")
        yield f"ASSISTANT_{prefix}{name}".upper(), _default(field), description


def settings_reference() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting."""
    return list(_walk(Settings))


def settings_reference_markdown() -> str:
    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for env, default, description in settings_reference():
        lines.append(f"| `{env}` | `{default}` | {description} |")
    return "\n".join(lines)
