"""A Microsoft Graph v1.0 mail emulator, served over real HTTPS for connector tests.

It follows the documented request and response shapes of the calls the mail connector
makes:

- the identity platform: OpenID discovery and ``/oauth2/v2.0/token`` (client credentials),
  so that msal runs unchanged;
- ``mailFolders`` (list with ``@odata.nextLink`` paging, well-known names);
- ``mailFolders/{id}/messages/delta`` with ``$select``, ``Prefer: odata.maxpagesize``,
  ``$skiptoken`` pages and a ``$deltatoken`` per round, ``@removed`` entries, 410 Gone for
  an expired sync state, and the known quirk that a flag-only change comes back with a few
  properties only;
- messages: get (``$select``, ``$expand=attachments``, ``singleValueExtendedProperties``),
  list with ``$filter`` on an extended property or ``internetMessageId``, create
  (drafts), ``createReply`` / ``createReplyAll``, update, ``send`` (202), ``move``, delete;
- ``subscriptions``: create with the validation-token handshake to ``notificationUrl``,
  renew (PATCH), delete, and change notifications POSTed with ``clientState``;
- faults on demand: 429 and 503 with ``Retry-After``, 401 for an unknown token.

Ids are immutable (as with ``Prefer: IdType="ImmutableId"``). Nothing here imports the code
under test.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.entra_token import add_token_endpoint
from tests.fakes.serving import serve_app

WELL_KNOWN = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
}
_MAX_SUBSCRIPTION_MINUTES = 10080
_MINIMAL_UPDATE = (
    "id",
    "@odata.etag",
    "changeKey",
    "isRead",
    "flag",
    "categories",
    "parentFolderId",
)
_EXT_FILTER = re.compile(
    r"singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '([^']+)' and "
    r"\1/value eq '((?:[^']|'')*)'\s*\)",
    re.IGNORECASE,
)
_ID_FILTER = re.compile(r"internetMessageId eq '((?:[^']|'')*)'", re.IGNORECASE)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"request-id": str(uuid.uuid4()), "date": _now()},
            }
        },
        status_code=status,
        headers=headers,
    )


def _recipient(address: str, name: str | None = None) -> dict[str, Any]:
    return {"emailAddress": {"name": name or address, "address": address}}


def _new_id(prefix: str = "AAMk") -> str:
    return prefix + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Change:
    seq: int
    message_id: str
    folder_id: str
    kind: str  # "upsert", "update" (properties only) or "removed"


@dataclass
class Round:
    """One delta round being paged through ($skiptoken)."""

    folder_id: str
    items: list[dict[str, Any]]
    end_seq: int
    epoch: int


@dataclass
class Mailbox:
    user_id: str
    address: str
    name: str
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    well_known: dict[str, str] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    seq: int = 0


@dataclass
class Subscription:
    id: str
    user_id: str
    resource: str
    folder_id: str | None
    change_type: str
    notification_url: str
    client_state: str | None
    expiration: datetime


class GraphMailEmulator:
    """State and app of the emulator; ``serve()`` runs it with uvicorn over HTTPS."""

    def __init__(
        self,
        *,
        tenant_id: str = "contoso-tenant",
        client_id: str = "app-id",
        client_secret: str = "app-secret",
    ) -> None:  # noqa: S107
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.tokens: set[str] = set()
        self.rounds: dict[str, Round] = {}
        self.epoch = 0
        self.subscriptions: dict[str, Subscription] = {}
        self.faults: list[tuple[int, float]] = []  # (status, retry_after) for next requests
        self.requests: list[tuple[str, str]] = []  # (method, path) of every Graph request
        self.token_requests = 0
        self.notifications: list[dict[str, Any]] = []
        self.base_url = ""
        self.app = self._build_app()

    # ------------------------------------------------------------------ test controls

    def add_mailbox(self, address: str, name: str | None = None) -> Mailbox:
        with self.lock:
            box = Mailbox(
                user_id=str(uuid.uuid4()),
                address=address.lower(),
                name=name or address.split("@")[0].title(),
            )
            for key, display in WELL_KNOWN.items():
                folder_id = _new_id("AQMk")
                box.folders[folder_id] = {
                    "id": folder_id,
                    "displayName": display,
                    "parentFolderId": "root",
                    "childFolderCount": 0,
                    "unreadItemCount": 0,
                    "totalItemCount": 0,
                    "isHidden": False,
                }
                box.well_known[key] = folder_id
            self.mailboxes[box.user_id] = box
            return box

    def issue_token(self) -> str:
        token = uuid.uuid4().hex
        with self.lock:
            self.tokens.add(token)
        return token

    def fail_next(self, count: int, status: int = 429, retry_after: float = 1) -> None:
        """The next ``count`` Graph requests answer ``status`` with ``Retry-After``."""
        with self.lock:
            self.faults.extend([(status, retry_after)] * count)

    def expire_sync_state(self) -> None:
        """Every delta and skip token issued so far answers 410 Gone."""
        with self.lock:
            self.epoch += 1
            self.rounds.clear()

    def deliver(
        self,
        box: Mailbox,
        subject: str,
        text: str,
        sender: str,
        *,
        cc: list[str] | None = None,
        html: str | None = None,
        headers: dict[str, str] | None = None,
        folder: str = "inbox",
        internet_message_id: str | None = None,
    ) -> dict[str, Any]:
        """Mail arriving from outside (what Exchange's transport does)."""
        with self.lock:
            message_id = internet_message_id or f"<{uuid.uuid4().hex}@{sender.split('@')[1]}>"
            all_headers = [
                {"name": "Message-ID", "value": message_id},
                {"name": "From", "value": sender},
                {"name": "To", "value": box.address},
            ]
            for name, value in (headers or {}).items():
                all_headers.append({"name": name, "value": value})
            in_reply_to = (headers or {}).get("In-Reply-To")
            message = self._message(
                box,
                folder_id=box.well_known[folder],
                subject=subject,
                body={"contentType": "html" if html else "text", "content": html or text},
                sender=sender,
                to=[box.address],
                cc=cc or [],
                is_draft=False,
                internet_message_id=message_id,
                headers=all_headers,
                conversation_id=None
                if not in_reply_to
                else self._conversation_of(box, in_reply_to),
            )
            self._record(box, message["id"], message["parentFolderId"], "upsert")
            created = dict(message)
        self._notify(box, created, "created")
        return created

    # ------------------------------------------------------------------ model

    def _conversation_of(self, box: Mailbox, internet_message_id: str) -> str | None:
        for message in box.messages.values():
            if message.get("internetMessageId") == internet_message_id:
                return str(message["conversationId"])
        return None

    def _message(
        self,
        box: Mailbox,
        *,
        folder_id: str,
        subject: str,
        body: dict[str, Any],
        sender: str,
        to: list[str],
        cc: list[str],
        is_draft: bool,
        internet_message_id: str,
        headers: list[dict[str, str]] | None = None,
        conversation_id: str | None = None,
        bcc: list[str] | None = None,
        extended: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        message_id = _new_id()
        now = _now()
        message: dict[str, Any] = {
            "id": message_id,
            "@odata.etag": f'W/"{uuid.uuid4().hex}"',
            "changeKey": uuid.uuid4().hex,
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "receivedDateTime": now,
            "sentDateTime": None if is_draft else now,
            "hasAttachments": False,
            "internetMessageId": internet_message_id,
            "subject": subject,
            "bodyPreview": str(body.get("content", ""))[:255],
            "importance": "normal",
            "parentFolderId": folder_id,
            "conversationId": conversation_id or _new_id("AAQk"),
            "isRead": is_draft,
            "isDraft": is_draft,
            "body": body,
            "sender": _recipient(sender),
            "from": _recipient(sender),
            "toRecipients": [_recipient(a) for a in to],
            "ccRecipients": [_recipient(a) for a in cc],
            "bccRecipients": [_recipient(a) for a in bcc or []],
            "replyTo": [],
            "flag": {"flagStatus": "notFlagged"},
            "categories": [],
            "internetMessageHeaders": headers or [],
            "singleValueExtendedProperties": extended or [],
            "attachments": [],
        }
        box.messages[message_id] = message
        return message

    def _record(self, box: Mailbox, message_id: str, folder_id: str, kind: str) -> None:
        box.seq += 1
        box.changes.append(Change(box.seq, message_id, folder_id, kind))

    def _touch(self, message: dict[str, Any]) -> None:
        message["changeKey"] = uuid.uuid4().hex
        message["@odata.etag"] = f'W/"{message["changeKey"]}"'
        message["lastModifiedDateTime"] = _now()

    def _move(self, box: Mailbox, message: dict[str, Any], folder_id: str) -> None:
        old = message["parentFolderId"]
        if old == folder_id:
            return
        message["parentFolderId"] = folder_id
        self._touch(message)
        self._record(box, message["id"], old, "removed")
        self._record(box, message["id"], folder_id, "upsert")

    def _shape(
        self, message: dict[str, Any], select: list[str] | None, expand: str | None
    ) -> dict[str, Any]:
        hidden = {"internetMessageHeaders", "singleValueExtendedProperties", "attachments"}
        if select:
            keys = {"id", "@odata.etag", *select}
            shaped = {k: v for k, v in message.items() if k in keys}
        else:
            shaped = {k: v for k, v in message.items() if k not in hidden}
        if expand:
            if expand.startswith("attachments"):
                shaped["attachments"] = [
                    {"@odata.type": "#microsoft.graph.fileAttachment", **a}
                    for a in message["attachments"]
                ]
            elif expand.startswith("singleValueExtendedProperties"):
                wanted = re.findall(r"id eq '([^']+)'", expand)
                shaped["singleValueExtendedProperties"] = [
                    p
                    for p in message["singleValueExtendedProperties"]
                    if not wanted or p["id"] in wanted
                ]
        return shaped

    # ------------------------------------------------------------------ notifications

    def _notify(self, box: Mailbox, message: dict[str, Any], change_type: str) -> None:
        now = datetime.now(UTC)
        with self.lock:
            targets = [
                s
                for s in self.subscriptions.values()
                if s.user_id == box.user_id
                and change_type in s.change_type.split(",")
                and s.expiration > now
                and s.folder_id in (None, message["parentFolderId"])
            ]
        for sub in targets:
            payload = {
                "value": [
                    {
                        "subscriptionId": sub.id,
                        "subscriptionExpirationDateTime": sub.expiration.isoformat(),
                        "changeType": change_type,
                        "clientState": sub.client_state,
                        "resource": f"Users/{box.user_id}/Messages/{message['id']}",
                        "resourceData": {
                            "@odata.type": "#Microsoft.Graph.Message",
                            "@odata.id": f"Users/{box.user_id}/Messages/{message['id']}",
                            "@odata.etag": message["@odata.etag"],
                            "id": message["id"],
                        },
                        "tenantId": self.tenant_id,
                    }
                ]
            }
            self.notifications.append(payload)
            threading.Thread(
                target=self._post, args=(sub.notification_url, payload), daemon=True
            ).start()

    def _post(self, url: str, payload: dict[str, Any]) -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, json=payload, timeout=10)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> FastAPI:  # noqa: C901 - one route table, read top to bottom
        app = FastAPI()
        emulator = self

        add_token_endpoint(
            app, emulator, authority_root=lambda: emulator.base_url.rsplit("/v1.0", 1)[0]
        )

        @app.middleware("http")
        async def graph_gate(request: Request, call_next: Any) -> Any:
            if not request.url.path.startswith("/v1.0/"):
                return await call_next(request)
            with emulator.lock:
                emulator.requests.append((request.method, request.url.path))
                fault = emulator.faults.pop(0) if emulator.faults else None
            if fault is not None:
                status, retry_after = fault
                code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
                return _error(
                    status,
                    code,
                    "Application is over its MailboxConcurrency limit."
                    if status == 429
                    else "The service is temporarily unavailable.",
                    headers={"Retry-After": str(int(retry_after))},
                )
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in emulator.tokens:
                return _error(401, "InvalidAuthenticationToken", "Access token validation failure.")
            return await call_next(request)

        def mailbox(user: str) -> Mailbox | None:
            with emulator.lock:
                if user in emulator.mailboxes:
                    return emulator.mailboxes[user]
                for box in emulator.mailboxes.values():
                    if box.address == user.lower():
                        return box
            return None

        def folder_id(box: Mailbox, ref: str) -> str | None:
            if ref.lower() in box.well_known:
                return box.well_known[ref.lower()]
            return ref if ref in box.folders else None

        def not_found(what: str = "The specified object was not found in the store.") -> Any:
            return _error(404, "ErrorItemNotFound", what)

        def select_of(request: Request) -> list[str] | None:
            raw = request.query_params.get("$select")
            return [s.strip() for s in raw.split(",")] if raw else None

        def page_size(request: Request, default: int = 10) -> int:
            prefer = request.headers.get("Prefer", "")
            match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
            return max(1, min(int(match.group(1)), 1000)) if match else default

        # ---------------------------------------------------------------- folders

        @app.get("/v1.0/users/{user}/mailFolders")
        async def list_folders(user: str, request: Request) -> Any:
            box = mailbox(user)
            if box is None:
                return not_found()
            top = int(request.query_params.get("$top", "10"))
            skip = int(request.query_params.get("$skip", "0"))
            with emulator.lock:
                folders = [dict(f) for f in box.folders.values()]
                for folder in folders:
                    inside = [
                        m for m in box.messages.values() if m["parentFolderId"] == folder["id"]
                    ]
                    folder["totalItemCount"] = len(inside)
                    folder["unreadItemCount"] = sum(1 for m in inside if not m["isRead"])
            body: dict[str, Any] = {"value": folders[skip : skip + top]}
            if skip + top < len(folders):
                body["@odata.nextLink"] = (
                    f"{emulator.base_url}/users/{user}/mailFolders?$top={top}&$skip={skip + top}"
                )
            return body

        @app.get("/v1.0/users/{user}/mailFolders/{ref}")
        async def get_folder(user: str, ref: str) -> Any:
            box = mailbox(user)
            found = folder_id(box, ref) if box else None
            if box is None or found is None:
                return not_found()
            return box.folders[found]

        # ---------------------------------------------------------------- delta

        @app.get("/v1.0/users/{user}/mailFolders/{ref}/messages/delta")
        async def delta(user: str, ref: str, request: Request) -> Any:
            box = mailbox(user)
            fid = folder_id(box, ref) if box else None
            if box is None or fid is None:
                return not_found()
            params = request.query_params
            size = page_size(request)
            with emulator.lock:
                if "$skiptoken" in params:
                    round_id, _, offset_text = params["$skiptoken"].partition(".")
                    current = emulator.rounds.get(round_id)
                    if current is None or current.epoch != emulator.epoch:
                        return _error(
                            410, "SyncStateNotFound", "The sync state generation is not valid."
                        )
                    offset = int(offset_text or 0)
                elif "$deltatoken" in params:
                    seq_text, _, epoch_text = params["$deltatoken"].partition(".")
                    if (
                        not seq_text.isdigit()
                        or not epoch_text.isdigit()
                        or int(epoch_text) != emulator.epoch
                        or int(seq_text) > box.seq
                    ):
                        return _error(
                            410, "SyncStateNotFound", "The sync state generation is not valid."
                        )
                    round_id, offset = uuid.uuid4().hex, 0
                    current = Round(
                        fid,
                        emulator._changes_since(box, fid, int(seq_text), select_of(request)),
                        box.seq,
                        emulator.epoch,
                    )
                    emulator.rounds[round_id] = current
                else:
                    round_id, offset = uuid.uuid4().hex, 0
                    items = [
                        emulator._shape(m, select_of(request), None)
                        for m in sorted(box.messages.values(), key=lambda m: m["receivedDateTime"])
                        if m["parentFolderId"] == fid
                    ]
                    for item in items:
                        item["@odata.type"] = "#microsoft.graph.message"
                    current = Round(fid, items, box.seq, emulator.epoch)
                    emulator.rounds[round_id] = current
                page = current.items[offset : offset + size]
                path = f"{emulator.base_url}/users/{user}/mailFolders/{ref}/messages/delta"
                body: dict[str, Any] = {
                    "@odata.context": f"{emulator.base_url}/$metadata#Collection(message)",
                    "value": page,
                }
                if offset + size < len(current.items):
                    body["@odata.nextLink"] = f"{path}?$skiptoken={round_id}.{offset + size}"
                else:
                    body["@odata.deltaLink"] = (
                        f"{path}?$deltatoken={current.end_seq}.{current.epoch}"
                    )
                    emulator.rounds.pop(round_id, None)
            return body

        # ---------------------------------------------------------------- messages

        def find(box: Mailbox, message_id: str) -> dict[str, Any] | None:
            return box.messages.get(message_id)

        @app.get("/v1.0/users/{user}/messages/{message_id}")
        async def get_message(user: str, message_id: str, request: Request) -> Any:
            box = mailbox(user)
            with emulator.lock:
                message = find(box, message_id) if box else None
                if message is None:
                    return not_found()
                return emulator._shape(
                    message, select_of(request), request.query_params.get("$expand")
                )

        @app.get("/v1.0/users/{user}/mailFolders/{ref}/messages")
        @app.get("/v1.0/users/{user}/messages")
        async def list_messages(user: str, request: Request, ref: str | None = None) -> Any:
            box = mailbox(user)
            fid = folder_id(box, ref) if box and ref else None
            if box is None or (ref and fid is None):
                return not_found()
            flt = request.query_params.get("$filter", "")
            with emulator.lock:
                found = [
                    m for m in box.messages.values() if fid is None or m["parentFolderId"] == fid
                ]
                ext = _EXT_FILTER.search(flt)
                ident = _ID_FILTER.search(flt)
                if ext:
                    prop_id, value = ext.group(2), ext.group(3).replace("''", "'")
                    found = [
                        m
                        for m in found
                        if any(
                            p["id"].lower() == prop_id.lower() and p["value"] == value
                            for p in m["singleValueExtendedProperties"]
                        )
                    ]
                elif ident:
                    value = ident.group(1).replace("''", "'")
                    found = [m for m in found if m.get("internetMessageId") == value]
                elif flt:
                    return _error(400, "ErrorInvalidUrlQueryFilter", "Unsupported filter.")
                top = int(request.query_params.get("$top", "10"))
                return {
                    "value": [emulator._shape(m, select_of(request), None) for m in found[:top]]
                }

        def recipients(items: list[dict[str, Any]] | None) -> list[str]:
            return [str(i["emailAddress"]["address"]) for i in items or []]

        @app.post("/v1.0/users/{user}/messages")
        @app.post("/v1.0/users/{user}/mailFolders/{ref}/messages")
        async def create_message(user: str, request: Request, ref: str | None = None) -> Any:
            box = mailbox(user)
            if box is None:
                return not_found()
            data = await request.json()
            with emulator.lock:
                target = folder_id(box, ref or "drafts")
                if target is None:
                    return not_found()
                message = emulator._message(
                    box,
                    folder_id=target,
                    subject=data.get("subject", ""),
                    body=data.get("body") or {"contentType": "text", "content": ""},
                    sender=box.address,
                    to=recipients(data.get("toRecipients")),
                    cc=recipients(data.get("ccRecipients")),
                    bcc=recipients(data.get("bccRecipients")),
                    is_draft=True,
                    internet_message_id=f"<{uuid.uuid4().hex}@emulator.outlook.com>",
                    extended=data.get("singleValueExtendedProperties"),
                )
                emulator._record(box, message["id"], target, "upsert")
                return JSONResponse(emulator._shape(message, None, None), status_code=201)

        @app.post("/v1.0/users/{user}/messages/{message_id}/createReply")
        @app.post("/v1.0/users/{user}/messages/{message_id}/createReplyAll")
        async def create_reply(user: str, message_id: str, request: Request) -> Any:
            box = mailbox(user)
            with emulator.lock:
                original = find(box, message_id) if box else None
                if box is None or original is None:
                    return not_found()
                data = (await request.json()) if await request.body() else {}
                overrides = data.get("message") or {}
                reply_all = request.url.path.endswith("createReplyAll")
                sender = original["from"]["emailAddress"]["address"]
                to = [r["emailAddress"]["address"] for r in original["replyTo"]] or [sender]
                cc: list[str] = []
                if reply_all:
                    everyone = recipients(original["toRecipients"]) + recipients(
                        original["ccRecipients"]
                    )
                    cc = [a for a in dict.fromkeys(everyone) if a not in to and a != box.address]
                parent_refs = next(
                    (
                        h["value"]
                        for h in original["internetMessageHeaders"]
                        if h["name"].lower() == "references"
                    ),
                    "",
                )
                references = f"{parent_refs} {original['internetMessageId']}".strip()
                extended = [
                    {"id": "String 0x1042", "value": original["internetMessageId"]},
                    {"id": "String 0x1039", "value": references},
                    *(overrides.get("singleValueExtendedProperties") or []),
                ]
                subject = original["subject"]
                body = overrides.get("body") or {
                    "contentType": "html",
                    "content": data.get("comment", ""),
                }
                message = emulator._message(
                    box,
                    folder_id=box.well_known["drafts"],
                    subject=subject if subject.lower().startswith("re:") else f"RE: {subject}",
                    body=body,
                    sender=box.address,
                    to=recipients(overrides.get("toRecipients")) or to,
                    cc=recipients(overrides.get("ccRecipients")) or cc,
                    bcc=recipients(overrides.get("bccRecipients")),
                    is_draft=True,
                    internet_message_id=f"<{uuid.uuid4().hex}@emulator.outlook.com>",
                    conversation_id=original["conversationId"],
                    extended=extended,
                )
                emulator._record(box, message["id"], message["parentFolderId"], "upsert")
                return JSONResponse(emulator._shape(message, None, None), status_code=201)

        @app.patch("/v1.0/users/{user}/messages/{message_id}")
        async def update_message(user: str, message_id: str, request: Request) -> Any:
            box = mailbox(user)
            data = await request.json()
            with emulator.lock:
                message = find(box, message_id) if box else None
                if box is None or message is None:
                    return not_found()
                allowed = {
                    "isRead",
                    "flag",
                    "categories",
                    "subject",
                    "body",
                    "toRecipients",
                    "ccRecipients",
                    "bccRecipients",
                    "importance",
                }
                unknown = set(data) - allowed
                if unknown:
                    return _error(400, "ErrorInvalidProperty", f"Cannot update {unknown}.")
                if not message["isDraft"] and set(data) - {"isRead", "flag", "categories"}:
                    return _error(400, "ErrorInvalidOperation", "Only drafts can be edited.")
                message.update(data)
                emulator._touch(message)
                emulator._record(box, message_id, message["parentFolderId"], "update")
                return emulator._shape(message, None, None)

        @app.post("/v1.0/users/{user}/messages/{message_id}/send")
        async def send(user: str, message_id: str) -> Any:
            box = mailbox(user)
            with emulator.lock:
                message = find(box, message_id) if box else None
                if box is None or message is None:
                    return not_found()
                if not message["isDraft"]:
                    return _error(400, "ErrorInvalidOperation", "The item is not a draft.")
                if not (
                    message["toRecipients"] or message["ccRecipients"] or message["bccRecipients"]
                ):
                    return _error(
                        400, "ErrorInvalidRecipients", "At least one recipient isn't valid."
                    )
                message["isDraft"] = False
                message["sentDateTime"] = _now()
                message["isRead"] = True
                emulator._move(box, message, box.well_known["sentitems"])
            return Response(status_code=202)

        @app.post("/v1.0/users/{user}/messages/{message_id}/move")
        async def move(user: str, message_id: str, request: Request) -> Any:
            box = mailbox(user)
            data = await request.json()
            with emulator.lock:
                message = find(box, message_id) if box else None
                target = folder_id(box, str(data.get("destinationId", ""))) if box else None
                if box is None or message is None or target is None:
                    return not_found()
                emulator._move(box, message, target)
                return JSONResponse(emulator._shape(message, None, None), status_code=201)

        @app.delete("/v1.0/users/{user}/messages/{message_id}")
        async def delete(user: str, message_id: str) -> Any:
            box = mailbox(user)
            with emulator.lock:
                message = find(box, message_id) if box else None
                if box is None or message is None:
                    return not_found()
                del box.messages[message_id]
                emulator._record(box, message_id, message["parentFolderId"], "removed")
            return Response(status_code=204)

        # ---------------------------------------------------------------- subscriptions

        @app.post("/v1.0/subscriptions")
        async def subscribe(request: Request) -> Any:
            data = await request.json()
            resource = str(data.get("resource", ""))
            match = re.match(
                r"^/?(?:users|Users)/([^/]+)/(?:mailFolders\('([^']+)'\)/)?"
                r"messages$",
                resource,
            )
            box = mailbox(match.group(1)) if match else None
            if match is None or box is None:
                return _error(400, "ExtensionError", "Unsupported resource.")
            fid = folder_id(box, match.group(2)) if match.group(2) else None
            try:
                expiration = datetime.fromisoformat(
                    str(data["expirationDateTime"]).replace("Z", "+00:00")
                )
            except (KeyError, ValueError):
                return _error(400, "InvalidRequest", "expirationDateTime is required.")
            limit = datetime.now(UTC) + timedelta(minutes=_MAX_SUBSCRIPTION_MINUTES)
            if expiration > limit or expiration <= datetime.now(UTC):
                return _error(400, "InvalidRequest", "Subscription expiration is out of range.")
            url = str(data.get("notificationUrl", ""))
            token = uuid.uuid4().hex
            try:  # the validation handshake: echo the token within 10 s, as text/plain
                async with httpx.AsyncClient(timeout=10) as http:
                    answer = await http.post(
                        f"{url}{'&' if '?' in url else '?'}validationToken={quote(token)}"
                    )
            except httpx.HTTPError:
                return _error(400, "InvalidRequest", "Subscription validation request failed.")
            if (
                answer.status_code != 200
                or answer.text != token
                or not answer.headers.get("content-type", "").startswith("text/plain")
            ):
                return _error(
                    400,
                    "InvalidRequest",
                    "Subscription validation request failed. Response must exactly "
                    "match validationToken query parameter.",
                )
            sub = Subscription(
                id=str(uuid.uuid4()),
                user_id=box.user_id,
                resource=resource,
                folder_id=fid,
                change_type=str(data.get("changeType", "created")),
                notification_url=url,
                client_state=data.get("clientState"),
                expiration=expiration,
            )
            with emulator.lock:
                emulator.subscriptions[sub.id] = sub
            return JSONResponse(_subscription_json(sub), status_code=201)

        @app.patch("/v1.0/subscriptions/{sub_id}")
        async def renew(sub_id: str, request: Request) -> Any:
            data = await request.json()
            with emulator.lock:
                sub = emulator.subscriptions.get(sub_id)
                if sub is None:
                    return _error(404, "ResourceNotFound", "The object was not found.")
                expiration = datetime.fromisoformat(
                    str(data["expirationDateTime"]).replace("Z", "+00:00")
                )
                if expiration > datetime.now(UTC) + timedelta(minutes=_MAX_SUBSCRIPTION_MINUTES):
                    return _error(400, "InvalidRequest", "Subscription expiration is too far.")
                sub.expiration = expiration
                return _subscription_json(sub)

        @app.delete("/v1.0/subscriptions/{sub_id}")
        async def unsubscribe(sub_id: str) -> Any:
            with emulator.lock:
                if emulator.subscriptions.pop(sub_id, None) is None:
                    return _error(404, "ResourceNotFound", "The object was not found.")
            return Response(status_code=204)

        return app

    def _changes_since(
        self, box: Mailbox, folder_id: str, seq: int, select: list[str] | None
    ) -> list[dict[str, Any]]:
        latest: dict[str, str] = {}
        for change in box.changes:
            if change.seq <= seq or change.folder_id != folder_id:
                continue
            previous = latest.get(change.message_id)
            if change.kind == "update" and previous in ("upsert", "removed"):
                continue  # a created-then-updated message is still "created"
            latest[change.message_id] = change.kind
        items: list[dict[str, Any]] = []
        for message_id, kind in latest.items():
            message = box.messages.get(message_id)
            if kind == "removed" or message is None or message["parentFolderId"] != folder_id:
                items.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": message_id,
                        "@removed": {"reason": "deleted"},
                    }
                )
            elif kind == "update":  # the documented quirk: few properties on a flag change
                items.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        **{k: message[k] for k in _MINIMAL_UPDATE if k in message},
                    }
                )
            else:
                items.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        **self._shape(message, select, None),
                    }
                )
        return items

    # ------------------------------------------------------------------ serving

    @contextlib.contextmanager
    def serve(self, *, cert_file: Path, key_file: Path) -> Iterator[str]:
        """Run over HTTPS with uvicorn in a thread; yield the Graph base URL (…/v1.0)."""
        with serve_app(
            self.app, name="Graph mail emulator", cert_file=cert_file, key_file=key_file
        ) as port:
            self.base_url = f"https://127.0.0.1:{port}/v1.0"
            yield self.base_url


def _subscription_json(sub: Subscription) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": sub.id,
        "resource": sub.resource,
        "changeType": sub.change_type,
        "clientState": sub.client_state,
        "notificationUrl": sub.notification_url,
        "expirationDateTime": sub.expiration.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
        "applicationId": "app-id",
        "creatorId": str(uuid.uuid4()),
        "latestSupportedTlsVersion": "v1_2",
    }


__all__ = ["GraphMailEmulator", "Mailbox"]
