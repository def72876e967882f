"""The served OpenAPI document, made to tell the truth about the responses.

FastAPI documents its own 422 body and nothing of the errors our handlers and middleware
answer; here every operation gets the error shape for each status it can answer, and the
three ways to authenticate (:data:`assistant.api.deps.SECURITY_SCHEMES`) are declared on
every operation that depends on :func:`assistant.api.deps.get_principal` (which also gives
Swagger its Authorize button).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic.json_schema import models_json_schema

from assistant.api.deps import SECURITY_SCHEMES, get_principal
from assistant.api.schemas import ErrorOut, ProblemOut, ValidationErrorOut

_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_VALIDATION_REF = {"$ref": "#/components/schemas/ValidationErrorOut"}

#: Every operation can answer these: the middleware's limits, a malformed request, a fault.
_ALWAYS = {
    404: "Not found: a resource the request names, or a connector or mode it needs.",
    413: "The request body is larger than the limit.",
    422: "The request is malformed (the list of problems is in `errors`).",
    431: "The request line and headers are larger than the limit.",
    500: "An unexpected fault; quote the correlation id.",
    503: "A dependency (database, connector, authentication) is unavailable.",
}
_SECURED = {
    401: "No valid credentials.",
    403: "The caller may not do this, or not on this executive's data.",
}
_WRITES = {
    400: "The request breaks a rule of the resource.",
    409: "The resource is not in a state that allows this.",
}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _error_response(description: str, status: int) -> dict[str, Any]:
    schema = _VALIDATION_REF if status == 422 else _ERROR_REF
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        "headers": {
            "X-Correlation-ID": {
                "description": "The request's correlation id (also in the body).",
                "schema": {"type": "string"},
            }
        },
    }


def _authenticates(dependant: Dependant) -> bool:
    return dependant.call is get_principal or any(
        _authenticates(sub) for sub in dependant.dependencies
    )


def _declare_security(app: FastAPI, schema: dict[str, Any]) -> None:
    """The security schemes, required by each operation that authenticates its caller."""
    paths = schema.get("paths", {})
    requirement: list[dict[str, list[str]]] = [{s.scheme_name: []} for s in SECURITY_SCHEMES]
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        if route.path_format not in paths or not _authenticates(route.dependant):
            continue
        for method in route.methods or ():
            operation = paths[route.path_format].get(method.lower())
            if operation is not None:
                operation["security"] = [dict(alternative) for alternative in requirement]
    schema.setdefault("components", {})["securitySchemes"] = {
        scheme.scheme_name: jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
        for scheme in SECURITY_SCHEMES
    }


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with our error shapes and status codes (cached)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    _declare_security(app, schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, definitions = models_json_schema(
        [(model, "serialization") for model in (ErrorOut, ProblemOut, ValidationErrorOut)],
        ref_template="#/components/schemas/{model}",
    )
    components.update(definitions.get("$defs", {}))
    # FastAPI's own 422 shape is never answered: our handler replaces it.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for item in schema.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            codes = dict(_ALWAYS)
            if operation.get("security"):
                codes |= _SECURED
            if method in ("post", "put", "patch", "delete"):
                codes |= _WRITES
            responses = operation.setdefault("responses", {})
            for status, description in codes.items():
                current = responses.get(str(status))
                if current is None or status == 422:
                    responses[str(status)] = _error_response(description, status)
                elif "content" not in current or "application/json" in current["content"]:
                    current.setdefault("content", {})["application/json"] = {"schema": _ERROR_REF}
    app.openapi_schema = schema
    return schema


def install_openapi(app: FastAPI) -> None:
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
