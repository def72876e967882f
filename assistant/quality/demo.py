"""The end of `assistant demo`: the sandbox run's triage stored as the pipeline stores it,
then the decision gate over that run, printed as a table."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table
from rich.text import Text

from assistant.core.clock import utcnow
from assistant.core.principal import system_principal
from assistant.quality.gate import Decision, GateReport, Verdict, gate_report
from assistant.quality.period import Period
from assistant.quality.render import fmt
from assistant.services import Services
from assistant.triage import TriageResult
from assistant.triage.store import save_result
from integrations.base import EmailMessage

_VERDICT_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.NO_DATA: "yellow"}
_DECISION_STYLE = {
    Decision.GO: "bold green",
    Decision.NO_GO: "bold red",
    Decision.REVISE: "bold yellow",
}


async def store_triage(
    services: Services, mailbox: str, run: list[tuple[EmailMessage, TriageResult]]
) -> None:
    """Keep the demo's triage like the pipeline does (audited), so the gate measures it."""
    tenant = services.settings.sandbox.tenant
    async with services.sessions() as session, session.begin():
        for message, result in run:
            await save_result(
                session,
                tenant_id=tenant,
                mailbox=mailbox,
                result=result,
                sender=message.sender.address if message.sender else None,
                message_date=message.date,
            )


async def print_gate(services: Services, console: Console, *, since: datetime) -> GateReport:
    """Evaluate the gate over the sandbox tenant's records since ``since`` and print it."""
    settings = services.settings
    now = utcnow()
    # The end is exclusive: a moment later, so that the last record of the run counts.
    run = Period(start=since, end=now + timedelta(seconds=1), label="this run")
    async with services.sessions() as session, session.begin():
        report = await gate_report(
            session, settings, system_principal(settings.sandbox.tenant, "demo"), run, now=now
        )
    table = Table(title="Decision gate over this sandbox run (* = hard)", expand=True)
    table.add_column("criterion", ratio=2)
    for column in ("measured", "threshold", "verdict"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail", ratio=3)
    for criterion in report.criteria:
        table.add_row(
            criterion.title + (" *" if criterion.hard else ""),
            fmt(criterion.value),
            f"{criterion.comparator} {fmt(criterion.threshold)}",
            Text(criterion.verdict.value, style=_VERDICT_STYLE[criterion.verdict]),
            Text(criterion.detail),
        )
    console.print(table)
    console.print(
        Text.assemble(
            "Gate answer: ",
            (report.decision.value, _DECISION_STYLE[report.decision]),
            " (NO-GO if a hard criterion fails, REVISE if a soft one fails or lacks data). "
            "A sandbox run is a rehearsal: name the owners, run `assistant drill rollback`, "
            "configure the costs in the `costs` settings and pilot on real mail; then "
            "`assistant gate report --format html -o gate.html`.",
        )
    )
    return report
