"""The scheduling service on the seeded sandbox calendars, and `assistant schedule find`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from assistant.scheduling.service import (
    ASSUMED_WORKING_HOURS,
    InvalidScheduleRequestError,
    UnknownParticipantsError,
    constraints_from,
    find_meeting_slots,
)
from integrations.sandbox.calendar import SandboxCalendarConnector
from tests.conftest import FIXED_NOW
from tests.fixtures.governance import (
    EXECUTIVE,
    TENANT,
    copy_template,
    seeded_db,
    seeded_template,
)

__all__ = ["seeded_db", "seeded_template"]  # fixtures

SOPHIE = "sophie.turner@northwind.example"
RAJ = "raj.patel@northwind.example"
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
async def calendar(
    seeded_db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[SandboxCalendarConnector]:
    connector = SandboxCalendarConnector(
        tenant_id=TENANT, owner=EXECUTIVE, session_factory=seeded_db
    )
    yield connector
    await connector.aclose()


def constraints(**values: Any) -> Any:
    base: dict[str, Any] = {
        "participants": [{"address": SOPHIE}],
        "duration_minutes": 30,
        "window_start": FIXED_NOW,
        "days": 3,
    }
    return constraints_from(base | values)


async def busy_of(calendar: SandboxCalendarConnector, people: list[str]) -> list[Any]:
    fbs = await calendar.get_free_busy(
        people, FIXED_NOW - timedelta(days=2), FIXED_NOW + timedelta(days=10)
    )
    return [b for fb in fbs for b in fb.busy]


async def test_the_organizer_is_the_calendar_owner_and_buffers_keep_distance(
    calendar: SandboxCalendarConnector,
) -> None:
    result = await find_meeting_slots(
        calendar, constraints(buffer_before=10, buffer_after=10, max_results=10), now=FIXED_NOW
    )
    assert result.organizer == EXECUTIVE and result.reference_timezone == "America/New_York"
    assert result.feasible and len(result.slots) >= 3
    gap = timedelta(minutes=10)
    busy = await busy_of(calendar, [EXECUTIVE, SOPHIE])
    for slot in result.slots:
        assert {x.address for x in slot.local} == {EXECUTIVE, SOPHIE}
        assert slot.start >= FIXED_NOW and slot.end <= FIXED_NOW + timedelta(days=3)
        assert not any(b.start < slot.end + gap and slot.start - gap < b.end for b in busy)


async def test_earliest_latest_in_the_reference_zone_and_days_default(
    calendar: SandboxCalendarConnector,
) -> None:
    result = await find_meeting_slots(
        calendar,
        constraints(
            window_start=None,
            days=4,
            earliest="10:00",
            latest="12:00",
            timezone="America/New_York",
            max_results=20,
        ),
        now=FIXED_NOW,
    )
    assert result.window_start == FIXED_NOW
    assert result.window_end == FIXED_NOW + timedelta(days=4)
    assert result.slots
    for slot in result.slots:
        start, end = slot.start.astimezone(NEW_YORK), slot.end.astimezone(NEW_YORK)
        assert start.time() >= time(10, 0) and end.time() <= time(12, 0)


async def test_without_the_organizer_only_the_participants_count(
    calendar: SandboxCalendarConnector,
) -> None:
    result = await find_meeting_slots(
        calendar,
        constraints(
            participants=[
                {"address": SOPHIE},
                {"address": RAJ, "required": False},
                {"address": RAJ.upper()},
            ],  # listed twice: required wins
            include_organizer=False,
        ),
        now=FIXED_NOW,
    )
    assert set(result.participant_timezones) == {SOPHIE, RAJ}
    assert all(not s.optional_attendees for s in result.slots)


async def test_unknown_participants(calendar: SandboxCalendarConnector) -> None:
    people = [{"address": SOPHIE}, {"address": "pat@partner.example"}]
    with pytest.raises(UnknownParticipantsError) as raised:
        await find_meeting_slots(calendar, constraints(participants=people), now=FIXED_NOW)
    assert raised.value.addresses == ["pat@partner.example"]
    result = await find_meeting_slots(
        calendar,
        constraints(participants=people, on_unknown="assume_free", timezone="Europe/Paris"),
        now=FIXED_NOW,
    )
    assert result.participant_timezones["pat@partner.example"] == "Europe/Paris"
    paris = ZoneInfo("Europe/Paris")
    for slot in result.slots:  # inside the assumed working hours, in the assumed zone
        start, end = slot.start.astimezone(paris), slot.end.astimezone(paris)
        assert (
            ASSUMED_WORKING_HOURS.start <= start.time() and end.time() <= ASSUMED_WORKING_HOURS.end
        )


async def test_nonsense_is_refused_with_a_typed_error(calendar: SandboxCalendarConnector) -> None:
    with pytest.raises(InvalidScheduleRequestError, match="after window_start"):
        await find_meeting_slots(
            calendar, constraints(window_end=FIXED_NOW - timedelta(hours=1)), now=FIXED_NOW
        )
    with pytest.raises(InvalidScheduleRequestError, match="unknown IANA time zone"):
        await find_meeting_slots(calendar, constraints(timezone="Nowhere/Town"), now=FIXED_NOW)
    with pytest.raises(InvalidScheduleRequestError, match="duration_minutes"):
        constraints(duration_minutes=-5)


runner = CliRunner()


@pytest.fixture
def sandbox_env(seeded_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy_template(seeded_template, tmp_path)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    return tmp_path


def test_cli_prints_a_table_and_json(sandbox_env: Path) -> None:
    from assistant.cli import app

    thursday = ["--from", "2026-11-26T14:00", "--to", "2026-11-26T17:00", "--tz", "Europe/London"]
    result = runner.invoke(
        app, ["schedule", "find", "--with", SOPHIE, "--duration", "30", *thursday]
    )
    assert result.exit_code == 0, result.output
    assert "Thu 26 Nov 16:30-17:00" in result.output  # Sophie's London time
    assert "Thu 26 Nov 11:30-12:00" in result.output  # Dana's New York time
    assert "Europe/London" in result.output and "America/New_York" in result.output

    result = runner.invoke(
        app, ["schedule", "find", "--with", SOPHIE, "--optional", RAJ, *thursday, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["feasible"] and set(data["participant_timezones"]) == {EXECUTIVE, SOPHIE, RAJ}
    start = datetime.fromisoformat(data["slots"][0]["start"])
    assert start.astimezone(UTC) >= datetime(2026, 11, 26, 14, tzinfo=UTC)


def test_cli_explains_when_nothing_fits_and_refuses_bad_input(sandbox_env: Path) -> None:
    from assistant.cli import app

    result = runner.invoke(
        app,
        [
            "schedule",
            "find",
            "--with",
            SOPHIE,
            "--from",
            "2026-11-26T15:30+00:00",
            "--to",
            "2026-11-26T16:30+00:00",
        ],
    )
    assert result.exit_code == 1
    assert "no slot fits" in result.output and "blocking:" in result.output
    assert "relax:" in result.output

    result = runner.invoke(app, ["schedule", "find", "--with", "who@nowhere.example"])
    assert result.exit_code == 2 and "UnknownParticipantsError" in result.output
    result = runner.invoke(
        app, ["schedule", "find", "--with", SOPHIE, "--from", "2026-11-26T14:00"]
    )
    assert result.exit_code == 2 and "--tz" in result.output
