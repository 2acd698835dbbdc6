"""The identity graph's rules, one by one (pure, no database)."""

from __future__ import annotations

from tessera.identity.graph import IdentityGraph
from tessera.identity.identifiers import Identifier
from tessera.identity.rules import MergeRules


def ids(*texts: str) -> list[Identifier]:
    return [Identifier(*t.split(":", 1)) for t in texts]


def graph(**kwargs: object) -> IdentityGraph:
    return IdentityGraph(MergeRules.build(**kwargs))  # type: ignore[arg-type]


def test_identifiers_seen_together_are_one_profile() -> None:
    g = graph()
    p1 = g.stitch(1, ids("anonymous_id:a1"))
    p2 = g.stitch(2, ids("anonymous_id:a1", "user_id:u1"))
    p3 = g.stitch(3, ids("user_id:u1", "email:x@y.co"))
    assert p1 == p2 == p3
    assert sorted(str(i) for i in g.members[p1]) == [
        "anonymous_id:a1",
        "email:x@y.co",
        "user_id:u1",
    ]


def test_merge_keeps_the_oldest_id_and_redirects() -> None:
    g = graph()
    older = g.stitch(1, ids("anonymous_id:a1"))
    newer = g.stitch(2, ids("email:x@y.co"))
    merged = g.stitch(3, ids("email:x@y.co", "anonymous_id:a1"))
    assert merged == older
    assert g.resolve(newer) == older
    assert [e.kind for e in g.ledger].count("merge") == 1


def test_stitch_refuses_second_user_id_on_one_profile() -> None:
    g = graph()
    jane = g.stitch(1, ids("user_id:jane", "anonymous_id:shared-tablet"))
    bob = g.stitch(2, ids("user_id:bob", "anonymous_id:shared-tablet"))
    assert jane != bob  # the cookie is dropped from Bob's event instead of merging
    assert g.profile(Identifier("anonymous_id", "shared-tablet")) == jane
    conflict = [e for e in g.ledger if e.kind == "conflict"]
    assert conflict[0].identifier == Identifier("anonymous_id", "shared-tablet")
    assert "user_id" in (conflict[0].rule or "")


def test_priority_decides_what_an_event_keeps() -> None:
    g = graph()
    a = g.stitch(1, ids("user_id:u1", "email:a@x.co"))
    b = g.stitch(2, ids("user_id:u2", "phone:+33611111111"))
    # An event with u1's e-mail and u2's phone: e-mail outranks phone, so the phone goes.
    c = g.stitch(3, ids("phone:+33611111111", "email:a@x.co"))
    assert c == a and a != b
    assert g.profile(Identifier("phone", "+33611111111")) == b


def test_limit_on_emails() -> None:
    g = graph(overrides={"email": {"limit": 2}})
    p = g.stitch(1, ids("user_id:u", "email:1@x.co"))
    g.stitch(2, ids("user_id:u", "email:2@x.co"))
    g.stitch(3, ids("user_id:u", "email:3@x.co"))
    assert [i.value for i in g.members[p] if i.type == "email"] == ["1@x.co", "2@x.co"]
    kept_apart = g.profile(Identifier("email", "3@x.co"))
    assert kept_apart is not None and kept_apart != p


def test_circuit_breaker_stops_and_flags_a_giant() -> None:
    g = graph(max_identifiers=3)
    shared = g.stitch(1, ids("cookie_id:kiosk", "anonymous_id:v1"))
    g.stitch(2, ids("cookie_id:kiosk", "anonymous_id:v2"))
    assert shared in g.flagged
    separate = g.stitch(3, ids("cookie_id:kiosk", "anonymous_id:v3"))
    assert g.profile(Identifier("anonymous_id", "v3")) == separate != shared
    assert len(g.members[shared]) == 3


def test_blocked_pair_is_never_joined() -> None:
    pair = (Identifier("email", "a@x.co"), Identifier("anonymous_id", "c1"))
    g = graph(blocked_pairs=[pair])
    p1 = g.stitch(1, ids("email:a@x.co"))
    p2 = g.stitch(2, ids("email:a@x.co", "anonymous_id:c1"))
    assert p1 == p2
    assert g.profile(Identifier("anonymous_id", "c1")) not in (None, p1)
    # ... nor through a third identifier
    g.stitch(3, ids("anonymous_id:c1", "device_id:d"))
    g.stitch(4, ids("device_id:d", "email:a@x.co"))
    assert g.profile(Identifier("anonymous_id", "c1")) != g.profile(Identifier("email", "a@x.co"))


def test_ids_are_deterministic() -> None:
    first, second = graph(), graph()
    events = [ids("anonymous_id:a"), ids("user_id:u", "anonymous_id:a"), ids("email:e@x.co")]
    assert [first.stitch(n, e) for n, e in enumerate(events)] == [
        second.stitch(n, e) for n, e in enumerate(events)
    ]


def test_a_graph_restored_from_its_rows_is_the_graph_that_was_persisted() -> None:
    """What the pipeline writes (profiles, links in order) gives back the same graph,
    first seqs included (a restart lost them, so the 360° view read from memory ordered
    identifiers differently than before it)."""
    g = graph(max_identifiers=3)
    g.stitch(1, ids("anonymous_id:a1"))
    g.stitch(2, ids("email:x@y.co"))
    g.stitch(3, ids("email:x@y.co", "anonymous_id:a1", "user_id:u1"))
    g.stitch(4, ids("user_id:u1", "phone:+33611111111"))  # past the breaker: kept apart
    _, links, _ = g.drain()
    profiles = [(p, g.created[p], g.redirect.get(p), g.flagged.get(p)) for p in g.created]
    restored = IdentityGraph.from_rows(g.rules, profiles, links)
    assert restored.profile_of == g.profile_of
    assert restored.first_seq == g.first_seq
    assert restored.redirect == g.redirect and restored.flagged == g.flagged
    assert {p: sorted(map(str, m)) for p, m in restored.members.items()} == {
        p: sorted(map(str, m)) for p, m in g.members.items()
    }
    assert restored.counts == g.counts
    assert restored.drain() == ([], [], set())
