"""Benchmark: sync 10,000 messages from a local Dovecot over IMAP (TLS).

Prints messages per second of a full sync (connector alone, and end to end into the
triage queue on SQLite), and the IMAP commands and time of a second, incremental sync
against the full one.

    .venv/bin/python -m bench.email_sync [--messages 10000] [--page-size 500]

Needs Dovecot (dovecot-imapd, dovecot-lmtpd); the test fixture starts a throwaway one.
The mailbox is filled by writing maildir files directly (delivering 10,000 messages over
SMTP would benchmark the SMTP server instead).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any


def _fill_maildir(server: Any, address: str, count: int) -> float:
    """Write ``count`` messages into the user's INBOX maildir; returns seconds taken."""
    server.deliver(address, "first", "creates the maildir", "alice@partner.example")
    inbox = server.root / "mail" / address / "new"
    started = time.perf_counter()
    stat = inbox.stat()
    hostname = "bench"
    for i in range(count - 1):
        message = MimeMessage()
        message["From"] = f"Sender {i % 97} <sender{i % 97}@partner.example>"
        message["To"] = address
        message["Subject"] = f"Benchmark message {i}"
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(idstring=str(i), domain="partner.example")
        message.set_content(f"Hello, this is message {i}.\n\n" + "Some text. " * 40)
        name = inbox / f"{int(time.time())}.M{i}P{os.getpid()}.{hostname}"
        name.write_bytes(message.as_bytes())
        os.chown(name, stat.st_uid, stat.st_gid)
    return time.perf_counter() - started


async def _run(count: int, page_size: int) -> None:
    from assistant.core.db import create_engine, create_session_factory, upgrade
    from assistant.ingestion.service import MailIngestor
    from integrations.base import ConnectorContext
    from integrations.imap import ImapEmailConfig, build_connector
    from tests.fixtures.dovecot import get_mail_server

    server = get_mail_server()
    address = server.add_user()
    seeded_s = await asyncio.to_thread(_fill_maildir, server, address, count)

    def connector() -> Any:
        config = ImapEmailConfig.model_validate(server.imap_config(address, timeout_s=120))
        return build_connector(config, ConnectorContext(tenant_id="bench", instance_name="bench"))

    # 1. Full sync through the connector alone.
    imap = connector()
    await imap.list_folders()  # login and folder roles, outside the timing
    first_cmds = imap.command_count()
    started = time.perf_counter()
    cursor, total, pages = None, 0, 0
    while True:
        batch = await imap.sync("INBOX", cursor, page_size=page_size)
        total += len(batch.messages)
        pages += 1
        cursor = batch.cursor
        if not batch.more:
            break
    full_s = time.perf_counter() - started
    full_cmds = imap.command_count() - first_cmds

    # 2. A second sync with nothing new, then one with 10 new messages.
    before = imap.command_count()
    started = time.perf_counter()
    quiet = await imap.sync("INBOX", cursor, page_size=page_size)
    quiet_s = time.perf_counter() - started
    quiet_cmds = imap.command_count() - before
    for i in range(10):
        await asyncio.to_thread(server.deliver, address, f"late {i}", "x", "bob@partner.example")
    before = imap.command_count()
    started = time.perf_counter()
    late = await imap.sync("INBOX", quiet.cursor, page_size=page_size)
    late_s = time.perf_counter() - started
    late_cmds = imap.command_count() - before
    await imap.aclose()

    # 3. End to end: the same mailbox into the triage queue (SQLite, one commit per page).
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    await upgrade(engine)
    ingestor = MailIngestor(create_session_factory(engine), page_size=page_size, audit=True)
    imap = connector()
    started = time.perf_counter()
    report = await ingestor.sync_folder("bench", "bench", imap, "INBOX")
    ingest_s = time.perf_counter() - started
    await imap.aclose()
    await engine.dispose()
    shutil.rmtree(workdir, ignore_errors=True)

    print(f"mailbox: {count} messages written in {seeded_s:.1f} s; page size {page_size}")
    print(
        f"full sync (connector):       {total} messages, {pages} pages, "
        f"{full_cmds} IMAP commands, {full_s:.2f} s, {total / full_s:,.0f} msg/s"
    )
    print(
        f"full sync (into the queue):  {report.queued} queued, {ingest_s:.2f} s, "
        f"{report.queued / ingest_s:,.0f} msg/s"
    )
    print(
        f"incremental, nothing new:    {len(quiet.messages)} messages, {quiet_cmds} IMAP "
        f"commands, {quiet_s * 1000:.1f} ms"
    )
    print(
        f"incremental, 10 new:         {len(late.messages)} messages, {late_cmds} IMAP "
        f"commands, {late_s * 1000:.1f} ms"
    )
    print(
        f"commands, incremental/full:  {quiet_cmds}/{full_cmds} = "
        f"{quiet_cmds / max(full_cmds, 1):.4f} (nothing new); {late_cmds}/{full_cmds} = "
        f"{late_cmds / max(full_cmds, 1):.4f} (10 new)"
    )
    print(
        f"time, incremental/full:      {quiet_s / full_s:.5f} (nothing new); "
        f"{late_s / full_s:.5f} (10 new)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(_run(args.messages, args.page_size))


if __name__ == "__main__":
    main()
