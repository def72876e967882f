"""Long-lived clients of one process, built once in the app's lifespan (or by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistant.auth.audit import configure_failure_budget
from assistant.auth.runtime import AuthRuntime
from assistant.connectors import ConnectorManager
from assistant.core.db import create_engine, create_session_factory
from assistant.core.middleware import RequestMetrics
from assistant.core.settings import Settings
from governance.checkpoints import configure as configure_audit_checkpoints
from integrations.registry import ConnectorRegistry

log = structlog.stdlib.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    registry: ConnectorRegistry
    connectors: ConnectorManager
    metrics: RequestMetrics
    auth: AuthRuntime | None = None

    @classmethod
    async def build(
        cls,
        settings: Settings,
        *,
        registry: ConnectorRegistry | None = None,
        metrics: RequestMetrics | None = None,
    ) -> Services:
        # Checkpoints of the audit log are signed with this deployment's key.
        configure_audit_checkpoints(settings, load_key=True)
        configure_failure_budget(settings)  # failed authentications: the system chain's budget
        engine = create_engine(
            settings.database_url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )
        sessions = create_session_factory(engine)
        await _check_audit_privileges(sessions, settings, engine)
        # Model settings changed under change control (a stored, versioned override).
        from assistant.change_control import apply_llm_override

        settings = await apply_llm_override(sessions, settings)
        registry = registry or ConnectorRegistry.discover()
        connectors = ConnectorManager(
            registry,
            sessions,
            settings.connectors,
            extras={"sandbox_seed_dir": settings.sandbox.seed_dir},
        )
        await connectors.start()
        # Instances created through the admin API, next to those from settings.
        from assistant.connector_store import load_stored_connectors

        await load_stored_connectors(connectors, sessions, settings.secret_key)
        # Which executives each instance serves (settings plus stored bindings).
        await connectors.load_bindings()
        if settings.is_production:
            # Production refuses to start while anything lacks a named owner.
            from governance.owners import owner_problems, refuse_without_owners

            problems = await owner_problems(sessions, settings)
            if problems:
                await connectors.aclose()
                await engine.dispose()
            refuse_without_owners(problems)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            registry=registry,
            connectors=connectors,
            metrics=metrics or RequestMetrics(),
            auth=AuthRuntime.build(settings, sessions),
        )

    async def aclose(self) -> None:
        await self.connectors.aclose()
        await self.engine.dispose()


async def _check_audit_privileges(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, engine: AsyncEngine
) -> None:
    """Production refuses a PostgreSQL connection that could rewrite the audit log."""
    from assistant.core.errors import ConfigurationError
    from governance.audit_chain import rewrite_rights

    async with sessions() as session:
        role = await rewrite_rights(session)
    if role is None:
        return
    problem = (
        f"database.url: the service connects as {role}, which can UPDATE or DELETE audit "
        "rows; connect as a member of assistant_app and run migrations with "
        "database.migration_url"
    )
    if settings.is_production:
        await engine.dispose()
        raise ConfigurationError("the service's database role is too strong", problems=[problem])
    log.warning("audit.database_role_too_strong", role=role)
