"""`assistant demo`: seed the sandbox, run the inbox through the pipeline, print the result:
the triage table, the reply drafts and meetings proposed (governed actions, nothing sent),
and the review queue they form under the policy."""

from __future__ import annotations

from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from assistant.core.clock import utcnow
from assistant.core.db import upgrade
from assistant.core.ids import new_id
from assistant.core.settings import Settings
from assistant.services import Services
from assistant.triage import TriageCascade, TriageContext, TriageResult
from integrations.base import Capability, EmailConnector, EmailMessage, FolderRole
from integrations.sandbox.seed import (
    default_seed_dir,
    load_calendar_seed,
    load_mailbox_seed,
    seed_labels,
    seed_sandbox,
)

_CATEGORY_STYLE = {
    "respond": "bold green",
    "schedule": "bold cyan",
    "notify": "yellow",
    "ignore": "dim",
}
_PRIORITY_STYLE = {"urgent": "bold red", "high": "red", "normal": "", "low": "dim"}


async def inbox(connector: EmailConnector) -> list[EmailMessage]:
    """Every message of the inbox, through the connector's own incremental sync."""
    folder = next(f.id for f in await connector.list_folders() if f.role is FolderRole.INBOX)
    messages: list[EmailMessage] = []
    cursor: str | None = None
    while True:
        batch = await connector.sync(folder, cursor)
        messages.extend(batch.messages)
        cursor = batch.cursor
        if not batch.more:
            return messages


def sandbox_context(settings: Settings) -> TriageContext:
    """The triage context of the sandbox's executive, from its seed files."""
    seed_dir = settings.sandbox.seed_dir or default_seed_dir()
    mailbox = load_mailbox_seed(seed_dir)
    people = load_calendar_seed(seed_dir).people
    return TriageContext(
        executive=mailbox.executive.address,
        internal_domains=mailbox.internal_domains,
        vips=mailbox.vips,
        timezone=mailbox.executive.timezone,
        # Only colleagues: an external sender using a colleague's name is a phishing signal.
        people={
            p.address.lower(): p.name
            for p in people
            if p.address.lower().rsplit("@", 1)[1] in set(mailbox.internal_domains)
        },
    )


def _flags(result: TriageResult) -> str:
    flags = result.flags
    names = [
        name
        for name, on in (
            ("phishing", flags.phishing),
            ("injection", flags.prompt_injection),
            ("deadline", flags.has_deadline),
            ("external", flags.external),
        )
        if on
    ]
    return ", ".join(names)


async def run_demo(settings: Settings, console: Console, *, reset: bool = True) -> None:
    services = await Services.build(settings)
    started = utcnow()  # the gate at the end measures this run only
    try:
        await upgrade(services.engine)
        tenant = settings.sandbox.tenant
        report = await seed_sandbox(
            services.sessions, tenant_id=tenant, seed_dir=settings.sandbox.seed_dir, reset=reset
        )
        connector: EmailConnector = services.connectors.get(tenant, Capability.EMAIL)
        context = sandbox_context(settings)
        cascade = TriageCascade()
        messages = sorted(await inbox(connector), key=lambda m: (m.date is None, m.date))
        results = [await cascade.triage(m, context) for m in messages]
        labels = seed_labels(settings.sandbox.seed_dir)
        zone = ZoneInfo(context.timezone)

        table = Table(
            title=f"Inbox of {context.executive} (week of {report.week_of})",
            show_lines=False,
            expand=True,
        )
        table.add_column("received", no_wrap=True)
        table.add_column("from", max_width=28)
        table.add_column("subject", ratio=2)
        for column in ("category", "priority", "flags", "decided by"):
            table.add_column(column)
        table.add_column("reason", ratio=2)
        for message, result in zip(messages, results, strict=True):
            category = result.category.value if result.category else "-> human"
            when = message.date.astimezone(zone).strftime("%a %H:%M") if message.date else ""
            decider = result.provenance.rule_id or result.provenance.stage
            # Text, not markup: subjects and senders are untrusted and may contain "[...]".
            table.add_row(
                when,
                Text(message.sender.address if message.sender else ""),
                Text(message.subject),
                Text(category, style=_CATEGORY_STYLE.get(category, "magenta")),
                Text(result.priority.value, style=_PRIORITY_STYLE[result.priority.value]),
                _flags(result),
                Text(decider or ""),
                Text(result.reason),
            )
        console.print(table)

        decided = [r for r in results if r.category is not None]
        by_category = Counter(r.category.value for r in decided if r.category)
        agree = sum(
            1
            for m, r in zip(messages, results, strict=True)
            if r.category and labels.get(m.message_id or "", {}).get("category") == r.category.value
        )
        console.print(
            f"{len(messages)} messages: {len(decided)} decided by rules "
            f"({len(decided) / max(len(messages), 1):.0%}), "
            f"{len(messages) - len(decided)} marked for a human (LLM provider: "
            f"{settings.llm.provider.value}). By category: "
            + ", ".join(f"{k} {v}" for k, v in sorted(by_category.items()))
        )
        if decided:
            console.print(
                f"Agreement with the sandbox's own labels on decided mail: "
                f"{agree}/{len(decided)} ({agree / len(decided):.0%})."
            )
        if settings.drafting.enabled:
            await _proposals(services, console, connector, messages, results, labels=labels)
        # The decision gate over this run, measured from what it recorded.
        from assistant.quality.demo import print_gate, store_triage

        await store_triage(
            services,
            str(getattr(connector, "mailbox", "")),
            list(zip(messages, results, strict=True)),
        )
        await print_gate(services, console, since=started)
    finally:
        await services.aclose()


