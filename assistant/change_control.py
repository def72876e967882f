"""What change control versions, and how each kind is restored (governance.config_versions).

* ``policy``: the policy file's exact text. Restoring rewrites the file (after checking
  that it parses); a running service's PolicyStore notices the change within a second.
* ``prompts``: the prompt files (``name@version.yaml``, immutable by design) as texts;
  restoring rewrites the directory to exactly that set.
* ``llm``: a database-held override of model settings (model, temperature, output limit,
  timeout, per-task overrides; never a key or provider). The latest version *is* the
  override: :func:`apply_llm_override` lays it over ``settings.llm`` when services start.
* ``connector``: a stored connector instance (slug, plain config, enabled) with its
  secrets only as the connector store's encrypted token; restoring rewrites the row.

Policy, prompts and model settings belong to the deployment and are versioned under the
default tenant; connectors under their own tenant.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.connector_models import StoredConnector
from assistant.core.clock import utcnow
from assistant.core.errors import ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from assistant.core.settings import LLMSettings, Settings
from assistant.llm.prompts import PROMPTS_DIR
from governance.config_versions import Applier, latest, record_version
from governance.policy import default_policy_path, parse_policy
from governance.production_models import ConfigVersion

log = structlog.stdlib.get_logger(__name__)

#: Model settings the stored override may change.
LLM_OVERRIDE_FIELDS = frozenset({"model", "temperature", "max_output_tokens", "timeout_s", "tasks"})
_PROMPT_GLOB = "*@*.yaml"


def policy_path(settings: Settings) -> Path:
    return settings.governance.policy_file or default_policy_path()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _read_prompts(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(directory.glob(_PROMPT_GLOB))}


def _restore_prompts(directory: Path, files: dict[str, str]) -> None:
    for existing in directory.glob(_PROMPT_GLOB):
        if existing.name not in files:
            existing.unlink()
    for name, text in files.items():
        _write_atomically(directory / name, text)


# --------------------------------------------------------------------------- snapshots


async def snapshot_policy(
    session: AsyncSession, actor: Principal, settings: Settings, reason: str
) -> ConfigVersion:
    path = policy_path(settings)
    return await record_version(
        session,
        actor,
        kind="policy",
        content={"text": path.read_text(encoding="utf-8")},
        reason=reason,
    )


async def snapshot_prompts(
    session: AsyncSession, actor: Principal, reason: str, *, directory: Path = PROMPTS_DIR
) -> ConfigVersion:
    files = _read_prompts(directory)
    return await record_version(
        session, actor, kind="prompts", content={"files": files}, reason=reason
    )


async def set_llm_override(
    session: AsyncSession, actor: Principal, settings: Settings, values: dict[str, Any], reason: str
) -> ConfigVersion:
    """Record a new model-settings override (validated against the llm section)."""
    unknown = sorted(set(values) - LLM_OVERRIDE_FIELDS)
    if unknown:
        raise ValidationFailedError(
            f"not overridable: {unknown}; allowed: {sorted(LLM_OVERRIDE_FIELDS)}"
        )
    current = await latest(session, actor.tenant_id, "llm")
    merged = {**(current.content.get("override", {}) if current else {}), **values}
    merged_settings(settings.llm, merged)  # raises on invalid values
    return await record_version(
        session, actor, kind="llm", content={"override": merged}, reason=reason
    )


def merged_settings(base: LLMSettings, override: dict[str, Any]) -> LLMSettings:
    try:
        return LLMSettings.model_validate({**base.model_dump(), **override})
    except Exception as exc:
        raise ValidationFailedError(f"invalid model settings: {exc}") from None


def connector_content(row: StoredConnector | None) -> dict[str, Any]:
    if row is None:
        return {"exists": False}
    return {
        "exists": True,
        "slug": row.slug,
        "config": dict(row.config),
        "secrets_encrypted": row.secrets,
        "enabled": row.enabled,
    }


async def snapshot_connector(
    session: AsyncSession, actor: Principal, name: str, row: StoredConnector | None, reason: str
) -> ConfigVersion:
    return await record_version(
        session,
        actor,
        kind="connector",
        subject=name,
        content=connector_content(row),
        reason=reason,
    )


# --------------------------------------------------------------------------- restoring


async def apply_llm_override(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> Settings:
    """Settings with the stored model-settings override laid over ``settings.llm``."""
    try:
        async with sessions() as session:
            current = await latest(session, settings.auth.default_tenant, "llm")
    except Exception:  # the table may not exist before `assistant db upgrade`
        log.warning("change_control.llm_override_unavailable")
        return settings
    if current is None or not current.content.get("override"):
        return settings
    llm = merged_settings(settings.llm, current.content["override"])
    log.info("change_control.llm_override_applied", version=current.number)
    return settings.model_copy(update={"llm": llm})


def appliers(settings: Settings, *, prompts_dir: Path = PROMPTS_DIR) -> dict[str, Applier]:
    """How each kind of version is put back into effect."""

    async def policy(session: AsyncSession, actor: Principal, version: ConfigVersion) -> None:
        text = str(version.content["text"])
        parse_policy(text, source=f"policy@{version.number}")  # never write a broken policy
        _write_atomically(policy_path(settings), text)

    async def prompts(session: AsyncSession, actor: Principal, version: ConfigVersion) -> None:
        _restore_prompts(prompts_dir, version.content["files"])

    async def llm(session: AsyncSession, actor: Principal, version: ConfigVersion) -> None:
        # The restored version becomes the latest, hence the override services read.
        merged_settings(settings.llm, version.content.get("override", {}))

    async def connector(session: AsyncSession, actor: Principal, version: ConfigVersion) -> None:
        content = version.content
        row = (
            await session.execute(
                select(StoredConnector).where(
                    StoredConnector.tenant_id == actor.tenant_id,
                    StoredConnector.name == version.subject,
                )
            )
        ).scalar_one_or_none()
        now = utcnow()
        if not content.get("exists"):
            if row is not None:
                await session.delete(row)
                await session.flush()
            return
        if row is None:
            row = StoredConnector(
                id=new_id(),
                tenant_id=actor.tenant_id,
                name=version.subject,
                created_by=actor.user_id,
                created_at=now,
                slug=content["slug"],
                config={},
            )
            session.add(row)
        row.slug = content["slug"]
        row.config = dict(content["config"])
        row.secrets = content.get("secrets_encrypted")
        row.enabled = bool(content.get("enabled", True))
        row.updated_at = now
        await session.flush()

    return {"policy": policy, "prompts": prompts, "llm": llm, "connector": connector}
