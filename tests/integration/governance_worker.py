"""A worker process for the crash test: it executes one action and stalls after the effect.

Run as ``python -m tests.integration.governance_worker DB_URL MARKER``. The mailbox is the
real sandbox one; after ``create_draft`` has written the draft (the external effect), the
process writes MARKER and sleeps, so that the test can SIGKILL it before the executor
records the outcome: the worst moment to die.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from assistant.core.db import create_engine, create_session_factory
from assistant.core.settings import GovernanceSettings
from governance.executor import Executor
from tests.fixtures.governance import SandboxResolver


class StallingMailbox:
    def __init__(self, inner: Any, marker: Path) -> None:
        self.inner = inner
        self.marker = marker
        self.mailbox = inner.mailbox

    async def create_draft(self, request: Any) -> Any:
        draft = await self.inner.create_draft(request)
        self.marker.write_text(draft.id)
        await asyncio.sleep(3600)
        return draft

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def main(url: str, marker: Path) -> None:
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    resolver = SandboxResolver(sessions)
    resolver.email = StallingMailbox(resolver.email, marker)  # type: ignore[assignment]
    executor = Executor(
        sessions, resolver, GovernanceSettings(lease_seconds=30), worker_id="doomed-worker"
    )
    await executor.run_due()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
