"""The row hash is canonical JSON of the event fields; payloads are normalized and redacted."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, SecretStr

from assistant.core.logging import redact_value
from governance.audit_chain import jsonable
from governance.audit_hash import (
    GENESIS_HASH,
    HASHED_FIELDS,
    canonical_json,
    hash_fields,
    hash_row,
    iso_utc,
)


def _fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "action": "action.proposed",
        "action_id": "a1",
        "actor_id": "alice",
        "actor_type": "user",
        "connector": None,
        "correlation_id": "c1",
        "event_id": "e1",
        "idempotency_key": None,
        "occurred_at": datetime(2026, 11, 24, 14, 0, tzinfo=UTC),
        "on_behalf_of": None,
        "outcome": "success",
        "payload": '{"a":[1,2.5,"ü"],"b":null}',
        "prev_hash": GENESIS_HASH,
        "reason": 'because "quoted"\n',
        "recorded_at": datetime(2026, 11, 24, 14, 0, 1, 5, tzinfo=UTC),
        "resource_id": None,
        "resource_type": "action",
        "roles": '["admin"]',
        "schema_version": 1,
        "seq": 1,
        "source_ip": "10.0.0.1",
        "tenant_id": "t1",
    }
    fields.update(overrides)
    return fields


def test_hashed_fields_are_sorted() -> None:
    assert list(HASHED_FIELDS) == sorted(HASHED_FIELDS)


def test_row_hash_is_sha256_of_sorted_compact_json() -> None:
    """An independent implementation with the standard library gives the same hash."""
    fields = _fields()
    document = dict(fields)
    document["payload"] = json.loads(str(fields["payload"]))
    document["roles"] = json.loads(str(fields["roles"]))
    document["occurred_at"] = "2026-11-24T14:00:00.000000+00:00"
    document["recorded_at"] = "2026-11-24T14:00:01.000005+00:00"
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hash_fields(fields) == hashlib.sha256(text.encode()).hexdigest()


def test_stored_sqlite_text_and_datetimes_hash_alike() -> None:
    as_datetimes = _fields()
    as_text = _fields(
        occurred_at="2026-11-24 14:00:00.000000", recorded_at="2026-11-24 14:00:01.000005"
    )
    other_zone = _fields(
        occurred_at=datetime(2026, 11, 24, 15, 0, tzinfo=timezone(timedelta(hours=1)))
    )
    assert hash_fields(as_datetimes) == hash_fields(as_text) == hash_fields(other_zone)
    assert hash_row([as_text[name] for name in HASHED_FIELDS]) == hash_fields(as_datetimes)


def test_every_field_changes_the_hash() -> None:
    base = hash_fields(_fields())
    for name in HASHED_FIELDS:
        value = _fields()[name]
        if name in {"payload", "roles"}:
            changed: object = '{"a":1}'
        elif isinstance(value, datetime):
            changed = value + timedelta(microseconds=1)
        elif isinstance(value, int):
            changed = value + 1
        else:
            changed = f"{value}x"
        assert hash_fields(_fields(**{name: changed})) != base, name


def test_iso_utc_always_has_microseconds() -> None:
    assert iso_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000+00:00"


class Color(StrEnum):
    RED = "red"


class Secretive(BaseModel):
    user: str
    password: SecretStr


def test_jsonable_is_deterministic_and_plain() -> None:
    value = jsonable(
        {
            1: {"b", "a"},
            "when": datetime(2026, 1, 1, tzinfo=UTC),
            "amount": Decimal("12.50"),
            "color": Color.RED,
            "nan": float("nan"),
            "big": 2**70,
            "model": Secretive(user="u", password=SecretStr("hunter2")),
            "tuple": (1, 2),
        }
    )
    assert value == {
        "1": ["a", "b"],
        "when": "2026-01-01T00:00:00.000000+00:00",
        "amount": "12.50",
        "color": "red",
        "nan": "nan",
        "big": str(2**70),
        "model": {"user": "u", "password": "**********"},
        "tuple": [1, 2],
    }
    assert canonical_json(value) == canonical_json(jsonable(value))


def test_canonical_json_sorts_keys_at_every_depth() -> None:
    assert canonical_json({"b": {"y": 1, "x": 2}, "a": []}) == b'{"a":[],"b":{"x":2,"y":1}}'


def test_redaction_of_normalized_payloads() -> None:
    payload = redact_value(jsonable({"arguments": {"password": "hunter2", "to": "bob"}}))
    assert payload == {"arguments": {"password": "[REDACTED]", "to": "bob"}}
