"""Wires governance into the application: policy, executor, services and the runner.

Governance itself never imports the app; this module hands it the app's sessions,
settings and connector manager (as the executor's resolver).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated, Literal

import structlog
from fastapi import Depends, Request

from assistant.core.db import is_sqlite
from assistant.core.settings import GovernanceSettings
from assistant.services import Services
from governance.actions import registry
from governance.checkpoints import run_due_checkpoints
from governance.compensation import CompensationService
from governance.executor import Executor
from governance.owners import OwnerRouter
from governance.policy import PolicyStore
from governance.proposals import ProposalCommitter
from governance.review import ReviewService
from governance.runner import (
    BackgroundRunner,
    InProcessRunner,
    NullRunner,
    ProcrastinateRunner,
    procrastinate_conninfo,
)
from governance.service import ActionService

log = structlog.stdlib.get_logger(__name__)

RunnerMode = Literal["inprocess", "procrastinate", "off"]


@dataclass
class GovernanceRuntime:
    services: Services
    settings: GovernanceSettings
    policy: PolicyStore
    executor: Executor
    actions: ActionService
    review: ReviewService
    compensation: CompensationService
    runner: BackgroundRunner
    #: The API's proposals, stored by group commit (governance.proposals).
    proposals: ProposalCommitter
    started: bool = False

    async def expire_reviews(self) -> int:
        async with self.services.sessions() as session, session.begin():
            return await self.review.expire_due(session)

    async def start(self) -> None:
        await self.runner.start()
        self.started = True

    async def stop(self) -> None:
        if self.started:
            await self.runner.stop()
            self.started = False


def runner_mode(services: Services) -> RunnerMode:
    mode = services.settings.governance.runner
    if mode == "auto":
        return "inprocess" if is_sqlite(services.settings.database_url) else "procrastinate"
    return mode


def build_governance(
    services: Services,
    *,
    mode: RunnerMode | None = None,
    work: bool = False,
    worker_id: str | None = None,
    concurrency: int | None = None,
) -> GovernanceRuntime:
    """Build (not start) governance for a process. ``work``: this process executes actions
    (without it, a procrastinate runner only defers jobs for the workers)."""
    settings = services.settings.governance
    policy = PolicyStore(settings.policy_file)
    # Failed actions and compensations go to their owner (email or webhook), audited.
    owners = OwnerRouter(services.sessions, services.settings, services.connectors)
    executor = Executor(
        services.sessions, services.connectors, settings, worker_id=worker_id, owners=owners
    )
    actions = ActionService(policy, executor, settings, resolver=services.connectors)
    review = ReviewService(actions)
    compensation = CompensationService(services.sessions, actions)
    runtime = GovernanceRuntime(
        services=services,
        settings=settings,
        policy=policy,
        executor=executor,
        actions=actions,
        review=review,
        compensation=compensation,
        runner=NullRunner(),
        proposals=ProposalCommitter(actions, max_batch=settings.propose_batch_max),
    )
    mode = mode or runner_mode(services)
    concurrency = concurrency or settings.worker_concurrency

    async def periodic() -> int:
        # One periodic hook for both runners: expire stale reviews, then sign the
        # time-based audit checkpoints that are due (count-based ones happen on append).
        expired = await runtime.expire_reviews()
        await run_due_checkpoints(services.sessions)
        return expired

    runner: BackgroundRunner
    if mode == "inprocess":
        runner = InProcessRunner(
            executor,
            expire=periodic,
            poll_interval=settings.poll_interval_seconds,
            expiry_interval=settings.expiry_interval_seconds,
            concurrency=concurrency,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
    elif mode == "procrastinate":
        runner = ProcrastinateRunner(
            procrastinate_conninfo(services.settings.database_url),
            executor,
            expire=periodic,
            work=work,
            concurrency=concurrency,
            poll_interval=settings.poll_interval_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
    else:
        runner = NullRunner()
    runtime.runner = runner
    executor.notify = runner.notify
    return runtime


async def start_governance(services: Services) -> GovernanceRuntime:
    """For the app's lifespan: load the policy (fail fast), start the runner.

    With ``governance.embedded_worker`` (the default) the service executes actions itself,
    on PostgreSQL too; otherwise it only schedules them for ``assistant worker`` processes."""
    embedded = services.settings.governance.embedded_worker
    mode = runner_mode(services)
    if mode == "inprocess" and not embedded:
        mode = "off"
    runtime = build_governance(services, mode=mode, work=embedded)
    policy = runtime.policy.current()
    unknown = [
        rule
        for rule in policy.document.rules
        for pattern in rule.when.kinds
        if not any(fnmatchcase(name, pattern) for name in registry.names())
    ]
    if unknown:
        log.warning("governance.policy_unknown_kinds", rules=sorted({r.id for r in unknown}))
    log.info(
        "governance.policy_loaded",
        version=policy.version,
        source=policy.source,
        rules=len(policy.document.rules),
    )
    await _version_policy_at_start(services)
    await runtime.start()
    return runtime


async def _version_policy_at_start(services: Services) -> None:
    """Change control: a policy file edited on disk becomes a version at the next start
    (``assistant config record policy --reason`` records who and why beforehand)."""
    from assistant.change_control import snapshot_policy
    from assistant.core.principal import system_principal

    settings = services.settings
    actor = system_principal(settings.auth.default_tenant, "startup")
    try:
        async with services.sessions() as session, session.begin():
            version = await snapshot_policy(
                session, actor, settings, "policy file as loaded at start"
            )
    except Exception as exc:  # never block a start on the history (e.g. not migrated yet)
        log.warning("governance.policy_version_failed", error=type(exc).__name__)
        return
    log.info("governance.policy_versioned", number=version.number, hash=version.content_hash)


async def get_governance(request: Request) -> GovernanceRuntime:
    """The app's governance runtime (built on first use when the lifespan did not run).

    A coroutine, so that FastAPI calls it inline instead of in a worker thread."""
    runtime: GovernanceRuntime | None = getattr(request.app.state, "governance", None)
    if runtime is None:
        runtime = build_governance(request.app.state.services)
        request.app.state.governance = runtime
    return runtime


GovernanceDep = Annotated[GovernanceRuntime, Depends(get_governance)]
