"""Schemathesis over every operation of the admin OpenAPI, signed in with the admin token.

Each generated request (valid and invalid, by the schema) must get an answer below 500,
in the declared shape where a shape is declared, and must leave no traceback in the
server's log. Path names are drawn from the schema (mostly unknown: 404) and, half the
time, from the names that exist on the fuzz server, so the code behind them runs too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tessera.app import create_app
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.fuzz.conftest import EXAMPLES, KNOWN, SEED, TRACEBACK, FuzzServer, Known
from tests.fuzz.strategies import FREE_FORM_BODIES, sometimes_hostile

# Not positive_data_acceptance: a schema-valid string can still be a bad reference (400).
# Not allow_header_conformance: DELETE /api/segments/overlap reaches DELETE /{name}, so the
# server's Allow there (GET, DELETE) is right where the check wants the template's (GET).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    ignored_auth,
    unsupported_method,
]


def existing_names(known: Known, method: str, path: str) -> dict[str, str]:
    """The path parameters that name something on the fuzz server, for one operation.

    DELETE gets the spare objects, so deleting runs once for real and the objects the
    other operations need stay.
    """
    deleting = method.upper() == "DELETE"
    if path.startswith("/api/sources"):
        name = known.source
    elif path.startswith("/api/segments"):
        name = known.spare_segment if deleting else known.segment
    elif path.startswith("/api/computed-traits"):
        name = known.spare_trait if deleting else known.computed_trait
    elif path.startswith("/api/audiences/lookalikes"):
        name = known.spare_lookalike if deleting else known.lookalike
    else:
        name = known.taxonomy
    return {
        "name": name,
        "reference": known.profile,
        "segment": known.segment,
        "campaign": known.campaign,
        "product_id": "run-0",  # in the demo's catalogue
    }


def admin_openapi() -> dict[str, Any]:
    """The admin OpenAPI document, as the app builds it (without starting it)."""
    app = create_app(Settings(data_dir=Path("/nonexistent/tessera-fuzz"), admin_token=ADMIN_TOKEN))
    return app.openapi()


# Loaded at import, so that each operation is a test of its own; the test below checks
# that the running server serves this very document.
admin_schema = schemathesis.openapi.from_dict(admin_openapi())
admin_schema.config.generation.update(max_examples=EXAMPLES)
admin_schema.config.seed = SEED


@admin_schema.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    """Half the time, names that exist on the fuzz server (see existing_names)."""
    operation = context.operation

    def with_existing(parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if not parameters:
            return parameters
        existing = existing_names(KNOWN, operation.method, operation.path)
        return {key: existing.get(key, value) for key, value in parameters.items()}

    return st.one_of(strategy, strategy.map(with_existing)).flatmap(sometimes_hostile)


@admin_schema.hook
def before_generate_query(context: Any, strategy: Any) -> Any:
    return strategy.flatmap(sometimes_hostile)


@admin_schema.hook
def before_generate_body(context: Any, strategy: Any) -> Any:
    operation = context.operation
    structured = FREE_FORM_BODIES.get(f"{operation.method.upper()} {operation.path}")
    if structured is not None:
        strategy = st.one_of(strategy, structured)
    return strategy.flatmap(sometimes_hostile)


def test_the_server_serves_the_fuzzed_document(fuzz_server: FuzzServer) -> None:
    served = httpx.get(f"{fuzz_server.url}/openapi.json").json()
    assert served == admin_openapi()


def test_an_unknown_path_and_a_wrong_method_answer_in_the_error_shape(
    fuzz_server: FuzzServer,
) -> None:
    unknown = httpx.get(
        f"{fuzz_server.url}/api/segments/buyers/why/a%0Ab", headers=fuzz_server.admin
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found" and unknown.json()["success"] is False
    slashes = httpx.get(f"{fuzz_server.url}/api/sources/%2F%2F", headers=fuzz_server.admin)
    assert slashes.status_code == 404 and slashes.json()["code"] == "not_found"  # not the list
    wrong = httpx.put(f"{fuzz_server.url}/api/stats", headers=fuzz_server.admin)
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    assert "allowed: GET" in wrong.json()["message"] and wrong.headers["allow"] == "GET"
    both = httpx.delete(f"{fuzz_server.url}/api/sources", headers=fuzz_server.admin)
    assert both.status_code == 405 and both.headers["allow"] == "GET, POST"


@admin_schema.parametrize()
def test_admin_api_answers_below_500_in_shape_and_logs_no_traceback(
    case: Any, fuzz_server: FuzzServer
) -> None:
    try:
        case.call_and_validate(
            base_url=fuzz_server.url,
            headers=fuzz_server.admin,
            checks=CHECKS,
            timeout=60,
            allow_redirects=False,
        )
    except BaseException as failure:
        failure.add_note(f"server log: {fuzz_server.log.read_new()[-3000:]}")
        raise
    logged = fuzz_server.log.read_new()
    assert TRACEBACK not in logged, f"{case.method} {case.formatted_path}: {logged[-3000:]}"
