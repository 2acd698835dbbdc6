"""Computed traits: aggregates over a profile's events, declared in YAML or the API and
compiled to SQL trees with sqlglot (values are bound parameters, never pasted in).

    - name: favourite_category
      function: most_frequent      # count sum avg min max first last distinct_count
      event: Product Viewed        #   most_frequent recency_days
      property: category
      where: {currency: EUR}       # property equality conditions
      window_days: 90              # all time when absent; else from the start of the
                                   #   UTC day 90 days ago (day buckets, see below)

Built in, for commerce (`Order Completed` with `revenue`): order_count, total_revenue,
average_order_value, days_since_last_order, and RFM scores (rfm_recency,
rfm_frequency, rfm_monetary: quintiles 1-5 over customers with an order; rfm_segment
the three digits; ties ranked by profile id, so the scores are one answer).

The pipeline keeps every trait incrementally (`profiles/aggregates.py`: per-profile
aggregates in day buckets, updated from each batch); the SQL compiled here is the full
recompute, which the tests hold the incremental values equal to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

import orjson
import sqlglot
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from sqlglot import exp

from tessera.catalog.joins import (
    DEFAULT_KEYS,
    event_items,
    item_key_and_amount,
    product_item_values,
)
from tessera.catalog.keys import ProductKeys
from tessera.errors import InvalidField, field_problem
from tessera.profiles.dialect import Dialect, for_dialect, json_path

Function = Literal["count", "sum", "avg", "min", "max", "first", "last", "distinct_count",
                   "most_frequent", "recency_days", "count_by", "sum_by"]  # fmt: skip
FUNCTIONS: tuple[str, ...] = get_args(Function)
_NEEDS_PROPERTY = {"sum", "avg", "min", "max", "first", "last", "distinct_count", "most_frequent"}
#: what an itemised trait (`by:`) groups the items of an event by: a field of the products
#: the event names (from the catalogue), the event's channel, or its UTC hour of the week
#: (0 = Monday 00:00-00:59 ... 167 = Sunday 23:00-23:59)
ByKey = Literal[
    "product.product_id", "product.name", "product.category", "product.brand",
    "product.currency", "channel", "hour_of_week",
]  # fmt: skip
BY_KEYS: tuple[str, ...] = get_args(ByKey)
#: the functions an itemised trait may use: over the keys of its items
_BY_FUNCTIONS = {"most_frequent", "first", "last", "distinct_count", "count_by", "sum_by"}
_NUMERIC = {"sum", "avg"}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# A century: longer windows overflow DuckDB's INTERVAL and break every refresh.
MAX_WINDOW_DAYS = 36_500


@dataclass(frozen=True)
class ComputedTrait:
    name: str
    function: str
    event: str | None = None
    property: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    window_days: int | None = None
    #: an itemised trait: over the items of each event grouped by this key (BY_KEYS)
    by: str | None = None
    #: with by: product.category, the levels of the path kept ('Sport > Running' at 1: 'Sport')
    category_level: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


BUILT_IN = (
    ComputedTrait("order_count", "count", "Order Completed"),
    ComputedTrait("total_revenue", "sum", "Order Completed", "revenue"),
    ComputedTrait("average_order_value", "avg", "Order Completed", "revenue"),
    ComputedTrait("days_since_last_order", "recency_days", "Order Completed"),
)
#: From the product catalogue (docs/computed-traits.md): offered as definitions to add in
#: the YAML file or the API, since they read events a shop names its own way.
CATALOGUE_EXAMPLES = (
    ComputedTrait("favourite_category", "most_frequent", None, by="product.category",
                  category_level=1),
    ComputedTrait("favourite_brand", "most_frequent", None, by="product.brand"),
    ComputedTrait("spend_per_category", "sum_by", "Order Completed", by="product.category",
                  category_level=1),
    ComputedTrait("last_viewed_product", "last", "Product Viewed", by="product.product_id"),
)  # fmt: skip
RFM_NAMES = ("rfm_recency", "rfm_frequency", "rfm_monetary", "rfm_segment")
#: the predictive traits (tessera/predict scores them; stored beside these, read alike)
PREDICTED_NAMES = ("churn_risk", "purchase_propensity", "expected_purchases", "p_alive",
                   "predicted_clv")  # fmt: skip
#: names of built-in traits defined elsewhere (profiles/engagement.py, profiles/loyalty.py)
RESERVED = frozenset({
    "engagement_by_channel", "engagement_by_hour", "best_channel", "best_hour_of_week",
    "best_time", "loyalty_spend", "loyalty_points", "loyalty_tier",
})  # fmt: skip


_MESSAGES: dict[str, Callable[[Any], str]] = {
    "name": lambda name: f"name {name!r} must be lower_snake_case, e.g. 'lifetime_orders'",
    "function": lambda function: f"function {function!r} must be one of {', '.join(FUNCTIONS)}",
    "event": lambda _event: "event must be an event name",
    "property": lambda prop: f"property {prop!r} must name an event property",
    "where": lambda _where: "where must map property names to plain values",
    "window_days": lambda window: (
        f"window_days {window!r} must be a whole number of days from 1 to {MAX_WINDOW_DAYS}"
    ),
    "by": lambda by: f"by {by!r} must be one of {', '.join(BY_KEYS)}",
    "category_level": lambda level: (
        f"category_level {level!r} must be a whole number of levels from 1 to 10"
    ),
}


class TraitDefinition(BaseModel):
    """A computed trait as written in YAML or sent to `POST /api/computed-traits`.

    Any problem is an InvalidField naming the key, the value found and what is expected.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(pattern=_NAME.pattern, description="lower_snake_case, e.g. lifetime_orders")
    function: Function = Field(description="the aggregate to compute")
    event: str | None = Field(default=None, description="only events of this name")
    property: str | None = Field(
        default=None, description="the event property to aggregate (all but count, recency_days)"
    )
    where: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="property equality conditions"
    )
    window_days: int | None = Field(
        default=None, gt=0, le=MAX_WINDOW_DAYS, description="all time when absent"
    )
    by: ByKey | None = Field(
        default=None,
        description="itemised: group each event's items by a product field (from the "
        "catalogue), the channel or the hour of the week",
    )
    category_level: int | None = Field(
        default=None, ge=1, le=10, description="with by: product.category, the levels kept"
    )

    @model_validator(mode="wrap")
    @classmethod
    def _worded(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> TraitDefinition:
        """Pydantic's findings as our InvalidField, worded as the rest of Tessera words them."""
        if isinstance(data, TraitDefinition):
            return data
        if not isinstance(data, dict):
            raise InvalidField(
                "a computed trait is a mapping with name and function", field="trait"
            )
        try:
            checked: TraitDefinition = handler(data)
        except ValidationError as e:
            raise field_problem(
                e,
                data,
                _MESSAGES,
                lambda keys: f"unknown key(s) {', '.join(keys)} in computed trait",
            ) from None
        return checked

    @model_validator(mode="after")
    def _meaningful(self) -> TraitDefinition:
        taken = {t.name for t in BUILT_IN} | set(RFM_NAMES) | set(PREDICTED_NAMES) | RESERVED
        if self.name in taken:
            raise InvalidField(
                f"{self.name!r} is a built-in computed trait; pick another name",
                field="name",
                value=self.name,
            )
        if self.by is not None:
            return self._itemised()
        if self.function in ("count_by", "sum_by"):
            raise InvalidField(
                f"function {self.function!r} needs `by:` (one of {', '.join(BY_KEYS)})",
                field="by",
            )
        if self.category_level is not None:
            raise InvalidField(
                "category_level needs `by: product.category`", field="category_level"
            )
        if self.function in _NEEDS_PROPERTY and self.property is None:
            raise InvalidField(
                f"function {self.function!r} needs `property:` (the event property to aggregate)",
                field="property",
            )
        return self

    def _itemised(self) -> TraitDefinition:
        if self.function not in _BY_FUNCTIONS:
            raise InvalidField(
                f"function {self.function!r} cannot group by {self.by!r}; with `by:` use one "
                f"of {', '.join(sorted(_BY_FUNCTIONS))}",
                field="function",
                value=self.function,
            )
        if self.property is not None:
            raise InvalidField(
                "a trait with `by:` reads its items, not a property; remove `property:`",
                field="property",
            )
        if self.category_level is not None and self.by != "product.category":
            raise InvalidField(
                "category_level needs `by: product.category`", field="category_level"
            )
        return self

    def trait(self) -> ComputedTrait:
        return ComputedTrait(
            self.name, self.function, self.event, self.property, dict(self.where),
            self.window_days, self.by, self.category_level,
        )  # fmt: skip


def parse_definition(raw: Any) -> ComputedTrait:
    """Check one definition (from YAML or JSON); errors name the field and the fix."""
    return TraitDefinition.model_validate(raw).trait()


# -- compiling to SQL ---------------------------------------------------------------


def _path(name: str, dialect: Dialect = "duckdb") -> str:
    return json_path(name, dialect)


def events_of_profiles() -> exp.Select:
    """Events with the live profile they belong to (through merges)."""
    return (
        sqlglot.select(
            exp.func(
                "coalesce", exp.column("merged_into", "p"), exp.column("profile_id", "ep")
            ).as_("profile_id"),
            exp.Column(this=exp.Star(), table=exp.to_identifier("e")),
        )
        .from_("events AS e")
        .join("event_profiles AS ep", on="ep.seq = e.seq")
        .join("profiles AS p", on="p.profile_id = ep.profile_id", join_type="left")
    )


Binder = Callable[[Any], exp.Placeholder]


def binder(parameters: dict[str, Any]) -> Binder:
    """Adds each value to `parameters` under a fresh name and returns its placeholder."""

    def bind(value: Any) -> exp.Placeholder:
        key = f"p{len(parameters)}"
        parameters[key] = value
        return exp.Placeholder(this=key)

    return bind


def trait_filter(
    trait: ComputedTrait,
    bind: Binder,
    dialect: Dialect = "duckdb",
    products: ProductKeys = DEFAULT_KEYS,
) -> exp.Expr:
    """Which events a trait reads (its event name and `where`), the window aside."""
    conditions: list[exp.Expr] = []
    if trait.event is not None:
        conditions.append(exp.column("event", "ev").eq(bind(trait.event)))
        conditions.append(exp.column("type", "ev").eq(exp.Literal.string("track")))
    for key, wanted in trait.where.items():
        extracted = exp.func(
            "json_extract_string", exp.column("properties", "ev"), bind(_path(key, dialect))
        )
        conditions.append(
            extracted.eq(bind(str(wanted).lower() if isinstance(wanted, bool) else str(wanted)))
        )
    if trait.by is not None and trait.by.startswith("product."):
        items = event_items(exp.column("properties", "ev"), products, dialect)
        size = (
            exp.Anonymous(this="size", expressions=[items])
            if dialect == "spark"
            else exp.func("len", items)
        )
        conditions.append(exp.GT(this=size, expression=exp.Literal.number(0)))
    return exp.and_(*conditions) if conditions else exp.true()


def _single_key(by: str) -> exp.Expr:
    """The one key of an event for `by: channel` or `by: hour_of_week` (UTC, Monday
    00:00 is 0), as text."""
    if by == "channel":
        return exp.column("channel", "ev")
    timestamp = exp.column("timestamp", "ev")
    day = exp.Sub(this=exp.func("isodow", timestamp), expression=exp.Literal.number(1))
    hours = exp.Add(
        this=exp.Mul(this=exp.Paren(this=day), expression=exp.Literal.number(24)),
        expression=exp.func("hour", timestamp.copy()),
    )
    return exp.Cast(this=hours, to=exp.DataType.build("VARCHAR"))


def item_values(trait: ComputedTrait, products: ProductKeys = DEFAULT_KEYS) -> exp.Expr:
    """An itemised trait's items of one event, `STRUCT(k VARCHAR, amount DOUBLE)[]`: the
    products it names (their field from the catalogue, their amount), or its one channel
    or hour of the week (amount 1). `products` says where events name products."""
    assert trait.by is not None
    if trait.by.startswith("product."):
        items = event_items(exp.column("properties", "ev"), products)
        return product_item_values(items, trait.by.partition(".")[2], trait.category_level)
    key = _single_key(trait.by)
    pair = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("k"), expression=key),
            exp.PropertyEQ(
                this=exp.to_identifier("amount"),
                expression=exp.Cast(this=exp.Literal.number(1), to=exp.DataType.build("DOUBLE")),
            ),
        ]
    )
    return exp.Array(expressions=[pair])


