"""The admin API's OpenAPI document declares what the server really answers on errors."""

from __future__ import annotations

from pathlib import Path

from tessera.app import create_app
from tessera.settings import Settings


def test_every_operation_declares_the_errors_the_server_sends_and_none_it_does_not() -> None:
    app = create_app(Settings(data_dir=Path("/nonexistent/tessera"), admin_token="x" * 32))
    document = app.openapi()
    assert document["components"]["schemas"]["Error"]["required"] == ["success", "code", "message"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert "422" not in responses, where  # never sent: bad input is a 400
            assert {"400", "default"} <= set(responses), where
            if path.startswith("/api/"):
                assert "401" in responses and operation["security"] == [{"adminToken": []}], where
