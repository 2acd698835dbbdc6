"""The reference interpreter and the SQL compilers agree, on random segments over random logs.

Hypothesis generates people (traits, orders and views with properties at random times) and
segment trees; each tree is evaluated by SQL over everyone (`compile_segment`, one query
per segment), by the many-segment query streaming runs (`compile_segments`, over everyone
and restricted to some profiles), and once per person in memory; the member sets must be
equal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tessera.identity.lookup import lookup
from tessera.runtime import Runtime
from tessera.segments.compiler import compile_segment, compile_segments
from tessera.segments.tree import (
    Aggregate,
    And,
    Compare,
    Did,
    EventRef,
    Filter,
    HasIdentifier,
    HasThirdParty,
    Node,
    Not,
    Or,
    Population,
    RelativeTime,
    SeenOn,
    Window,
)  # fmt: skip
from tessera.settings import Settings
from tests.integration.helpers import send
from tests.segment_interpreter import EventFact, ProfileFacts, holds

NOW = datetime(2026, 3, 31, 12, 0)
EVENTS = ["Order Completed", "Product Viewed"]
CITIES = ["Lyon", "Paris", "Nice"]

times = st.builds(lambda d, h: datetime(2026, 3, d, h), st.integers(1, 31), st.integers(0, 23))
properties = st.fixed_dictionaries(
    {}, optional={"revenue": st.integers(0, 200), "category": st.sampled_from(["shoes", "hats"])}
)
traits = st.fixed_dictionaries(
    {},
    optional={
        "city": st.sampled_from(CITIES),
        "age": st.integers(10, 80),
        "vip": st.booleans(),
        "signup": st.sampled_from(["2026-01-15T00:00:00", "2026-03-20T00:00:00"]),
    },
)
person = st.tuples(
    traits, st.lists(st.tuples(st.sampled_from(EVENTS), times, properties), max_size=6)
)

numbers = st.integers(0, 250).map(float)
windows = st.one_of(
    st.none(),
    st.integers(1, 40).map(lambda d: Window(seconds=d * 86400)),
    st.just(Window(start="2026-03-05", end="2026-03-20")),
)
event_refs = st.builds(
    EventRef,
    st.sampled_from(EVENTS),
    st.one_of(
        st.just(()),
        st.sampled_from(["shoes", "hats"]).map(lambda c: (Filter("category", "=", c),)),
        numbers.map(lambda n: (Filter("revenue", ">=", n),)),
    ),
)
ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
leaves = st.one_of(
    st.builds(
        Compare,
        st.just("traits"),
        st.just("city"),
        st.sampled_from(["=", "!="]),
        st.sampled_from(CITIES),
    ),
    st.builds(
        Compare,
        st.just("traits"),
        st.just("city"),
        st.just("in"),
        st.lists(st.sampled_from(CITIES), min_size=1, max_size=2).map(tuple),
    ),
    st.builds(
        Compare,
        st.just("traits"),
        st.just("city"),
        st.sampled_from(["contains", "starts_with"]),
        st.sampled_from(["y", "Pa", "N"]),
    ),
    st.builds(
        Compare,
        st.just("traits"),
        st.sampled_from(["city", "age", "vip"]),
        st.just("exists"),
        st.none(),
    ),
    st.builds(Compare, st.just("traits"), st.just("age"), ops, numbers),
    st.builds(
        Compare, st.just("traits"), st.just("vip"), st.sampled_from(["=", "!="]), st.booleans()
    ),
    st.builds(
        Compare,
        st.just("traits"),
        st.just("signup"),
        ops,
        st.integers(0, 60).map(lambda d: RelativeTime(d * 86400)),
    ),
    st.builds(Did, event_refs, windows),
    st.builds(
        Aggregate,
        st.sampled_from(["count", "sum", "avg", "min", "max"]),
        event_refs,
        st.just("revenue"),
        windows,
        ops,
        numbers,
    ),
    st.builds(HasIdentifier, st.sampled_from(["user_id", "email"])),
    st.builds(SeenOn, st.sampled_from(["web", "mobile"])),
    st.builds(Population, st.sampled_from(["anonymous", "known"])),
    st.builds(HasThirdParty, st.sampled_from(["1", "2", "Interest", "Interest > Travel"])),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=6,
)


# Who each person is, by their position: odd ones are anonymous (an anonymousId only),
# and every third is in the third-party segment "Interest > Travel" (id 2, under 1).
def anonymous(n: int) -> bool:
    return n % 2 == 1


def travels(n: int) -> bool:
    return n % 3 == 0


#: Consent records as banners and CMPs write them: granted, refused, silent, mixed case,
#: text answers, numbers, and a second category of the same purpose that disagrees.
CONSENTS: list[dict[str, Any]] = [
    {},
    {"advertising": True},
    {"Advertising": False},
    {"targeting": "Granted"},
    {"Targeting": "no"},
    {"advertising": 1},
    {"analytics": True},
    {"advertising": True, "targeting": "denied"},
    {"ADVERTISING": "yes", "Targeting": "TRUE"},
]


def facts_of(
    n: int, person_traits: dict[str, Any], events: list[Any], consent: dict[str, Any], policy: str
) -> ProfileFacts:
    return ProfileFacts(
        consent=consent,
        enrichment_policy=policy,
        traits=dict(person_traits),
        events=[EventFact(name, moment, dict(props)) for name, moment, props in events],
        identifier_types={"anonymous_id"} if anonymous(n) else {"user_id"},
        channels={"web"},
        third_party={"1", "interest", "2", "interest > travel"} if travels(n) else set(),
    )


def identity(n: int) -> dict[str, str]:
    return {"anonymousId": f"a{n}"} if anonymous(n) else {"userId": f"u{n}"}


def reference(n: int) -> str:
    return f"anonymous_id:a{n}" if anonymous(n) else f"user_id:u{n}"


@given(
    people=st.lists(person, min_size=1, max_size=5),
    segments=st.lists(trees, min_size=1, max_size=8),
    consents=st.lists(st.sampled_from(CONSENTS), min_size=5, max_size=5),
    policy=st.sampled_from(["required", "unless_refused"]),
)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_memory_and_sql_agree(
    tmp_path_factory: Any,
    people: list[Any],
    segments: list[Node],
    consents: list[dict[str, Any]],
    policy: str,
) -> None:
    runtime = Runtime.open(
        Settings(data_dir=tmp_path_factory.mktemp("agree"), admin_token="t"), in_memory=True
    )
    try:
        messages: list[dict[str, Any]] = []
        for n, (person_traits, events) in enumerate(people):
            messages.append(
                {
                    "type": "identify",
                    **identity(n),
                    "messageId": f"i{n}",
                    "traits": person_traits,
                    "timestamp": "2026-03-01T00:00:00Z",
                    **(
                        {"context": {"consent": {"categoryPreferences": consents[n]}}}
                        if consents[n]
                        else {}
                    ),
                }
            )
            for k, (name, moment, props) in enumerate(events):
                messages.append(
                    {
                        "type": "track",
                        **identity(n),
                        "event": name,
                        "messageId": f"e{n}-{k}",
                        "properties": props,
                        "timestamp": moment.isoformat() + "Z",
                    }
                )
        send(runtime, messages)
        runtime.pipeline.process()
        store = runtime.store
        store.execute(
            "INSERT INTO taxonomy_nodes VALUES ('t', '1', NULL, 'Interest', 'Interest', 1, NULL), "
            "('t', '2', '1', 'Travel', 'Interest > Travel', 2, NULL)"
        )
        store.execute(
            "INSERT INTO taxonomy_closure VALUES ('t','1','1'), ('t','2','2'), ('t','1','2')"
        )
        for n in range(len(people)):
            if travels(n):
                kind, value = reference(n).split(":", 1)
                store.execute(
                    "INSERT INTO third_party_memberships VALUES ('p', 't', '2', ?, ?, "
                    "TIMESTAMP '2026-01-01', TIMESTAMP '2027-01-01')",
                    [kind, value],
                )
        profile_of = {n: lookup(store, reference(n), None) for n in range(len(people))}
        expected = [
            {
                profile_of[n]
                for n, (t, events) in enumerate(people)
                if holds(tree, facts_of(n, t, events, consents[n], policy), NOW)
            }
            for tree in segments
        ]
        for tree, in_memory in zip(segments, expected, strict=True):
            compiled = compile_segment(tree, now=NOW.isoformat(sep=" "), enrichment_policy=policy)
            by_sql = {r[0] for r in runtime.store.fetch_all(compiled.sql, compiled.parameters)}
            assert by_sql == in_memory, tree
        # Every other person: streaming evaluates the touched profiles only.
        touched = sorted({profile_of[n] for n in range(0, len(people), 2)})
        for restriction in (None, touched):
            many = compile_segments(
                segments, now=NOW.isoformat(sep=" "), profiles=restriction,
                enrichment_policy=policy,
            )  # fmt: skip
            rows = runtime.store.fetch_all(many.sql, many.parameters)
            for i, (tree, in_memory) in enumerate(zip(segments, expected, strict=True)):
                wanted = in_memory if restriction is None else in_memory & set(touched)
                assert {row[0] for row in rows if row[i + 1]} == wanted, (restriction, tree)
    finally:
        runtime.close()
