"""Lookalikes on a real store with a planted signal: the audience finds the hidden lookalikes,
excludes the seed, explains itself, and is usable as a segment."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import orjson
import pytest
from scipy import sparse

from tessera.audiences import lookalike
from tessera.errors import Conflict, InvalidField
from tessera.runtime import Runtime
from tessera.segments import service
from tests.integration.helpers import send

NOW = datetime(2026, 6, 1)


def test_weights_favour_what_the_seed_shares_and_drop_weak_features() -> None:
    # columns: the seed's mark, a feature everyone has, one slightly commoner in the seed
    rows = [[1, 1, 1]] * 6 + [[1, 1, 0]] * 4 + [[0, 1, 1]] * 30 + [[0, 1, 0]] * 60
    binary = sparse.csr_matrix(np.array(rows, dtype=float))
    seed = np.array([True] * 10 + [False] * 90)
    weights = lookalike.fit_weights(binary, seed)
    assert weights[0] > np.log(3) and weights[1] == 0.0 and weights[2] == 0.0


@pytest.fixture
def shop(runtime: Runtime) -> Runtime:
    messages: list[dict[str, object]] = []
    for n in range(200):
        # 0-29: the seed (known VIPs who read the signal page); 30-59: anonymous visitors
        # who read it too (the lookalikes to find); the rest read it rarely.
        person = {"userId": f"u{n}"} if n < 30 or n >= 60 else {"anonymousId": f"a{n}"}
        if n < 30:
            messages.append({"type": "identify", **person, "messageId": f"i{n}",
                             "traits": {"vip": True}})  # fmt: skip
        reads = 3 if n < 60 else (1 if n % 25 == 0 else 0)
        for k in range(reads):
            messages.append(
                {"type": "track", **person, "event": "Signal Viewed",
                 "messageId": f"s{n}-{k}", "properties": {"category": "signal"}}
            )  # fmt: skip
        messages.append(
            {"type": "track", **person, "event": "Page Seen",
             "messageId": f"p{n}", "properties": {"category": f"c{n % 4}"}}
        )  # fmt: skip
    send(runtime, messages)
    runtime.pipeline.process()
    service.create(runtime.store, "vips", "traits.vip = true", set(), now=NOW)
    return runtime


@pytest.mark.parametrize("method", lookalike.METHODS)
def test_the_audience_finds_the_lookalikes_and_excludes_the_seed(
    shop: Runtime, method: str
) -> None:
    report = lookalike.create(shop.store, f"like-{method}", "vips", now=NOW, reach=30,
                              method=method)  # fmt: skip
    members = set(service.member_ids(shop.store, f"like-{method}"))
    seed = set(service.member_ids(shop.store, "vips"))
    assert len(members) == 30 and not members & seed
    hidden = {
        r[0]
        for r in shop.store.fetch_all(
            "SELECT profile_id FROM identities WHERE type = 'anonymous_id' "
            "AND CAST(substr(value, 2) AS INT) < 60"
        )
    }
    assert len(members & hidden) >= 25
    assert report.weights[0]["feature"].startswith(("event:Signal", "property:Signal"))
    curve = report.evaluation["curve"]
    assert [p["reach_share"] for p in curve] == list(lookalike.REACH_SHARES)
    assert curve[-1]["recall"] == 1.0
    preview = service.preview(shop.store, f'in lookalike "like-{method}" and anonymous', set())
    assert preview["size"] == len(members & hidden)


def test_accuracy_picks_the_reach(shop: Runtime) -> None:
    report = lookalike.create(shop.store, "like-acc", "vips", now=NOW, accuracy=0.8)
    chosen = next(p for p in report.evaluation["curve"] if p["recall"] >= 0.8)
    assert report.reach == min(chosen["reach"], 170)


def test_mistakes_are_explained(shop: Runtime) -> None:
    with pytest.raises(InvalidField, match=r"a reach .* or an accuracy"):
        lookalike.create(shop.store, "x", "vips", now=NOW)
    with pytest.raises(InvalidField, match="method 'magic'"):
        lookalike.create(shop.store, "x", "vips", now=NOW, reach=5, method="magic")
    with pytest.raises(Conflict, match="exists already"):
        lookalike.create(shop.store, "vips", "vips", now=NOW, reach=5)
    service.create(shop.store, "tiny", "traits.vip = false", set(), now=NOW)
    with pytest.raises(InvalidField, match="at least 10"):
        lookalike.create(shop.store, "y", "tiny", now=NOW, reach=5)


def test_every_candidate_is_ranked_and_the_reach_can_change(shop: Runtime) -> None:
    lookalike.create(shop.store, "like-later", "vips", now=NOW, reach=5)
    scores = lookalike.scores_of(shop.store, "like-later", limit=1000)
    assert len(scores) == 170  # every profile outside the 30-strong seed
    assert [s.rank for s in scores[:3]] == [1, 2, 3]
    assert [s.in_audience for s in scores[4:6]] == [True, False]
    assert scores[0].score >= scores[-1].score
    assert lookalike.set_reach(shop.store, "like-later", 40, NOW).reach == 40
    assert service.get(shop.store, "like-later")["size"] == 40
    with pytest.raises(InvalidField, match="at least 1"):
        lookalike.set_reach(shop.store, "like-later", 0, NOW)


@pytest.mark.parametrize("method", lookalike.METHODS)
def test_the_stored_model_alone_gives_the_stored_scores(shop: Runtime, method: str) -> None:
    """What another engine scores with (tessera/spark/lookalike.py): the model kept in the
    lookalike, applied to the features as intercept + sum(coefficient * x), gives every
    candidate's stored score; changing the reach keeps it; the API's answer leaves it out."""
    lookalike.create(shop.store, f"kept-{method}", "vips", now=NOW, reach=5, method=method)
    lookalike.set_reach(shop.store, f"kept-{method}", 7, NOW)
    row = shop.store.fetch_one("SELECT report FROM lookalikes WHERE name = ?", [f"kept-{method}"])
    assert row is not None
    model = lookalike.stored_model(orjson.loads(row[0]))
    assert model is not None and model.method == method and model.features
    data = lookalike.features(shop.store, NOW)
    column = {name: i for i, name in enumerate(data.names)}
    matrix = data.binary() if model.transform == "binary" else data.logs()
    stored = dict(shop.store.fetch_all(
        "SELECT profile_id, score FROM lookalike_members WHERE lookalike = ?", [f"kept-{method}"]
    ))  # fmt: skip
    for index, profile_id in enumerate(data.profile_ids):
        if profile_id not in stored:
            continue  # the seed
        values = matrix.getrow(index)
        score = model.intercept + sum(
            coefficient * values[0, column[name]]
            for name, coefficient in zip(model.features, model.coefficients, strict=True)
        )
        assert score == pytest.approx(stored[profile_id], rel=1e-9, abs=1e-12)
    assert "model" not in lookalike.get(shop.store, f"kept-{method}").model_dump()


@pytest.mark.parametrize("name", ["overlap", "Bad Name"])
def test_a_name_its_segment_cannot_take_is_refused_before_anything_is_saved(
    shop: Runtime, name: str
) -> None:
    with pytest.raises(InvalidField) as refused:
        lookalike.create(shop.store, name, "vips", now=NOW, reach=5)
    assert refused.value.code in {"segment_name_reserved", "invalid_field"}
    assert lookalike.list_lookalikes(shop.store) == []


def test_the_scores_command_says_when_it_cut_the_list(shop: Runtime) -> None:
    """`tessera audiences lookalike scores --limit 3` of 170 ranked profiles prints 3 and
    says there are more; with a limit past the list it says nothing."""
    from tests.api.test_cli import tessera  # the real command, in a subprocess

    lookalike.create(shop.store, "like-cut", "vips", now=NOW, reach=5)
    data_dir = shop.settings.data_dir
    shop.close()
    cut = tessera(data_dir, "audiences", "lookalike", "scores", "like-cut", "--limit", "3")
    assert "showing 3 of more than 3 ranked profiles" in cut.stderr
    assert cut.stdout.count("prf_") == 3
    whole = tessera(data_dir, "audiences", "lookalike", "scores", "like-cut", "--limit", "500")
    assert "showing" not in whole.stderr
    assert whole.stdout.count("prf_") == 170
