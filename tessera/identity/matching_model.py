"""The Fellegi-Sunter model Tessera matches profiles with: which fields are compared, at
which levels of agreement, and which pairs are compared at all (blocking).

Fellegi & Sunter (1969): each field's level of agreement has a probability m among true
matches and u among non-matches; the match weight is the sum of log2(m/u) over the fields
plus the prior's. Splink estimates u from random pairs and m by expectation maximisation
(no labels needed), over DuckDB. The comparisons here are SQL conditions over the
`comparison.ComparisonRecord` fields (`_l` and `_r` are the two sides).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tessera.store.linkage import Training


def _level(label: str, condition: str, **extra: Any) -> dict[str, Any]:
    return {"sql_condition": condition, "label_for_charts": label, **extra}


def _null(*columns: str) -> dict[str, Any]:
    condition = " OR ".join(f"{c}_l IS NULL OR {c}_r IS NULL" for c in columns)
    return _level("not known on both", condition, is_null_level=True)


_ELSE = _level("different", "ELSE")


def _jw(column: str, threshold: float, left: str | None = None) -> str:
    other = left or column
    return f"jaro_winkler_similarity({column}_l, {other}_r) >= {threshold}"


NAME: dict[str, Any] = {
    "output_column_name": "name",
    "comparison_levels": [
        _null("last_name"),
        _level("same name", "first_name_l = first_name_r AND last_name_l = last_name_r"),
        _level("same name, order swapped",
               "first_name_l = last_name_r AND last_name_l = first_name_r"),
        _level("same surname, first name a nickname, close or an initial",
               "last_name_l = last_name_r AND (first_name_l IS NULL OR first_name_r IS NULL "
               "OR list_has_any(first_name_forms_l, first_name_forms_r) "
               f"OR {_jw('first_name', 0.88)} OR first_name_l = left(first_name_r, 1) "
               "OR first_name_r = left(first_name_l, 1))"),
        _level("both names close (typos), either order",
               f"({_jw('last_name', 0.9)} AND {_jw('first_name', 0.88)}) OR "
               f"({_jw('first_name', 0.9, 'last_name')} AND "
               f"jaro_winkler_similarity(last_name_l, first_name_r) >= 0.88)"),
        _level("same surname only", "last_name_l = last_name_r"),
        _ELSE,
    ],
}  # fmt: skip
BIRTH_DATE: dict[str, Any] = {
    "output_column_name": "birth_date",
    "comparison_levels": [
        _null("birth_date"),
        _level("same date of birth", "birth_date_l = birth_date_r"),
        _level("day and month swapped",
               "left(birth_date_l, 4) = left(birth_date_r, 4) AND "
               "substr(birth_date_l, 6, 2) = substr(birth_date_r, 9, 2) AND "
               "substr(birth_date_l, 9, 2) = substr(birth_date_r, 6, 2)"),
        _level("one digit off", "damerau_levenshtein(birth_date_l, birth_date_r) <= 1"),
        _ELSE,
    ],
}  # fmt: skip
POSTCODE: dict[str, Any] = {
    "output_column_name": "postcode",
    "comparison_levels": [
        _null("postcode"),
        _level("same postcode", "postcode_l = postcode_r"),
        _level("one character off", "damerau_levenshtein(postcode_l, postcode_r) <= 1"),
        _level("same area", "left(postcode_l, 3) = left(postcode_r, 3)"),
        _ELSE,
    ],
}  # fmt: skip
STREET: dict[str, Any] = {
    "output_column_name": "street",
    "comparison_levels": [
        _null("street"),
        _level("same street address", "street_l = street_r"),
        _level("street address close", _jw("street", 0.9)),
        _ELSE,
    ],
}
CITY: dict[str, Any] = {
    "output_column_name": "city",
    "comparison_levels": [_null("city"), _level("same city", "city_l = city_r"), _ELSE],
}
EMAIL: dict[str, Any] = {
    "output_column_name": "email",
    "comparison_levels": [
        _null("email"),
        _level("same e-mail", "email_l = email_r"),
        _level("same mailbox name, other domain (a typo?)", "email_user_l = email_user_r"),
        # Digits must agree: jean.dupont12@ and jean.dupont17@ are two people, the
        # numbers mailbox providers hand out tell namesakes apart.
        _level("e-mail two edits apart, same digits",
               "damerau_levenshtein(email_l, email_r) <= 2 AND "
               "regexp_replace(email_l, '[^0-9]', '', 'g') = "
               "regexp_replace(email_r, '[^0-9]', '', 'g')"),
        _ELSE,
    ],
}  # fmt: skip
PHONE: dict[str, Any] = {
    "output_column_name": "phone",
    "comparison_levels": [_null("phone"), _level("same phone", "phone_l = phone_r"), _ELSE],
}
COMPARISONS = (NAME, BIRTH_DATE, POSTCODE, STREET, CITY, EMAIL, PHONE)

#: Pairs compared at all: those that agree on one of these (Splink's blocking rules). Each
#: is an equality, so DuckDB joins on a hash: the cost follows the pairs, not n².
BLOCKING = (
    ("l.birth_date = r.birth_date", ("birth_date",)),
    ("l.name_key = r.name_key", ("name_key",)),
    ("l.email_user = r.email_user", ("email_user",)),
    ("l.phone = r.phone", ("phone",)),
    ("l.postcode = r.postcode AND left(l.last_name, 2) = left(r.last_name, 2)",
     ("postcode", "last_name")),
)  # fmt: skip


def settings(
    link_type: str = "dedupe_only", known: Collection[str] | None = None
) -> dict[str, Any]:
    """Splink's settings for the profile matcher. With `known` (the fields some record
    carries), the comparisons of fields no record carries are left out: they would cost
    every pair a comparison and weigh nothing."""
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "comparisons": [
            dict(c)
            for c in COMPARISONS
            if known is None or any(column in known for column in _columns(c["output_column_name"]))
        ],
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": rule}
            for rule, columns in BLOCKING
            if known is None or all(column in known for column in columns)
        ],
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": True,
        "additional_columns_to_retain": ["unique_ids", "anchor", "first_name_forms"],
    }


def training(seed: int = 1, known: Collection[str] | None = None) -> Training:
    """Prior from pairs that surely match (same name and date of birth, or same e-mail),
    u from random pairs, m by EM over two blockings that each leave the other's fields
    free (only over fields some record carries, when `known` says which)."""

    def usable(*columns: str) -> bool:
        return known is None or all(column in known for column in columns)

    sure = [rule for rule, columns in (
        ("l.name_key = r.name_key AND l.birth_date = r.birth_date", ("name_key", "birth_date")),
        ("l.email = r.email", ("email",)),
    ) if usable(*columns)]  # fmt: skip
    em = [rule for rule, columns in (
        ("l.birth_date = r.birth_date", ("birth_date",)),
        # Same name alone is no good a block: where names are common, most such pairs
        # are different people and EM settles on "same name" as its class of matches.
        ("l.name_key = r.name_key AND l.postcode = r.postcode", ("name_key", "postcode")),
        ("l.name_key = r.name_key", ("name_key",)),
    ) if usable(*columns)][:2]  # fmt: skip
    return Training(
        deterministic_rules=tuple(sure or ["l.name_key = r.name_key"]),
        recall=0.7,
        em_rules=tuple(em),
        u_pairs=3e5,
        seed=seed,
    )


def evidence(
    pair: dict[str, Any], model: dict[str, Any], *, left_first: bool = True
) -> list[dict[str, Any]]:
    """The waterfall of one scored pair: per field, the level the two values agree at and
    its match weight (log2 m/u, Splink's `mw_` column), with both values; the prior first.
    The weights add up to the pair's match weight. `first` is the left record's value
    unless `left_first` is False (the match names the right record first)."""
    first_side, second_side = ("l", "r") if left_first else ("r", "l")
    import math

    steps: list[dict[str, Any]] = [{
        "field": "prior", "level": "two profiles picked at random",
        "weight": round(math.log2(_prior_odds(model)), 3), "first": None, "second": None,
    }]  # fmt: skip
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        labels = level_labels(comparison)
        gamma = pair.get(f"gamma_{name}")
        weight = pair.get(f"mw_{name}")
        columns = _columns(name)
        steps.append({
            "field": name,
            "level": labels.get(gamma, str(gamma)) if gamma is not None else "unknown",
            "weight": round(float(weight), 3) if weight is not None else 0.0,
            "first": _joined(pair, columns, first_side),
            "second": _joined(pair, columns, second_side),
        })  # fmt: skip
    return steps


def _joined(pair: dict[str, Any], columns: tuple[str, ...], side: str) -> str | None:
    return " ".join(str(pair.get(f"{c}_{side}") or "") for c in columns).strip() or None


def level_labels(comparison: dict[str, Any]) -> dict[int, str]:
    """Splink's comparison vector value of each level -> its label: -1 for the null level,
    then the others counted down from the most specific to 0 for the last (`ELSE`)."""
    levels = comparison["comparison_levels"]
    others = [lvl for lvl in levels if not lvl.get("is_null_level")]
    labels = {}
    for level in levels:
        if level.get("is_null_level"):
            labels[-1] = level["label_for_charts"]
    for n, level in enumerate(others):
        labels[len(others) - 1 - n] = level["label_for_charts"]
    return labels


def _prior_odds(model: dict[str, Any]) -> float:
    p = float(model.get("probability_two_random_records_match") or 1e-4)
    return p / (1 - p)


def _columns(comparison: str) -> tuple[str, ...]:
    return ("first_name", "last_name") if comparison == "name" else (comparison,)


def known_fields(rows: list[dict[str, Any]]) -> set[str]:
    """The fields at least one record carries."""
    return {field for row in rows for field, value in row.items() if value is not None}
