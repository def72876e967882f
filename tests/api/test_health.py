"""/healthz, /readyz, /metrics and the error shape."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import APIRouter
from pydantic import BaseModel

from assistant.core.db import create_engine, downgrade, upgrade
from assistant.core.settings import INSECURE_SECRET, Settings


class Body(BaseModel):
    count: int


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response.headers["x-correlation-id"]


async def test_correlation_id_is_echoed_only_when_safe(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-correlation-id"] == "abc-123"
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\nInjected: 1"})
    assert response.headers["x-correlation-id"] != "bad id\nInjected: 1"


async def test_readyz_ready(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["migrations"]["status"] == "ok"
    assert {c["name"] for c in body["checks"]["connectors"]} == {"sandbox-mail", "sandbox-calendar"}


async def test_readyz_not_ready_when_migrations_behind(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    engine = create_engine(settings.database_url)
    await downgrade(engine, "base")
    try:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["migrations"]["status"] == "behind"
    finally:
        await upgrade(engine)
        await engine.dispose()


async def test_readyz_not_ready_when_database_down(tmp_path: Path) -> None:
    from assistant.app import create_app
    from assistant.services import Services

    # A database path that cannot be opened: a directory where the file should be.
    settings = Settings(data_dir=tmp_path, database={"url": f"sqlite+aiosqlite:///{tmp_path}"})
    services = await Services.build(settings)
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/readyz")
    await services.aclose()
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "down"


async def test_metrics_count_requests_by_route(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    await client.get("/no/such/route/123")
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'assistant_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "/no/such/route/123" not in text
    assert "assistant_http_request_duration_seconds_bucket" in text


async def test_error_shapes(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    router = APIRouter()

    @router.post("/_test/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"count": body.count}

    @router.get("/_test/boom")
    async def boom() -> None:
        raise RuntimeError(f"leaked secret {INSECURE_SECRET} password=hunter2")

    app.include_router(router)

    missing = await client.get("/definitely/not/here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound" and "detail" in missing.json()

    malformed = await client.post(
        "/_test/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    assert malformed.json()["error"] == "RequestValidationError"

    invalid = await client.post("/_test/echo", json={"count": "many"})
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["loc"][-1] == "count"

    crash = await client.get("/_test/boom")
    assert crash.status_code == 500
    body = crash.json()
    assert body["error"] == "InternalError" and body["correlation_id"]
    assert "hunter2" not in crash.text and INSECURE_SECRET not in crash.text
    assert "Traceback" not in crash.text and "RuntimeError" not in crash.text


async def test_openapi_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/readyz" in schema["paths"]


async def test_readyz_is_bounded_when_a_connector_hangs(data_dir: Path) -> None:
    """A peer that accepts and never answers costs /readyz one check timeout, no more."""
    import asyncio
    import time

    from assistant.app import create_app
    from assistant.services import Services
    from tests.conftest import SEED_DIR

    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # keep the connection open, say nothing

    peer = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = peer.sockets[0].getsockname()[1]
    settings = Settings(
        data_dir=data_dir,
        sandbox={"seed_dir": SEED_DIR},
        server={"readiness_timeout_seconds": 0.3},
        governance={"runner": "off"},
        connectors=[
            {
                "name": "silent-mail",
                "slug": "imap.email",
                "tenant": "default",
                "config": {
                    "address": "dana@northwind.example",
                    "imap_host": "127.0.0.1",
                    "imap_port": port,
                    "password": "not-used-here",
                },
            }
        ],
    )
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    await engine.dispose()
    services = await Services.build(settings)
    try:
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            started = time.monotonic()
            response = await http.get("/readyz")
            elapsed = time.monotonic() - started
    finally:
        await services.aclose()
        peer.close()
        for writer in held:
            writer.close()
    body = response.json()
    silent_mail = next(c for c in body["checks"]["connectors"] if c["name"] == "silent-mail")
    assert silent_mail["status"] == "down" and silent_mail["detail"] == "timeout"
    assert body["status"] == "degraded"
    # Bounded by the configured per-check limit (0.3 s), far below the old fixed 3 s.
    assert elapsed < 2.5
