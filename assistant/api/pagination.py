"""Keyset pages: an opaque, signed cursor naming the last row a page returned.

A page after a cursor starts strictly after that row in the listing's order (created_at
DESC, id DESC), so rows inserted between two page requests are neither skipped nor
repeated, and the database reads ``limit`` index entries whatever the depth (an offset
reads and throws away every row before the page).

The cursor is signed (HMAC-SHA256 with a key derived from the deployment's secret) and
bound to the query it came from (filters and caller): a cursor that was altered, forged,
or replayed on another query is refused with a 400 ``InvalidCursorError``, audited.
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import orjson
from fastapi import Query
from fastapi.responses import Response
from pydantic_core import to_jsonable_python

from assistant.core.errors import AssistantError
from assistant.core.principal import Principal

#: Longest cursor accepted (a real one is about 120 characters).
MAX_CURSOR_CHARS = 512
_MAC_BYTES = 16

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_CHARS,
        description="The X-Next-Cursor of the previous page: the page after it. Not with offset.",
    ),
]
NEXT_CURSOR_HEADER = "X-Next-Cursor"


class InvalidCursorError(AssistantError):
    """A cursor that this deployment did not issue for this query."""

    status_code = 400
    # Altered or replayed cursors are probes: leave a trace (governance.refused).
    audit_refusal = True


@dataclass(frozen=True)
class Position:
    """The last row of a page, in the listing's order."""

    created_at: datetime
    id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and checks cursors. ``scope`` names the query (route, filters, caller)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"assistant.pagination.cursor\x00" + secret.encode()).digest()

    def _mac(self, scope: str, body: bytes) -> bytes:
        return hmac.digest(self._key, scope.encode() + b"\x00" + body, "sha256")[:_MAC_BYTES]

    def encode(self, scope: str, position: Position) -> str:
        body = orjson.dumps([position.created_at.astimezone(UTC).isoformat(), position.id])
        return f"{_b64(body)}.{_b64(self._mac(scope, body))}"

    def decode(self, scope: str, cursor: str) -> Position:
        refused = InvalidCursorError(
            "the cursor is not one this listing issued for this query: start again without a cursor"
        )
        body_text, dot, mac_text = cursor.partition(".")
        if not dot or len(cursor) > MAX_CURSOR_CHARS:
            raise refused
        try:
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise refused from None
        if not hmac.compare_digest(mac, self._mac(scope, body)):
            raise refused
        try:
            created_text, row_id = orjson.loads(body)
            created_at = datetime.fromisoformat(created_text)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            raise refused from None
        if created_at.tzinfo is None or not isinstance(row_id, str):
            raise refused
        return Position(created_at=created_at, id=row_id)


@lru_cache(maxsize=4)
def _codec(secret: str) -> CursorCodec:
    """The deployment's codec: its key is derived once, not on every listing request."""
    return CursorCodec(secret)


def query_scope(route: str, caller: tuple[str, str, str | None], **filters: Any) -> str:
    """The name a cursor is bound to: the route, the caller (tenant, person, executive they
    act for) and every filter (a changed filter is another query)."""
    return orjson.dumps(
        {"route": route, "caller": list(caller), "filters": filters},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    ).decode()


class CursorWithOffsetError(AssistantError):
    status_code = 400


def ensure_one_way(cursor: str | None, offset: int) -> None:
    if cursor is not None and offset:
        raise CursorWithOffsetError("page with cursor or with offset, not both")


@dataclass(frozen=True)
class Keyset:
    """One listing request's keyset paging: where its page starts and the next page's cursor.

    ``after`` is the (created_at, id) of the row the cursor names, None on a first page."""

    codec: CursorCodec
    scope: str
    after: tuple[datetime, str] | None

    @classmethod
    def of(
        cls,
        secret: str,
        route: str,
        principal: Principal,
        cursor: str | None,
        offset: int,
        **filters: Any,
    ) -> "Keyset":
        """Check the request pages one way, and decode its cursor against this query."""
        ensure_one_way(cursor, offset)
        codec = _codec(secret)
        scope = query_scope(
            route, (principal.tenant_id, principal.user_id, principal.on_behalf_of), **filters
        )
        position = codec.decode(scope, cursor) if cursor is not None else None
        return cls(codec, scope, (position.created_at, position.id) if position else None)

    def next_cursor(self, rows: Sequence[Mapping[Any, Any]], limit: int) -> str | None:
        """A full page's last row as the next page's cursor; None after the last page."""
        if not rows or len(rows) < limit:
            return None
        last = rows[-1]
        return self.codec.encode(self.scope, Position(last["created_at"], last["id"]))


def json_page(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    """The page as JSON, serialized once (the route declares the schema as response_model:
    ``items`` hold its fields, in its order), with the next page's cursor in X-Next-Cursor
    when the page is full.

    orjson writes typed columns as pydantic writes the models' fields (UTC datetimes with
    a Z), JSON read as stored text (``orjson.Fragment``) as is, and anything else through
    pydantic."""
    headers = {NEXT_CURSOR_HEADER: next_cursor} if next_cursor else None
    body = orjson.dumps(items, default=to_jsonable_python, option=orjson.OPT_UTC_Z)
    return Response(body, media_type="application/json", headers=headers)
