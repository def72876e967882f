"""`assistant triage ...` (run the pipeline, corrections) and `assistant eval triage`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

triage_app = typer.Typer(
    help="Email triage: run the pipeline, review corrections.", no_args_is_help=True
)
corrections_app = typer.Typer(
    help="Corrections people made to triage results.", no_args_is_help=True
)
eval_app = typer.Typer(help="Evaluations over labelled corpora.", no_args_is_help=True)
triage_app.add_typer(corrections_app, name="corrections")

console = Console()
err_console = Console(stderr=True)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use an ISO date or date-time, e.g. 2026-11-20") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _context_maker(settings: Any, rules_file: Path | None) -> Any:
    from assistant.demo import sandbox_context
    from assistant.triage import TriageContext, load_triage_rules

    config = load_triage_rules(rules_file) if rules_file else None

    def make(instance: Any) -> TriageContext:
        if instance.slug.startswith("sandbox."):
            base = sandbox_context(settings)
        else:
            base = TriageContext(executive=instance.connector.mailbox)
        if config is None:
            return base
        return TriageContext.from_config(
            config,
            executive=base.executive,
            timezone=base.timezone,
            internal_domains=base.internal_domains,
            people=base.people,
        ).model_copy(update={"vips": base.vips | frozenset(v.address for v in config.vips)})

    return make


@triage_app.command("run")
def run(
    since: Annotated[
        str | None,
        typer.Option(help="Only mail dated from this ISO date or time (older mail stays queued)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
    sync: Annotated[bool, typer.Option(help="Sync the mailboxes into the queue first.")] = True,
    limit: Annotated[int | None, typer.Option(min=1, help="Queue items to take at most.")] = None,
    rules: Annotated[Path | None, typer.Option(help="Admin triage rules YAML.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    drafts: Annotated[
        bool | None,
        typer.Option(
            "--drafts/--no-drafts",
            help="Propose reply drafts and meetings after triage "
            "(default: the drafting.enabled setting).",
        ),
    ] = None,
) -> None:
    """Sync the inbox through the ingestion queue and triage every message not yet triaged."""
    from assistant.cli_support import settings_or_exit
    from assistant.core.db import current_revision, head_revision
    from assistant.services import Services
    from assistant.triage.pipeline import run_triage

    settings = settings_or_exit()
    since_at = _since(since)
    tenant_id = tenant or settings.sandbox.tenant

    async def go() -> Any:
        services = await Services.build(settings)
        try:
            if await current_revision(services.engine) != head_revision(settings.database_url):
                err_console.print("the database is behind: run `assistant db upgrade`")
                raise typer.Exit(2)
            return await run_triage(
                services,
                tenant_id=tenant_id,
                context_for=_context_maker(settings, rules),
                since=since_at,
                sync=sync,
                limit=limit,
                drafting=drafts,
            )
        finally:
            await services.aclose()

    report = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(report.as_dict(), default=str, indent=2))
    else:
        for item in report.synced:
            console.print(
                f"synced {item['connector']}/{item['folder']}: fetched "
                f"{item['fetched']}, queued {item['queued']}"
                + (f" [red]error: {item['error']}[/red]" if item.get("error") else "")
            )
        console.print(
            f"claimed {report.claimed}: triaged {report.triaged} (by stage: "
            f"{dict(report.by_stage) or '-'}; categories: {dict(report.by_category) or '-'}), "
            f"for a person {report.needs_human}, already triaged {report.already}, "
            f"older than --since {report.deferred}, failed {report.failed}"
        )
        console.print(
            f"proposed (governed, nothing sent): {report.drafts} reply draft(s), "
            f"{report.meetings} meeting request(s); proposals failed "
            f"{report.proposals_failed}"
        )
    if report.failed:
        raise typer.Exit(1)


def _db(settings: Any) -> tuple[Any, Any]:
    from assistant.core.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    return engine, create_session_factory(engine)


@corrections_app.command("list")
def corrections_list(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
    status: Annotated[
        str | None, typer.Option(help="pending, accepted_rule, accepted_example or dismissed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Corrections with their metrics (what was corrected, by which stage)."""
    from assistant.cli_support import settings_or_exit
    from assistant.triage.store import (
        CorrectionOut,
        ReviewStatus,
        correction_metrics,
        list_corrections,
    )

    settings = settings_or_exit()
    tenant_id = tenant or settings.sandbox.tenant

    async def go() -> tuple[list[CorrectionOut], dict[str, Any]]:
        engine, sessions = _db(settings)
        try:
            async with sessions() as session:
                rows = await list_corrections(
                    session, tenant_id, status=ReviewStatus(status) if status else None, limit=1000
                )
                return [CorrectionOut.of(r) for r in rows], await correction_metrics(
                    session, tenant_id
                )
        finally:
            await engine.dispose()

    items, metrics = asyncio.run(go())
    if as_json:
        typer.echo(
            json.dumps(
                {"items": [i.model_dump(mode="json") for i in items], "metrics": metrics}, indent=2
            )
        )
        return
    for item in items:
        console.print(
            f"{item.id}  {item.created_at:%Y-%m-%d %H:%M}  {item.message_id}  "
            f"{item.original_category or 'undecided'} ({item.original_stage}) -> "
            f"{item.category}/{item.priority}  by {item.corrected_by}  "
            f"[{item.review_status}]"
        )
    console.print(f"metrics: {json.dumps(metrics)}")


