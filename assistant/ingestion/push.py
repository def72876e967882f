"""The push path: Graph change notifications (webhook) and their subscriptions.

Graph validates a new subscription by POSTing ``?validationToken=...``; the endpoint
echoes it as text/plain. Notifications carry the ``clientState`` we chose: only its
SHA-256 is stored, and a notification whose state does not match is ignored. A valid one
marks the folder for a prompt sync; the ingestion worker runs it (polling stays the
fallback, so a lost notification only delays mail).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.api.deps import SessionDep
from assistant.core.clock import utcnow
from assistant.ingestion.models import MailSubscription
from assistant.ingestion.service import request_sync
from integrations.errors import ConnectorNotFoundError

log = structlog.stdlib.get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_MAX_TOKEN = 1024
#: Renew when less than this is left (mail subscriptions live at most 10080 minutes).
RENEW_BEFORE = timedelta(hours=24)
SUBSCRIPTION_MINUTES = 4230


def _hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


@router.post("/msgraph/mail", response_model=None)
async def graph_mail_notification(request: Request, session: SessionDep) -> Response:
    """Graph change notifications for mail, and the subscription validation handshake."""
    token = request.query_params.get("validationToken")
    if token is not None:
        # Echo exactly, as text/plain (never HTML: the token is attacker-controlled).
        return PlainTextResponse(token[:_MAX_TOKEN], status_code=200)
    try:
        payload = await request.json()
        items = payload.get("value", []) if isinstance(payload, dict) else []
    except ValueError:
        return Response(status_code=400)
    accepted = 0
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        sub = await session.get(MailSubscription, str(item.get("subscriptionId", "")))
        state = str(item.get("clientState") or "")
        if sub is None or not hmac.compare_digest(sub.client_state_hash, _hash(state)):
            log.warning(
                "ingestion.notification_rejected",
                subscription=str(item.get("subscriptionId", ""))[:64],
            )
            continue
        await request_sync(session, sub.tenant_id, sub.connector, sub.folder)
        accepted += 1
    log.info(
        "ingestion.notifications",
        received=len(items) if isinstance(items, list) else 0,
        accepted=accepted,
    )
    # 202 quickly: Graph retries slow or failing endpoints and then drops them.
    return Response(status_code=202)


async def ensure_subscription(
    sessions: async_sessionmaker[AsyncSession],
    connector: Any,
    *,
    tenant_id: str,
    name: str,
    folder: str,
    notification_url: str,
    now: datetime | None = None,
    minutes: int = SUBSCRIPTION_MINUTES,
    renew_before: timedelta = RENEW_BEFORE,
) -> MailSubscription:
    """Create the folder's subscription, or renew it when it is close to expiry."""
    now = now or utcnow()
    async with sessions() as session:
        current = (
            (
                await session.execute(
                    select(MailSubscription)
                    .where(
                        MailSubscription.tenant_id == tenant_id,
                        MailSubscription.connector == name,
                        MailSubscription.folder == folder,
                    )
                    .order_by(MailSubscription.expires_at.desc())
                )
            )
            .scalars()
            .first()
        )
    if current is not None and current.expires_at - now > renew_before:
        return current
    if current is not None:
        try:
            expires = await connector.renew_subscription(current.id, minutes=minutes)
        except ConnectorNotFoundError:
            expires = None  # expired or deleted on Graph's side: subscribe again
        if expires is not None:
            async with sessions() as session, session.begin():
                row = await session.get(MailSubscription, current.id)
                assert row is not None
                row.expires_at = expires
            current.expires_at = expires
            log.info("ingestion.subscription_renewed", connector=name, folder=folder)
            return current
    client_state = secrets.token_urlsafe(32)
    created = await connector.subscribe(
        notification_url, client_state, folder=folder, minutes=minutes
    )
    row = MailSubscription(
        id=created.id,
        tenant_id=tenant_id,
        connector=name,
        folder=folder,
        client_state_hash=_hash(client_state),
        expires_at=created.expiration,
        created_at=now,
    )
    async with sessions() as session, session.begin():
        if current is not None:
            stale = await session.get(MailSubscription, current.id)
            if stale is not None:
                await session.delete(stale)
        session.add(row)
    log.info("ingestion.subscribed", connector=name, folder=folder)
    return row
