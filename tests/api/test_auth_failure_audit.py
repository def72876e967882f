"""Failed authentication is audited in the system chain, rate-limited, with the claimed
tenant as data: unauthenticated input never creates or writes a tenant's chain."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from assistant.auth.audit import SYSTEM_CHAIN, FailureBudget
from assistant.core.principal import Role
from governance.audit_models import AuditChainHead, AuditEvent
from tests.api.test_auth_users import sign_in
from tests.fixtures.auth import create_user_with_token


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


def test_the_budget_refills_and_counts_what_it_left_out() -> None:
    now = [0.0]
    budget = FailureBudget(rate=2.0, burst=3, clock=lambda: now[0])
    assert [budget.take() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] += 0.5  # one token back
    assert budget.take() == 2  # recorded, carrying the two left out
    assert budget.take() is None