def trait_value(
    trait: ComputedTrait,
    bind: Binder,
    dialect: Dialect = "duckdb",
    products: ProductKeys = DEFAULT_KEYS,
) -> exp.Expr:
    """The value a trait aggregates from one event: the property as text, or as a DOUBLE
    (NULL when it is not a number) for sum, avg, min and max; NULL when it reads none."""
    if trait.by is not None and trait.by.startswith("product."):
        return item_values(trait, products)
    if trait.by is not None:
        # one key per event (its channel or hour): the key itself, no list to build
        return _single_key(trait.by)
    if trait.property is None:
        return exp.Null()
    value: exp.Expr = exp.func(
        "json_extract_string", exp.column("properties", "ev"), bind(_path(trait.property, dialect))
    )
    if trait.function in _NUMERIC or trait.function in ("min", "max"):
        number = exp.TryCast(this=value, to=exp.DataType.build("DOUBLE"))
        # "nan" and "inf" cast to numbers JSON cannot hold (to_json wrote NaN, which no
        # reader parses, and every refresh failed): they count as no value.
        value = exp.Case(ifs=[exp.If(this=exp.func("isfinite", number), true=number.copy())])
    return value


def _today(now: exp.Expr) -> exp.Expr:
    return exp.Cast(this=now, to=exp.DataType.build("DATE"))


