"""Probabilistic identity on a real store: match -> a link in the ledger -> explain shows
the match weights -> unmerge separates -> a rebuild keeps the decisions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tessera.errors import Conflict
from tessera.identity import explain, matching, unmerging
from tessera.identity.identifiers import Identifier
from tessera.identity.lookup import find_profile
from tessera.runtime import Runtime
from tests.integration.helpers import send

FIRST = ["Camille", "Léa", "Louis", "Hugo", "Jules", "Emma", "Thomas", "Nicolas", "Julie"]
LAST = ["Martin", "Bernard", "Dubois", "Petit", "Durand", "Lefèvre", "Moreau", "Roux"]


def _people(count: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    people = []
    for n in range(count):
        people.append({
            "n": n, "first": rng.choice(FIRST), "last": rng.choice(LAST),
            "born": f"{rng.randint(1950, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            "postcode": f"750{rng.randint(1, 20):02d}",
        })  # fmt: skip
    return people


def _crm(person: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "identify", "messageId": f"crm-{person['n']}",
        "context": {"externalIds": [{"type": "crm_id", "id": f"C{person['n']}",
                                     "collection": "users", "encoding": "none"}]},
        "anonymousId": f"crm-anon-{person['n']}",
        "traits": {"first_name": person["first"], "last_name": person["last"],
                   "birthday": person["born"], "postcode": person["postcode"],
                   "email": f"{person['first'].lower()}.{person['n']}@example.fr"},
    }  # fmt: skip


def _till(person: dict[str, Any]) -> dict[str, Any]:
    year, month, day = person["born"].split("-")
    name = f"{person['last']} {person['first']}".upper().replace("È", "E").replace("É", "E")
    return {
        "type": "track", "event": "Order Completed", "messageId": f"till-{person['n']}",
        "anonymousId": f"till-anon-{person['n']}",
        "context": {
            "externalIds": [{"type": "loyalty_id", "id": f"L{person['n']}",
                             "collection": "users", "encoding": "none"}],
            "traits": {"name": name, "birthday": f"{day}/{month}/{year}",
                       "postcode": person["postcode"]},
        },
        "properties": {"revenue": 10},
    }  # fmt: skip


@pytest.fixture
def matched(runtime: Runtime) -> Runtime:
    people = _people(100)
    send(runtime, [_crm(p) for p in people], source="crm")
    send(runtime, [_till(p) for p in people], source="shops")
    runtime.pipeline.process()
    return runtime


def test_match_links_records_that_share_no_identifier_and_explain_shows_why(
    matched: Runtime,
) -> None:
    crm, card = Identifier("crm_id", "C3"), Identifier("loyalty_id", "L3")
    assert find_profile(matched.store, crm) != find_profile(matched.store, card)
    run = matching.match(matched)
    assert run.mode == "batch" and run.linked >= 90 and run.rebuild is not None
    assert find_profile(matched.store, crm) == find_profile(matched.store, card)
    ledger = matched.store.fetch_all(
        "SELECT rule FROM identity_ledger WHERE kind = 'merge' AND rule LIKE 'probabilistic%'"
    )
    assert len(ledger) == run.linked
    answer = explain.why(matched, "crm_id:C3", "loyalty_id:L3")
    step = next(s for s in answer.chain if "match" in s)
    waterfall = step["match"]["waterfall"]
    assert [w["field"] for w in waterfall][:3] == ["prior", "name", "birth_date"]
    name = next(w for w in waterfall if w["field"] == "name")
    assert name["level"] == "same name, order swapped" and name["weight"] > 0
    total = sum(w["weight"] for w in waterfall)
    assert abs(total - step["match"]["match_weight"]) < 0.05

    # A second run with nothing new does nothing; one after new events offers nothing
    # already decided.
    again = matching.match(matched)
    assert again.run_id == "" and again.linked == 0 and again.review == 0
    send(matched, [{"type": "track", "userId": "someone", "event": "Ping", "messageId": "p1"}])
    matched.pipeline.process()
    again = matching.match(matched)
    assert again.run_id and again.linked == 0 and again.review == 0

    # Unmerge undoes the link, and a rebuild keeps both decisions.
    unmerging.unmerge(matched, "crm_id:C3", "loyalty_id:L3", "not the same")
    assert find_profile(matched.store, crm) != find_profile(matched.store, card)
    matched.pipeline.rebuild()
    assert find_profile(matched.store, crm) != find_profile(matched.store, card)
    other_crm, other_card = Identifier("crm_id", "C4"), Identifier("loyalty_id", "L4")
    assert find_profile(matched.store, other_crm) == find_profile(matched.store, other_card)


def test_review_decisions_are_kept_and_a_linked_match_is_not_reviewed(
    matched: Runtime,
) -> None:
    matched.settings.identity_match_threshold = 1.0  # everything goes to review
    run = matching.match(matched)
    assert run.linked == 0 and run.review >= 90 and run.rebuild is None
    queue = matching.review_queue(matched, limit=2)
    accepted = matching.decide(matched, queue[0].match_id, True, "same card holder")
    rejected = matching.decide(matched, queue[1].match_id, False, None)
    assert accepted.status == "accepted" and accepted.first_profile == accepted.second_profile
    assert rejected.status == "rejected" and rejected.first_profile != rejected.second_profile
    with pytest.raises(Conflict):
        matching.decide(matched, queue[0].match_id, False, None)

    # Incremental: only the profiles created since the run, scored with its model.
    newcomer = {"n": 999, "first": "Gaspard", "last": "Lefèvre", "born": "1977-03-30",
                "postcode": "75011"}  # fmt: skip
    send(matched, [_crm(newcomer)], source="crm")
    send(matched, [_till(newcomer)], source="shops")
    matched.pipeline.process()
    later = matching.match(matched, incremental=True)
    assert later.mode == "incremental" and later.new_profiles == 2
    assert later.review == 1 and later.linked == 0
    queued = matching.review_queue(matched, limit=1000)
    assert any({m.first, m.second} == {"email:gaspard.999@example.fr", "loyalty_id:L999"}
               for m in queued)  # fmt: skip

    matched.pipeline.rebuild()
    kept = matching.show(matched, accepted.match_id)
    assert kept.status == "accepted" and kept.first_profile == kept.second_profile
    assert matching.show(matched, rejected.match_id).first_profile != kept.first_profile
