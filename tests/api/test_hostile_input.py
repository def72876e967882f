"""Hostile and malformed input at the HTTP edge (issue 15, findings 9, 10 and 13).

Out-of-range integers and amounts answer 422 in our error shape, oversized bodies and
headers are refused before authentication, JSON nested too deep never reaches the parser,
the Graph webhook bounds its batches and answers a malformed body with an error body, and
a 500 carries its correlation id in the header, the body and the log line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import APIRouter

from assistant.core.limits import MAX_INT64
from assistant.core.middleware import json_depth_exceeds
from assistant.core.principal import Role
from tests.fixtures.logs import rendered_logs

TOO_BIG = str(MAX_INT64 + 1)


def _is_validation_error(response: httpx.Response, where: str) -> bool:
    body = response.json()
    return (
        response.status_code == 422
        and body["error"] == "RequestValidationError"
        and any(where in problem["loc"] for problem in body["errors"])
        and body["correlation_id"] == response.headers["x-correlation-id"]
    )


# ---------------------------------------------------------------- finding 9: integer ranges


@pytest.mark.parametrize(
    ("role", "path", "param"),
    [
        (Role.ADMIN, "/api/v1/actions", "offset"),
        (Role.EXECUTIVE, "/api/v1/review", "offset"),
        (Role.ADMIN, "/api/v1/quality/spot-checks", "offset"),
        (Role.AUDITOR, "/api/v1/audit/events", "after_seq"),
    ],
)
async def test_integers_past_64_bits_answer_422(
    client: httpx.AsyncClient, as_role: Callable[..., object], role: Role, path: str, param: str
) -> None:
    as_role(client, role)
    answer = await client.get(path, params={param: TOO_BIG})
    assert _is_validation_error(answer, param), answer.text
    # The largest value is still accepted: an empty page, not an overflow.
    assert (await client.get(path, params={param: str(MAX_INT64)})).status_code == 200


@pytest.mark.parametrize("value", ["1e16", "inf", "nan", "-1"])
async def test_review_age_filter_is_bounded(
    client: httpx.AsyncClient, as_role: Callable[..., object], value: str
) -> None:
    as_role(client, Role.EXECUTIVE)
    answer = await client.get("/api/v1/review", params={"older_than_seconds": value})
    assert _is_validation_error(answer, "older_than_seconds"), answer.text
    ok = await client.get("/api/v1/review", params={"older_than_seconds": "86400"})
    assert ok.status_code == 200


@pytest.mark.parametrize("value", ["1e999999", "Infinity", "NaN", "1.0000001e-30"])
async def test_erp_amount_filters_are_bounded(
    client: httpx.AsyncClient, as_role: Callable[..., object], value: str
) -> None:
    as_role(client, Role.EXECUTIVE)
    answer = await client.get("/api/v1/erp/invoices", params={"min_amount": value})
    assert _is_validation_error(answer, "min_amount"), answer.text


@pytest.mark.parametrize(
    "line",
    [
        {"description": "x", "quantity": "10", "unit_price": "1e999999"},
        {"description": "x", "quantity": "1e999999", "unit_price": "10"},
        {"description": "x", "quantity": "1", "unit_price": "1e-999999"},
        {"description": "x", "quantity": "1", "unit_price": "Infinity"},
    ],
)
async def test_erp_bill_amounts_are_bounded(
    client: httpx.AsyncClient, as_role: Callable[..., object], line: dict[str, object]
) -> None:
    as_role(client, Role.EXECUTIVE)
    answer = await client.post(
        "/api/v1/actions",
        json={
            "kind": "erp.vendor_bill.create_draft",
            "arguments": {"vendor_id": "V1", "lines": [line]},
        },
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] in ("RequestValidationError", "ValidationFailedError")


async def test_vendor_bill_with_a_huge_line_is_refused_in_the_raw_json(
    client: httpx.AsyncClient, as_role: Callable[..., object]
) -> None:
    # 1e999999 as a JSON number (not a string): the parser makes it a float infinity.
    as_role(client, Role.EXECUTIVE)
    raw = (
        b'{"kind": "erp.vendor_bill.create_draft", "arguments": {"vendor_id": "V1", '
        b'"lines": [{"description": "x", "quantity": 1, "unit_price": 1e999999}]}}'
    )
    answer = await client.post(
        "/api/v1/actions", content=raw, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text


# ---------------------------------------------------------------- finding 10: sizes and depth


async def test_oversized_body_is_refused_before_authentication(client: httpx.AsyncClient) -> None:
    # No credentials at all: a 401 would mean the body was read and auth ran first.
    big = b'{"kind": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    answer = await client.post(
        "/api/v1/actions", content=big, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "PayloadTooLarge"
    assert answer.json()["correlation_id"] == answer.headers["x-correlation-id"]


async def test_streamed_body_without_length_is_cut_at_the_limit(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):  # 100 x 64 KiB = 6.25 MiB, chunked
            sent += 1
            yield b"a" * 65536

    for content_type in ("text/plain", "application/json"):
        answer = await client.post(
            "/webhooks/msgraph/mail", content=chunks(), headers={"content-type": content_type}
        )
        assert answer.status_code == 413 and answer.json()["error"] == "PayloadTooLarge"
        assert "content-length" not in answer.request.headers
    assert sent < 2 * 100  # reading stopped at the limit, not at the end of the stream
    # A form route reads its body through FastAPI's form parser: still a 413, not a 400.
    form = await client.post(
        "/auth/password",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413 and form.json()["error"] == "PayloadTooLarge"


async def test_oversized_headers_answer_431(client: httpx.AsyncClient) -> None:
    answer = await client.get("/api/v1/actions", headers={"x-padding": "p" * (64 * 1024)})
    assert answer.status_code == 431
    assert answer.json()["error"] == "RequestHeaderFieldsTooLarge"


async def test_deep_json_answers_422_not_500(client: httpx.AsyncClient) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    answer = await client.post(
        "/api/v1/actions", content=deep, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["error"] == "JSONTooDeep"


def test_depth_scanner_ignores_brackets_inside_strings() -> None:
    nested_text = json.dumps({"a": "[[[[[[[[[[" * 10, "b": ['\\"[[[[', {"c": []}]}).encode()
    assert not json_depth_exceeds(nested_text, 4)
    assert json_depth_exceeds(b'{"a": [[[[[]]]]]}', 4)
    assert not json_depth_exceeds(b'{"a": [[[[]]]]}', 5)
    # An unterminated string hides the rest (the parser will refuse the body anyway).
    assert not json_depth_exceeds(b'["' + b"[" * 100, 4)


async def test_webhook_refuses_large_batches_with_an_error_body(
    client: httpx.AsyncClient,
) -> None:
    items = [{"subscriptionId": "s", "clientState": "c"}] * 1001
    answer = await client.post("/webhooks/msgraph/mail", json={"value": items})
    assert answer.status_code == 413
    assert answer.json()["error"] == "NotificationBatchTooLargeError"


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'{"value": {}}', b'"value"', b"\xff\xfe", b""]
)
async def test_webhook_malformed_body_answers_400_with_error_body(
    client: httpx.AsyncClient, body: bytes
) -> None:
    answer = await client.post(
        "/webhooks/msgraph/mail", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "MalformedNotificationError"
    assert answer.json()["correlation_id"] == answer.headers["x-correlation-id"]


async def test_webhook_forged_batch_logs_one_line(client: httpx.AsyncClient) -> None:
    items = [{"subscriptionId": f"sub-{i % 7}", "clientState": "guess"} for i in range(1000)]
    with rendered_logs() as rendered:
        answer = await client.post("/webhooks/msgraph/mail", json={"value": items})
    assert answer.status_code == 202
    lines = rendered.getvalue().splitlines()
    assert sum("ingestion.notifications_rejected" in line for line in lines) == 1
    assert any("count=1000" in line or '"count": 1000' in line for line in lines)


# ---------------------------------------------------------------- finding 13: 500s and OpenAPI


async def test_a_500_carries_its_correlation_id_in_header_body_and_log(
    client: httpx.AsyncClient,
) -> None:
    router = APIRouter()

    @router.get("/_test/explode")
    async def explode() -> None:
        raise RuntimeError("kaboom")

    client.app.include_router(router)  # type: ignore[attr-defined]
    with rendered_logs() as rendered:
        answer = await client.get("/_test/explode", headers={"x-correlation-id": "trace-500"})
    assert answer.status_code == 500
    assert answer.headers["x-correlation-id"] == "trace-500"
    assert answer.json() == {
        "error": "InternalError",
        "detail": "an internal error occurred; quote the correlation id to the operators",
        "correlation_id": "trace-500",
    }
    failed = [line for line in rendered.getvalue().splitlines() if "request.failed" in line]
    assert failed and "trace-500" in failed[0]
    assert "kaboom" not in answer.text


async def test_openapi_declares_our_error_shapes_and_security(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKey"]["description"],
    }
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    listing = schema["paths"]["/api/v1/actions"]["get"]
    assert {"bearer": []} in listing["security"]
    assert listing["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationErrorOut"
    }
    for status in ("401", "403", "413", "431", "500"):
        content = listing["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    health = schema["paths"]["/healthz"]["get"]
    assert "security" not in health and "401" not in health["responses"]
    webhook = schema["paths"]["/webhooks/msgraph/mail"]["post"]["responses"]
    assert {"200", "202", "400", "413"} <= set(webhook)


async def test_docs_are_served_from_the_installed_package(client: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        assert "cdn." not in html and "googleapis" not in html
        assert f"/docs/static/{asset}" in html
        script = await client.get(f"/docs/static/{asset}")
        assert script.status_code == 200 and len(script.content) > 100_000
