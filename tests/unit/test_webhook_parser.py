"""The Graph change-notification parser under any input (issue 15, finding 10).

For any bytes it returns notifications or raises one of its two typed errors (never a
500), within a time and memory bound; batches over the limit are refused before any item
is looked at; well-formed Graph bodies come back item by item.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.ingestion.push import (
    MalformedNotificationError,
    Notification,
    NotificationBatchTooLargeError,
    parse_notifications,
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
_notification = st.fixed_dictionaries(
    {"subscriptionId": st.text(max_size=50), "clientState": st.text(max_size=50)},
    optional={"changeType": st.sampled_from(["created", "updated"]), "resource": st.text()},
)


def _bounded(body: bytes, max_items: int = 50) -> list[Notification] | None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        return parse_notifications(body, max_items=max_items)
    except (MalformedNotificationError, NotificationBatchTooLargeError):
        return None
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 2, f"{elapsed:.2f} s for {len(body)} bytes"
        assert peak < 20 * 1024 * 1024 + 20 * len(body), f"{peak} bytes"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=2000),
        _json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(_notification, max_size=80).map(lambda v: json.dumps({"value": v}).encode()),
    )
)
def test_any_body_gives_notifications_or_a_typed_error(body: bytes) -> None:
    _bounded(body)


@settings(max_examples=100, deadline=None)
@given(items=st.lists(_notification, max_size=50))
def test_graph_bodies_come_back_item_by_item(items: list[dict[str, str]]) -> None:
    parsed = _bounded(json.dumps({"value": items}).encode())
    assert parsed == [
        Notification(subscription_id=i["subscriptionId"][:200], client_state=i["clientState"])
        for i in items
    ]


def test_batches_over_the_limit_are_refused_whole() -> None:
    body = json.dumps({"value": [{"subscriptionId": "s"}] * 51}).encode()
    with pytest.raises(NotificationBatchTooLargeError):
        parse_notifications(body, max_items=50)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_json_is_malformed_not_a_crash(depth: int) -> None:
    with pytest.raises(MalformedNotificationError):
        parse_notifications(b"[" * depth + b"]" * depth, max_items=50)
