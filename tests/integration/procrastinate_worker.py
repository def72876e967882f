"""A procrastinate worker process for the kill -9 test: it runs one action's job and stalls
right after the effect, so that the test can SIGKILL it with the job in ``doing``.

Run as ``python -m tests.integration.procrastinate_worker DB_URL MARKER``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from assistant.core.db import create_engine, create_session_factory
from assistant.core.settings import GovernanceSettings
from governance.executor import Executor
from governance.runner import ProcrastinateRunner, procrastinate_conninfo
from tests.fixtures.governance import SandboxResolver
from tests.integration.governance_worker import StallingMailbox


async def main(url: str, marker: Path) -> None:
    sessions = create_session_factory(create_engine(url))
    resolver = SandboxResolver(sessions)
    resolver.email = StallingMailbox(resolver.email, marker)  # type: ignore[assignment]
    executor = Executor(
        sessions, resolver, GovernanceSettings(lease_seconds=30), worker_id="doomed-worker"
    )
    runner = ProcrastinateRunner(
        procrastinate_conninfo(url), executor, work=True, tick_cron="0 0 1 1 *", poll_interval=0.2
    )
    await runner.start()
    await runner.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
