"""Schemathesis against the served OpenAPI document: no 5xx, no response that contradicts it.

Every operation of ``/openapi.json`` gets generated requests, valid and invalid, from a
caller holding every role (so that validation and the handlers run, not only the 403 of a
missing permission). Each response is checked for a server error and against the schema:
documented status code, content type, headers and body.

The requests go through Starlette's (httpx) test client, not schemathesis' own requests
transport: caldav's niquests installs urllib3-future over urllib3, and schemathesis'
connection counting does not know its pool container. The checks are schemathesis' own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette import testclient
from starlette.testclient import TestClient

from assistant.core.principal import Role
from assistant.core.settings import Settings
from tests.conftest import SEED_DIR
from tests.fixtures.auth import as_role

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Per operation and mode (valid, invalid); about 60 operations: some 700 requests in all,
#: two to three minutes on a busy two-core machine.
EXAMPLES = 6


class _AppHolder:
    """What ``as_role`` expects: an object with ``.app``."""

    def __init__(self, app: Any) -> None:
        self.app = app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    import asyncio

    from assistant.app import create_app
    from assistant.core.db import create_engine, upgrade

    data = tmp_path_factory.mktemp("schemathesis")
    settings_ = Settings(
        data_dir=data, sandbox={"seed_dir": SEED_DIR}, governance={"runner": "off"}
    )

    async def migrate() -> None:
        engine = create_engine(settings_.database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    app = create_app(settings_)
    as_role(_AppHolder(app), Role.EXECUTIVE, Role.ADMIN, Role.AUDITOR, user_id="fuzz-user")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _send(client: TestClient, case: Any) -> Any:
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    kwargs: dict[str, Any] = {
        "params": case.query or None,
        "headers": headers,
        "cookies": case.cookies or None,
    }
    if not isinstance(case.body, NotSet):
        media_type = case.media_type or "application/json"
        headers.setdefault("content-type", media_type)
        if isinstance(case.body, bytes):
            kwargs["content"] = case.body
        elif "json" in media_type:
            kwargs["content"] = json.dumps(case.body).encode()
        elif media_type == "application/x-www-form-urlencoded" and isinstance(case.body, dict):
            kwargs["data"] = case.body
        else:
            kwargs["content"] = case.body if isinstance(case.body, bytes) else str(case.body)
    try:
        return client.request(case.method, case.formatted_path, follow_redirects=False, **kwargs)
    except testclient.httpx.InvalidURL:  # httpx2 or httpx, whichever Starlette uses
        # The client itself refuses a URL past its limit (64 KiB); nothing reached the app.
        reject()


def _unconfigured_model(response: Any) -> bool:
    """The chat answers 503 by design while the deployment has no language model (this
    fixture runs without one, as the embedded default does): not a server error to fix."""
    if response.status_code != 503:
        return False
    body = response.json()
    return body.get("error") == "ServiceUnavailableError" and str(
        body.get("detail", "")
    ).startswith("no language model is configured")


def _fuzz(client: TestClient, operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        response = _send(client, case)
        if _unconfigured_model(response):
            return
        case.validate_response(response, checks=CHECKS)

    run()


def test_served_api_conforms_to_its_schema(served: TestClient) -> None:
    # One test walks every operation (schemathesis' pytest plugin does not load on pytest 9).
    document = served.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50  # a schema that lost its operations would pass vacuously
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(served, operation, mode)
            except Unsatisfiable:
                continue  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # collect all, then report
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
