"""`assistant triage run`: sync mailboxes into the ingestion queue, triage what is queued.

Mail comes through the ingestion queue (assistant.ingestion): the run first syncs each of
the tenant's email connectors from its stored cursor (new mail is queued once), then claims
queued items and triages each message that has no stored triage yet. The model is called
with no database transaction open; each result is stored (and audited) in its own short
transaction together with the queue item's completion. A message whose model call failed
(provider down, refused) goes back to the queue for the next run; after
:data:`MAX_ATTEMPTS` it is marked failed.

With ``drafting.enabled`` (the default), each stored ``respond`` result gets a reply draft
and each ``schedule`` result goes to the meeting flow (:mod:`assistant.drafting.flow`),
proposed as governed actions under the run's correlation id; nothing is sent here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import update

from assistant.core.ids import new_id
from assistant.core.settings import Settings
from assistant.llm.client import LLMClient
from assistant.llm.errors import LLMError
from assistant.llm.metering import DatabaseMeter, Meter
from assistant.triage.cascade import TriageCascade
from assistant.triage.llm_stage import LLMTriageClassifier
from assistant.triage.rules import RuleTriage, TriageContext
from assistant.triage.store import save_result, triaged_ids
from integrations.base import Capability, EmailMessage

log = structlog.stdlib.get_logger(__name__)

MAX_ATTEMPTS = 5
BATCH = 50


@dataclass
class TriageRunReport:
    synced: list[dict[str, Any]] = field(default_factory=list)
    claimed: int = 0
    triaged: int = 0
    already: int = 0
    deferred: int = 0  # older than --since: left in the queue
    failed: int = 0  # model call failed: back in the queue (or failed for good)
    needs_human: int = 0
    drafts: int = 0  # reply drafts proposed (governed email.draft.create)
    meetings: int = 0  # meeting requests with proposals (event + reply)
    proposals_failed: int = 0
    by_stage: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["by_stage"] = dict(self.by_stage)
        data["by_category"] = dict(self.by_category)
        return data


async def build_learned(services: Any, tenant_id: str) -> Any:
    """The tenant's learned stage, trained now on its reviewed examples; None when it is
    off, has too few examples, or its calibration found no threshold it can hold."""
    from assistant.triage.learned import LabelledExample, LearnedTriage, default_embedder
    from assistant.triage.models import Category
    from assistant.triage.store import training_examples

    settings = services.settings.triage_learning
    if not settings.enabled:
        return None
    async with services.sessions() as session:
        rows = await training_examples(session, tenant_id)
    if len(rows) < settings.min_examples:
        return None
    examples = [LabelledExample(text, Category(category)) for text, category in rows]
    stage = await asyncio.to_thread(
        LearnedTriage.train,
        examples,
        default_embedder(),
        target_precision=settings.target_precision,
        min_examples=settings.min_examples,
    )
    log.info(
        "triage.learned.trained",
        tenant=tenant_id,
        examples=len(examples),
        threshold=stage.calibration.threshold if stage else None,
    )
    return stage if stage is not None and stage.calibration.threshold is not None else None


def build_classifier(
    settings: Settings, meter: Meter, tenant_id: str
) -> LLMTriageClassifier | None:
    """The model stage for ``tenant_id``; None with provider ``none`` (rules only)."""
    client = LLMClient(settings.llm, meter)
    if not client.enabled:
        return None
    return LLMTriageClassifier(client, tenant_id=tenant_id)


async def run_triage(
    services: Any,
    *,
    tenant_id: str,
    context_for: Callable[[Any], TriageContext],
    since: datetime | None = None,
    sync: bool = True,
    limit: int | None = None,
    rules: RuleTriage | None = None,
    drafting: bool | None = None,
    actions: Any = None,
) -> TriageRunReport:
    """One pass over the tenant's mail. ``context_for(connector_instance)`` gives the triage
    context of each mailbox. ``drafting`` (default: the setting) proposes drafts and
    meetings after triage through ``actions`` (default: the deployment's ActionService)."""
    report = TriageRunReport()
    # One correlation id per run ties its ledger rows and audit events together.
    run_id = (
        structlog.contextvars.get_contextvars().get("correlation_id")
        or f"triage-run-{new_id()[:12]}"
    )
    with structlog.contextvars.bound_contextvars(correlation_id=run_id):
        step = None
        if services.settings.drafting.enabled if drafting is None else drafting:
            step = _drafting_step(services, tenant_id, run_id, actions)
        try:
            return await _run(
                services,
                report,
                tenant_id=tenant_id,
                context_for=context_for,
                since=since,
                sync=sync,
                limit=limit,
                rules=rules,
                step=step,
            )
        finally:
            if step is not None and step.llm is not None:
                await step.llm.aclose()


def _drafting_step(services: Any, tenant_id: str, run_id: str, actions: Any) -> Any:
    from assistant.drafting.flow import DraftingStep

    if actions is None:
        from assistant.governance_app import build_governance

        # Proposing only: the deployment's runner executes what the policy lets through.
        actions = build_governance(services, mode="off").actions
    llm = LLMClient(services.settings.llm, DatabaseMeter(services.sessions))
    settings = services.settings.drafting.model_copy(update={"enabled": True})
    return DraftingStep(actions, settings, llm, tenant_id=tenant_id, correlation_id=run_id)


async def _run(
    services: Any,
    report: TriageRunReport,
    *,
    tenant_id: str,
    context_for: Callable[[Any], TriageContext],
    since: datetime | None,
    sync: bool,
    limit: int | None,
    rules: RuleTriage | None,
    step: Any = None,
) -> TriageRunReport:
    from assistant.ingestion.models import QueueStatus, TriageQueueItem
    from assistant.ingestion.service import IngestionTarget, MailIngestor, claim, complete

    instances = [
        i
        for i in services.connectors.instances.values()
        if i.tenant_id == tenant_id
        and Capability.EMAIL in i.capabilities
        and i.connector is not None
    ]
    if sync:
        ingestor = MailIngestor(services.sessions)
        for instance in instances:
            for sync_report in await ingestor.sync_target(
                IngestionTarget(
                    tenant_id=tenant_id, name=instance.name, connector=instance.connector
                )
            ):
                report.synced.append(sync_report.as_dict())
    by_name = {i.name: i for i in instances}
    contexts = {i.name: context_for(i) for i in instances}
    classifier = build_classifier(services.settings, DatabaseMeter(services.sessions), tenant_id)
    learned = await build_learned(services, tenant_id)
    cascade = TriageCascade(rules, classifier=classifier, learned=learned)
    slots = asyncio.Semaphore(services.settings.llm.concurrency)
    # Each mailbox's proposals belong to its executive, and use her calendar.
    executives = {i.name: i.primary_executive() for i in instances}
    calendars = (
        {i.name: _calendar(services, tenant_id, executives[i.name]) for i in instances}
        if step is not None
        else {}
    )
    held_back: list[tuple[int, bool]] = []  # (queue id, counts as an attempt)

    async def handle(item: TriageQueueItem) -> None:
        instance = by_name.get(item.connector)
        if instance is None:
            held_back.append((item.id, False))  # its connector is not configured here
            return
        message = EmailMessage.model_validate(item.message)
        if since is not None and (message.date is None or message.date < since):
            report.deferred += 1
            held_back.append((item.id, False))
            return
        mailbox = instance.connector.mailbox
        async with services.sessions() as session:
            done = await triaged_ids(session, tenant_id, mailbox, [message.id])
        if done:
            report.already += 1
            async with services.sessions() as session, session.begin():
                await complete(session, item.id)
            return
        try:
            async with slots:
                result = await cascade.triage(message, contexts[instance.name])
        except LLMError as exc:
            report.failed += 1
            log.warning("triage.run.failed", message_id=message.id, error=type(exc).__name__)
            if item.attempts >= MAX_ATTEMPTS:
                async with services.sessions() as session, session.begin():
                    await complete(session, item.id, error=type(exc).__name__)
            else:
                held_back.append((item.id, True))
            return
        async with services.sessions() as session, session.begin():
            await save_result(
                session,
                tenant_id=tenant_id,
                mailbox=mailbox,
                result=result,
                sender=message.sender.address if message.sender else None,
                message_date=message.date,
            )
            await complete(session, item.id)
        report.triaged += 1
        report.needs_human += result.needs_human
        report.by_stage[result.provenance.stage] += 1
        report.by_category[result.category.value if result.category else "undecided"] += 1
        if step is not None:
            await _propose(
                step,
                report,
                services,
                slots,
                message,
                result,
                mailbox=mailbox,
                connector=instance.name,
                calendar=calendars.get(instance.name),
                executive=executives[instance.name],
            )

    try:
        while limit is None or report.claimed < limit:
            batch = BATCH if limit is None else min(BATCH, limit - report.claimed)
            async with services.sessions() as session, session.begin():
                items = await claim(session, tenant_id, limit=batch, worker="triage-run")
            if not items:
                break
            report.claimed += len(items)
            await asyncio.gather(*(handle(item) for item in items))
    finally:
        if classifier is not None:
            await classifier.client.aclose()
        # Items kept back stay claimed during the run (so the loop does not claim them
        # again) and return to the queue at the end.
        if held_back:
            async with services.sessions() as session, session.begin():
                for queue_id, attempt in held_back:
                    values: dict[str, Any] = {
                        "status": QueueStatus.PENDING.value,
                        "claimed_at": None,
                        "claimed_by": None,
                    }
                    if not attempt:
                        values["attempts"] = TriageQueueItem.attempts - 1
                    await session.execute(
                        update(TriageQueueItem)
                        .where(TriageQueueItem.id == queue_id)
                        .values(**values)
                    )
    log.info(
        "triage.run.done",
        tenant=tenant_id,
        **{k: v for k, v in report.as_dict().items() if k != "synced"},
    )
    return report


def _calendar(services: Any, tenant_id: str, executive: str | None) -> Any:
    from integrations.errors import UnknownConnectorError

    try:
        return services.connectors.get(tenant_id, Capability.CALENDAR, executive=executive)
    except UnknownConnectorError:
        return None


async def _propose(
    step: Any,
    report: TriageRunReport,
    services: Any,
    slots: asyncio.Semaphore,
    message: EmailMessage,
    result: Any,
    *,
    mailbox: str,
    connector: str,
    calendar: Any,
    executive: str | None,
) -> None:
    """The post-triage step for one stored result; its failure never undoes the triage."""
    try:
        async with slots:
            outcome = await step.handle(
                services.sessions,
                message,
                result,
                mailbox=mailbox,
                connector=connector,
                calendar=calendar,
                executive=executive,
            )
    except Exception as exc:  # one message's proposal must not stop the run
        report.proposals_failed += 1
        log.warning("triage.run.proposal_failed", message_id=message.id, error=type(exc).__name__)
        return
    if outcome.kind == "draft":
        report.drafts += 1
    elif outcome.kind == "meeting" and outcome.actions:
        report.meetings += 1
