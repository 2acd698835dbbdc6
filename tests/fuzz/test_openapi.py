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
)

from tessera.app import create_app
from tessera.audiences import signals
from tessera.profiles import computed
from tessera.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.fuzz.conftest import EXAMPLES, KNOWN, SEED, TRACEBACK, FuzzServer, Known, hostile_strings

# Not positive_data_acceptance: a schema-valid string can still be a bad reference (400).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    ignored_auth,
]


def sometimes_hostile(values: Any) -> Any:
    """The generated parameters or body, each string field maybe replaced by a hostile one."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries(
        {
            key: st.one_of(st.just(value), hostile_strings)
            if isinstance(value, str)
            else st.just(value)
            for key, value in values.items()
        }
    )


# Numbers at the edges of the types that store them: 32 and 64 bits, floats, days.
hostile_numbers = st.sampled_from([0, -1, 36_501, 2**31, 2**63, 10**10, 10**20, 1e308, -0.0])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    hostile_numbers,
    st.floats(allow_nan=False, allow_infinity=False),
    hostile_strings,
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def mostly(likely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four a value the server expects here, else any JSON value, so that
    the checks behind the first field are passed often enough to reach the next."""
    return st.one_of(likely, likely, likely, json_values)


def either(*likely: Any) -> st.SearchStrategy[Any]:
    return mostly(st.sampled_from(likely))


names = mostly(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True))
keys = st.one_of(st.text(max_size=8), hostile_strings)
computed_trait = st.fixed_dictionaries(
    {"name": names, "function": either(*computed.FUNCTIONS)},
    optional={
        "event": either("Order Completed", "Product Viewed"),
        "property": either("revenue", "a\\b", 'a"b', ""),
        "where": st.one_of(st.dictionaries(keys, json_scalars, max_size=2), json_values),
        "window_days": mostly(st.one_of(hostile_numbers, st.integers())),
    },
)
signal_trait = st.fixed_dictionaries(
    {"name": names},
    optional={
        "when": st.one_of(
            st.dictionaries(st.one_of(st.sampled_from(signals.CONDITIONS), keys),
                            either("/travel", "FR", "mobile")),
            json_values,
        ),
        "lifetime_days": mostly(st.one_of(hostile_numbers, st.integers())),
        "value": json_values,
    },
)  # fmt: skip
signals_document = st.fixed_dictionaries(
    {"signals": st.one_of(st.lists(signal_trait, max_size=3), json_values)},
    optional={
        "taxonomy": either(KNOWN.taxonomy, "iab-content"),
        "categories": st.one_of(st.dictionaries(keys, either("1", "720")), json_values),
    },
)
# Bodies the schema leaves free (a JSON object): documents with the keys the server reads,
# each with a likely or a random value, so the checks behind them run.
FREE_FORM_BODIES = {
    "POST /api/computed-traits": computed_trait,
    "PUT /api/audiences/signals": signals_document,
}


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
        names = existing_names(KNOWN, operation.method, operation.path)
        return {key: names.get(key, value) for key, value in parameters.items()}

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
