"""The FastAPI application factory and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from assistant import __version__
from assistant.api import actions as actions_api
from assistant.api import audit as audit_api
from assistant.api import auth as auth_api
from assistant.api import chat as chat_api
from assistant.api import connectors as connectors_api
from assistant.api import erp as erp_api
from assistant.api import gate as gate_api
from assistant.api import health
from assistant.api import production as production_api
from assistant.api import review as review_api
from assistant.api import schedule as schedule_api
from assistant.api import triage as triage_api
from assistant.api.errors import install_error_handlers
from assistant.api.openapi import install_openapi
from assistant.cli_support import log_format
from assistant.core.logging import configure_logging
from assistant.core.middleware import (
    CorrelationIdMiddleware,
    MetricsMiddleware,
    RequestLimitsMiddleware,
    RequestMetrics,
)
from assistant.core.settings import Settings, get_settings
from assistant.core.startup import resume_collector
from assistant.ingestion import push as mail_push
from assistant.services import Services
from assistant.web import install as install_web

log = structlog.stdlib.get_logger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app. ``services`` may be injected (tests); otherwise built in the lifespan."""
    settings = settings or (services.settings if services else get_settings())
    metrics = services.metrics if services else RequestMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = services is None
        app.state.services = services or await Services.build(settings, metrics=metrics)
        if settings.governance.runner != "off":
            from assistant.governance_app import start_governance

            app.state.governance = await start_governance(app.state.services)
        log.info("app.started", environment=settings.environment.value, version=__version__)
        # Started: what start-up built is frozen and garbage collection resumes (a no-op
        # unless the console script paused it; see assistant.core.startup).
        resume_collector()
        try:
            yield
        finally:
            if getattr(app.state, "governance", None) is not None:
                await app.state.governance.stop()
            if owned:
                await app.state.services.aclose()
            log.info("app.stopped")

    configure_logging(settings.log.level, log_format(settings))
    # Swagger UI and ReDoc from the installed fastapi-offline package, not a CDN.
    app = FastAPIOffline(
        title="Executive Assistant",
        version=__version__,
        lifespan=lifespan,
        description="Governed AI executive assistant: triage, drafting, scheduling, ERP.",
        static_url="/docs/static",
    )
    install_openapi(app)
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    # Added innermost first: correlation ids, then metrics, then the limits, then the app.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.server.max_body_bytes,
        max_header_bytes=settings.server.max_header_bytes,
        max_json_depth=settings.server.max_json_depth,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(CorrelationIdMiddleware)
    # Routes are matched in the order they are included, each tried in turn: the busiest
    # API (the review queue, actions) before the many sign-in and key routes.
    app.include_router(health.router)
    app.include_router(review_api.router)
    app.include_router(actions_api.router)
    app.include_router(audit_api.router)
    app.include_router(auth_api.router)
    app.include_router(triage_api.router)
    app.include_router(schedule_api.router)
    app.include_router(connectors_api.router)
    app.include_router(erp_api.router)
    app.include_router(gate_api.router)
    app.include_router(production_api.router)
    app.include_router(chat_api.router)
    app.include_router(mail_push.router)
    install_web(app)
    return app
