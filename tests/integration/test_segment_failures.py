"""One segment whose SQL cannot run never stops the others (issue 10, A.1): it is marked
failed with its reason, the others' memberships keep changing, the pipeline carries on,
and the failed state clears when the segment is fixed. A query that cannot be checked or
run is refused with a clear error and nothing is saved."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

import orjson
import pytest

from tessera.errors import InvalidField
from tessera.pipeline import Pipeline
from tessera.runtime import Runtime
from tessera.segments import service
from tessera.segments.errors import SegmentCannotRun, SegmentValueError
from tessera.segments.tree import Did, EventRef, Window, to_json
from tests.integration.helpers import send

COMPUTED: set[str] = set()


def order(user: str, message: str, country: str = "FR") -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "messageId": message,
        "properties": {"revenue": 10},
        "timestamp": "2026-03-01T10:00:00Z",
        "context": {"traits": {"country": country}},
    }


def store_as_an_older_version_could(runtime: Runtime, name: str, tree: Any, query: str) -> str:
    """A segment written straight into the store, past today's checker, as a version
    without it saved `did "Order Completed" between "1997-13-01" and "1997-04-01"`."""
    segment_id = "seg_" + secrets.token_hex(6)
    moment = datetime(2026, 3, 1)
    runtime.store.execute(
        "INSERT INTO segments (id, name, query, tree, description, created_at, updated_at, "
        "evaluated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        [segment_id, name, query, tree, "an old segment", moment, moment],
    )
    return segment_id


BAD_QUERY = 'did "Order Completed" between "1997-13-01" and "1997-04-01"'
BAD_TREE = orjson.dumps(
    to_json(Did(EventRef("Order Completed"), Window(start="1997-13-01", end="1997-04-01")))
).decode()


def sizes(runtime: Runtime) -> dict[str, int]:
    return {s["name"]: s["size"] for s in service.list_segments(runtime.store)}


def statuses(runtime: Runtime) -> dict[str, str]:
    return {s["name"]: s["status"] for s in service.list_segments(runtime.store)}


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    send(runtime, [order("ann", "1"), order("bob", "2", "DE")])
    runtime.pipeline.process()
    service.create(runtime.store, "buyers", 'did "Order Completed"', COMPUTED)
    service.create(runtime.store, "fr", 'traits.country = "FR"', COMPUTED)
    return runtime


def test_the_reported_date_query_is_refused_and_nothing_is_saved(shop: Runtime) -> None:
    with pytest.raises(SegmentValueError) as caught:
        service.create(shop.store, "bad", BAD_QUERY, COMPUTED)
    assert caught.value.status == 400 and caught.value.code == "segment_invalid_value"
    assert "'1997-13-01'" in caught.value.message and "YYYY-MM-DD" in caught.value.message
    assert "bad" not in sizes(shop)


def test_a_failing_segment_is_marked_failed_and_the_others_carry_on(shop: Runtime) -> None:
    store_as_an_older_version_could(shop, "bad", BAD_TREE, BAD_QUERY)
    send(shop, [order("cid", "3"), order("dan", "4")])
    shop.pipeline.process()  # streaming, then the sweep: neither raises
    assert sizes(shop) == {"bad": 0, "buyers": 4, "fr": 3}
    assert statuses(shop) == {"bad": "failed", "buyers": "ok", "fr": "ok"}
    bad = service.get(shop.store, "bad")
    assert bad["status"] == "failed" and bad["failed_at"].endswith("Z")
    assert bad["failure"].startswith("'1997-13-01' is not a date that exists")
    # Nothing left for the pipeline to retry: it is caught up.
    assert shop.pipeline.process().events == 0


def test_streaming_isolates_the_failing_segment_within_its_layer(shop: Runtime) -> None:
    """The streaming refresh runs all segments of a layer in one query: when it fails,
    each is run alone, so the good ones still change."""
    store_as_an_older_version_could(shop, "bad", BAD_TREE, BAD_QUERY)
    send(shop, [order("cid", "3")])
    Pipeline(shop.store, shop.settings).process(sweep=False)
    assert sizes(shop) == {"bad": 0, "buyers": 3, "fr": 2}
    assert statuses(shop)["bad"] == "failed"


def test_a_segment_whose_sql_fails_on_a_row_is_isolated(shop: Runtime) -> None:
    """A failure only DuckDB finds (here a malformed row it must read) is isolated the
    same way: the layer's one query fails, each segment is run alone."""
    service.create(shop.store, "web", "seen on web", COMPUTED)
    shop.store.execute("UPDATE profile_summaries SET channels = 'not json'")
    send(shop, [order("cid", "3"), order("dan", "4")])  # half of everyone: all evaluated
    shop.pipeline.process(sweep=False)  # its profiles in memory: it reads no summary
    assert sizes(shop) == {"buyers": 4, "fr": 3, "web": 2}
    assert statuses(shop) == {"buyers": "ok", "fr": "ok", "web": "failed"}
    failure = service.get(shop.store, "web")["failure"]
    assert failure.startswith("InvalidInputException: ") and "Malformed JSON" in failure


