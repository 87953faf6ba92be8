"""The OpenAPI 3.1 document, assembled from each resource module's OPENAPI_PATHS."""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "required": ["title"],
    "properties": {"title": {"type": "string"}, "description": {"type": "string"}},
}


def error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def json_response(description: str, schema: dict | None = None) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SECURED = [{"bearer": []}]
AUTH_ERRORS = {"401": error("not logged in"), "403": error("not allowed")}


def operation(summary: str, op_id: str, responses: dict, *, body: dict | None = None,
              params: list | None = None, secured: bool = True) -> dict:
    """One OpenAPI operation; secured ones get the bearer scheme and the 401/403 answers."""
    spec = {"summary": summary, "operationId": op_id, "responses": {**responses, **(AUTH_ERRORS if secured else {})}}
    if secured:
        spec["security"] = SECURED
    if body:
        spec["requestBody"] = json_body(body)
    if params:
        spec["parameters"] = params
    return spec


def _with_input_errors(spec: dict) -> dict:
    """Any operation taking parameters or a body may answer 400 (a malformed id, a blank query value)."""
    if (spec.get("parameters") or spec.get("requestBody")) and "400" not in spec.get("responses", {}):
        spec = {**spec, "responses": {**spec["responses"], "400": error("invalid parameter or body")}}
    return spec


def build_document(modules, *more_paths: dict) -> dict:
    """The document for every module's OPENAPI_PATHS, plus `more_paths`."""
    paths: dict[str, dict] = {}
    for described in [getattr(module, "OPENAPI_PATHS", {}) for module in modules] + list(more_paths):
        for path, operations in described.items():
            paths.setdefault(path, {}).update({m: _with_input_errors(op) for m, op in operations.items()})
    return {
        "openapi": "3.1.0",
        "info": {"title": "widip", "version": "0.1.0",
                 "description": "WIDIP automation platform: Sentinel, Assist, WIBOT, SAFEGUARD."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
