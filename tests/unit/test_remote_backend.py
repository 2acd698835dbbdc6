"""The CLI's remote backend, over httpx.MockTransport: paths, bodies, and the server's
error codes kept (no socket, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tessera.audiences.feeds import FeedOptions
from tessera.backend import LookalikeRequest, RemoteBackend
from tessera.errors import StoreUnavailable, TesseraError

LOOKALIKE = {"name": "like-vip", "seed": "vip", "reach": 10, "accuracy": None,
             "method": "weights", "population": "all"}  # fmt: skip


SEGMENT = {"id": "seg_1", "name": "vip", "query": "known", "description": "known people",
           "created_at": "2026-11-30T10:00:00Z", "updated_at": "2026-11-30T10:00:00Z",
           "evaluated_at": None, "tree": {"kind": "known"}, "size": 3, "exposed": False,
           "status": "ok", "failure": None, "failed_at": None}  # fmt: skip
LIKE = {"name": "like-vip", "seed": "vip", "seed_size": 3, "method": "weights",
        "population": "all", "profiles_scored": 9, "features": 2, "reach": 10,
        "weights": [], "evaluation": {"held_out": 1, "curve": []}}  # fmt: skip
ANSWERS: dict[str, object] = {
    "/api/segments": SEGMENT,
    "/api/segments/vip": SEGMENT,
    "/api/segments/vip/unexpose": SEGMENT,
    "/api/segments/vip/why/email:jane@example.com": {
        "segment": "vip", "profile_id": "p1", "condition": "known", "holds": True},
    "/api/audiences/vip/holdout": {"audience": "vip", "share": 0.1, "members": 3, "held_out": 0},
    "/api/audiences/lookalikes": LIKE, "/api/audiences/lookalikes/like-vip": LIKE,
    "/api/audiences/signals": {"signals": 0, "categories": 0},
}  # fmt: skip
FEED = {"provider": "travelco", "rows": 1, "accepted": 1, "rejected": 0, "memberships": 1,
        "segments": 1, "reject_file": None}  # fmt: skip


def backend(handler: httpx.MockTransport) -> RemoteBackend:
    return RemoteBackend("http://tessera.test", "token", transport=handler)


def test_remote_errors_keep_the_server_code_status_and_message() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {"success": False, "code": "invalid_segment",
                "message": "unknown computed trait 'order_cont'"}  # fmt: skip
        return httpx.Response(400, json=body)

    with pytest.raises(TesseraError) as caught:
        backend(httpx.MockTransport(answer)).create_segment("x", "computed.order_cont > 1")
    assert (caught.value.code, caught.value.status) == ("invalid_segment", 400)
    assert "unknown computed trait 'order_cont'" in str(caught.value)


def test_remote_error_without_a_json_body_keeps_the_status() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="bad gateway"))
    with pytest.raises(TesseraError) as caught:
        backend(transport).list_segments()
    assert (caught.value.code, caught.value.status) == ("error", 502)
    assert "bad gateway" in str(caught.value)


def test_an_unreachable_server_is_store_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(StoreUnavailable) as caught:
        backend(httpx.MockTransport(refuse)).show_segment("vip")
    assert "cannot reach the server at http://tessera.test" in str(caught.value)


def test_each_use_case_calls_its_route() -> None:
    seen: list[tuple[str, str, object]] = []

    def record(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content and not request.headers.get(
            "content-type", "").startswith("multipart") else None  # fmt: skip
        seen.append((request.method, request.url.path, body))
        assert request.headers["authorization"] == "Bearer token"
        return httpx.Response(200, json=ANSWERS.get(request.url.path, {}))

    remote = backend(httpx.MockTransport(record))
    remote.create_segment("vip", "computed.order_count >= 2")
    remote.update_segment("vip", "known")
    remote.expose_segment("vip", False)
    remote.segment_why("vip", "email:jane@example.com")
    remote.holdout("vip", 0.1)
    remote.create_lookalike(LookalikeRequest("like-vip", "vip", reach=10))
    remote.load_signals({"signals": []})
    remote.set_lookalike_reach("like-vip", 20)
    assert seen == [
        (
            "POST",
            "/api/segments",
            {"name": "vip", "query": "computed.order_count >= 2", "exposed": False},
        ),
        ("PUT", "/api/segments/vip", {"query": "known"}),
        ("POST", "/api/segments/vip/unexpose", None),
        ("GET", "/api/segments/vip/why/email:jane@example.com", None),
        ("POST", "/api/audiences/vip/holdout", {"share": 0.1}),
        ("POST", "/api/audiences/lookalikes", LOOKALIKE),
        ("PUT", "/api/audiences/signals", {"signals": []}),
        ("PATCH", "/api/audiences/lookalikes/like-vip", {"reach": 20}),
    ]


def test_a_feed_upload_sends_the_options_as_form_fields(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("id,id_type,segments\nc1,cookie_id,720\n")
    forms: list[bytes] = []

    def record(request: httpx.Request) -> httpx.Response:
        forms.append(request.read())
        return httpx.Response(200, json=FEED)

    result = backend(httpx.MockTransport(record)).import_feed(feed, FeedOptions("travelco"))
    assert result.model_dump() == FEED
    (form,) = forms
    assert b'name="provider"\r\n\r\ntravelco' in form
    assert b'name="lifetime_days"\r\n\r\n90' in form
    assert b'name="cpm"' not in form  # left out when not given


def test_a_missing_upload_file_is_not_found_before_any_request(tmp_path: Path) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(TesseraError) as caught:
        backend(httpx.MockTransport(fail)).load_taxonomy(tmp_path / "nope.tsv", None)
    assert caught.value.code == "not_found"
