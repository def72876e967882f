"""Keyset pages of the review queue and the actions list: no row skipped or repeated while
rows arrive between pages; altered, forged or replayed cursors are a typed, audited 400."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from assistant.api.pagination import NEXT_CURSOR_HEADER
from assistant.core.principal import Role, system_principal
from assistant.core.settings import Settings
from governance.audit_models import EVENTS
from governance.models import Action
from governance.service import Proposal
from tests.fixtures.governance import (
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    install_governance,
    review_settings,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture

ACTIONS = "/api/v1/actions"
REVIEW = "/api/v1/review"


@pytest.fixture
def settings(data_dir: Path, seeded_template: Path, tmp_path: Path) -> Settings:
    return review_settings(data_dir, seeded_template, tmp_path)


@pytest.fixture
async def runtime(client: httpx.AsyncClient) -> Any:
    return install_governance(client)


async def propose_pending(runtime: Any, count: int, label: str) -> list[str]:
    """``count`` actions waiting for the executive's review (external mail)."""
    ids = []
    async with runtime.services.sessions() as session, session.begin():
        for i in range(count):
            action = await runtime.actions.propose(
                session,
                system_principal(TENANT, "pipeline"),
                Proposal(
                    kind="email.send",
                    arguments={
                        "to": [{"address": OUTSIDER}],
                        "subject": f"{label} {i}",
                        "body_text": "Body.",
                    },
                    on_behalf_of=EXECUTIVE,
                ),
            )
            assert action.state == "pending_review"
            ids.append(action.id)
    return ids


async def set_created(runtime: Any, ids: list[str], at: Any) -> None:
    async with runtime.services.sessions() as session, session.begin():
        await session.execute(update(Action).where(Action.id.in_(ids)).values(created_at=at))


async def queue_order(runtime: Any) -> list[str]:
    async with runtime.services.sessions() as session:
        rows = await session.execute(
            select(Action.id)
            .where(Action.state == "pending_review", Action.on_behalf_of == EXECUTIVE)
            .order_by(Action.created_at.desc(), Action.id.desc())
        )
        return [str(r[0]) for r in rows]


async def refusals(runtime: Any) -> list[dict[str, Any]]:
    async with runtime.services.sessions() as session:
        rows = await session.execute(
            select(EVENTS.c.payload, EVENTS.c.resource_id).where(
                EVENTS.c.action == "governance.refused"
            )
        )
        return [{"payload": r[0], "resource": r[1]} for r in rows]


async def test_review_pages_neither_skip_nor_repeat_while_rows_arrive(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    first = await propose_pending(runtime, 7, "first")
    # Three rows share one timestamp: the id breaks the tie, so a page boundary between
    # them neither drops nor repeats one.
    async with runtime.services.sessions() as session:
        base = (
            await session.execute(select(Action.created_at).where(Action.id == first[3]))
        ).scalar_one()
    await set_created(runtime, first[2:5], base)
    expected = await queue_order(runtime)
    assert len(expected) == 7
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)

    seen: list[str] = []
    response = await client.get(REVIEW, params={"limit": 3})
    assert response.status_code == 200, response.text
    pages = 0
    while True:
        pages += 1
        seen += [item["id"] for item in response.json()]
        cursor = response.headers.get(NEXT_CURSOR_HEADER)
        if pages == 1:
            # Between pages: newer rows (before the cursor: not in later pages) and one
            # backdated row (after the cursor: must appear in a later page).
            await propose_pending(runtime, 2, "newer")
            backdated = await propose_pending(runtime, 1, "backdated")
            await set_created(runtime, backdated, base - timedelta(days=1))
            expected.append(backdated[0])
        if cursor is None:
            break
        response = await client.get(REVIEW, params={"limit": 3, "cursor": cursor})
        assert response.status_code == 200, response.text
    assert seen == expected  # every row once, in order
    assert len(set(seen)) == len(seen)
    # A page shorter than the limit has no next cursor; here 8 rows in pages of 3.
    assert pages == 3