def test_a_failing_segment_is_logged_once_by_name_without_its_reason(
    shop: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The reason may quote profile data (a value DuckDB could not convert): the log
    names the segment and the kind of error; and a segment that keeps failing is not
    logged again at every refresh."""
    service.create(shop.store, "web", "seen on web", COMPUTED)
    caplog.set_level(logging.WARNING, logger="tessera.segments")
    for batch in range(3):
        shop.store.execute("UPDATE profile_summaries SET channels = '\"jane@example.com'")
        # As many new people as there were: the refresh covers everyone, bad rows too.
        count = 2 ** (batch + 1)
        send(shop, [order(f"b{batch}-{n}", f"b{batch}-{n}") for n in range(count)])
        shop.pipeline.process(sweep=False)
    failed = [r for r in caplog.records if "failed to evaluate" in r.getMessage()]
    assert len(failed) == 1 and "'web'" in failed[0].getMessage()
    assert "jane@example.com" in service.get(shop.store, "web")["failure"]
    assert "jane@example.com" not in caplog.text


def test_an_unreadable_stored_tree_is_a_failure_too(shop: Runtime) -> None:
    store_as_an_older_version_could(shop, "garbled", '{"kind": "did"}', 'did "x"')
    send(shop, [order("cid", "3")])
    shop.pipeline.process()
    assert statuses(shop) == {"buyers": "ok", "fr": "ok", "garbled": "failed"}
    assert sizes(shop)["buyers"] == 3
    service.delete(shop.store, "garbled")
    assert "garbled" not in sizes(shop)


def test_updating_a_failed_segment_fixes_it_and_clears_the_failure(shop: Runtime) -> None:
    store_as_an_older_version_could(shop, "bad", BAD_TREE, BAD_QUERY)
    shop.pipeline.refresh_computed_traits()  # the sweep: marks it failed
    assert statuses(shop)["bad"] == "failed"
    fixed = service.update(
        shop.store,
        "bad",
        'did "Order Completed" between "2026-01-01" and "2026-04-01"',
        COMPUTED,
    )
    assert fixed["status"] == "ok" and fixed["failure"] is None and fixed["size"] == 2
    shop.pipeline.refresh_computed_traits()
    assert statuses(shop)["bad"] == "ok"


def test_a_segment_that_succeeds_again_is_no_longer_failed(shop: Runtime) -> None:
    segment_id = shop.store.fetch_one("SELECT id FROM segments WHERE name = 'fr'")
    assert segment_id
    shop.store.execute(
        "INSERT INTO segment_failures VALUES (?, ?, ?)",
        [segment_id[0], datetime(2026, 3, 1), "ConversionException: from an earlier run"],
    )
    assert statuses(shop)["fr"] == "failed"
    send(shop, [order("cid", "3")])
    Pipeline(shop.store, shop.settings).process(sweep=False)
    assert statuses(shop)["fr"] == "ok"


def test_a_failed_update_changes_nothing(shop: Runtime) -> None:
    before = service.get(shop.store, "fr")
    with pytest.raises(SegmentValueError):
        service.update(shop.store, "fr", 'did "Order Completed" in last 99999999999 days', set())
    after = service.get(shop.store, "fr")
    assert after["query"] == before["query"] and after["size"] == before["size"]


def test_an_update_cannot_make_a_segment_depend_on_itself(shop: Runtime) -> None:
    service.create(shop.store, "fr-buyers", 'in segment "fr" and in segment "buyers"', COMPUTED)
    with pytest.raises(InvalidField, match="fr -> fr-buyers -> fr"):
        service.update(shop.store, "fr", 'in segment "fr-buyers"', COMPUTED)
    with pytest.raises(InvalidField, match="cannot depend on itself"):
        service.update(shop.store, "fr", 'in segment "fr"', COMPUTED)


def test_why_on_a_failing_segment_is_a_clear_error(shop: Runtime) -> None:
    store_as_an_older_version_could(shop, "bad", BAD_TREE, BAD_QUERY)
    profile = shop.store.fetch_one("SELECT profile_id FROM profile_summaries LIMIT 1")
    assert profile
    with pytest.raises(SegmentCannotRun) as caught:
        service.why(shop.store, "bad", profile[0])
    assert caught.value.status == 400 and "1997-13-01" in caught.value.message