@corrections_app.command("review")
def corrections_review(
    correction_id: Annotated[str, typer.Argument(help="Correction id.")],
    decision: Annotated[str, typer.Argument(help="accepted_rule, accepted_example or dismissed.")],
    reviewer: Annotated[str, typer.Option(help="Who reviews (recorded).")] = "cli",
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
) -> None:
    """Accept a correction as a rule candidate or few-shot candidate, or dismiss it."""
    from assistant.cli_support import settings_or_exit
    from assistant.core.principal import Principal, Role
    from assistant.triage.store import ReviewStatus, review_correction

    settings = settings_or_exit()
    principal = Principal(
        user_id=reviewer, tenant_id=tenant or settings.sandbox.tenant, roles=frozenset({Role.ADMIN})
    )

    async def go() -> None:
        engine, sessions = _db(settings)
        try:
            async with sessions() as session, session.begin():
                await review_correction(session, principal, correction_id, ReviewStatus(decision))
        finally:
            await engine.dispose()

    asyncio.run(go())
    console.print(f"correction {correction_id}: {decision}")


@corrections_app.command("export-rules")
def corrections_export_rules(
    tenant: Annotated[str | None, typer.Option(help="Tenant (default: the sandbox's).")] = None,
) -> None:
    """Print admin rules (triage rules YAML) from corrections accepted as rules; an admin
    reviews them and commits them to the rules file (versioned with the deployment)."""
    from assistant.cli_support import settings_or_exit
    from assistant.triage.store import ReviewStatus, list_corrections, rules_from_corrections

    settings = settings_or_exit()
    tenant_id = tenant or settings.sandbox.tenant

    async def go() -> dict[str, Any]:
        engine, sessions = _db(settings)
        try:
            async with sessions() as session:
                rows = await list_corrections(
                    session, tenant_id, status=ReviewStatus.ACCEPTED_RULE, limit=10_000
                )
                return rules_from_corrections(rows)
        finally:
            await engine.dispose()

    typer.echo(yaml.safe_dump(asyncio.run(go()), sort_keys=False))


