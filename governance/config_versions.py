"""Change control: every version of policies, prompts, model settings and connector config.

A version is a content snapshot with its hash, who made it, when and why, numbered per
(tenant, kind, subject). Recording content equal to the latest version records nothing.
:func:`rollback` restores an earlier version in one step: it hands the exact earlier
content to the kind's applier (which rewrites the policy file, restores the connector row,
writes the stored LLM override ...), records it as a new version that names the one it
restored, and audits both. Connector secrets are kept only as the connector store's
encrypted token, never in plain text; the audit log gets hashes, never content.

Appliers live with the application (they touch its files and tables); governance only
keeps the record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.clock import utcnow
from assistant.core.errors import NotFoundError, ValidationFailedError
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from governance.audit import AuditAction, AuditEventIn, record
from governance.production_models import ConfigVersion

KINDS = ("policy", "prompts", "llm", "connector")

#: Restores one version's content into the live configuration (file, row, override).
Applier = Callable[[AsyncSession, Principal, ConfigVersion], Awaitable[None]]

_REF = re.compile(r"^(?P<kind>[a-z]+)(?::(?P<subject>[^@]+))?@(?P<number>\d+)$")


def content_hash(content: Mapping[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def describe(version: ConfigVersion) -> dict[str, Any]:
    """A version without its content (what listings and the audit log show)."""
    return {
        "id": version.id,
        "ref": ref(version),
        "kind": version.kind,
        "subject": version.subject,
        "number": version.number,
        "content_hash": version.content_hash,
        "created_by": version.created_by,
        "created_at": version.created_at.isoformat(),
        "reason": version.reason,
        "restored_from": version.restored_from,
    }


def ref(version: ConfigVersion) -> str:
    """``kind@number`` or ``kind:subject@number``: how people name a version."""
    subject = f":{version.subject}" if version.subject else ""
    return f"{version.kind}{subject}@{version.number}"


async def latest(
    session: AsyncSession, tenant_id: str, kind: str, subject: str = ""
) -> ConfigVersion | None:
    return (
        await session.execute(
            select(ConfigVersion)
            .where(
                ConfigVersion.tenant_id == tenant_id,
                ConfigVersion.kind == kind,
                ConfigVersion.subject == subject,
            )
            .order_by(ConfigVersion.number.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def record_version(
    session: AsyncSession,
    actor: Principal,
    *,
    kind: str,
    subject: str = "",
    content: dict[str, Any],
    reason: str,
    restored_from: str | None = None,
    now: datetime | None = None,
) -> ConfigVersion:
    """Record ``content`` as the next version (or return the latest when it is equal)."""
    if kind not in KINDS:
        raise ValidationFailedError(f"unknown configuration kind {kind!r}; one of {KINDS}")
    if not reason.strip():
        raise ValidationFailedError("a reason is required for every configuration change")
    digest = content_hash(content)
    current = await latest(session, actor.tenant_id, kind, subject)
    if current is not None and current.content_hash == digest and restored_from is None:
        return current
    number = (
        int(
            (
                await session.execute(
                    select(func.coalesce(func.max(ConfigVersion.number), 0)).where(
                        ConfigVersion.tenant_id == actor.tenant_id,
                        ConfigVersion.kind == kind,
                        ConfigVersion.subject == subject,
                    )
                )
            ).scalar_one()
        )
        + 1
    )
    version = ConfigVersion(
        id=new_id(),
        tenant_id=actor.tenant_id,
        kind=kind,
        subject=subject,
        number=number,
        content=content,
        content_hash=digest,
        created_by=actor.user_id,
        reason=reason,
        restored_from=restored_from,
        created_at=now or utcnow(),
    )
    session.add(version)
    await session.flush()
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.CONFIG_VERSIONED,
            resource_type="config_version",
            resource_id=version.id,
            reason=reason,
            payload={
                key: value
                for key, value in describe(version).items()
                if key not in {"reason", "created_at"}
            },
        ),
    )
    return version


async def list_versions(
    session: AsyncSession,
    tenant_id: str,
    *,
    kind: str | None = None,
    subject: str | None = None,
    limit: int = 100,
) -> list[ConfigVersion]:
    query = select(ConfigVersion).where(ConfigVersion.tenant_id == tenant_id)
    if kind:
        query = query.where(ConfigVersion.kind == kind)
    if subject is not None:
        query = query.where(ConfigVersion.subject == subject)
    query = query.order_by(ConfigVersion.created_at.desc(), ConfigVersion.number.desc())
    return list((await session.execute(query.limit(limit))).scalars())


async def find_version(session: AsyncSession, tenant_id: str, reference: str) -> ConfigVersion:
    """A version by id or by ``kind[:subject]@number``."""
    match = _REF.match(reference.strip())
    if match:
        query = select(ConfigVersion).where(
            ConfigVersion.tenant_id == tenant_id,
            ConfigVersion.kind == match["kind"],
            ConfigVersion.subject == (match["subject"] or ""),
            ConfigVersion.number == int(match["number"]),
        )
    else:
        query = select(ConfigVersion).where(
            ConfigVersion.tenant_id == tenant_id, ConfigVersion.id == reference.strip()
        )
    version = (await session.execute(query)).scalar_one_or_none()
    if version is None:
        raise NotFoundError(f"no configuration version {reference!r}")
    return version


async def rollback(
    session: AsyncSession,
    actor: Principal,
    reference: str,
    *,
    appliers: Mapping[str, Applier],
    reason: str,
) -> ConfigVersion:
    """Restore the exact content of an earlier version; returns the new version."""
    target = await find_version(session, actor.tenant_id, reference)
    applier = appliers.get(target.kind)
    if applier is None:
        raise ValidationFailedError(f"no way to restore {target.kind} here")
    await applier(session, actor, target)
    restored = await record_version(
        session,
        actor,
        kind=target.kind,
        subject=target.subject,
        content=target.content,
        reason=reason,
        restored_from=target.id,
    )
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.CONFIG_ROLLED_BACK,
            resource_type="config_version",
            resource_id=restored.id,
            reason=reason,
            payload={
                "restored": ref(target),
                "restored_id": target.id,
                "as": ref(restored),
                "content_hash": target.content_hash,
            },
        ),
    )
    return restored
