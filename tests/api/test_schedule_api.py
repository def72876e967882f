"""POST /api/v1/schedule/find on the seeded sandbox calendars."""

from __future__ import annotations

from typing import Any

import httpx

from assistant.core.principal import Role

URL = "/api/v1/schedule/find"
SOPHIE = "sophie.turner@northwind.example"
DANA = "dana.whitfield@northwind.example"
THURSDAY = {
    "window_start": "2026-11-26T14:00:00+00:00",
    "window_end": "2026-11-26T17:00:00+00:00",
}  # 2-5pm London (GMT in November)


def body(**extra: Any) -> dict[str, Any]:
    return {"participants": [{"address": SOPHIE}], "duration_minutes": 30, **THURSDAY, **extra}


async def test_the_executive_gets_slots_in_everyones_zone(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=DANA)
    response = await client.post(URL, json=body())
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["organizer"] == DANA and result["feasible"] is True
    assert result["participant_timezones"] == {DANA: "America/New_York", SOPHIE: "Europe/London"}
    first = result["slots"][0]
    assert (first["start"], first["end"]) == ("2026-11-26T16:30:00Z", "2026-11-26T17:00:00Z")
    local = {item["address"]: item for item in first["local"]}
    assert local[DANA]["start"] == "2026-11-26T11:30:00-05:00"
    assert local[SOPHIE]["start"] == "2026-11-26T16:30:00Z"


async def test_a_delegate_acting_for_the_executive_may_search(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    as_role(client, Role.DELEGATE, user_id="assistant", on_behalf_of=DANA)
    response = await client.post(URL, json=body())
    assert response.status_code == 200, response.text


async def test_admins_and_auditors_may_not_read_calendars(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    for role in (Role.ADMIN, Role.AUDITOR):
        as_role(client, role)
        response = await client.post(URL, json=body())
        assert response.status_code == 403
        assert response.json()["error"] == "PermissionDeniedError"


# One database for all cases of a kind: each test migrates and seeds its own.
MALFORMED = [
    {"participants": [{"address": SOPHIE}]},  # no duration
    body(participants=[]),
    body(participants=[{"address": "not-an-address"}]),
    body(duration_minutes=0),
    body(window_start="Thursday afternoon"),
    body(window_start="2026-11-26T14:00:00"),  # no offset: ambiguous
    body(colour="blue"),
]
NONSENSICAL = [
    (body(window_end="2026-11-26T13:00:00+00:00"), "window_end must be after window_start"),
    (body(timezone="Mars/Olympus_Mons"), "unknown IANA time zone"),
    (body(earliest="17:00", latest="09:00"), "latest must be later than earliest"),
]


async def test_malformed_is_422_and_nonsensical_is_a_typed_400(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=DANA)
    for payload in MALFORMED:
        response = await client.post(URL, json=payload)
        assert response.status_code == 422, (payload, response.text)
        assert response.json()["error"] == "RequestValidationError"
    for payload, needle in NONSENSICAL:
        response = await client.post(URL, json=payload)
        assert response.status_code == 400, (payload, response.text)
        assert response.json()["error"] == "InvalidScheduleRequestError"
        assert needle in response.json()["detail"]


async def test_unknown_participants_are_named_or_assumed_free(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=DANA)
    people = [
        {"address": SOPHIE},
        {"address": "Pat@Partner.example"},
        {"address": "kim@partner.example", "required": False},
    ]
    response = await client.post(URL, json=body(participants=people))
    assert response.status_code == 400
    assert response.json()["error"] == "UnknownParticipantsError"
    assert response.json()["unknown"] == ["pat@partner.example", "kim@partner.example"]

    response = await client.post(URL, json=body(participants=people, on_unknown="assume_free"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["feasible"] and result["unknown_participants"] == [
        "pat@partner.example",
        "kim@partner.example",
    ]
    assert len(result["warnings"]) == 2 and "assumed free" in result["warnings"][0]


async def test_no_slot_answers_why_and_what_would_help(
    client: httpx.AsyncClient, seeded: Any, as_role: Any
) -> None:
    as_role(client, Role.EXECUTIVE, user_id=DANA)
    # Sophie's pricing committee, 15:30-16:30 London: nothing fits inside it.
    response = await client.post(
        URL,
        json=body(window_start="2026-11-26T15:30:00+00:00", window_end="2026-11-26T16:30:00+00:00"),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["feasible"] is False and result["slots"] == []
    assert result["blocking"] and result["relaxations"]
    assert any(r["first_slot"] for r in result["relaxations"])


async def test_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=body())
    assert response.status_code == 401
