"""Owners, autonomy levels and the configuration's version history.

Admins name owners and set autonomy levels; executives read their own levels; auditors
read everything. A refused promotion answers 409 with the measured record, and is audited.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from assistant.api.deps import ServicesDep, SessionDep, SettingsDep, require
from assistant.auth import users
from assistant.auth.models import User
from assistant.auth.permissions import Permission
from assistant.change_control import policy_path
from assistant.core.errors import ValidationFailedError
from assistant.core.principal import Principal, Role
from assistant.core.settings import OwnerSettings
from governance import autonomy
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.config_versions import describe, list_versions
from governance.owners import SCOPES, missing_owners, owner_entries, set_owner
from governance.policy import Autonomy, load_policy
from governance.production_models import AutonomyGrant

router = APIRouter(tags=["production"])

OwnersReader = Annotated[Principal, require(Permission.OWNERS_READ)]
OwnersManager = Annotated[Principal, require(Permission.OWNERS_MANAGE)]
AutonomyReader = Annotated[Principal, require(Permission.AUTONOMY_READ)]
AutonomyManager = Annotated[Principal, require(Permission.AUTONOMY_MANAGE)]
VersionsReader = Annotated[Principal, require(Permission.POLICIES_READ)]


class OwnerIn(OwnerSettings):
    scope: str = Field(description=f"One of {', '.join(SCOPES)}.")
    subject: str = Field(
        default="",
        max_length=128,
        description="The connector instance's name (scope connector only).",
    )


class AutonomyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executive: str = Field(
        min_length=1,
        max_length=320,
        description=(
            "The executive: her user id, user name (stored as her id) or address, or * for"
            " every executive."
        ),
    )
    kind: str = Field(
        min_length=1,
        max_length=100,
        description="Action kind or glob, e.g. email.draft.create or email.*.",
    )
    level: Autonomy
    reason: str = Field(min_length=1, max_length=2000, description="Why (audited).")


def _grant(grant: AutonomyGrant) -> dict[str, Any]:
    return {
        "executive": grant.executive,
        "kind": grant.kind,
        "level": grant.level,
        "set_by": grant.set_by,
        "reason": grant.reason,
        "evidence": grant.evidence,
        "updated_at": grant.updated_at.isoformat(),
    }


@router.get("/api/v1/admin/owners")
async def list_owners(
    session: SessionDep, settings: SettingsDep, actor: OwnersReader
) -> dict[str, Any]:
    """Everything that needs an owner in the caller's tenant, and what is missing."""
    entries = await owner_entries(session, settings, actor.tenant_id)
    return {
        "owners": [e.public() for e in entries],
        "missing": await missing_owners(session, settings, actor.tenant_id),
    }


@router.put("/api/v1/admin/owners")
async def put_owner(
    body: OwnerIn,
    services: ServicesDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: OwnersManager,
) -> dict[str, Any]:
    """Name (or replace) the owner of the deployment, the exception queue, the policy or a
    connector instance."""
    owner = OwnerSettings(person=body.person, role=body.role, contact=body.contact)
    try:
        await set_owner(session, actor, body.scope, body.subject, owner)
    except ValidationFailedError as refused:
        # The request's transaction rolls back: the refusal is audited in its own.
        async with services.sessions() as own, own.begin():
            await record(
                own,
                actor,
                AuditEventIn(
                    action=AuditAction.OWNER_SET,
                    outcome=Outcome.FAILURE,
                    resource_type="owner",
                    reason=refused.detail,
                    payload={"scope": body.scope[:40], "subject": body.subject},
                ),
            )
        raise
    return await list_owners(session, settings, actor)


@router.get("/api/v1/autonomy")
async def list_autonomy(
    session: SessionDep,
    settings: SettingsDep,
    actor: AutonomyReader,
    executive: Annotated[str | None, Query(max_length=320)] = None,
) -> dict[str, Any]:
    """Stored levels: an executive sees their own (and those for every executive); admins
    and auditors see anyone's."""
    sees_all = actor.on_behalf_of is None and actor.has(Role.ADMIN, Role.AUDITOR)
    whose = executive if sees_all else actor.acting_for
    rows = await autonomy.grants(session, actor.tenant_id, whose)
    return {
        "grants": [_grant(g) for g in rows],
        "shadow": await autonomy.shadow_summary(session, actor.tenant_id, whose),
        "bar": settings.autonomy.model_dump(),
    }


@router.put("/api/v1/admin/autonomy")
async def put_autonomy(
    body: AutonomyIn,
    services: ServicesDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: AutonomyManager,
) -> dict[str, Any]:
    """Set a level: lowering is immediate; raising needs the measured record (409 if not)."""
    default = load_policy(policy_path(settings)).default_autonomy
    executive = await users.autonomy_executive(session, actor.tenant_id, body.executive)
    person = await session.get(User, actor.user_id)
    addresses = (
        [a for a in (person.email, person.username) if a]
        if person is not None and person.tenant_id == actor.tenant_id
        else []
    )
    try:
        change = await autonomy.set_level(
            session,
            actor,
            executive=executive,
            kind=body.kind,
            level=body.level,
            reason=body.reason,
            bar=settings.autonomy,
            default=default,
            actor_ids=addresses,
        )
    except autonomy.PromotionRefusedError as refused:
        async with services.sessions() as own, own.begin():
            await autonomy.audit_refusal(
                own,
                actor,
                executive=executive,
                kind=body.kind,
                level=body.level,
                reason=body.reason,
                error=refused,
            )
        raise
    return {
        **_grant(change.grant),
        "previous": change.previous.value,
        "direction": change.direction,
        "record": change.record.as_dict() if change.record else None,
    }


@router.get("/api/v1/admin/config/versions")
async def config_versions(
    session: SessionDep,
    actor: VersionsReader,
    kind: Annotated[str | None, Query(max_length=20)] = None,
) -> list[dict[str, Any]]:
    """The version history of policies, prompts, model settings and connectors."""
    return [describe(v) for v in await list_versions(session, actor.tenant_id, kind=kind)]
