"""Quality measured from real review decisions: an edit records its distance, a rejection
its reason, and the rates follow."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from assistant.core.clock import utcnow
from assistant.core.principal import Role
from assistant.quality.metrics import measure
from assistant.quality.period import parse_period
from tests.fixtures.governance import (
    EXECUTIVE,
    OUTSIDER,
    TENANT,
    Clock,
    build_harness,
    copy_template,
    person,
    seeded_template,
)

__all__ = ["seeded_template"]  # fixture


def mail(subject: str, body: str) -> dict[str, Any]:
    return {"to": [{"address": OUTSIDER}], "subject": subject, "body_text": body}


async def test_review_decisions_become_rates_distance_and_reasons(
    seeded_template: Path, tmp_path: Path
) -> None:
    from assistant.core.db import create_engine, create_session_factory

    engine = create_engine(copy_template(seeded_template, tmp_path))
    sessions = create_session_factory(engine)
    try:
        clock = Clock(utcnow())
        harness = build_harness(sessions, clock)
        dana = person(EXECUTIVE, Role.EXECUTIVE)
        body = "Thanks for the quote; we will confirm the order on Monday."
        ids = [(await harness.propose("email.send", mail(f"Quote {i}", body))).id for i in range(4)]
        async with sessions() as session, session.begin():
            await harness.review.approve(session, dana, ids[0])
            await harness.review.edit(
                session, dana, ids[1], mail("Quote 1", body.replace("Monday", "Tuesday"))
            )
            await harness.review.edit(session, dana, ids[2], mail("Quote 2", "No, thank you."))
            await harness.review.reject(session, dana, ids[3], "Too pushy.")
        async with sessions() as session:
            # the period ends just after the clock: its end is excluded
            report = await measure(
                session, TENANT, parse_period("1d", clock.now + timedelta(seconds=1))
            )
    finally:
        await engine.dispose()
    sends = report.kinds["email.send"]
    assert sends.counts["approved_unedited"] == 1 and sends.counts["approved_edited"] == 2
    assert sends.counts["rejected"] == 1 and sends.reviewed == 4
    small, large = sends.edit_distances
    assert 0 < small < 0.1 < large < 1  # a word changed vs the body rewritten
    assert dict(report.rejection_reasons) == {"too pushy": 1}