def compile_trait(
    trait: ComputedTrait,
    parameters: dict[str, Any],
    dialect: Dialect = "duckdb",
    products: ProductKeys = DEFAULT_KEYS,
) -> exp.Select:
    """One trait as `SELECT profile_id, value ... GROUP BY profile_id`: the full recompute,
    over the whole history (`profiles/aggregates.py` keeps the same values incrementally).

    Values are added to `parameters` under fresh names; `$now` is the clock. With
    `dialect="spark"` the tree is Spark SQL's (`dialect.py`; JSON paths bound as Spark
    reads them). A window of
    N days holds the events from the start of the UTC day N days before `$now` (day
    buckets: it slides at midnight UTC). Ties are broken so that the answer is one:
    first/last by (time, seq), most_frequent by the smallest value.
    """
    bind = binder(parameters)
    now = exp.Cast(this=exp.Placeholder(this="now"), to=exp.DataType.build("TIMESTAMP"))
    conditions: list[exp.Expr] = [trait_filter(trait, bind, dialect, products)]
    if trait.window_days is not None:
        since = exp.Sub(
            this=_today(now.copy()),
            expression=exp.Cast(this=bind(trait.window_days), to=exp.DataType.build("INTEGER")),
        )
        conditions.append(_today(exp.column("timestamp", "ev")) >= since)

    if trait.by is not None:
        itemised = for_dialect(_compile_itemised(trait, conditions, products, dialect), dialect)
        assert isinstance(itemised, exp.Select)
        return itemised
    value = trait_value(trait, bind, dialect, products)
    order = exp.Array(
        expressions=[exp.func("epoch_us", exp.column("timestamp", "ev")), exp.column("seq", "ev")]
    )
    timestamp = exp.column("timestamp", "ev")
    builders: dict[str, Callable[[], Any]] = {
        "count": lambda: exp.Count(this=exp.Star()),
        "sum": lambda: exp.Sum(this=value),
        "avg": lambda: exp.Avg(this=value),
        "min": lambda: exp.Min(this=value),
        "max": lambda: exp.Max(this=value),
        "first": lambda: exp.func("arg_min", value, order),
        "last": lambda: exp.func("arg_max", value, order),
        "distinct_count": lambda: exp.Count(this=exp.Distinct(expressions=[value])),
        "most_frequent": lambda: exp.Mode(
            this=exp.Order(
                this=value, expressions=[exp.Ordered(this=value.copy(), nulls_first=False)]
            )
        ),
        # Anonymous: sqlglot's DateDiff would reorder the arguments for DuckDB.
        "recency_days": lambda: exp.Anonymous(
            this="date_diff",
            expressions=[exp.Literal.string("day"), exp.Max(this=timestamp), now.copy()],
        ),
    }
    aggregate = builders[trait.function]()
    query = (
        sqlglot.select(exp.column("profile_id", "ev"), aggregate.as_("value"))
        .from_(events_of_profiles().subquery("ev"))
        .group_by(exp.column("profile_id", "ev"))
    )
    for condition in conditions:
        query = query.where(condition)
    rewritten = for_dialect(query, dialect)
    assert isinstance(rewritten, exp.Select)
    return rewritten


