"""Connector instances kept in the database: validated config, secrets encrypted at rest.

Secrets (the ``SecretStr`` fields of a connector's config model) are encrypted with Fernet
under a key derived (HKDF-SHA256) from ``settings.secret_key``; they are never returned,
logged or audited (the API shows ``********``). Instances from the database are built into
the process's :class:`~assistant.connectors.ConnectorManager` next to those from settings.
"""

from __future__ import annotations

import base64
import json
import re
import types
import typing
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.connector_models import StoredConnector
from assistant.connectors import ConnectorInstance, ConnectorManager, config_problems
from assistant.core.clock import utcnow
from assistant.core.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    SecretRequiredError,
    ValidationFailedError,
)
from assistant.core.ids import new_id
from assistant.core.principal import Principal
from integrations.base import ConnectorContext, ConnectorHealth, ConnectorSpec, ConnectorStatus
from integrations.registry import ConnectorRegistry

log = structlog.stdlib.get_logger(__name__)

MASK = "********"
_HKDF_INFO = b"assistant/connector-secrets/v1"


class SecretBox:
    """Fernet encryption of connector secrets with a key derived from the secret key."""

    def __init__(self, secret_key: SecretStr | str) -> None:
        raw = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            raw.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def decrypt(self, token: str) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ConfigurationError(
                "connector secrets cannot be decrypted (was secret_key changed?)"
            ) from None
        return data


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret(arg) for arg in typing.get_args(annotation))
    return False


def secret_fields(model: type[BaseModel]) -> set[str]:
    """Names of the config model's fields that hold secrets."""
    return {name for name, info in model.model_fields.items() if _is_secret(info.annotation)}


def validate_config(spec: ConnectorSpec, raw: dict[str, Any]) -> BaseModel:
    """The spec's config model, or one error that lists every problem at once."""
    try:
        return spec.validate_config(raw)
    except ValidationError as exc:
        problems = config_problems(exc)
        raise ValidationFailedError(
            f"{len(problems)} configuration error(s)", problems=problems
        ) from None


