"""Kill `assistant mail sync` (a real process) mid-way, restart it: every message once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from assistant.core.db import create_engine, create_session_factory, upgrade
from assistant.ingestion.models import TriageQueueItem
from tests.fixtures.dovecot import MailServer, mail_server  # noqa: F401

MESSAGES = 60


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, settings: Any) -> str:
    if request.param == "sqlite":
        return str(settings.database_url)
    return str(request.getfixturevalue("postgres_url"))


def _start(config: Path, db_url: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(ASSISTANT_CONFIG_FILE=str(config), ASSISTANT_DATABASE__URL=db_url)
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "assistant.cli",
            "mail",
            "sync",
            "--connector",
            name,
            "--page-size",
            "5",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_killed_sync_resumes_without_loss_or_duplicates(
    mail_server: MailServer,
    db_url: str,
    tmp_path: Path,
) -> None:
    tenant = "default"
    address = mail_server.add_user()
    for i in range(MESSAGES):
        await asyncio.to_thread(
            mail_server.deliver, address, f"kill {i:02d}", "x", "alice@partner.example"
        )
    name = f"work-mail-{address.split('@')[0]}"
    config = tmp_path / "assistant.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "connectors": [
                    {
                        "name": name,
                        "slug": "imap.email",
                        "tenant": tenant,
                        "config": mail_server.imap_config(address),
                    }
                ],
            }
        )
    )
    engine = create_engine(db_url)
    await upgrade(engine)
    sessions = create_session_factory(engine)

    async def rows() -> list[str]:
        async with sessions() as session:
            result = await session.execute(
                select(TriageQueueItem.message["subject"].as_string()).where(
                    TriageQueueItem.tenant_id == tenant, TriageQueueItem.connector == name
                )
            )
            return [str(r[0]) for r in result]

    try:
        kills = 0
        for threshold in (15,):  # more thresholds kill it more times
            process = _start(config, db_url, name, "--page-delay", "0.15")
            deadline = time.monotonic() + 60
            while len(await rows()) < threshold:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the sync made no progress"
                await asyncio.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            kills += 1
            assert len(await rows()) < MESSAGES
        final = _start(config, db_url, name)
        out, _ = await asyncio.to_thread(final.communicate, timeout=120)
        assert final.returncode == 0, out.decode()
        subjects = await rows()
        assert kills == 1
        assert sorted(subjects) == [f"kill {i:02d}" for i in range(MESSAGES)]
        async with sessions() as session:
            total = await session.scalar(
                select(func.count())
                .select_from(TriageQueueItem)
                .where(TriageQueueItem.connector == name)
            )
        assert total == MESSAGES
    finally:
        await engine.dispose()
