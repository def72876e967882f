"""Action kinds: the registry, argument schemas, risk classes, facts, hold windows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from assistant.core.errors import ValidationFailedError
from governance.actions import (
    ActionFacts,
    ActionKind,
    ExecutionResult,
    KindRegistry,
    RiskClass,
    UnknownActionKindError,
    registry,
)
from governance.executor import backoff_seconds, hold_seconds
from governance.policy import Autonomy
from integrations.base import Capability
from tests.fixtures.governance import governance_settings


def test_builtin_kinds_and_their_classes() -> None:
    expected = {
        "email.draft.create": (RiskClass.REVERSIBLE, Capability.EMAIL),
        "email.send": (RiskClass.IRREVERSIBLE, Capability.EMAIL),
        "email.move": (RiskClass.REVERSIBLE, Capability.EMAIL),
        "calendar.event.create": (RiskClass.COMPENSABLE, Capability.CALENDAR),
        "calendar.event.update": (RiskClass.COMPENSABLE, Capability.CALENDAR),
        "calendar.event.cancel": (RiskClass.COMPENSABLE, Capability.CALENDAR),
        "calendar.invite.respond": (RiskClass.COMPENSABLE, Capability.CALENDAR),
    }
    for name, (risk, capability) in expected.items():
        kind = registry.get(name)
        assert (kind.risk, kind.capability) == (risk, capability)
        assert kind.compensate is not None, name
    assert set(expected) <= set(registry.names())


def test_registration_is_open_and_guarded() -> None:
    class Args(BaseModel):
        amount: int

    async def execute(ctx: Any, args: Args) -> ExecutionResult:
        return ExecutionResult()

    async def preview(connector: Any, args: Args, ctx: Any) -> dict[str, Any]:
        return {"amount": args.amount}

    kinds = KindRegistry()
    kind = ActionKind(
        name="erp.thing",
        title="A thing",
        args_model=Args,
        risk=RiskClass.IRREVERSIBLE,
        capability=Capability.ERP,
        execute=execute,
        compensate=None,
        facts=lambda a: ActionFacts(amount=a.amount),
        preview=preview,
    )
    kinds.register(kind)
    assert kinds.get("erp.thing") is kind and "erp.thing" in kinds
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(kind)
    kinds.register(kind, replace=True)
    with pytest.raises(UnknownActionKindError):
        kinds.get("erp.other")


@pytest.mark.parametrize(
    ("kind", "arguments", "problem"),
    [
        ("email.send", {"body_text": "hi"}, "at least one recipient"),
        ("email.send", {"mode": "reply", "body_text": "hi"}, "reply_to_id"),
        ("email.send", {"to": [{"address": "not-an-address"}], "body_text": "x"}, "to.0.address"),
        (
            "email.send",
            {"to": [{"address": "a@b.example"}], "body_text": "x", "bcc_all": True},
            "bcc_all",
        ),
        ("email.move", {"message_id": "", "folder": "archive"}, "message_id"),
        (
            "calendar.event.create",
            {
                "subject": "x",
                "start": "2026-11-24T10:00:00+00:00",
                "end": "2026-11-24T09:00:00+00:00",
            },
            "end after it starts",
        ),
        (
            "calendar.event.create",
            {"subject": "x", "start": "2026-11-24T10:00:00", "end": "2026-11-24T11:00:00"},
            "timezone-aware",
        ),
        ("calendar.event.update", {"event_id": "e1"}, "at least one field"),
        ("calendar.invite.respond", {"event_id": "e1", "response": "maybe"}, "response"),
    ],
)
def test_arguments_are_validated_with_every_problem_listed(
    kind: str, arguments: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        registry.get(kind).validate(arguments)
    assert problem in "\n".join(caught.value.extra["problems"])


def test_facts_for_the_policy() -> None:
    send = registry.get("email.send")
    args = send.validate(
        {"to": [{"address": "A@X.example"}], "cc": [{"address": "b@y.example"}], "body_text": "x"}
    )
    assert send.facts(args).recipients == ("a@x.example", "b@y.example")
    reply = send.validate({"mode": "reply", "reply_to_id": "m1", "body_text": "x"})
    assert send.facts(reply).recipients is None  # unknown until taken from the original
    create = registry.get("calendar.event.create")
    event = create.validate(
        {
            "subject": "x",
            "start": datetime(2026, 1, 1, 9, tzinfo=UTC),
            "end": datetime(2026, 1, 1, 10, tzinfo=UTC),
            "attendees": [{"address": "c@z.example"}],
        }
    )
    assert create.facts(event).recipients == ("c@z.example",)
    assert (
        registry.get("calendar.event.cancel")
        .facts(registry.get("calendar.event.cancel").validate({"event_id": "e"}))
        .recipients
        is None
    )


def test_dump_round_trips_through_the_schema() -> None:
    kind = registry.get("calendar.event.create")
    args = kind.validate(
        {"subject": "x", "start": "2026-11-24T10:00:00-05:00", "end": "2026-11-24T11:00:00-05:00"}
    )
    assert kind.validate(kind.dump(args)) == args


def test_hold_windows_by_kind_risk_and_autonomy() -> None:
    settings = governance_settings(
        hold_window_seconds={"email.send": 10.0, "email.move": 5.0},
        hold_irreversible_seconds=30.0,
        auto_with_undo_seconds=45.0,
    )
    send, move, draft, create = (
        registry.get(k)
        for k in ("email.send", "email.move", "email.draft.create", "calendar.event.create")
    )
    # an irreversible kind's own setting may not shorten the irreversible window
    assert hold_seconds(settings, send, Autonomy.AUTO) == 30.0
    assert hold_seconds(settings, move, Autonomy.AUTO) == 5.0
    assert hold_seconds(settings, draft, Autonomy.AUTO) == 0.0
    assert hold_seconds(settings, create, Autonomy.AUTO) == 0.0
    assert hold_seconds(settings, draft, Autonomy.AUTO_WITH_UNDO) == 45.0
    defaults = governance_settings()
    assert hold_seconds(defaults, send, Autonomy.AUTO) == 30.0


def test_backoff_grows_and_honours_retry_after() -> None:
    settings = governance_settings(backoff_initial_seconds=2.0, backoff_max_seconds=60.0)
    assert [backoff_seconds(settings, n, None) for n in (1, 2, 3, 4, 10)] == [
        2.0,
        4.0,
        8.0,
        16.0,
        60.0,
    ]
    assert backoff_seconds(settings, 1, 30.0) == 30.0
    assert backoff_seconds(settings, 5, 1.0) == 32.0
