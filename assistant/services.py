"""Long-lived clients of one process, built once in the app's lifespan (or by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistant.auth.audit import configure_failure_budget
from assistant.auth.runtime import AuthRuntime
from assistant.connectors import ConnectorManager
from assistant.core.db import create_engine, create_session_factory
from assistant.core.middleware import RequestMetrics
from assistant.core.settings import Settings
from governance.checkpoints import configure as configure_audit_checkpoints
from integrations.registry import ConnectorRegistry


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