def _compile_itemised(
    trait: ComputedTrait, conditions: list[exp.Expr], products: ProductKeys, dialect: Dialect
) -> exp.Select:
    """An itemised trait over the whole history: each matching event's items (one row
    each, with the event's time, seq and the item's position), aggregated per profile as
    `aggregates.Bucket.add_items` does incrementally."""
    if dialect == "spark":
        items, key, amount = _spark_item_rows(trait, conditions, products)
    else:
        items, key, amount = _item_rows(trait, conditions, products)
    has_key = exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null()))
    order = exp.Array(
        expressions=[exp.func("epoch_us", exp.column("timestamp")), exp.column("seq"),
                     exp.column("n")]
    )  # fmt: skip
    if trait.function in ("count_by", "sum_by"):
        total: exp.Expr = (
            exp.Count(this=exp.Star())
            if trait.function == "count_by"
            else exp.func("round", exp.Sum(this=amount), exp.Literal.number(2))
        )
        grouped = (
            sqlglot.select("profile_id", key.as_("k"), total.as_("total"))
            .from_(items)
            .group_by("profile_id", key.copy())
        )
        return (
            sqlglot.select("profile_id", keyed_json(dialect).as_("value"))
            .from_(grouped.subquery("per_key"))
            .group_by("profile_id")
        )
    builders: dict[str, Callable[[], exp.Expr]] = {
        "most_frequent": lambda: exp.Mode(
            this=exp.Order(this=key, expressions=[exp.Ordered(this=key.copy(), nulls_first=False)])
        ),
        "first": lambda: exp.Filter(
            this=exp.func("arg_min", key, order), expression=exp.Where(this=has_key)
        ),
        "last": lambda: exp.Filter(
            this=exp.func("arg_max", key, order), expression=exp.Where(this=has_key)
        ),
        "distinct_count": lambda: exp.Count(this=exp.Distinct(expressions=[key])),
    }
    return (
        sqlglot.select("profile_id", builders[trait.function]().as_("value"))
        .from_(items)
        .group_by("profile_id")
    )


