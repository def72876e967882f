"""Connector administration (admins): create, read, update, delete and test instances.

Config is validated by the connector's own pydantic model, with every error reported at
once; secrets are encrypted at rest and answered as ``********``. Everything is scoped to
the caller's tenant and audited.
"""

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.api.deps import ServicesDep, SessionDep, require
from assistant.auth.permissions import Permission
from assistant.change_control import snapshot_connector
from assistant.connector_models import StoredConnector
from assistant.connector_store import (
    ConnectorStore,
    SecretBox,
    is_configured_in_settings,
    secret_fields,
    set_executives,
)
from assistant.connectors import live_healths
from assistant.core.db import on_commit
from assistant.core.errors import ConflictError, ValidationFailedError
from assistant.core.principal import Principal
from assistant.core.settings import OwnerSettings
from assistant.services import Services
from governance.audit import AuditAction, AuditEventIn, Outcome, record
from governance.owners import set_owner
from integrations.base import ConnectorHealth, ConnectorStatus

router = APIRouter(prefix="/api/v1/admin/connectors", tags=["connectors"])

Admin = Annotated[Principal, require(Permission.CONNECTORS_MANAGE)]
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


class ConnectorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique in the tenant: lower-case letters, digits, . _ -")
    slug: str = Field(description="Connector type, e.g. imap.email or msgraph.email.")
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    owner: OwnerSettings | None = Field(
        default=None, description="Who owns the instance: person, role, contact."
    )
    executives: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=50,
        description="User ids of the executives the instance serves (replaces the stored "
        "ones; a shared mailbox names each). Actions run only on their executive's connector.",
    )
    reason: str = Field(
        default="connector created",
        max_length=500,
        description="Why (kept in the configuration's version history).",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits, '.', '_' and '-' (max 128)")
        return value


class ConnectorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: dict[str, Any] | None = Field(
        default=None, description="Merged into the stored config; '********' keeps a secret."
    )
    replace: bool = Field(default=False, description="Replace the config instead of merging.")
    enabled: bool | None = None
    owner: OwnerSettings | None = Field(
        default=None, description="Who owns the instance: person, role, contact."
    )
    executives: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None,
        max_length=50,
        description="User ids of the executives the instance serves (replaces the stored "
        "ones; a shared mailbox names each). Actions run only on their executive's connector.",
    )
    reason: str = Field(
        default="connector updated",
        max_length=500,
        description="Why (kept in the configuration's version history).",
    )


def _store(services: Services) -> ConnectorStore:
    return ConnectorStore(services.registry, SecretBox(services.settings.secret_key))


async def _audit(
    session: Any,
    actor: Principal,
    action: AuditAction,
    name: str,
    outcome: Outcome = Outcome.SUCCESS,
    **payload: Any,
) -> None:
    await record(
        session,
        actor,
        AuditEventIn(
            action=action,
            outcome=outcome,
            resource_type="connector",
            resource_id=name,
            connector=name,
            payload=payload,
        ),
    )


async def _audit_refusal(
    services: Services, actor: Principal, action: AuditAction, name: str, **payload: Any
) -> None:
    """Audit refused input in its own transaction: the request's is rolled back."""
    async with services.sessions() as session, session.begin():
        await _audit(session, actor, action, name, Outcome.FAILURE, **payload)


@router.get("/types")
async def connector_types(services: ServicesDep, _: Admin) -> list[dict[str, Any]]:
    """Every connector type this deployment can build, with the JSON schema of its config."""
    return [
        {
            "slug": spec.slug,
            "kind": spec.kind,
            "title": spec.title,
            "capabilities": sorted(c.value for c in spec.capabilities),
            "description": spec.description,
            "secret_fields": sorted(secret_fields(spec.config_model)),
            "config_schema": spec.config_model.model_json_schema(),
        }
        for spec in sorted(services.registry.specs.values(), key=lambda s: s.slug)
    ]


async def _described(
    store: ConnectorStore,
    row: StoredConnector,
    services: Any,
    session: Any,
    actor: Principal,
    executives: list[str] | None,
) -> dict[str, Any]:
    """The row as the API shows it, with the executives it serves (set first if given)."""
    manager = services.connectors
    if executives is not None:
        serves = await set_executives(
            session,
            actor,
            manager,
            tenant_id=actor.tenant_id,
            connector=row.name,
            executive_ids=executives,
        )
        return {**store.describe(row), "executives": list(serves)}
    await manager.load_bindings()
    live = manager.instances.get((row.tenant_id, row.name))
    return {**store.describe(row), "executives": list(live.executives) if live else []}


def _go_live_after_commit(session: Any, store: ConnectorStore, row: Any, manager: Any) -> None:
    """The live instance follows the committed row, with its stored bindings (a failed
    commit changes nothing)."""

    async def activate() -> None:
        await store.activate(row, manager)
        await manager.load_bindings()

    on_commit(session, activate)


