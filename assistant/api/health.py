"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from assistant.api.deps import ServicesDep
from assistant.core.db import current_revision, head_revision, ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable, migrations at head, connectors")
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        await ping(services.engine)
        checks["database"] = {"status": "ok"}
    except Exception as exc:  # readiness reports, never raises
        ready = False
        checks["database"] = {"status": "down", "detail": type(exc).__name__}
    if ready:
        current = await current_revision(services.engine)
        head = head_revision(services.settings.database_url)
        at_head = current == head
        ready = ready and at_head
        checks["migrations"] = {
            "status": "ok" if at_head else "behind",
            "current": current,
            "head": head,
        }
    else:
        checks["migrations"] = {"status": "unknown"}
    connectors = await services.connectors.check_all()
    checks["connectors"] = connectors
    degraded = any(c["status"] != "ok" for c in connectors)
    status = "not_ready" if not ready else ("degraded" if degraded else "ready")
    # A down mail provider does not pull the service out of rotation: it is reported.
    return JSONResponse({"status": status, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