def _matched(conditions: list[exp.Expr], items: exp.Expr) -> exp.Select:
    """The events a trait reads, with their items as `its`."""
    events = sqlglot.select(
        exp.column("profile_id", "ev"),
        exp.column("seq", "ev"),
        exp.column("timestamp", "ev"),
        items.as_("its"),
    ).from_(events_of_profiles().subquery("ev"))
    for condition in conditions:
        events = events.where(condition)
    return events


def _item_rows(
    trait: ComputedTrait, conditions: list[exp.Expr], products: ProductKeys
) -> tuple[exp.Expr, exp.Expr, exp.Expr]:
    """DuckDB: one row per item (`it`, a struct of its key and amount) with its position
    `n`, as a subquery; with the key and the amount to aggregate."""
    spread = sqlglot.select(
        "profile_id",
        "seq",
        "timestamp",
        exp.Unnest(expressions=[exp.column("its")]).as_("it"),
        exp.func("generate_subscripts", exp.column("its"), exp.Literal.number(1)).as_("n"),
    ).from_(_matched(conditions, item_values(trait, products)).subquery("matched"))
    key = exp.Dot(this=exp.column("it"), expression=exp.to_identifier("k"))
    amount = exp.Dot(this=exp.column("it"), expression=exp.to_identifier("amount"))
    return spread.subquery("items"), key, amount


