"""Failed authentication is audited in the system chain, rate-limited, with the claimed
tenant as data: unauthenticated input never creates or writes a tenant's chain."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select, text

from assistant.auth.audit import SYSTEM_CHAIN, FailureBudget
from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.core.principal import Role
from governance.audit_models import AuditChainHead, AuditEvent
from tests.api.test_auth_users import sign_in
from tests.fixtures.auth import create_user_with_token

REPO = Path(__file__).resolve().parents[2]


async def _chains(services: Any) -> dict[str, int]:
    async with services.sessions() as session:
        rows = await session.execute(select(AuditChainHead.tenant_id, AuditChainHead.last_seq))
        return {str(tenant): int(seq) for tenant, seq in rows}


async def _events(services: Any, tenant: str) -> list[AuditEvent]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.tenant_id == tenant).order_by(AuditEvent.seq)
            )
        )


async def test_forged_tokens_write_only_the_system_chain_within_budget(
    client: httpx.AsyncClient, services: Any
) -> None:
    """Issue finding 4: 300 tokens signed with an attacker's key, random kid and tid (one
    in ten naming the real tenant) once added 300 events and 30 new tenant chains."""
    await create_user_with_token(services, "alice", Role.EXECUTIVE)
    before = await _chains(services)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    for i in range(300):
        tid = "default" if i % 10 == 0 else f"evil-{uuid.uuid4().hex[:8]}"
        token = jwt.encode(
            {
                "iss": "http://127.0.0.1:8000",
                "aud": "executive-assistant",
                "sub": "x",
                "tid": tid,
                "roles": ["admin"],
                "iat": now,
                "nbf": now,
                "exp": now + 600,
            },
            attacker,
            algorithm="RS256",
            headers={"kid": uuid.uuid4().hex},
        )
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    after = await _chains(services)
    assert set(after) - set(before) <= {SYSTEM_CHAIN}  # no tenant chain created
    assert {t: s for t, s in after.items() if t != SYSTEM_CHAIN} == before  # none written
    recorded = [
        e for e in await _events(services, SYSTEM_CHAIN) if e.action == "auth.token.rejected"
    ]
    burst = services.settings.audit.auth_failure_burst
    # The burst, plus what the rate refilled while the 300 requests ran.
    assert burst <= len(recorded) < 300
    assert all(e.actor_id == "anonymous" and e.payload["claimed_tenant"] for e in recorded)
    assert {"default"} <= {e.payload["claimed_tenant"] for e in recorded}


async def test_sign_in_failures_naming_any_tenant_create_no_chain(
    client: httpx.AsyncClient, services: Any
) -> None:
    before = await _chains(services)
    for tenant in ("nosuchtenant", "another-one", "default"):
        response = await sign_in(client, "mallory", "not the password", tenant=tenant)
        assert response.status_code == 401
    after = await _chains(services)
    assert set(after) - set(before) == {SYSTEM_CHAIN}
    failures = await _events(services, SYSTEM_CHAIN)
    claimed = [e.payload["claimed_tenant"] for e in failures if e.action == "auth.signin.failed"]
    assert claimed == ["nosuchtenant", "another-one", "default"]
    async with services.sessions() as session:
        in_tenants = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.tenant_id != SYSTEM_CHAIN, AuditEvent.actor_id == "anonymous")
        )
    assert in_tenants == 0


async def test_the_budget_refills_and_counts_what_it_left_out(sessions: Any) -> None:
    now = [1_000.0]
    budget = FailureBudget(rate=2.0, burst=3, clock=lambda: now[0])

    async def take() -> int | None:
        async with sessions() as session, session.begin():
            return await budget.take(session)

    assert [await take() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] += 0.5  # one token back
    assert await take() == 2  # recorded, carrying the two left out
    assert await take() is None
    now[0] -= 60  # a clock stepping back refills nothing
    assert await take() is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def test_the_budget_holds_across_worker_processes(shared_url: str, tmp_path: Path) -> None:
    """Two instances of the service in two processes (`serve --workers 2`) on one database:
    together they record the budget, not the budget each; the rest is counted."""
    engine = create_engine(shared_url)
    await upgrade(engine)
    sessions = create_session_factory(engine)

    async def system_failures() -> int:
        async with sessions() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(AuditEvent)
                    .where(
                        AuditEvent.tenant_id == SYSTEM_CHAIN,
                        AuditEvent.action == "auth.token.rejected",
                    )
                )
                or 0
            )

    async with sessions() as session, session.begin():
        # A fresh bucket (the PostgreSQL database is shared by the session's tests).
        await session.execute(text("DELETE FROM auth_failure_budget"))
    before = await system_failures()
    burst, per_process = 6, 30
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }

    async def instance(name: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.fixtures.auth_failures",
            shared_url,
            str(tmp_path / name),
            str(per_process),
            "0",  # no refill: exactly the burst is recorded
            str(burst),
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()[-2000:]
        return int(out.decode().strip().splitlines()[-1])

    refused = await asyncio.gather(instance("a"), instance("b"))
    assert refused == [per_process, per_process]  # every forged token answered 401
    assert await system_failures() - before == burst  # per process it would be 2 * burst
    async with sessions() as session:
        suppressed = await session.scalar(text("SELECT suppressed FROM auth_failure_budget"))
    assert suppressed == 2 * per_process - burst  # nothing lost: the rest is counted
    await engine.dispose()
