"""Shared fixtures: settings on a temporary data dir, a migrated database, the app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.settings import Settings, get_settings
from tests.fakes.oidc_issuer import fake_entra, fake_entra_ca  # noqa: F401
from tests.fixtures.auth import as_role as _as_role
from tests.fixtures.llama import _llama_process, llama_server  # noqa: F401
from tests.fixtures.postgres import postgres_database, postgres_url  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = REPO_ROOT / "config" / "sandbox"
#: A fixed "now" inside the seeded week, so that sandbox tests are reproducible.
FIXED_NOW = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("ASSISTANT_") and not key.startswith("ASSISTANT_TEST_"):
            monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, sandbox={"seed_dir": SEED_DIR})


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def seeded(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    from integrations.sandbox.seed import seed_sandbox

    await seed_sandbox(sessions, tenant_id="default", seed_dir=SEED_DIR, now=FIXED_NOW)
    return sessions


@pytest.fixture
async def services(settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    from assistant.services import Services

    built = await Services.build(settings)
    yield built
    await built.aclose()


@pytest.fixture
async def client(services: object) -> AsyncIterator[httpx.AsyncClient]:
    from assistant.app import create_app
    from assistant.services import Services

    assert isinstance(services, Services)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


@pytest.fixture
def as_role() -> Callable[..., object]:
    """``as_role(client, Role.ADMIN, tenant="default")`` makes ``client``'s requests come from
    a caller with those roles (overrides get_principal); see tests/fixtures/auth.py."""
    return _as_role
