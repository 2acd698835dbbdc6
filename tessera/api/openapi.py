"""The admin API's OpenAPI document, saying what the server really answers.

FastAPI's generated document promises a 422 with its own validation body on every
operation, which this server never sends: every error is `{"success": false, "code",
"message"}` (tessera/errors.py), with 400 for bad input, 401 without the admin token, and
404, 409, 413 or 503 where they apply. Clients generated from the document, and a schema
fuzzer checking answers against it, need the truth; Swagger UI needs the bearer scheme to
send the token.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["success", "code", "message"],
    "properties": {
        "success": {"type": "boolean", "const": False},
        "code": {"type": "string", "description": "Stable, e.g. invalid_field, not_found"},
        "message": {"type": "string", "description": "What failed, the value and the fix"},
        "field": {"type": "string", "description": "The field at fault, when there is one"},
    },
}
_ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    """Serve `document(app)` at /openapi.json (built once, on first request)."""

    def cached() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = cached  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the error answers and the admin token's scheme declared."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    schemas["Error"] = ERROR
    components["securitySchemes"] = {
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The admin token: DATA_DIR/admin-token or TESSERA_ADMIN_TOKEN",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            _declare_errors(operation, admin=path.startswith("/api/"))
    return schema


def _declare_errors(operation: dict[str, Any], *, admin: bool) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    responses["400"] = {"description": "Invalid input; the message names the field",
                        "content": _ERROR_BODY}  # fmt: skip
    if admin:
        operation["security"] = [{"adminToken": []}]
        responses["401"] = {"description": "No or wrong admin token", "content": _ERROR_BODY}
    responses["default"] = {
        "description": "Another error: 404 not found, 409 conflict, 413 too large, 503 store "
        "unavailable",
        "content": _ERROR_BODY,
    }
