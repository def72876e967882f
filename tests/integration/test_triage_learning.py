"""Reviewed corrections feed the tenant's learned stage: stored as examples on acceptance,
removed on dismissal, trained per tenant at the next run, deciding before the model."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from assistant.core.principal import Principal, Role
from assistant.core.settings import Settings
from assistant.demo import sandbox_context
from assistant.services import Services
from assistant.triage import Category, RuleTriage, TriageCascade
from assistant.triage.pipeline import build_learned, run_triage
from assistant.triage.store import (
    CorrectionIn,
    ReviewStatus,
    TriageResultRow,
    TriageTrainingExample,
    correct,
    review_correction,
    training_examples,
)
from integrations.base import EmailAddress, EmailMessage

EXECUTIVE = Principal(user_id="dana", tenant_id="default", roles=frozenset({Role.EXECUTIVE}))
REVIEWER = Principal(user_id="admin-1", tenant_id="default", roles=frozenset({Role.ADMIN}))


def _label(row: TriageResultRow) -> Category:
    """A person's category for a sandbox mail: answer questions, read the rest."""
    result = row.to_result()
    if result.category is not None and not result.needs_human:
        return result.category
    return Category.RESPOND if "?" in (result.summary or "") else Category.NOTIFY


async def _services(settings: Settings) -> Any:
    return await Services.build(settings)


async def test_reviewed_corrections_train_the_tenant_stage(
    settings: Settings, seeded: async_sessionmaker[AsyncSession]
) -> None:
    learning = settings.triage_learning.model_copy(
        update={"min_examples": 4, "target_precision": 0.05}
    )
    settings = settings.model_copy(update={"triage_learning": learning})
    services = await _services(settings)
    try:
        report = await run_triage(
            services,
            tenant_id="default",
            context_for=lambda _: sandbox_context(settings),
            drafting=False,
        )
        assert report.triaged >= 12
        async with seeded() as session, session.begin():
            rows = list((await session.execute(select(TriageResultRow))).scalars())
            corrections = []
            for row in rows:
                entry = await correct(
                    session, EXECUTIVE, row.message_id, CorrectionIn(category=_label(row))
                )
                corrections.append(entry)
            # Pending corrections teach nothing yet.
            assert await training_examples(session, "default") == []
            for entry in corrections:
                await review_correction(session, REVIEWER, entry.id, ReviewStatus.ACCEPTED_EXAMPLE)
            dismissed = corrections[0]
            await review_correction(session, REVIEWER, dismissed.id, ReviewStatus.DISMISSED)
        async with seeded() as session:
            examples = list((await session.execute(select(TriageTrainingExample))).scalars())
            assert len(examples) == len(corrections) - 1
            assert dismissed.id not in {e.correction_id for e in examples}
            assert all(e.tenant_id == "default" and e.text for e in examples)

        stage = await build_learned(services, "default")
        assert stage is not None and stage.examples == len(examples)
        assert await build_learned(services, "another-tenant") is None  # per tenant

        question = EmailMessage(
            id="new-1",
            folder="inbox",
            subject="Budget question",
            sender=EmailAddress(address="pat@partner.example"),
            to=[EmailAddress(address="dana.whitfield@northwind.example")],
            text="Could you tell me whether the budget for the offsite is approved?",
        )
        cascade = TriageCascade(RuleTriage(), learned=stage)
        result = await cascade.triage(question, sandbox_context(settings))
        assert result.provenance.stage == "learned"
        assert result.category is not None and "reviewed mails filed as" in result.reason

        off = settings.triage_learning.model_copy(update={"enabled": False})
        services.settings = settings.model_copy(update={"triage_learning": off})
        assert await build_learned(services, "default") is None
    finally:
        await services.aclose()
