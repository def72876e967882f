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
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.api.deps import SessionDep, SettingsDep
from assistant.api.schemas import ErrorOut
from assistant.core.clock import utcnow
from assistant.core.errors import AssistantError
from assistant.ingestion.models import MailSubscription
from assistant.ingestion.service import request_sync
from integrations.errors import ConnectorNotFoundError

log = structlog.stdlib.get_logger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_MAX_TOKEN = 1024
_MAX_ID = 200
_NOTIFICATIONS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["value"],
    "properties": {
        "value": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "subscriptionId": {"type": "string"},
                    "clientState": {"type": "string"},
                    "changeType": {"type": "string"},
                    "resource": {"type": "string"},
                },
            },
        }
    },
}
#: Renew when less than this is left (mail subscriptions live at most 10080 minutes).
RENEW_BEFORE = timedelta(hours=24)
SUBSCRIPTION_MINUTES = 4230


def _hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode()).hexdigest()


class MalformedNotificationError(AssistantError):
    """The body is not a Graph change-notification collection."""

    status_code = 400


class NotificationBatchTooLargeError(AssistantError):
    """More notifications in one call than ``server.max_notifications``."""

    status_code = 413


@dataclass(frozen=True)
class Notification:
    """The two fields of a Graph change notification that we act on."""

    subscription_id: str
    client_state: str


def parse_notifications(body: bytes, *, max_items: int) -> list[Notification]:
    """The notifications of a webhook body: ``{"value": [{subscriptionId, clientState}, ...]}``.

    Anything else is a typed error; a body of more than ``max_items`` is refused before any
    item is looked at. Items that are not objects are dropped (Graph never sends them).
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedNotificationError("the body is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("value"), list):
        raise MalformedNotificationError('expected an object with a "value" array')
    items = payload["value"]
    if len(items) > max_items:
        raise NotificationBatchTooLargeError(
            f"{len(items)} notifications in one call; at most {max_items}"
        )
    return [
        Notification(
            subscription_id=str(item.get("subscriptionId") or "")[:_MAX_ID],
            client_state=str(item.get("clientState") or "")[:_MAX_TOKEN],
        )
        for item in items
        if isinstance(item, dict)
    ]


@router.post(
    "/msgraph/mail",
    response_model=None,
    response_class=Response,
    status_code=202,
    responses={
        200: {
            "description": "The subscription validation handshake: the token echoed.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        202: {"description": "Accepted (notifications with a wrong clientState are ignored)."},
        400: {"model": ErrorOut, "description": "Not a change-notification collection."},
        413: {"model": ErrorOut, "description": "Too many notifications in one call."},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": _NOTIFICATIONS_SCHEMA}},
        }
    },
)
async def graph_mail_notification(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    validation_token: Annotated[
        str | None,
        Query(alias="validationToken", description="Sent by Graph when it validates."),
    ] = None,
) -> Response:
    """Graph change notifications for mail, and the subscription validation handshake."""
    if validation_token is not None:
        # Echo exactly, as text/plain (never HTML: the token is attacker-controlled).
        return PlainTextResponse(validation_token[:_MAX_TOKEN], status_code=200)
    notifications = parse_notifications(
        await request.body(), max_items=settings.server.max_notifications
    )
    # Each distinct (subscription, clientState) is checked once and each folder asked to
    # sync once, however many times a batch repeats them.
    verdicts: dict[Notification, MailSubscription | None] = {}
    for notification in notifications:
        if notification in verdicts:
            continue
        sub = await session.get(MailSubscription, notification.subscription_id)
        state_ok = sub is not None and hmac.compare_digest(
            sub.client_state_hash, _hash(notification.client_state)
        )
        verdicts[notification] = sub if state_ok else None
    folders = {(s.tenant_id, s.connector, s.folder) for s in verdicts.values() if s is not None}
    for tenant_id, connector, folder in sorted(folders):
        await request_sync(session, tenant_id, connector, folder)
    rejected = [n for n in notifications if verdicts[n] is None]
    if rejected:
        # One line per call, not per item: a forged batch must not flood the log.
        log.warning(
            "ingestion.notifications_rejected",
            count=len(rejected),
            subscriptions=sorted({n.subscription_id[:64] for n in rejected})[:5],
        )
    log.info(
        "ingestion.notifications",
        received=len(notifications),
        accepted=len(notifications) - len(rejected),
        folders=len(folders),
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