def _spark_item_rows(
    trait: ComputedTrait, conditions: list[exp.Expr], products: ProductKeys
) -> tuple[exp.Expr, exp.Expr, exp.Expr]:
    """Spark: the same rows, with `k`, `amount` and the position `n` as columns. A
    product item's key is read by exploding the items and joining them to the catalogue
    (Spark runs no correlated subquery over a list); a channel or an hour is the event's
    one key, amount 1."""
    assert trait.by is not None
    key, amount = exp.column("k"), exp.column("amount")
    if not trait.by.startswith("product."):
        single = _matched(conditions, _single_key(trait.by)).subquery("matched")
        one = exp.Cast(this=exp.Literal.number(1), to=exp.DataType.build("DOUBLE"))
        rows = sqlglot.select(
            "profile_id", "seq", "timestamp", exp.Literal.number(0).as_("n"),
            exp.column("its").as_("k"), one.as_("amount"),
        ).from_(single)  # fmt: skip
        return rows.subquery("items"), key, amount
    items = event_items(exp.column("properties", "ev"), products, "spark")
    exploded = exp.Aliases(
        this=exp.Anonymous(this="posexplode", expressions=[exp.column("its")]),
        expressions=[exp.to_identifier("n"), exp.to_identifier("it")],
    )
    spread = sqlglot.select("profile_id", "seq", "timestamp", exploded).from_(
        _matched(conditions, items).subquery("matched")
    )

    def of_item(name: str) -> exp.Expr:
        return exp.column(name, "it", "sp")

    item_key, item_amount = item_key_and_amount(
        of_item("product_id"), of_item("price"), of_item("quantity"),
        trait.by.partition(".")[2], trait.category_level, "spark",
    )  # fmt: skip
    rows = (
        sqlglot.select(
            *(exp.column(name, "sp") for name in ("profile_id", "seq", "timestamp", "n")),
            item_key.as_("k"),
            item_amount.as_("amount"),
        )
        .from_(spread.subquery("sp"))
        .join(
            "products AS pr",
            on=exp.EQ(this=exp.column("product_id", "pr"), expression=of_item("product_id")),
            join_type="LEFT",
        )
    )
    return rows.subquery("items"), key, amount


def keyed_json(dialect: Dialect) -> exp.Expr:
    """The per-key totals (`k`, `total`) of one profile as a JSON object, keys in order
    (the JSON text is then the one the incremental values write); `{}` when every item's
    key is NULL. On Spark a map, written as JSON by the run (`to_json` keeps its order)."""
    entry = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("k"), expression=exp.column("k")),
            exp.PropertyEQ(this=exp.to_identifier("v"), expression=exp.column("total")),
        ]
    )
    keyed = exp.Where(this=exp.Not(this=exp.Is(this=exp.column("k"), expression=exp.Null())))
    if dialect == "spark":
        # sorted as structs: by k, which is unique per profile (Spark and DuckDB both
        # compare text by its bytes)
        listed = exp.Filter(this=exp.Anonymous(this="collect_list", expressions=[entry]),
                            expression=keyed)  # fmt: skip
        return exp.func("map_from_entries", exp.Anonymous(this="array_sort", expressions=[listed]))
    entries = exp.Filter(
        this=exp.ArrayAgg(
            this=exp.Order(this=entry, expressions=[exp.Ordered(this=exp.column("k"))])
        ),
        expression=keyed,
    )
    folded = exp.func("to_json", exp.func("map_from_entries", entries))
    empty = exp.Cast(this=exp.Literal.string("{}"), to=exp.DataType.build("JSON"))
    return exp.func("coalesce", folded, empty)


