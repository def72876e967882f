"""A checkpoint witness server: the HTTP anchor's peer (protocol in governance/anchor.py).

Append-only by construction: there is no route that replaces or deletes an entry. A second,
different entry for a tenant and seq is refused with 409 (a fork); the same entry again is
answered 200 (appends are retried). A bearer token is required when one is configured.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

_FIELDS = ("v", "tenant_id", "seq", "row_hash", "created_at", "key_fingerprint", "signature")


class Witness:
    """The witness's log, kept in memory, and its app."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.log: list[dict[str, Any]] = []
        self.index: dict[tuple[str, int], dict[str, Any]] = {}
        self.fail_next = 0  # answer this many requests with 503 (to exercise retries)
        self.app = self._build()

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def guard(request: Request, call_next: Any) -> Any:
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if self.fail_next > 0:
                self.fail_next -= 1
                return JSONResponse({"error": "unavailable"}, status_code=503)
            return await call_next(request)

        @app.post("/v1/checkpoints")
        async def append(request: Request) -> JSONResponse:
            body = await request.json()
            if not isinstance(body, dict) or set(body) != set(_FIELDS):
                return JSONResponse({"error": "malformed entry"}, status_code=422)
            key = (str(body["tenant_id"]), int(body["seq"]))
            held = self.index.get(key)
            if held is not None:
                if held == body:
                    return JSONResponse({"index": self.log.index(held)}, status_code=200)
                return JSONResponse({"error": "a different entry is held"}, status_code=409)
            self.log.append(body)
            self.index[key] = body
            return JSONResponse({"index": len(self.log) - 1}, status_code=201)

        @app.get("/v1/checkpoints")
        async def entries(
            after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=1000)
        ) -> dict[str, Any]:
            page = self.log[after : after + limit]
            following = after + len(page)
            return {"entries": page, "next": following if following < len(self.log) else None}

        @app.get("/v1/heads")
        async def heads() -> dict[str, Any]:
            latest: dict[str, int] = {}
            for tenant, seq in self.index:
                latest[tenant] = max(latest.get(tenant, 0), seq)
            return {"heads": latest}

        return app
