"""Kill switches: stop execution globally, per tenant or per connector, without losing work.

A switch is a row in ``kill_switches``; '' in ``tenant_id`` or ``connector`` means "every".
While a switch covers an action, the executor does not claim it: it waits in SCHEDULED
and runs once the switch is off. ``connector`` matches the action's connector instance
name or its capability (``email``, ``calendar``, ``erp``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistant.core.ids import new_id
from assistant.core.logging import redact_text
from assistant.core.principal import Principal
from governance import audit
from governance.audit import AuditAction, AuditEventIn
from governance.models import Action, KillSwitch

ALL = ""


async def set_switch(
    session: AsyncSession,
    actor: Principal,
    *,
    enabled: bool,
    now: datetime,
    tenant_id: str | None = None,
    connector: str | None = None,
    reason: str | None = None,
) -> KillSwitch:
    """Turn a switch on or off (created on first use); audited. Flushes, never commits."""
    tenant_key, connector_key = tenant_id or ALL, connector or ALL
    row = (
        await session.execute(
            select(KillSwitch)
            .where(
                KillSwitch.tenant_id == tenant_key,
                KillSwitch.connector == connector_key,
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        row = KillSwitch(
            id=new_id(),
            tenant_id=tenant_key,
            connector=connector_key,
            enabled=enabled,
            reason=reason,
            set_by=actor.user_id,
            updated_at=now,
        )
        session.add(row)
    else:
        row.enabled = enabled
        row.reason = reason
        row.set_by = actor.user_id
        row.updated_at = now
    await session.flush()
    scope = (
        "global" if not tenant_id and not connector else "tenant" if not connector else "connector"
    )
    await audit.record(
        session,
        actor,
        AuditEventIn(
            action=AuditAction.KILLSWITCH_ENABLED if enabled else AuditAction.KILLSWITCH_DISABLED,
            resource_type="killswitch",
            resource_id=row.id,
            connector=connector,
            reason=redact_text(reason) if reason else None,
            payload={"scope": scope, "tenant": tenant_id or "*", "connector": connector or "*"},
        ),
    )
    return row


async def list_switches(session: AsyncSession, *, enabled_only: bool = False) -> list[KillSwitch]:
    query = select(KillSwitch).order_by(KillSwitch.tenant_id, KillSwitch.connector)
    if enabled_only:
        query = query.where(KillSwitch.enabled.is_(True))
    return list((await session.execute(query)).scalars())


def not_blocked() -> ColumnElement[bool]:
    """SQL condition on ``Action``: no enabled switch covers the row."""
    return ~exists().where(
        KillSwitch.enabled.is_(True),
        or_(KillSwitch.tenant_id == ALL, KillSwitch.tenant_id == Action.tenant_id),
        or_(
            KillSwitch.connector == ALL,
            KillSwitch.connector == Action.capability,
            and_(Action.connector.is_not(None), KillSwitch.connector == Action.connector),
        ),
    )


def covers(switch: KillSwitch, tenant_id: str, capability: str, connector: str | None) -> bool:
    """Whether an enabled ``switch`` covers an action: :func:`not_blocked` in Python."""
    return switch.tenant_id in (ALL, tenant_id) and (
        switch.connector in (ALL, capability)
        or (connector is not None and switch.connector == connector)
    )


async def blocking_switch(
    session: AsyncSession, tenant_id: str, capability: str, connector: str | None
) -> KillSwitch | None:
    """The enabled switch that covers an action, if any."""
    names = [ALL, capability] + ([connector] if connector else [])
    return (
        await session.execute(
            select(KillSwitch)
            .where(
                KillSwitch.enabled.is_(True),
                KillSwitch.tenant_id.in_([ALL, tenant_id]),
                KillSwitch.connector.in_(names),
            )
            .limit(1)
        )
    ).scalar_one_or_none()
