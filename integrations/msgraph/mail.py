"""The email capability over Microsoft Graph (Exchange Online).

Sync uses ``mailFolders/{id}/messages/delta`` with ``$select`` (small payloads), pages by
``@odata.nextLink`` and keeps the ``@odata.deltaLink`` as the cursor; a 410 Gone becomes
:class:`CursorExpiredError`. Drafts are created and then sent (``send``), so that undo and
previews see the real draft. Ids are immutable (``Prefer: IdType="ImmutableId"``), so a
message keeps its id when it is moved or sent. Push comes from change notifications
(:meth:`GraphEmailConnector.subscribe`); polling the delta is the fallback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from pydantic import Field, ValidationError

from integrations.base import (
    Attachment,
    Capability,
    ConnectorContext,
    ConnectorHealth,
    ConnectorSpec,
    ConnectorStatus,
    DraftMode,
    DraftRequest,
    EmailAddress,
    EmailMessage,
    Folder,
    FolderRole,
    SyncBatch,
)
from integrations.errors import (
    ConnectorAuthError,
    ConnectorError,
    ConnectorNotFoundError,
    CursorExpiredError,
    FatalConnectorError,
)
from integrations.mime import derive_thread_id, html_to_text, message_ids
from integrations.msgraph.auth import (
    EntraAuthConfig,
    TokenProvider,
    token_provider_for,
)
from integrations.msgraph.client import GRAPH_BASE_URL, GraphClient

log = structlog.stdlib.get_logger(__name__)

_CURSOR_PREFIX = "graph1:"
#: Named MAPI property that carries our idempotency key on drafts.
IDEMPOTENCY_PROPERTY = "String {8c7e1b1e-5d5f-4f3a-9a8e-6b0b7f3e2a11} Name AssistantIdempotencyKey"
_IN_REPLY_TO = "String 0x1042"  # PidTagInReplyToId
_REFERENCES = "String 0x1039"  # PidTagInternetReferences
_SELECT = ",".join(
    [
        "id",
        "internetMessageId",
        "conversationId",
        "parentFolderId",
        "subject",
        "from",
        "sender",
        "replyTo",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "receivedDateTime",
        "sentDateTime",
        "body",
        "hasAttachments",
        "isRead",
        "isDraft",
        "flag",
        "categories",
        "internetMessageHeaders",
    ]
)
_EXPAND_EXTENDED = (
    f"singleValueExtendedProperties($filter=id eq '{_IN_REPLY_TO}' or "
    f"id eq '{_REFERENCES}' or id eq '{IDEMPOTENCY_PROPERTY}')"
)
_WELL_KNOWN = {
    "inbox": FolderRole.INBOX,
    "sentitems": FolderRole.SENT,
    "drafts": FolderRole.DRAFTS,
    "archive": FolderRole.ARCHIVE,
    "deleteditems": FolderRole.TRASH,
    "junkemail": FolderRole.JUNK,
}
_KEPT_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "precedence",
    "in-reply-to",
    "references",
    "return-path",
    "authentication-results",
    "received-spf",
    "feedback-id",
    "content-type",
)
_SETTABLE = frozenset({"seen", "flagged"})
# How long send may take to show the message in Sent Items before we stop waiting.
_SENT_POLL_S = (0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class GraphSubscription:
    """A change-notification subscription (the push path of a mailbox)."""

    id: str
    resource: str
    expiration: datetime
    client_state: str | None = None


class GraphMailConfig(EntraAuthConfig):
    """A Microsoft 365 mailbox, and how to get tokens for it."""

    mailbox: str = Field(title="Mailbox", description="The mailbox's address (UPN).")
    user_id: str | None = Field(
        default=None, title="User id", description="Graph user id or UPN; default: the mailbox."
    )
    base_url: str = Field(default=GRAPH_BASE_URL, title="Graph base URL")
    ca_file: Path | None = Field(
        default=None, title="CA file", description="Extra CA certificates to trust (PEM)."
    )
    notification_url: str | None = Field(
        default=None,
        title="Notification URL",
        description="Public HTTPS URL of /webhooks/msgraph/mail for push; none: polling.",
    )


# --------------------------------------------------------------------------- mapping


def _address(item: dict[str, Any] | None) -> EmailAddress | None:
    email = (item or {}).get("emailAddress") or {}
    address = email.get("address")
    if not address:
        return None
    try:
        name = email.get("name")
        return EmailAddress(address=address, name=name if name and name != address else None)
    except ValidationError:
        return None  # Exchange-internal (X.500) senders have no SMTP address


def _addresses(items: list[dict[str, Any]] | None) -> list[EmailAddress]:
    return [a for a in (_address(i) for i in items or []) if a is not None]


def _recipients(addresses: Sequence[EmailAddress]) -> list[dict[str, Any]]:
    return [
        {"emailAddress": {"address": a.address, **({"name": a.name} if a.name else {})}}
        for a in addresses
    ]


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _flags(item: dict[str, Any]) -> list[str]:
    flags: set[str] = set()
    if item.get("isRead"):
        flags.add("seen")
    if (item.get("flag") or {}).get("flagStatus") == "flagged":
        flags.add("flagged")
    if item.get("isDraft"):
        flags.add("draft")
    flags.update(str(c).lower() for c in item.get("categories") or [])
    return sorted(flags)


def to_email_message(item: dict[str, Any]) -> EmailMessage:
    """An :class:`EmailMessage` from a Graph message resource."""
    headers = {
        str(h.get("name", "")).lower(): str(h.get("value", ""))
        for h in item.get("internetMessageHeaders") or []
    }
    extended = {
        str(p.get("id", "")).lower(): str(p.get("value", ""))
        for p in item.get("singleValueExtendedProperties") or []
    }
    body = item.get("body") or {}
    content = str(body.get("content") or "")
    is_html = str(body.get("contentType", "")).lower() == "html"
    in_reply_to = next(
        iter(message_ids(headers.get("in-reply-to") or extended.get(_IN_REPLY_TO.lower()))), None
    )
    references = message_ids(headers.get("references") or extended.get(_REFERENCES.lower()))
    message_id = item.get("internetMessageId")
    attachments = [
        Attachment(
            filename=a.get("name"),
            content_type=a.get("contentType") or "application/octet-stream",
            size=int(a.get("size") or 0),
            content_id=a.get("contentId"),
            is_inline=bool(a.get("isInline")),
        )
        for a in item.get("attachments") or []
    ]
    return EmailMessage(
        id=item["id"],
        message_id=message_id,
        thread_id=item.get("conversationId")
        or derive_thread_id(message_id, in_reply_to, references),
        folder=item.get("parentFolderId") or "",
        subject=item.get("subject") or "",
        sender=_address(item.get("from")) or _address(item.get("sender")),
        reply_to=_addresses(item.get("replyTo")),
        to=_addresses(item.get("toRecipients")),
        cc=_addresses(item.get("ccRecipients")),
        bcc=_addresses(item.get("bccRecipients")),
        date=_when(item.get("receivedDateTime") or item.get("sentDateTime")),
        text=(html_to_text(content) if is_html else content).replace("\r\n", "\n").strip(),
        html=content if is_html else None,
        attachments=attachments,
        in_reply_to=in_reply_to,
        references=references,
        list_unsubscribe=headers.get("list-unsubscribe"),
        list_id=headers.get("list-id"),
        auto_submitted=headers.get("auto-submitted"),
        precedence=headers.get("precedence"),
        headers={
            k: v[:500] for k, v in headers.items() if k in _KEPT_HEADERS or k.startswith("x-")
        },
        flags=_flags(item),
        is_draft=bool(item.get("isDraft")),
    )


# --------------------------------------------------------------------------- connector


class GraphEmailConnector:
    """A Microsoft 365 mailbox through Microsoft Graph."""

    def __init__(
        self,
        client: GraphClient,
        *,
        mailbox: str,
        user_id: str | None = None,
        name: str = "msgraph-mail",
        owns_client: bool = True,
        notification_url: str | None = None,
    ) -> None:
        self.mailbox = mailbox.lower()
        self.notification_url = notification_url
        self.name = name
        self._graph = client
        self._owns_client = owns_client
        self._user = quote(user_id or mailbox, safe="@")
        self._folders: list[Folder] | None = None
        self._roles: dict[FolderRole, str] = {}

    @property
    def requests(self) -> int:
        """HTTP requests sent to Graph so far (benchmarks)."""
        return self._graph.requests

    def _path(self, suffix: str) -> str:
        return f"users/{self._user}/{suffix}"

    @staticmethod
    def _prefer(extra: str | None = None) -> dict[str, str]:
        prefer = 'IdType="ImmutableId"'
        return {"Prefer": f"{prefer}, {extra}" if extra else prefer}

    # ------------------------------------------------------------------ folders

    async def check(self) -> ConnectorHealth:
        started = time.perf_counter()
        try:
            await self._graph.get_json(self._path("mailFolders/inbox"), params={"$select": "id"})
        except ConnectorAuthError:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail="authentication failed")
        except ConnectorError as exc:
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=exc.detail)
        except Exception as exc:  # check() reports, never raises
            return ConnectorHealth(status=ConnectorStatus.DOWN, detail=type(exc).__name__)
        return ConnectorHealth(
            status=ConnectorStatus.OK, latency_ms=(time.perf_counter() - started) * 1000
        )

    async def list_folders(self) -> list[Folder]:
        roles: dict[str, FolderRole] = {}
        for well_known, role in _WELL_KNOWN.items():
            try:
                found = await self._graph.get_json(
                    self._path(f"mailFolders/{well_known}"), params={"$select": "id"}
                )
            except ConnectorNotFoundError:
                continue  # e.g. no archive folder yet
            roles[str(found["id"])] = role
        folders = [
            Folder(
                id=str(item["id"]),
                name=str(item.get("displayName", "")),
                role=roles.get(str(item["id"]), FolderRole.OTHER),
                total=item.get("totalItemCount"),
                unread=item.get("unreadItemCount"),
            )
            async for item in self._graph.items(
                self._path("mailFolders"),
                params={"$top": "100", "$select": "id,displayName,totalItemCount,unreadItemCount"},
            )
        ]
        self._folders = folders
        self._roles = {role: folder_id for folder_id, role in roles.items()}
        return folders

    async def _folder(self, role: FolderRole) -> str:
        if role not in self._roles:
            await self.list_folders()
        if role not in self._roles:
            raise FatalConnectorError(
                f"the mailbox has no {role.value} folder", connector=self.name
            )
        return self._roles[role]

    # ------------------------------------------------------------------ reading

    async def get_message(self, message_id: str) -> EmailMessage:
        if not message_id or "/" in message_id:
            raise ConnectorNotFoundError(f"no message {message_id!r}", connector=self.name)
        item = await self._graph.get_json(
            self._path(f"messages/{quote(message_id, safe='')}"),
            params={"$select": _SELECT, "$expand": _EXPAND_EXTENDED},
            headers=self._prefer(),
        )
        message = to_email_message(item)
        if item.get("hasAttachments"):
            message.attachments = await self._attachments(message_id)
        return message

    async def _attachments(self, message_id: str) -> list[Attachment]:
        item = await self._graph.get_json(
            self._path(f"messages/{quote(message_id, safe='')}"),
            params={
                "$select": "id",
                "$expand": "attachments($select=name,contentType,size,isInline)",
            },
            headers=self._prefer(),
        )
        return to_email_message({"id": item["id"], **item}).attachments

    def _encode_cursor(self, folder: str, link: str) -> str:
        raw = json.dumps({"f": folder, "u": link}, separators=(",", ":")).encode()
        return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode()

    def _decode_cursor(self, folder: str, cursor: str) -> str:
        try:
            if not cursor.startswith(_CURSOR_PREFIX):
                raise ValueError("prefix")
            data = json.loads(base64.urlsafe_b64decode(cursor[len(_CURSOR_PREFIX) :]))
            link = str(data["u"])
            if data["f"] != folder:
                raise ValueError("folder")
        except (ValueError, KeyError, TypeError):
            raise CursorExpiredError(
                "unrecognised sync cursor; resync", connector=self.name
            ) from None
        # Never send our token to a host the cursor names: it must be Graph's.
        if not link.startswith(self._graph.base_url + "/"):
            raise CursorExpiredError(
                "sync cursor for another endpoint; resync", connector=self.name
            )
        return link

    async def sync(
        self, folder: str, cursor: str | None = None, *, page_size: int = 100
    ) -> SyncBatch:
        headers = self._prefer(f"odata.maxpagesize={max(1, min(page_size, 1000))}")
        if cursor is None:
            url = self._path(f"mailFolders/{quote(folder, safe='')}/messages/delta")
            params: dict[str, str] | None = {"$select": _SELECT}
        else:
            url, params = self._decode_cursor(folder, cursor), None
        try:
            page = await self._graph.get_json(url, params=params, headers=headers)
        except ConnectorNotFoundError:
            raise ConnectorNotFoundError(f"no folder {folder!r}", connector=self.name) from None
        messages: list[EmailMessage] = []
        removed: list[str] = []
        for item in page.get("value", []):
            if "@removed" in item:
                removed.append(str(item["id"]))
            elif "subject" not in item or "body" not in item:
                # Graph answers a flag-only change with a few properties: fetch the rest.
                try:
                    messages.append(await self.get_message(str(item["id"])))
                except ConnectorNotFoundError:
                    removed.append(str(item["id"]))
            else:
                message = to_email_message(item)
                if item.get("hasAttachments"):
                    message.attachments = await self._attachments(message.id)
                messages.append(message)
        next_link = page.get("@odata.nextLink")
        delta_link = page.get("@odata.deltaLink")
        link = str(next_link or delta_link or "")
        if not link:
            raise FatalConnectorError(
                "Graph delta answered without a next or delta link", connector=self.name
            )
        return SyncBatch(
            messages=messages,
            removed_ids=removed,
            cursor=self._encode_cursor(folder, link),
            more=bool(next_link),
            full_resync=cursor is None,
        )

    # ------------------------------------------------------------------ drafts

    async def _find_draft(self, key: str) -> str | None:
        drafts = await self._folder(FolderRole.DRAFTS)
        value = key.replace("'", "''")
        found = await self._graph.get_json(
            self._path(f"mailFolders/{quote(drafts, safe='')}/messages"),
            params={
                "$filter": f"singleValueExtendedProperties/any(ep: ep/id eq "
                f"'{IDEMPOTENCY_PROPERTY}' and ep/value eq '{value}')",
                "$select": "id",
                "$top": "1",
            },
            headers=self._prefer(),
        )
        items = found.get("value") or []
        return str(items[0]["id"]) if items else None

    async def create_draft(self, request: DraftRequest) -> EmailMessage:
        if request.idempotency_key:
            existing = await self._find_draft(request.idempotency_key)
            if existing is not None:
                return await self.get_message(existing)
        body: dict[str, Any] = {
            "contentType": "html" if request.body_html else "text",
            "content": request.body_html or request.body_text,
        }
        extended = (
            [{"id": IDEMPOTENCY_PROPERTY, "value": request.idempotency_key}]
            if request.idempotency_key
            else []
        )
        message: dict[str, Any] = {"body": body}
        if request.to:
            message["toRecipients"] = _recipients(request.to)
        if request.cc:
            message["ccRecipients"] = _recipients(request.cc)
        if request.bcc:
            message["bccRecipients"] = _recipients(request.bcc)
        if extended:
            message["singleValueExtendedProperties"] = extended
        if request.mode is DraftMode.NEW:
            message["subject"] = request.subject or ""
            created = await self._graph.post_json(
                self._path("messages"), message, headers=self._prefer()
            )
        else:
            if not request.reply_to_id:
                raise FatalConnectorError("a reply needs reply_to_id", connector=self.name)
            action = "createReplyAll" if request.mode is DraftMode.REPLY_ALL else "createReply"
            if request.subject:
                message["subject"] = request.subject
            # Graph threads the reply itself (In-Reply-To, References, conversation) and
            # fills the recipients; ours override only when given.
            created = await self._graph.post_json(
                self._path(f"messages/{quote(request.reply_to_id, safe='')}/{action}"),
                {"message": message},
                headers=self._prefer(),
            )
        log.info("msgraph.draft_created", connector=self.name, mode=request.mode.value)
        draft = await self.get_message(str(created["id"]))
        if request.mode is DraftMode.REPLY_ALL and not request.cc:
            draft = await self._drop_me(draft)
        return draft

    async def _drop_me(self, draft: EmailMessage) -> EmailMessage:
        """Exchange may keep the mailbox itself among reply-all recipients: remove it."""
        if self.mailbox not in {a.address for a in [*draft.to, *draft.cc]}:
            return draft
        await self._graph.patch_json(
            self._path(f"messages/{quote(draft.id, safe='')}"),
            {
                "toRecipients": _recipients([a for a in draft.to if a.address != self.mailbox]),
                "ccRecipients": _recipients([a for a in draft.cc if a.address != self.mailbox]),
            },
            headers=self._prefer(),
        )
        return await self.get_message(draft.id)

    async def send_draft(self, draft_id: str) -> EmailMessage:
        draft = await self.get_message(draft_id)
        sent_folder = await self._folder(FolderRole.SENT)
        if not draft.is_draft:
            if draft.folder == sent_folder:
                return draft  # already sent: a retried send is a no-op
            raise FatalConnectorError("only drafts can be sent", connector=self.name)
        if not (draft.to or draft.cc or draft.bcc):
            raise FatalConnectorError("the draft has no recipients", connector=self.name)
        await self._graph.request(
            "POST", self._path(f"messages/{quote(draft_id, safe='')}/send"), headers=self._prefer()
        )
        log.info(
            "msgraph.sent",
            connector=self.name,
            recipients=len(draft.to) + len(draft.cc) + len(draft.bcc),
        )
        # Sending is asynchronous on Exchange: wait briefly for the copy in Sent Items.
        for delay in (0.0, *_SENT_POLL_S):
            if delay:
                await asyncio.sleep(delay)
            try:
                sent = await self.get_message(draft_id)
            except ConnectorNotFoundError:
                continue
            if not sent.is_draft and sent.folder == sent_folder:
                return sent
        sent = draft.model_copy(update={"folder": sent_folder, "is_draft": False})
        return sent

    async def delete_draft(self, draft_id: str) -> None:
        try:
            draft = await self.get_message(draft_id)
        except ConnectorNotFoundError:
            return
        if not draft.is_draft:
            raise FatalConnectorError("not a draft (already sent?)", connector=self.name)
        await self._graph.delete(
            self._path(f"messages/{quote(draft_id, safe='')}"), missing_ok=True
        )

    # ------------------------------------------------------------------ changes

    async def move_message(self, message_id: str, folder: str) -> EmailMessage:
        try:
            moved = await self._graph.post_json(
                self._path(f"messages/{quote(message_id, safe='')}/move"),
                {"destinationId": folder},
                headers=self._prefer(),
            )
        except ConnectorNotFoundError:
            await self.get_message(message_id)  # which one is missing: message or folder?
            raise ConnectorNotFoundError(f"no folder {folder!r}", connector=self.name) from None
        return await self.get_message(str(moved.get("id") or message_id))

    async def set_flags(
        self, message_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> EmailMessage:
        bad = sorted({f for f in [*add, *remove] if f in {"answered", "deleted", "draft"}})
        if bad:
            raise FatalConnectorError(f"flags Graph cannot set: {bad}", connector=self.name)
        patch: dict[str, Any] = {}
        if "seen" in add or "seen" in remove:
            patch["isRead"] = "seen" in add
        if "flagged" in add or "flagged" in remove:
            patch["flag"] = {"flagStatus": "flagged" if "flagged" in add else "notFlagged"}
        labels_add = [f for f in add if f not in _SETTABLE]
        labels_remove = {f.lower() for f in remove if f not in _SETTABLE}
        if labels_add or labels_remove:
            current = await self.get_message(message_id)
            existing = [f for f in current.flags if f not in {"seen", "flagged", "draft"}]
            patch["categories"] = [
                c for c in dict.fromkeys([*existing, *labels_add]) if c.lower() not in labels_remove
            ]
        if patch:
            await self._graph.patch_json(
                self._path(f"messages/{quote(message_id, safe='')}"), patch, headers=self._prefer()
            )
        return await self.get_message(message_id)

    # ------------------------------------------------------------------ push

    async def subscribe(
        self,
        notification_url: str,
        client_state: str,
        *,
        folder: str = "inbox",
        minutes: int = 4230,
    ) -> GraphSubscription:
        """Create a change-notification subscription for new mail in ``folder``.

        Graph first POSTs ``?validationToken=...`` to ``notification_url``, which must echo
        it as text/plain (see assistant/ingestion/webhooks.py). Mail subscriptions last at
        most 10080 minutes; renew them before they expire.
        """
        expiration = datetime.now(UTC) + timedelta(minutes=minutes)
        created = await self._graph.post_json(
            "subscriptions",
            {
                "changeType": "created",
                "notificationUrl": notification_url,
                "resource": f"users/{self._user}/mailFolders('{folder}')/messages",
                "expirationDateTime": expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2",
            },
        )
        log.info("msgraph.subscribed", connector=self.name, subscription=created.get("id"))
        return GraphSubscription(
            id=str(created["id"]),
            resource=str(created["resource"]),
            expiration=_when(str(created["expirationDateTime"])) or expiration,
            client_state=client_state,
        )

    async def renew_subscription(self, subscription_id: str, *, minutes: int = 4230) -> datetime:
        """Push the expiry of a subscription out; ``ConnectorNotFoundError`` if it is gone."""
        expiration = datetime.now(UTC) + timedelta(minutes=minutes)
        renewed = await self._graph.patch_json(
            f"subscriptions/{quote(subscription_id, safe='')}",
            {"expirationDateTime": expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")},
        )
        return _when(str(renewed.get("expirationDateTime"))) or expiration

    async def unsubscribe(self, subscription_id: str) -> None:
        await self._graph.delete(
            f"subscriptions/{quote(subscription_id, safe='')}", missing_ok=True
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._graph.aclose()


# --------------------------------------------------------------------------- factory


def _token_provider(config: GraphMailConfig, context: ConnectorContext) -> TokenProvider:
    return token_provider_for(
        config,
        context,
        context_key="msgraph_token_provider",
        ca_file=str(config.ca_file) if config.ca_file else None,
    )


def build_connector(config: GraphMailConfig, context: ConnectorContext) -> GraphEmailConnector:
    """A connector instance for one tenant (synchronous form of the factory)."""
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_file))
    import httpx  # with the first instance, not with connector discovery

    http = httpx.AsyncClient(timeout=config.timeout_s, verify=verify)
    client = GraphClient(
        _token_provider(config, context),
        base_url=config.base_url,
        http_client=http,
        connector=context.instance_name,
        max_attempts=config.max_attempts,
        timeout_s=config.timeout_s,
        owns_http=True,
    )
    return GraphEmailConnector(
        client,
        mailbox=config.mailbox,
        user_id=config.user_id,
        name=context.instance_name,
        notification_url=config.notification_url,
    )


async def _build(config: GraphMailConfig, context: ConnectorContext) -> GraphEmailConnector:
    return build_connector(config, context)


EMAIL_SPEC = ConnectorSpec(
    slug="msgraph.email",
    kind="microsoft365",
    title="Microsoft 365 mailbox (Graph)",
    config_model=GraphMailConfig,
    capabilities=frozenset({Capability.EMAIL}),
    factory=_build,
    description="Exchange Online mail over Microsoft Graph: delta sync, drafts then send, "
    "change notifications with polling as the fallback.",
)

__all__ = [
    "EMAIL_SPEC",
    "GraphEmailConnector",
    "GraphMailConfig",
    "GraphSubscription",
    "build_connector",
    "to_email_message",
]