class ConnectorStore:
    """CRUD of stored connector instances, for one deployment."""

    def __init__(self, registry: ConnectorRegistry, box: SecretBox) -> None:
        self.registry = registry
        self.box = box

    # ------------------------------------------------------------------ config views

    def full_config(self, row: StoredConnector) -> dict[str, Any]:
        """Config with secrets decrypted (to build the connector; never to return)."""
        config = dict(row.config)
        if row.secrets:
            config.update(self.box.decrypt(row.secrets))
        return config

    def public_config(self, row: StoredConnector) -> dict[str, Any]:
        """Config with every set secret replaced by ``********``."""
        config = dict(row.config)
        if row.secrets:
            config.update(dict.fromkeys(self.box.decrypt(row.secrets), MASK))
        return config

    def describe(self, row: StoredConnector) -> dict[str, Any]:
        return {
            "name": row.name,
            "slug": row.slug,
            "enabled": row.enabled,
            "source": "database",
            "config": self.public_config(row),
            "created_by": row.created_by,
            "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat(),
        }

    def _split(
        self, spec: ConnectorSpec, raw: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        model = validate_config(spec, raw)
        secrets = secret_fields(spec.config_model)
        plain = model.model_dump(mode="json", exclude_unset=True, exclude=secrets)
        hidden = {name: str(raw[name]) for name in secrets if raw.get(name) is not None}
        return plain, hidden

    # ------------------------------------------------------------------ CRUD

    async def list(self, session: AsyncSession, tenant_id: str) -> list[StoredConnector]:
        rows = await session.execute(
            select(StoredConnector)
            .where(StoredConnector.tenant_id == tenant_id)
            .order_by(StoredConnector.name)
        )
        return list(rows.scalars())

    async def get(self, session: AsyncSession, tenant_id: str, name: str) -> StoredConnector:
        row = (
            await session.execute(
                select(StoredConnector).where(
                    StoredConnector.tenant_id == tenant_id, StoredConnector.name == name
                )
            )
        ).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"no connector instance {name!r}", name=name)
        return row

    async def create(
        self,
        session: AsyncSession,
        actor: Principal,
        *,
        name: str,
        slug: str,
        config: dict[str, Any],
        enabled: bool = True,
    ) -> StoredConnector:
        spec = self.registry.get(slug)
        plain, hidden = self._split(spec, config)
        existing = (
            await session.execute(
                select(StoredConnector.id).where(
                    StoredConnector.tenant_id == actor.tenant_id, StoredConnector.name == name
                )
            )
        ).scalar_one_or_none()
        if existing is not None:
            raise ConflictError(f"a connector instance named {name!r} exists", name=name)
        now = utcnow()
        row = StoredConnector(
            id=new_id(),
            tenant_id=actor.tenant_id,
            name=name,
            slug=slug,
            config=plain,
            secrets=self.box.encrypt(hidden) if hidden else None,
            enabled=enabled,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        return row

    async def update(
        self,
        session: AsyncSession,
        actor: Principal,
        name: str,
        *,
        config: dict[str, Any] | None = None,
        replace: bool = False,
        enabled: bool | None = None,
    ) -> StoredConnector:
        """Merge (or replace) the config; a secret given as ``********`` keeps its value,
        except when the destination changes (:func:`destination_changes`): then every
        stored secret must be entered again, so that no secret follows a connector to a
        host its owner did not send it to."""
        row = await self.get(session, actor.tenant_id, name)
        spec = self.registry.get(row.slug)
        if config is not None:
            current = self.full_config(row)
            merged = dict(config) if replace else {**current, **config}
            for key, value in list(merged.items()):
                if value == MASK:
                    if key in current:
                        merged[key] = current[key]
                    else:
                        del merged[key]
            plain, hidden = self._split(spec, merged)
            moved = destination_changes(row.config, plain)
            stored_secrets = set(self.box.decrypt(row.secrets)) if row.secrets else set()
            entered = {k for k, v in config.items() if v is not None and v != MASK}
            missing = sorted(stored_secrets - entered)
            if moved and missing:
                raise SecretRequiredError(
                    "changing where the connector connects ("
                    + ", ".join(moved)
                    + ") needs its secrets entered again: "
                    + ", ".join(missing),
                    changed=moved,
                    secrets=missing,
                )
            row.config = plain
            row.secrets = self.box.encrypt(hidden) if hidden else None
        if enabled is not None:
            row.enabled = enabled
        row.updated_at = utcnow()
        await session.flush()
        return row

    async def delete(self, session: AsyncSession, actor: Principal, name: str) -> None:
        row = await self.get(session, actor.tenant_id, name)
        await session.delete(row)
        await session.flush()

    # ------------------------------------------------------------------ live instances

    async def build(self, row: StoredConnector, manager: ConnectorManager) -> Any:
        """A new connector instance from a stored row (the caller closes it)."""
        context = ConnectorContext(
            tenant_id=row.tenant_id,
            instance_name=row.name,
            session_factory=manager._sessions,  # same database as the manager
            extras=manager._extras,
        )
        return await self.registry.build(row.slug, self.full_config(row), context)

    async def activate(self, row: StoredConnector, manager: ConnectorManager) -> None:
        """Put the row's instance into the live manager, replacing an older one."""
        await self.deactivate(row.tenant_id, row.name, manager)
        if not row.enabled:
            return
        spec = self.registry.get(row.slug)
        instance = ConnectorInstance(
            name=row.name, slug=row.slug, tenant_id=row.tenant_id, capabilities=spec.capabilities
        )
        try:
            instance.connector = await self.build(row, manager)
            instance.health = ConnectorHealth(status=ConnectorStatus.OK, detail="built")
        except ValidationError as exc:
            instance.problems = config_problems(exc)
            instance.health = ConnectorHealth(
                status=ConnectorStatus.BROKEN, detail="invalid configuration"
            )
        except Exception as exc:  # isolate: a broken instance is reported, not fatal
            instance.health = ConnectorHealth(
                status=ConnectorStatus.BROKEN, detail=type(exc).__name__
            )
        manager.instances[(row.tenant_id, row.name)] = instance

    async def deactivate(self, tenant_id: str, name: str, manager: ConnectorManager) -> None:
        instance = manager.instances.pop((tenant_id, name), None)
        if instance is not None and instance.connector is not None:
            try:
                await instance.connector.aclose()
            except Exception:  # closing must not block the change
                log.warning("connector.close_failed", connector=name, tenant=tenant_id)


#: Config keys that say where (and how safely) a connector connects: a change to one of
#: them redirects the stored secret. Matched on the key's name, so a new connector's
#: ``url``, ``*_host`` or ``tenant_id`` is covered without listing it here.
_DESTINATION_KEY = re.compile(
    r"url|host|port|endpoint|authority|tenant|server|ca_file|verify_tls|security"
)


def destination_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The destination keys whose value differs between two plain configs."""
    return sorted(
        key
        for key in set(before) | set(after)
        if _DESTINATION_KEY.search(key) and before.get(key) != after.get(key)
    )


def is_configured_in_settings(manager: ConnectorManager, tenant_id: str, name: str) -> bool:
    return any(item.name == name and item.tenant == tenant_id for item in manager._configured)


async def load_stored_connectors(
    manager: ConnectorManager,
    sessions: async_sessionmaker[AsyncSession],
    secret_key: SecretStr,
) -> int:
    """Build every enabled stored instance into ``manager``; returns how many were loaded.

    A database that is not migrated yet, or a row that cannot be built, is logged and
    skipped: connectors from settings keep working.
    """
    store = ConnectorStore(manager.registry, SecretBox(secret_key))
    try:
        async with sessions() as session:
            rows = list(
                (
                    await session.execute(
                        select(StoredConnector).where(StoredConnector.enabled.is_(True))
                    )
                ).scalars()
            )
    except Exception as exc:  # the table may not exist before `assistant db upgrade`
        log.warning("connector.store_unavailable", error=type(exc).__name__)
        return 0
    for row in rows:
        if is_configured_in_settings(manager, row.tenant_id, row.name):
            log.warning("connector.store_shadowed", connector=row.name, tenant=row.tenant_id)
            continue
        await store.activate(row, manager)
    return len(rows)


async def bind_executive(
    session: AsyncSession, actor: Principal, *, tenant_id: str, connector: str, executive_id: str
) -> bool:
    """Bind ``connector`` to the executive ``executive_id`` (a user of the tenant holding
    the executive role); audited. Returns False when the binding already existed."""
    from assistant.auth.models import User
    from assistant.auth.users import roles_of
    from assistant.connector_models import ConnectorExecutive
    from assistant.core.principal import Role
    from governance.audit import AuditAction, AuditEventIn, record

    user = await session.get(User, executive_id)
    if user is None or user.tenant_id != tenant_id:
        raise NotFoundError("no such user in this tenant")
    if Role.EXECUTIVE not in await roles_of(session, tenant_id, executive_id):
        raise ValidationFailedError("a connector serves executives: that user is not one")
    existing = await session.get(ConnectorExecutive, (tenant_id, connector, executive_id))
    if existing is not None:
        return False
    session.add(
        ConnectorExecutive(
            tenant_id=tenant_id,
            connector=connector,
            executive_id=executive_id,
            bound_by=actor.user_id,
            bound_at=utcnow(),
        )
    )
    await session.flush()
    await record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.CONNECTOR_UPDATED,
            resource_type="connector",
            resource_id=connector,
            connector=connector,
            payload={"bound_executive": executive_id},
        ),
    )
    return True


async def bind_sandbox_executive(session: AsyncSession, settings: Any, name: str) -> str:
    """The user ``name`` (created, executive role only, when missing) bound to every sandbox
    connector of the sandbox's tenant; returns her id. What ``assistant sandbox seed
    --executive NAME`` does (and ``make run`` with it)."""
    from assistant.auth import users
    from assistant.core.principal import Role

    tenant = settings.sandbox.tenant
    operator = Principal(user_id="cli:sandbox", tenant_id=tenant, roles=frozenset({Role.ADMIN}))
    user = await users.find_user(session, tenant, name)
    if user is None:
        user = await users.create_user(
            session, operator, tenant_id=tenant, username=name, roles=[Role.EXECUTIVE]
        )
    for item in settings.connectors:
        if item.tenant == tenant and item.slug.startswith("sandbox."):
            await bind_executive(
                session, operator, tenant_id=tenant, connector=item.name, executive_id=user.id
            )
    return str(user.id)


async def set_executives(
    session: AsyncSession,
    actor: Principal,
    manager: ConnectorManager,
    *,
    tenant_id: str,
    connector: str,
    executive_ids: list[str],
) -> tuple[str, ...]:
    """Replace the stored executives of ``connector`` (each an executive of the tenant);
    the live instance follows (settings' executives stay). Audited per binding."""
    from sqlalchemy import delete

    from assistant.connector_models import ConnectorExecutive

    await session.execute(
        delete(ConnectorExecutive).where(
            ConnectorExecutive.tenant_id == tenant_id, ConnectorExecutive.connector == connector
        )
    )
    chosen = list(dict.fromkeys(executive_ids))
    for executive_id in chosen:
        await bind_executive(
            session, actor, tenant_id=tenant_id, connector=connector, executive_id=executive_id
        )
    instance = manager.instances.get((tenant_id, connector))
    if instance is not None:
        configured = next(
            (
                list(c.executives)
                for c in manager._configured
                if c.tenant == tenant_id and c.name == connector
            ),
            [],
        )
        instance.executives = tuple(configured + [e for e in chosen if e not in configured])
        return instance.executives
    return tuple(chosen)


async def stored_connector_problems(
    sessions: async_sessionmaker[AsyncSession], registry: ConnectorRegistry, secret_key: SecretStr
) -> list[str]:
    """Every problem of the connector instances kept in the database (unknown type, secrets
    that no longer decrypt, a config its model refuses), all at once."""
    store = ConnectorStore(registry, SecretBox(secret_key))
    async with sessions() as session:
        rows = list(
            (
                await session.execute(
                    select(StoredConnector).order_by(
                        StoredConnector.tenant_id, StoredConnector.name
                    )
                )
            ).scalars()
        )
    problems: list[str] = []
    for row in rows:
        where = f"stored connector {row.name} (tenant {row.tenant_id})"
        try:
            spec = registry.get(row.slug)
            validate_config(spec, store.full_config(row))
        except ValidationFailedError as exc:
            problems.extend(f"{where}: {p}" for p in exc.extra.get("problems", [exc.detail]))
        except Exception as exc:  # an unknown slug or undecryptable secrets: say which
            detail = getattr(exc, "detail", None) or type(exc).__name__
            problems.append(f"{where}: {detail}")
    return problems