#: compile_all's answers by (definitions, product keys): building the tree costs ~20 ms per
#: trait in sqlglot (copies of subtrees), which every refresh and recompute paid again
_COMPILED: dict[tuple[bytes, ProductKeys], tuple[str, dict[str, Any]]] = {}
_COMPILED_KEPT = 32


def compile_all(
    traits: list[ComputedTrait], now: str, products: ProductKeys = DEFAULT_KEYS
) -> tuple[str, dict[str, Any]]:
    """All traits in one query: `profile_id, name, value (JSON)` rows. The SQL depends
    only on the definitions (the clock is the `$now` parameter): compiled once per set."""
    key = (orjson.dumps([t.to_dict() for t in traits], option=orjson.OPT_SORT_KEYS), products)
    if (found := _COMPILED.get(key)) is None:
        if len(_COMPILED) >= _COMPILED_KEPT:
            _COMPILED.clear()
        found = _COMPILED[key] = _compile_all(traits, products)
    sql, parameters = found
    return sql, {**parameters, "now": now} if "now" in parameters else dict(parameters)


def _compile_all(traits: list[ComputedTrait], products: ProductKeys) -> tuple[str, dict[str, Any]]:
    parameters: dict[str, Any] = {"now": None}
    parts = []
    for index, trait in enumerate(traits):
        query = compile_trait(trait, parameters, products=products)
        parts.append(
            sqlglot.select(
                exp.column("profile_id"),
                exp.Literal.string(trait.name).as_("name"),
                exp.func("to_json", exp.column("value")).as_("value"),
            ).from_(query.subquery(f"q{index}"))
        )
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    outer = sqlglot.select("*").from_(union.subquery("traits")).sql(dialect="duckdb")
    if "$now" not in outer:  # no trait with a window or recency: DuckDB refuses an unused one
        parameters.pop("now")
    return outer, parameters


RFM_SQL = """
WITH orders AS (
    SELECT coalesce(p.merged_into, ep.profile_id) AS profile_id,
           date_diff('day', max(e.timestamp), $now::TIMESTAMP) AS recency,
           count(*) AS frequency,
           coalesce(sum(CASE WHEN isfinite(TRY_CAST(json_extract_string(e.properties,
               '$.revenue') AS DOUBLE)) THEN TRY_CAST(json_extract_string(e.properties,
               '$.revenue') AS DOUBLE) END), 0) AS monetary
    FROM events e JOIN event_profiles ep ON ep.seq = e.seq
    LEFT JOIN profiles p ON p.profile_id = ep.profile_id
    WHERE e.type = 'track' AND e.event = 'Order Completed'
    GROUP BY 1),
scored AS (
    SELECT profile_id,
           ntile(5) OVER (ORDER BY recency DESC, profile_id) AS r,
           ntile(5) OVER (ORDER BY frequency, profile_id) AS f,
           ntile(5) OVER (ORDER BY monetary, profile_id) AS m
    FROM orders)
SELECT profile_id, r, f, m, concat(r, f, m) FROM scored
"""


def rfm_rows(rows: list[tuple[Any, ...]]) -> list[tuple[str, str, str]]:
    """RFM query rows as (profile_id, name, JSON value) like the other traits."""
    out = []
    for profile_id, recency, frequency, monetary, segment in rows:
        for name, value in zip(RFM_NAMES, (recency, frequency, monetary, segment), strict=True):
            out.append((profile_id, name, orjson.dumps(value).decode()))
    return out
