"""Stored triage: one result per message (with provenance) and the corrections people make.

Services flush, never commit. A correction replaces the stored category (provenance
``human``) and keeps what it corrected, so that metrics can say which stage was wrong. A
correction can become a versioned admin rule or a few-shot candidate only after review
(:func:`review_correction`); nothing here edits prompts or rules by itself.
"""

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from assistant.core.clock import utcnow
from assistant.core.db import Base, UTCDateTime
from assistant.core.errors import (
    ConflictError,
    NotFoundError,
    OwnershipError,
    ValidationFailedError,
)
from assistant.core.ids import new_id
from assistant.core.principal import Principal, system_principal
from assistant.triage.models import Category, Priority, Provenance, TriageResult

log = structlog.stdlib.get_logger(__name__)


class TriageResultRow(Base):
    __tablename__ = "triage_results"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mailbox", "message_id", name="uq_triage_results_message"),
        Index("ix_triage_results_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    mailbox: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(512))
    sender: Mapped[str | None] = mapped_column(String(320), nullable=True)
    message_date: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    category: Mapped[str | None] = mapped_column(String(16), nullable=True)
    priority: Mapped[str] = mapped_column(String(16))
    needs_human: Mapped[bool] = mapped_column(Boolean)
    confidence: Mapped[float] = mapped_column(Float)
    stage: Mapped[str] = mapped_column(String(16))
    rule_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(String(80), nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_result(self) -> TriageResult:
        return TriageResult.model_validate(self.result)


class ReviewStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED_RULE = "accepted_rule"  # to become an admin rule (a versioned YAML change)
    ACCEPTED_EXAMPLE = "accepted_example"  # a few-shot candidate for the next prompt version
    DISMISSED = "dismissed"


class TriageCorrectionRow(Base):
    __tablename__ = "triage_corrections"
    __table_args__ = (Index("ix_triage_corrections_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    result_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("triage_results.id", ondelete="CASCADE")
    )
    mailbox: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(512))
    sender: Mapped[str | None] = mapped_column(String(320), nullable=True)
    corrected_by: Mapped[str] = mapped_column(String(128))
    on_behalf_of: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    original_category: Mapped[str | None] = mapped_column(String(16), nullable=True)
    original_priority: Mapped[str] = mapped_column(String(16))
    original_stage: Mapped[str] = mapped_column(String(16))
    original_rule_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    original_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    original_prompt_version: Mapped[str | None] = mapped_column(String(80), nullable=True)
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    phishing: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    review_status: Mapped[str] = mapped_column(String(32), default=ReviewStatus.PENDING.value)
    reviewed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TriageTrainingExample(Base):
    """A mail's text and the category a person gave or confirmed, once the correction was
    reviewed and accepted: what the tenant's learned stage trains on. The text is copied
    here at acceptance so that training does not depend on the ingestion queue's lifetime;
    it is removed with its correction."""

    __tablename__ = "triage_training_examples"
    __table_args__ = (
        UniqueConstraint("correction_id", name="uq_triage_training_examples_correction"),
        Index("ix_triage_training_examples_tenant", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    correction_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("triage_corrections.id", ondelete="CASCADE")
    )
    mailbox: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(512))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --------------------------------------------------------------------------- schemas


class CorrectionIn(BaseModel):
    """A person's triage of a message."""

    model_config = ConfigDict(extra="forbid")

    category: Category
    priority: Priority | None = Field(default=None, description="Default: keep the stored one.")
    phishing: bool | None = Field(default=None, description="Correct the phishing flag.")
    note: str | None = Field(default=None, max_length=1000)


class CorrectionOut(BaseModel):
    id: str
    message_id: str
    mailbox: str
    corrected_by: str
    on_behalf_of: str | None
    created_at: datetime
    original_category: str | None
    original_priority: str
    original_stage: str
    original_rule_id: str | None
    original_model: str | None
    original_prompt_version: str | None
    category: str
    priority: str
    phishing: bool | None
    note: str | None
    review_status: str

    @classmethod
    def of(cls, row: TriageCorrectionRow) -> "CorrectionOut":
        return cls.model_validate(row, from_attributes=True)


# --------------------------------------------------------------------------- results


async def save_result(
    session: AsyncSession,
    *,
    tenant_id: str,
    mailbox: str,
    result: TriageResult,
    sender: str | None = None,
    message_date: datetime | None = None,
) -> TriageResultRow:
    """Store (or replace) the triage of a message and audit it (``triage.decided``)."""
    from governance.audit import AuditAction, AuditEventIn, record

    now = utcnow()
    row = (
        await session.execute(
            select(TriageResultRow).where(
                TriageResultRow.tenant_id == tenant_id,
                TriageResultRow.mailbox == mailbox,
                TriageResultRow.message_id == result.message_id,
            )
        )
    ).scalar_one_or_none()
    if row is None:
        row = TriageResultRow(
            id=new_id(),
            tenant_id=tenant_id,
            mailbox=mailbox,
            message_id=result.message_id,
            created_at=now,
        )
        session.add(row)
    provenance = result.provenance
    row.sender = sender
    row.message_date = message_date
    row.category = result.category.value if result.category else None
    row.priority = result.priority.value
    row.needs_human = result.needs_human
    row.confidence = result.confidence
    row.stage = provenance.stage
    row.rule_id = provenance.rule_id
    row.model = provenance.model
    row.prompt_version = provenance.prompt_version
    row.result = result.model_dump(mode="json")
    row.updated_at = now
    await session.flush()
    await record(
        session,
        system_principal(tenant_id, "triage"),
        AuditEventIn(
            action=AuditAction.TRIAGE_DECIDED,
            resource_type="triage_result",
            resource_id=row.id,
            payload={
                "message_id": result.message_id,
                "mailbox": mailbox,
                "category": row.category,
                "priority": row.priority,
                "needs_human": row.needs_human,
                "confidence": row.confidence,
                "stage": row.stage,
                "rule_id": row.rule_id,
                "model": row.model,
                "prompt_version": row.prompt_version,
                "flags": result.flags.model_dump(),
            },
        ),
    )
    return row


async def triaged_ids(
    session: AsyncSession, tenant_id: str, mailbox: str, message_ids: Iterable[str]
) -> set[str]:
    """Which of ``message_ids`` already have a stored triage."""
    wanted = list(message_ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # stay under bind-parameter limits
        chunk = wanted[start : start + 500]
        rows = await session.execute(
            select(TriageResultRow.message_id).where(
                TriageResultRow.tenant_id == tenant_id,
                TriageResultRow.mailbox == mailbox,
                TriageResultRow.message_id.in_(chunk),
            )
        )
        found.update(rows.scalars())
    return found


async def get_result(
    session: AsyncSession, tenant_id: str, message_id: str, mailbox: str | None = None
) -> TriageResultRow:
    """The stored triage of a message in the tenant; NotFoundError otherwise."""
    query = select(TriageResultRow).where(
        TriageResultRow.tenant_id == tenant_id, TriageResultRow.message_id == message_id
    )
    if mailbox is not None:
        query = query.where(TriageResultRow.mailbox == mailbox)
    rows = list((await session.execute(query.limit(2))).scalars())
    if not rows:
        raise NotFoundError("no triage stored for this message")
    if len(rows) > 1:
        raise ConflictError("the message id exists in several mailboxes: name the mailbox")
    return rows[0]


async def list_results(
    session: AsyncSession,
    tenant_id: str,
    *,
    limit: int = 100,
    mailboxes: Iterable[str] | None = None,
) -> list[TriageResultRow]:
    """Stored triage results, newest first; only those of ``mailboxes`` when given."""
    query = select(TriageResultRow).where(TriageResultRow.tenant_id == tenant_id)
    if mailboxes is not None:
        query = query.where(TriageResultRow.mailbox.in_(list(mailboxes)))
    rows = await session.execute(
        query.order_by(TriageResultRow.created_at.desc(), TriageResultRow.id).limit(limit)
    )
    return list(rows.scalars())


# --------------------------------------------------------------------------- corrections


async def correct(
    session: AsyncSession,
    principal: Principal,
    message_id: str,
    correction: CorrectionIn,
    *,
    mailbox: str | None = None,
    mailboxes: set[str] | None = None,
) -> TriageCorrectionRow:
    """Record a person's triage, make it the stored one, audit it (``triage.corrected``)."""
    from governance.audit import AuditAction, AuditEventIn, record

    row = await get_result(session, principal.tenant_id, message_id, mailbox)
    if mailboxes is not None and row.mailbox not in mailboxes:
        raise OwnershipError(
            "this message is in a mailbox of an executive you do not act for",
            message_id=message_id,
        )
    old = row.to_result()
    priority = correction.priority or old.priority
    flags = old.flags
    if correction.phishing is not None:
        flags = flags.model_copy(update={"phishing": correction.phishing})
    fixed = old.model_copy(
        update={
            "category": correction.category,
            "priority": priority,
            "flags": flags,
            "needs_human": False,
            "confidence": 1.0,
            # What the inbox shows as "Why": the person by name (a user id told her
            # nothing) and the note she gave, which was otherwise stored but never shown.
            "reason": f"corrected by {principal.display_name or principal.user_id}"
            + (
                f": {correction.note.strip()}"
                if correction.note and correction.note.strip()
                else ""
            ),
            "provenance": Provenance(stage="human"),
        }
    )
    now = utcnow()
    entry = TriageCorrectionRow(
        id=new_id(),
        tenant_id=principal.tenant_id,
        result_id=row.id,
        mailbox=row.mailbox,
        message_id=row.message_id,
        sender=row.sender,
        corrected_by=principal.user_id,
        on_behalf_of=principal.on_behalf_of,
        created_at=now,
        original_category=row.category,
        original_priority=row.priority,
        original_stage=row.stage,
        original_rule_id=row.rule_id,
        original_model=row.model,
        original_prompt_version=row.prompt_version,
        category=correction.category.value,
        priority=priority.value,
        phishing=correction.phishing,
        note=correction.note,
        review_status=ReviewStatus.PENDING.value,
    )
    session.add(entry)
    row.category = correction.category.value
    row.priority = priority.value
    row.needs_human = False
    row.confidence = 1.0
    row.stage = "human"
    row.result = fixed.model_dump(mode="json")
    row.updated_at = now
    await session.flush()
    await record(
        session,
        principal,
        AuditEventIn(
            action=AuditAction.TRIAGE_CORRECTED,
            resource_type="triage_correction",
            resource_id=entry.id,
            payload={
                "message_id": row.message_id,
                "mailbox": row.mailbox,
                "from": {
                    "category": entry.original_category,
                    "priority": entry.original_priority,
                    "stage": entry.original_stage,
                    "rule_id": entry.original_rule_id,
                    "model": entry.original_model,
                    "prompt_version": entry.original_prompt_version,
                },
                "to": {
                    "category": entry.category,
                    "priority": entry.priority,
                    "phishing": entry.phishing,
                },
            },
        ),
    )
    log.info(
        "triage.corrected",
        tenant=principal.tenant_id,
        correction=entry.id,
        original_stage=entry.original_stage,
        original=entry.original_category,
        corrected=entry.category,
    )
    return entry


async def list_corrections(
    session: AsyncSession,
    tenant_id: str,
    *,
    status: ReviewStatus | None = None,
    limit: int = 100,
    mailboxes: Iterable[str] | None = None,
) -> list[TriageCorrectionRow]:
    """Corrections of the tenant, newest first; only those of ``mailboxes`` when given."""
    query = select(TriageCorrectionRow).where(TriageCorrectionRow.tenant_id == tenant_id)
    if mailboxes is not None:
        query = query.where(TriageCorrectionRow.mailbox.in_(list(mailboxes)))
    if status is not None:
        query = query.where(TriageCorrectionRow.review_status == status.value)
    rows = await session.execute(
        query.order_by(TriageCorrectionRow.created_at.desc(), TriageCorrectionRow.id).limit(limit)
    )
    return list(rows.scalars())


async def review_correction(
    session: AsyncSession, principal: Principal, correction_id: str, status: ReviewStatus
) -> TriageCorrectionRow:
    """Mark a correction as reviewed. Accepting one changes nothing by itself: it makes it
    eligible for :func:`rules_from_corrections` (an admin commits the YAML) or for the
    few-shot set of a new prompt version."""
    if status is ReviewStatus.PENDING:
        raise ValidationFailedError("a review must accept or dismiss")
    row = await session.get(TriageCorrectionRow, correction_id)
    if row is None or row.tenant_id != principal.tenant_id:
        raise NotFoundError("no such correction")
    row.review_status = status.value
    row.reviewed_by = principal.user_id
    row.reviewed_at = utcnow()
    await _sync_training_example(session, row)
    await session.flush()
    return row


async def _sync_training_example(session: AsyncSession, row: TriageCorrectionRow) -> None:
    """An accepted correction becomes a training example of the learned stage; a dismissed
    one stops being one."""
    from assistant.ingestion.models import TriageQueueItem
    from assistant.triage.learned import message_text
    from integrations.base import EmailMessage

    existing = (
        await session.execute(
            select(TriageTrainingExample).where(TriageTrainingExample.correction_id == row.id)
        )
    ).scalar_one_or_none()
    if row.review_status == ReviewStatus.DISMISSED.value:
        if existing is not None:
            await session.delete(existing)
        return
    if existing is not None:
        existing.category = row.category
        return
    stored = (
        await session.execute(
            select(TriageQueueItem.message)
            .where(
                TriageQueueItem.tenant_id == row.tenant_id,
                TriageQueueItem.provider_id == row.message_id,
            )
            .limit(1)
        )
    ).scalar_one_or_none()
    if stored is None:
        # Mail that never came through the queue (or was purged) has no text to learn from.
        log.warning("triage.training_example.no_text", tenant=row.tenant_id, correction=row.id)
        return
    message = EmailMessage.model_validate(stored)
    session.add(
        TriageTrainingExample(
            id=new_id(),
            tenant_id=row.tenant_id,
            correction_id=row.id,
            mailbox=row.mailbox,
            message_id=row.message_id,
            text=message_text(message),
            category=row.category,
            created_at=utcnow(),
        )
    )


async def training_examples(
    session: AsyncSession, tenant_id: str, *, limit: int = 5000
) -> list[tuple[str, str]]:
    """The tenant's (text, category) examples, newest first."""
    rows = await session.execute(
        select(TriageTrainingExample.text, TriageTrainingExample.category)
        .where(TriageTrainingExample.tenant_id == tenant_id)
        .order_by(TriageTrainingExample.created_at.desc(), TriageTrainingExample.id)
        .limit(limit)
    )
    return [(str(text), str(category)) for text, category in rows.all()]


def rules_from_corrections(rows: Iterable[TriageCorrectionRow]) -> dict[str, Any]:
    """Admin rules (config/triage_rules.yaml format) from corrections accepted as rules:
    one sender rule per sender, the latest correction winning."""
    latest: dict[str, TriageCorrectionRow] = {}
    for row in sorted(rows, key=lambda r: r.created_at):
        if row.review_status == ReviewStatus.ACCEPTED_RULE.value and row.sender:
            latest[row.sender.lower()] = row
    rules = []
    for sender, row in sorted(latest.items()):
        rules.append(
            {
                "id": f"correction-{row.id[:12]}",
                "description": f"from correction {row.id} by {row.corrected_by}",
                "senders": [sender],
                "category": row.category,
                "priority": row.priority,
            }
        )
    return {"rules": rules}


async def correction_metrics(
    session: AsyncSession, tenant_id: str, *, mailboxes: Iterable[str] | None = None
) -> dict[str, Any]:
    """How often each stage was corrected, and into what: the feedback half of the
    pilot metrics (of ``mailboxes`` only, when given)."""
    decided: Counter[str] = Counter()
    results_filter = TriageResultRow.tenant_id == tenant_id
    corrections_filter = TriageCorrectionRow.tenant_id == tenant_id
    if mailboxes is not None:
        chosen = list(mailboxes)
        results_filter = results_filter & TriageResultRow.mailbox.in_(chosen)
        corrections_filter = corrections_filter & TriageCorrectionRow.mailbox.in_(chosen)
    rows = await session.execute(
        select(TriageResultRow.stage, func.count())
        .where(results_filter)
        .group_by(TriageResultRow.stage)
    )
    for stage, count in rows.all():
        decided[str(stage)] += int(count)
    corrections = await session.execute(
        select(
            TriageCorrectionRow.result_id,
            TriageCorrectionRow.original_stage,
            TriageCorrectionRow.original_category,
            TriageCorrectionRow.category,
            TriageCorrectionRow.review_status,
        )
        .where(corrections_filter)
        .order_by(TriageCorrectionRow.created_at, TriageCorrectionRow.id)
    )
    by_stage: Counter[str] = Counter()
    changes: Counter[str] = Counter()
    review: Counter[str] = Counter()
    first_stage: dict[str, str] = {}
    for result_id, stage, before, after, status in corrections.all():
        by_stage[str(stage)] += 1
        changes[f"{before or 'undecided'}->{after}"] += 1
        review[str(status)] += 1
        first_stage.setdefault(str(result_id), str(stage))
    # Corrected results are stored as stage "human": count them under the stage that first
    # decided them, so that a rate is corrections of a stage / results that stage made.
    originally = Counter({k: v for k, v in decided.items() if k != "human"})
    originally.update(stage for stage in first_stage.values())
    return {
        "results": sum(decided.values()),
        "corrections": sum(by_stage.values()),
        "corrections_by_stage": dict(by_stage),
        "correction_rate_by_stage": {
            stage: round(by_stage[stage] / originally[stage], 4)
            for stage in sorted(by_stage)
            if originally.get(stage)
        },
        "changes": dict(changes.most_common()),
        "review": dict(review),
    }