async def test_actions_list_pages_with_the_same_cursor_rules(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    await propose_pending(runtime, 5, "listed")
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    everything = (await client.get(ACTIONS, params={"limit": 500})).json()
    collected: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(ACTIONS, params=params)
        assert response.status_code == 200, response.text
        collected += [item["id"] for item in response.json()]
        cursor = response.headers.get(NEXT_CURSOR_HEADER)
        if cursor is None:
            break
    assert collected == [item["id"] for item in everything]
    # The same cursor on another query (a filter added) is refused.
    page = await client.get(ACTIONS, params={"limit": 2})
    cursor = page.headers[NEXT_CURSOR_HEADER]
    other = await client.get(ACTIONS, params={"limit": 2, "cursor": cursor, "kind": "email.*"})
    assert other.status_code == 400 and other.json()["error"] == "InvalidCursorError"


async def test_tampered_forged_or_replayed_cursors_are_a_typed_audited_400(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    await propose_pending(runtime, 4, "probe")
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    page = await client.get(REVIEW, params={"limit": 2})
    cursor = page.headers[NEXT_CURSOR_HEADER]
    body, _, mac = cursor.partition(".")
    flipped = ("A" if body[0] != "A" else "B") + body[1:]
    bad_cursors = [
        f"{flipped}.{mac}",  # position altered
        f"{body}.{'A' * len(mac)}",  # signature replaced
        "not-a-cursor",
        "%%%.!!!",
        "e30.AAAA",  # '{}' with a short signature
        f"{body}.",
    ]
    for bad in bad_cursors:
        response = await client.get(REVIEW, params={"limit": 2, "cursor": bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"] == "InvalidCursorError"
        assert response.json()["detail"]
    # A cursor of one filter set used with another, and one of another caller.
    other_query = await client.get(
        REVIEW, params={"limit": 2, "cursor": cursor, "kind": "email.send"}
    )
    assert other_query.status_code == 400
    as_role(client, Role.DELEGATE, user_id="jordan@northwind.example", on_behalf_of=EXECUTIVE)
    other_caller = await client.get(REVIEW, params={"limit": 2, "cursor": cursor})
    assert other_caller.status_code == 400
    assert other_caller.json()["error"] == "InvalidCursorError"
    # Too long is a malformed parameter (422), never read.
    too_long = await client.get(REVIEW, params={"cursor": "A" * 600})
    assert too_long.status_code == 422
    # Cursor and offset together: a typed 400 too.
    both = await client.get(REVIEW, params={"cursor": cursor, "offset": 2})
    assert both.status_code == 400 and both.json()["error"] == "CursorWithOffsetError"

    audited = await refusals(runtime)
    assert len(audited) == len(bad_cursors) + 2
    assert all("InvalidCursorError" in row["payload"] for row in audited)
    assert all(row["resource"] == f"GET {REVIEW}" for row in audited)
    # The cursor itself (a signed token) is not copied into the audit rows.
    assert all(cursor not in row["payload"] for row in audited)


async def test_a_cursor_survives_the_rows_it_names_leaving_the_queue(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    """The cursor names a position, not a row: approving the page's last action (it
    leaves the queue) does not break the next page."""
    ids = await propose_pending(runtime, 5, "moving")
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    first = await client.get(REVIEW, params={"limit": 2})
    cursor = first.headers[NEXT_CURSOR_HEADER]
    last = first.json()[-1]["id"]
    async with runtime.services.sessions() as session, session.begin():
        await session.execute(update(Action).where(Action.id == last).values(state="cancelled"))
    rest = await client.get(REVIEW, params={"limit": 10, "cursor": cursor})
    assert rest.status_code == 200
    assert NEXT_CURSOR_HEADER not in rest.headers
    got = [item["id"] for item in first.json()] + [item["id"] for item in rest.json()]
    assert sorted(got) == sorted(ids)


async def test_reads_never_wait_for_the_audit_chains_write_lock(
    client: httpx.AsyncClient, runtime: Any, as_role: Any
) -> None:
    """While another transaction holds the tenant's chain head (on SQLite: the database's
    write lock), the review queue and the actions list answer at once."""
    import asyncio

    from governance.audit_chain import lock_head

    await propose_pending(runtime, 3, "locked")
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    async with runtime.services.sessions() as writer:
        await lock_head(writer, TENANT)
        try:
            for path in (REVIEW, ACTIONS, f"{REVIEW}?limit=1"):
                # A read that wrote would wait for the lock (busy_timeout: 10 s).
                response = await asyncio.wait_for(client.get(path), timeout=5)
                assert response.status_code == 200, response.text
        finally:
            await writer.rollback()


async def test_the_inline_sqlite_read_answers_the_bodies_the_pooled_read_answered(
    client: httpx.AsyncClient, runtime: Any, as_role: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listings read on the event loop's own SQLite connection (assistant.core.reads)
    answer byte for byte what they answered through aiosqlite's pooled connection: every
    page of a cursor walk, its next cursor, with filters, on the review queue and the
    actions list."""
    from assistant.api import review as review_api
    from assistant.core import reads

    ids = await propose_pending(runtime, 7, "same")
    async with runtime.services.sessions() as session:
        base = (
            await session.execute(select(Action.created_at).where(Action.id == ids[3]))
        ).scalar_one()
    await set_created(runtime, ids[2:5], base)  # ties broken by the id across pages
    await set_created(runtime, ids[5:], base - timedelta(days=2))
    async with runtime.services.sessions() as session, session.begin():
        await session.execute(update(Action).where(Action.id == ids[6]).values(state="cancelled"))
    # age_seconds is counted from now: one now for both reads.
    monkeypatch.setattr(review_api, "utcnow", lambda: base + timedelta(hours=1))
    as_role(client, Role.EXECUTIVE, user_id=EXECUTIVE)
    queries: list[tuple[str, dict[str, Any]]] = [
        (REVIEW, {"limit": 3}),
        (REVIEW, {"limit": 2, "kind": "email.*", "owner": EXECUTIVE}),
        (REVIEW, {"limit": 2, "older_than_seconds": 86400}),
        (REVIEW, {"limit": 2, "offset": 3}),
        (ACTIONS, {"limit": 2}),
        (ACTIONS, {"limit": 3, "state": ["pending_review", "cancelled"], "kind": "email.send"}),
        (ACTIONS, {"limit": 500, "owner": EXECUTIVE}),
    ]

    async def walk(path: str, params: dict[str, Any]) -> list[tuple[int, str | None, bytes]]:
        pages = []
        cursor = None
        while True:
            response = await client.get(
                path, params={**params, "cursor": cursor} if cursor else params
            )
            cursor = response.headers.get(NEXT_CURSOR_HEADER)
            pages.append((response.status_code, cursor, response.content))
            if cursor is None or "offset" in params:  # offset pages take no cursor
                return pages

    inline_reads: list[int] = []
    fetch = reads._InlineSQLiteReader.fetch

    def counted(self: Any, sql: str, values: Any) -> Any:
        rows = fetch(self, sql, values)
        inline_reads.append(0 if rows is None else 1)
        return rows

    monkeypatch.setattr(reads._InlineSQLiteReader, "fetch", counted)
    inline = [await walk(path, params) for path, params in queries]
    assert inline_reads and all(inline_reads)  # every listing was read inline
    monkeypatch.setattr(reads, "_inline_reader", lambda engine: None)
    pooled = [await walk(path, params) for path, params in queries]
    assert inline == pooled
    assert all(status == 200 for pages in inline for status, _, _ in pages)
    assert sum(len(pages) for pages in inline) > len(queries)  # cursors were followed
