"""The chain's write side: payload normalization and the per-tenant append lock.

The row hash itself is defined in :mod:`governance.audit_hash`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction, SessionTransactionOrigin

from governance.audit_hash import GENESIS_HASH, canonical_json, iso_utc

_MAX_INT = 2**63 - 1


def jsonable(value: Any) -> Any:
    """Turn a caller's payload into plain JSON types, deterministically.

    Mapping keys become strings, sets become sorted lists, datetimes UTC ISO strings,
    Decimals and UUIDs strings, pydantic models their JSON dump (secrets masked); floats
    that JSON cannot carry and integers beyond 64 bits become strings.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_MAX_INT <= value <= _MAX_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k.value if isinstance(k, Enum) else k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=lambda item: canonical_json(item))
    if isinstance(value, datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat(timespec="microseconds")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "get_secret_value"):
        return "[REDACTED]"
    if isinstance(value, (Decimal, UUID, PurePath)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# ------------------------------------------------------------------ the append lock

_HEADS_CACHE = "governance.audit.heads"

_LOCK_HEAD = text(
    "UPDATE audit_chain_heads SET last_seq = last_seq WHERE tenant_id = :tenant "
    "RETURNING last_seq, last_hash"
)
_CREATE_HEAD = text(
    "INSERT INTO audit_chain_heads (tenant_id, last_seq, last_hash) "
    "VALUES (:tenant, 0, :genesis) ON CONFLICT (tenant_id) DO NOTHING"
)


def _forget_heads(session: Session, transaction: SessionTransaction) -> None:
    # A flush's inner transaction changes nothing we cached; a commit, rollback or savepoint
    # end does (rows may be gone, or our locks released).
    if transaction.origin is SessionTransactionOrigin.SUBTRANSACTION:
        return
    cache = session.info.get(_HEADS_CACHE)
    if cache:
        cache.clear()


def heads_cache(session: AsyncSession) -> dict[str, tuple[int, str]]:
    """Chain heads this session holds locked in its current transaction."""
    sync_session = session.sync_session
    cache: dict[str, tuple[int, str]] | None = sync_session.info.get(_HEADS_CACHE)
    if cache is None:
        cache = {}
        sync_session.info[_HEADS_CACHE] = cache
        event.listen(sync_session, "after_transaction_end", _forget_heads)
    return cache


async def lock_head(session: AsyncSession, tenant_id: str) -> tuple[int, str]:
    """Lock ``tenant_id``'s chain until the end of the transaction; return (last_seq, last_hash).

    The first call of a transaction takes the lock with one statement, an UPDATE of the head
    row: on PostgreSQL the row's lock (a writer waiting for it reads the head its
    predecessor committed), on SQLite the database's write lock. A tenant's first event
    creates the row (INSERT ... ON CONFLICT DO NOTHING waits for a concurrent creator).
    Later calls in the same transaction reuse what they read. Every writer of a tenant
    waits here: it is the last thing a transaction does before COMMIT.
    """
    cache = heads_cache(session)
    cached = cache.get(tenant_id)
    if cached is not None:
        return cached
    params = {"tenant": tenant_id}
    row = (await session.execute(_LOCK_HEAD, params)).first()
    if row is None:
        await session.execute(_CREATE_HEAD, {"genesis": GENESIS_HASH, **params})
        row = (await session.execute(_LOCK_HEAD, params)).one()
    head = (int(row[0]), str(row[1]))
    cache[tenant_id] = head
    return head


def advance_head(session: AsyncSession, tenant_id: str, seq: int, row_hash: str) -> None:
    """Remember the new head (the insert trigger has already moved it in the database)."""
    heads_cache(session)[tenant_id] = (seq, row_hash)


# ------------------------------------------------------------------ least privilege

_REWRITE_RIGHTS = text(
    "SELECT current_user, "
    "has_table_privilege('audit_events', 'UPDATE') OR "
    "has_table_privilege('audit_events', 'DELETE') OR "
    "has_table_privilege('audit_events', 'TRUNCATE') OR "
    "has_table_privilege('audit_checkpoints', 'DELETE') OR "
    "pg_has_role((SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() "
    "AND tablename = 'audit_events'), 'MEMBER')"
)


async def rewrite_rights(session: AsyncSession) -> str | None:
    """On PostgreSQL, the connected role's name when it could UPDATE, DELETE or TRUNCATE
    audit rows or switch the guards off (owner, superuser); None when it can only append
    (or on SQLite, or before the tables exist)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    try:
        async with session.begin_nested():
            row = (await session.execute(_REWRITE_RIGHTS)).one()
    except Exception:  # not migrated yet: nothing to protect
        return None
    return str(row[0]) if row[1] else None