@router.get("")
async def list_connectors(
    services: ServicesDep, session: SessionDep, actor: Admin
) -> list[dict[str, Any]]:
    """Instances of the caller's tenant: from settings (read-only) and from the database,
    each with its health asked now (a dead connector answers ``down``, not what it said
    when it was built)."""
    store = _store(services)
    manager = services.connectors
    listed: list[dict[str, Any]] = [
        {
            "name": i.name,
            "slug": i.slug,
            "enabled": True,
            "source": "settings",
            "config": None,
        }
        for i in manager.instances.values()
        if i.tenant_id == actor.tenant_id
        and is_configured_in_settings(manager, actor.tenant_id, i.name)
    ]
    listed.extend(store.describe(row) for row in await store.list(session, actor.tenant_id))
    live = [manager.instances.get((actor.tenant_id, item["name"])) for item in listed]
    for item, health in zip(listed, await live_healths(live), strict=True):
        item["status"] = health.status.value
        item["status_detail"] = health.detail
    return listed


@router.post("", status_code=201)
async def create_connector(
    body: ConnectorIn, services: ServicesDep, session: SessionDep, actor: Admin
) -> dict[str, Any]:
    if is_configured_in_settings(services.connectors, actor.tenant_id, body.name):
        raise ConflictError(f"{body.name!r} is defined in the settings", name=body.name)
    store = _store(services)
    try:
        row = await store.create(
            session, actor, name=body.name, slug=body.slug, config=body.config, enabled=body.enabled
        )
    except ValidationFailedError as exc:
        await _audit_refusal(
            services,
            actor,
            AuditAction.CONNECTOR_CREATED,
            body.name,
            slug=body.slug,
            problems=len(exc.extra.get("problems", [])),
        )
        raise
    await _audit(session, actor, AuditAction.CONNECTOR_CREATED, row.name, slug=row.slug)
    if body.owner is not None:
        await set_owner(session, actor, "connector", row.name, body.owner)
    await snapshot_connector(session, actor, row.name, row, body.reason)
    _go_live_after_commit(session, store, row, services.connectors)
    return await _described(store, row, services, session, actor, body.executives)


@router.get("/{name}")
async def get_connector(
    name: str, services: ServicesDep, session: SessionDep, actor: Admin
) -> dict[str, Any]:
    store = _store(services)
    return store.describe(await store.get(session, actor.tenant_id, name))


@router.patch("/{name}")
async def update_connector(
    name: str, body: ConnectorPatch, services: ServicesDep, session: SessionDep, actor: Admin
) -> dict[str, Any]:
    store = _store(services)
    try:
        row = await store.update(
            session, actor, name, config=body.config, replace=body.replace, enabled=body.enabled
        )
    except ValidationFailedError as exc:
        await _audit_refusal(
            services,
            actor,
            AuditAction.CONNECTOR_UPDATED,
            name,
            problems=len(exc.extra.get("problems", [])),
        )
        raise
    await _audit(
        session,
        actor,
        AuditAction.CONNECTOR_UPDATED,
        name,
        fields=sorted(body.config or {}),
        enabled=row.enabled,
    )
    if body.owner is not None:
        await set_owner(session, actor, "connector", name, body.owner)
    await snapshot_connector(session, actor, name, row, body.reason)
    _go_live_after_commit(session, store, row, services.connectors)
    return await _described(store, row, services, session, actor, body.executives)


@router.delete("/{name}", status_code=204)
async def delete_connector(
    name: str, services: ServicesDep, session: SessionDep, actor: Admin
) -> Response:
    store = _store(services)
    await store.delete(session, actor, name)
    await _audit(session, actor, AuditAction.CONNECTOR_DELETED, name)
    await snapshot_connector(session, actor, name, None, "connector deleted")
    on_commit(session, lambda: store.deactivate(actor.tenant_id, name, services.connectors))
    return Response(status_code=204)


@router.post("/{name}/test")
async def test_connector(
    name: str, services: ServicesDep, session: SessionDep, actor: Admin
) -> dict[str, Any]:
    """Build a fresh instance from the stored config and run its check()."""
    store = _store(services)
    row = await store.get(session, actor.tenant_id, name)
    try:
        connector = await store.build(row, services.connectors)
    except Exception as exc:  # report why it cannot be built, without secrets
        health = ConnectorHealth(status=ConnectorStatus.BROKEN, detail=type(exc).__name__)
    else:
        try:
            health = await asyncio.wait_for(connector.check(), 30)
        except TimeoutError:
            health = ConnectorHealth(status=ConnectorStatus.DOWN, detail="timeout")
        finally:
            await connector.aclose()
    await _audit(
        session,
        actor,
        AuditAction.CONNECTOR_TESTED,
        name,
        Outcome.SUCCESS if health.status is ConnectorStatus.OK else Outcome.FAILURE,
        status=health.status.value,
    )
    return {"name": name, **health.model_dump(mode="json")}