@eval_app.command("triage")
def eval_triage(
    dataset: Annotated[Path, typer.Option(help="Labelled corpus (JSON lines).")],
    mapping: Annotated[
        Path | None, typer.Option(help="Label mapping YAML (default: the GAIA mapping).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="First N records only.")] = None,
    split: Annotated[
        str,
        typer.Option(
            help="all, dev or heldout: the fixed development / held-out halves of the corpus "
            "(by a hash of each record id). Tune on dev; report heldout."
        ),
    ] = "all",
    ledger: Annotated[
        bool,
        typer.Option(
            help="Also write model calls to the cost ledger and audit log (tenant 'eval'); "
            "needs a migrated database."
        ),
    ] = False,
    learned_from: Annotated[
        str | None,
        typer.Option(
            help="dev or heldout: train the learned stage on that half of the corpus (labels "
            "from the mapping, calibrated at triage_learning.target_precision) and run it "
            "between the rules and the model on --split, which must be the other half."
        ),
    ] = None,
) -> None:
    """Run the configured triage pipeline over a labelled corpus and print its scores."""
    from assistant.cli_support import settings_or_exit
    from assistant.core.errors import ConfigurationError
    from assistant.evaluation.corpus import load_mapping, load_records, select_split
    from assistant.evaluation.triage_eval import evaluate, render_text
    from assistant.llm.metering import DatabaseMeter, FanOutMeter, MemoryMeter, Meter
    from assistant.triage.cascade import TriageCascade
    from assistant.triage.pipeline import build_classifier

    settings = settings_or_exit()
    try:
        label_mapping = load_mapping(mapping)
        corpus = load_records(dataset)
        records = select_split(corpus, split)[:limit]
        training: list[dict[str, Any]] = []
        if learned_from is not None:
            # Training on the mails it is scored on would measure memory, not triage.
            if {learned_from, split} != {"dev", "heldout"}:
                raise ConfigurationError(
                    "--learned-from needs the other half: --split heldout --learned-from dev "
                    "(or the reverse)"
                )
            training = select_split(corpus, learned_from)
    except ConfigurationError as exc:
        err_console.print(f"[red]{exc.detail}[/red]")
        for problem in exc.problems:
            err_console.print(f"  - {problem}")
        raise typer.Exit(2) from None

    async def go() -> Any:
        memory = MemoryMeter()
        engine = None
        classifier = None
        meter: Meter = memory
        if ledger:
            engine, sessions = _db(settings)
            meter = FanOutMeter(memory, DatabaseMeter(sessions))
        try:
            classifier = build_classifier(settings, meter, "eval")
            task = classifier.client.task_model("triage") if classifier else None
            learned = _train_learned(training, label_mapping, settings) if training else None
            return await evaluate(
                records,
                label_mapping,
                TriageCascade(classifier=classifier, learned=learned),
                calls=memory.calls,
                dataset=str(dataset),
                provider=settings.llm.provider.value,
                model=task.model if task else None,
                prompt=classifier.prompt.ref if classifier else None,
                split=split,
                learned=_describe_learned(learned, learned_from) if training else None,
            )
        finally:
            if classifier is not None:
                await classifier.client.aclose()
            if engine is not None:
                await engine.dispose()

    report = asyncio.run(go())
    typer.echo(json.dumps(report.as_dict(), indent=2) if as_json else render_text(report))


def _train_learned(records: list[dict[str, Any]], mapping: Any, settings: Any) -> Any:
    """The learned stage trained on labelled corpus records, as a tenant's reviewed mails."""
    from assistant.evaluation.corpus import to_message
    from assistant.triage.learned import (
        LabelledExample,
        LearnedTriage,
        default_embedder,
        message_text,
    )

    examples = [LabelledExample(message_text(to_message(r)), mapping.expected(r)) for r in records]
    return LearnedTriage.train(
        examples,
        default_embedder(),
        target_precision=settings.triage_learning.target_precision,
        min_examples=settings.triage_learning.min_examples,
    )


def _describe_learned(stage: Any, trained_on: str | None) -> str:
    if stage is None:
        return f"not trained (too few {trained_on} mails)"
    threshold = stage.calibration.threshold
    return f"{stage.ref} trained on {trained_on}, " + (
        f"decides at confidence {threshold:.2f} or above"
        if threshold is not None
        else "abstains (no threshold reached the target precision)"
    )


@eval_app.command("requests")
def eval_requests(
    dataset: Annotated[
        Path, typer.Option(help="Intent sentences: 'Yes' or 'No', a tab, a sentence, per line.")
    ],
    meetings: Annotated[
        bool, typer.Option(help="Score 'asks or proposes to meet' instead of any request.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score the product's request detection on labelled sentences (precision, recall)."""
    from dataclasses import asdict

    from assistant.core.errors import ConfigurationError
    from assistant.evaluation.intent_eval import evaluate_intent, load_intent, render_intent

    try:
        pairs = load_intent(dataset)
    except ConfigurationError as exc:
        err_console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(2) from None
    report = evaluate_intent(pairs, dataset=str(dataset), meetings=meetings)
    label = "requests to meet" if meetings else "requests and proposals"
    typer.echo(json.dumps(asdict(report), indent=2) if as_json else render_intent(report, label))