async def _proposals(
    services: Services,
    console: Console,
    connector: EmailConnector,
    messages: list[EmailMessage],
    results: list[TriageResult],
    *,
    labels: dict[str, dict[str, Any]],
) -> None:
    """Drafts and meetings for the triaged inbox, proposed through governance; then the
    proposals and the review queue. Mail the pipeline left to a person is decided here as
    that person would (the demo plays them with the sandbox's own labels, shown as
    decided by ``human``)."""
    from assistant.drafting.flow import DraftingStep
    from assistant.governance_app import build_governance
    from assistant.llm.client import LLMClient
    from assistant.llm.metering import DatabaseMeter
    from assistant.triage.models import Category, Priority, Provenance
    from governance.models import Action
    from integrations.errors import UnknownConnectorError

    settings = services.settings
    tenant = settings.sandbox.tenant
    mailbox = str(getattr(connector, "mailbox", ""))
    instance = next(
        (
            i
            for i in services.connectors.instances.values()
            if i.tenant_id == tenant and i.connector is connector
        ),
        None,
    )
    name = instance.name if instance else None
    executive = instance.primary_executive() if instance else None
    try:
        calendar: Any = services.connectors.get(tenant, Capability.CALENDAR, executive=executive)
    except UnknownConnectorError:
        calendar = None
    correlation = f"demo-{new_id()[:12]}"
    llm = LLMClient(settings.llm, DatabaseMeter(services.sessions))
    step = DraftingStep(
        build_governance(services, mode="off").actions,
        settings.drafting,
        llm,
        tenant_id=tenant,
        correlation_id=correlation,
    )
    proposed: list[tuple[EmailMessage, Action]] = []
    by_person = 0
    try:
        for message, result in zip(messages, results, strict=True):
            label = labels.get(message.message_id or "", {})
            if result.category is None and label.get("category"):
                by_person += 1
                result = result.model_copy(
                    update={
                        "category": Category(label["category"]),
                        "priority": Priority(label.get("priority", "normal")),
                        "provenance": Provenance(stage="human"),
                        "needs_human": False,
                        "reason": "decided by a person (the demo uses the sandbox's label)",
                    }
                )
            outcome = await step.handle(
                services.sessions,
                message,
                result,
                mailbox=mailbox,
                connector=name,
                calendar=calendar,
                executive=executive,
            )
            proposed += [(message, action) for action in outcome.actions]
    finally:
        await llm.aclose()

    drafts = Table(
        title="Proposed reply drafts (governed email.draft.create; nothing sent)", expand=True
    )
    drafts.add_column("to", max_width=34)
    drafts.add_column("subject", ratio=1)
    drafts.add_column("first lines", ratio=2)
    for message, action in proposed:
        if action.kind != "email.draft.create":
            continue
        args = action.arguments
        to = ", ".join(str(a.get("address", "")) for a in args.get("to", []))
        subject = args.get("subject") or (
            message.subject
            if message.subject.lower().startswith("re:")
            else f"Re: {message.subject}"
        )
        lines = [line for line in str(args.get("body_text", "")).splitlines() if line.strip()]
        drafts.add_row(Text(to), Text(subject), Text("\n".join(lines[:3])))
    console.print(drafts)

    queue = Table(title="Review queue (proposals under the policy)", expand=True)
    for column in ("action", "kind", "state", "decision", "rule", "about"):
        queue.add_column(column)
    for message, action in proposed:
        queue.add_row(
            action.id[:8],
            action.kind,
            action.state,
            action.decision or "",
            Text(action.policy_rule_id or ""),
            Text(message.subject),
        )
    console.print(queue)
    pending = sum(1 for _, a in proposed if a.state == "pending_review")
    console.print(
        f"The demo decided {by_person} message(s) left for a person as that person "
        "would (sandbox labels); drafts and meetings follow from the categories."
    )
    console.print(
        f"{len(proposed)} action(s) proposed under correlation id {correlation}: "
        f"{pending} pending review, none executed (LLM provider: "
        f"{settings.llm.provider.value})."
    )
