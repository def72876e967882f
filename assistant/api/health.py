"""Liveness, readiness and Prometheus metrics."""

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from assistant.api.deps import ServicesDep
from assistant.core.clock import utcnow
from assistant.core.db import current_revision, head_revision, ping
from assistant.services import Services
from governance.workers import live_workers

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _workers(services: Services, limit_s: float) -> dict[str, Any]:
    """Whether some process executes approved actions (a heartbeat younger than three
    periods); without one, approved actions wait in ``scheduled``."""
    governance = services.settings.governance
    if governance.runner == "off":
        return {"status": "off"}
    async with services.sessions() as session:
        seen = await asyncio.wait_for(
            live_workers(session, now=utcnow(), within=3 * governance.heartbeat_seconds), limit_s
        )
    return {"status": "ok" if seen["alive"] else "missing", **seen}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, migrations at head, a worker alive, connectors",
)
async def readyz(services: ServicesDep) -> JSONResponse:
    # Every check is bounded: a hung database or peer answers "timeout", never a hung probe.
    timeout = services.settings.server.readiness_timeout_seconds
    checks: dict[str, Any] = {}
    ready = True
    try:
        await asyncio.wait_for(ping(services.engine), timeout)
        checks["database"] = {"status": "ok"}
    except Exception as exc:  # readiness reports, never raises
        ready = False
        checks["database"] = {"status": "down", "detail": type(exc).__name__}
    workers: dict[str, Any] = {"status": "unknown"}
    if ready:
        try:
            current = await asyncio.wait_for(current_revision(services.engine), timeout)
            head = head_revision(services.settings.database_url)
            at_head = current == head
            checks["migrations"] = {
                "status": "ok" if at_head else "behind",
                "current": current,
                "head": head,
            }
            if at_head:
                workers = await _workers(services, timeout)
        except Exception as exc:
            at_head = False
            checks["migrations"] = {"status": "unknown", "detail": type(exc).__name__}
        ready = ready and at_head
    else:
        checks["migrations"] = {"status": "unknown"}
    checks["workers"] = workers
    connectors = await services.connectors.check_all(timeout)
    checks["connectors"] = connectors
    # A down mail provider or a missing worker does not pull the API out of rotation (it
    # still takes proposals and reviews): both are reported as degraded.
    degraded = workers["status"] not in {"ok", "off"} or any(
        c["status"] != "ok" for c in connectors
    )
    status = "not_ready" if not ready else ("degraded" if degraded else "ready")
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
