"""Probabilistic identity, the pure parts: comparison records, the graph's probabilistic
links under the merge rules, the unique-identifier refusal, the evidence waterfall."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tessera.identity.comparison import (
    birth_date,
    comparison_record,
    conflicting_unique_ids,
    first_name_forms,
    fold,
    postcode,
    street,
)
from tessera.identity.graph import IdentityGraph
from tessera.identity.identifiers import Identifier
from tessera.identity.matches import ledger_rule, match_id_of_rule
from tessera.identity.matching import classify
from tessera.identity.matching_model import evidence, settings
from tessera.identity.rules import MergeRules

CRM = Identifier("crm_id", "CRM-1")
CARD = Identifier("loyalty_id", "LC1")
USER_A, USER_B = Identifier("user_id", "u1"), Identifier("user_id", "u2")


def test_names_lose_case_accents_and_punctuation() -> None:
    assert fold("  Élodie-Marie  LEFÈVRE ") == "elodie marie lefevre"
    assert fold("Jürgen Groß") == "jurgen gross"


def test_nicknames_meet_the_names_they_shorten() -> None:
    assert "william" in first_name_forms("Bill")
    assert "nicolas" in first_name_forms("Nico")
    assert "nico" in first_name_forms("Nicolas")
    assert first_name_forms("") == ()


def test_dates_of_birth_are_read_iso_or_day_first() -> None:
    assert birth_date("1980-12-31") == "1980-12-31"
    assert birth_date("31/12/1980") == "1980-12-31"
    assert birth_date("31.12.1980") == birth_date("19801231") == "1980-12-31"
    assert birth_date("31/13/1980") is None
    assert birth_date("yesterday") is None


def test_postcodes_and_streets_are_normalised() -> None:
    assert postcode("sw1a 1aa") == "SW1A1AA"
    assert street("12 r. de la Paix") == street("12 Rue de la paix") == "12 rue de la paix"


def test_a_till_record_and_a_crm_record_of_one_person_compare_alike() -> None:
    till = comparison_record(
        "p1", {"name": "SMITH JON", "postcode": "75002", "birthday": "31/12/1980"}, [CARD]
    )
    crm = comparison_record(
        "p2",
        {"first_name": "Jon", "last_name": "Smith", "postcode": "75 002",
         "birthday": "1980-12-31", "street": "12 Rue de la Paix"},
        [CRM, Identifier("email", "jon@example.com")],
    )  # fmt: skip
    assert till.name_key == crm.name_key == "jon smith"
    assert till.birth_date == crm.birth_date and till.postcode == crm.postcode
    assert crm.email_user == "jon" and crm.known_fields() >= 5


@given(st.text(max_size=30))
def test_folding_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


def test_two_values_of_a_unique_type_conflict() -> None:
    assert conflicting_unique_ids(["user_id:u1"], ["user_id:u2"]) == "user_id"
    assert conflicting_unique_ids(["user_id:u1"], ["user_id:u1", "crm_id:c"]) is None
    assert conflicting_unique_ids(["user_id:u1"], ["crm_id:c"]) is None


def test_a_probabilistic_link_merges_once_both_identifiers_are_known() -> None:
    rule = ledger_rule("m_1", 0.998)
    graph = IdentityGraph(MergeRules.build(match_pairs=[(CRM, CARD, rule)]))
    first = graph.stitch(1, [CRM])
    assert graph.profile(CARD) is None
    second = graph.stitch(2, [CARD])
    assert graph.profile(CRM) == graph.profile(CARD) == first == second
    merge = [e for e in graph.ledger if e.kind == "merge"]
    assert len(merge) == 1 and merge[0].rule == rule and merge[0].seq == 2
    assert match_id_of_rule(merge[0].rule) == "m_1"


def test_a_probabilistic_link_never_joins_two_user_ids() -> None:
    graph = IdentityGraph(MergeRules.build(match_pairs=[(USER_A, USER_B, ledger_rule("m", 1))]))
    graph.stitch(1, [USER_A])
    graph.stitch(2, [USER_B])
    assert graph.profile(USER_A) != graph.profile(USER_B)
    conflict = [e for e in graph.ledger if e.kind == "conflict"]
    assert conflict and "limit: at most 1 user_id" in (conflict[0].rule or "")


def test_an_unmerge_overrides_a_probabilistic_link() -> None:
    rules = MergeRules.build(
        blocked_pairs=[(CRM, CARD)], match_pairs=[(CRM, CARD, ledger_rule("m", 0.999))]
    )
    graph = IdentityGraph(rules)
    graph.stitch(1, [CRM])
    graph.stitch(2, [CARD])
    assert graph.profile(CRM) != graph.profile(CARD)


def test_the_circuit_breaker_holds_over_probabilistic_links() -> None:
    rules = MergeRules.build(max_identifiers=2, match_pairs=[(CRM, CARD, ledger_rule("m", 1))])
    graph = IdentityGraph(rules)
    graph.stitch(1, [CRM, Identifier("email", "a@b.fr")])
    graph.stitch(2, [CARD])
    assert graph.profile(CRM) != graph.profile(CARD)


def test_the_waterfall_sums_to_the_match_weight() -> None:
    model = settings()
    model["probability_two_random_records_match"] = 0.001
    pair = {f"gamma_{c['output_column_name']}": 0 for c in model["comparisons"]}
    pair |= {f"mw_{c['output_column_name']}": 1.0 for c in model["comparisons"]}
    pair |= {"gamma_name": 5, "mw_name": 6.0, "first_name_l": "jon", "last_name_l": "smith"}
    steps = evidence(pair, model)
    assert steps[0]["field"] == "prior"
    name = next(s for s in steps if s["field"] == "name")
    assert name["weight"] == 6.0 and name["first"] == "jon smith"
    assert name["level"] == "same name"
    total = sum(s["weight"] for s in steps)
    expected = math.log2(0.001 / 0.999) + 6 + (len(steps) - 2) * 1
    assert abs(total - expected) < 0.01
    # A match names its profiles in sorted order: when that puts the right record first,
    # its values are the evidence's first column (they were shown swapped).
    pair |= {"first_name_r": "john", "last_name_r": "smyth"}
    swapped = next(s for s in evidence(pair, model, left_first=False) if s["field"] == "name")
    assert (swapped["first"], swapped["second"]) == ("john smyth", "jon smith")


def test_thresholds_split_links_review_and_nothing() -> None:
    assert classify(0.995, 0.99, 0.8) == "linked"
    assert classify(0.99, 0.99, 0.8) == "linked"
    assert classify(0.98, 0.99, 0.8) == "review"
    assert classify(0.8, 0.99, 0.8) == "review"
    assert classify(0.79, 0.99, 0.8) is None


def test_comparisons_of_fields_no_record_carries_are_left_out() -> None:
    model = settings(known={"first_name", "last_name", "name_key", "birth_date"})
    assert [c["output_column_name"] for c in model["comparisons"]] == ["name", "birth_date"]
    rules = [r["blocking_rule"] for r in model["blocking_rules_to_generate_predictions"]]
    assert rules == ["l.birth_date = r.birth_date", "l.name_key = r.name_key"]
