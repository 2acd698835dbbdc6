"""Which traits the decision API may answer to a browser, flagged one by one.

`TESSERA_PERSONALIZE_EXPOSED_TRAITS` lists them for the whole deployment; a marketer also
exposes a trait where it is managed (`tessera personalize expose-trait computed.best_channel`,
`POST /api/personalize/traits/{name}/expose`), stored in `exposed_traits` (migration 18).
The two add up: a trait is answered when the flag or the setting exposes it, as segments'
`exposed` flag does (segments/service.py). Nothing personal is exposed by default.
"""

from __future__ import annotations

import re

from pydantic import Field

from tessera.context import Context
from tessera.errors import InvalidField
from tessera.results import Result
from tessera.store import Store

_NAME = re.compile(r"^(traits|computed)\.[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ExposedTraits(Result):
    """The traits a decision answers: flagged here, or named in the setting."""

    flagged: list[str] = Field(description="Exposed through the API, the CLI or the console")
    from_setting: list[str] = Field(description="Named in TESSERA_PERSONALIZE_EXPOSED_TRAITS")
    exposed: list[str] = Field(description="Both together: what a decision may answer")


def check_trait(name: str) -> str:
    """`traits.NAME` or `computed.NAME`, as the setting takes them."""
    if not _NAME.match(name):
        raise InvalidField(
            f"trait {name!r} must be traits.NAME or computed.NAME (e.g. traits.country, "
            "computed.best_channel)",
            field="name",
            value=name,
        )
    return name


def flagged(store: Store) -> list[str]:
    """The traits flagged exposed, by name."""
    return [r[0] for r in store.fetch_all("SELECT name FROM exposed_traits ORDER BY name")]


def listing(context: Context) -> ExposedTraits:
    marked = flagged(context.store)
    setting = list(context.settings.personalize_exposed_traits)
    return ExposedTraits(flagged=marked, from_setting=setting, exposed=sorted({*marked, *setting}))


def expose_trait(context: Context, name: str, exposed: bool = True) -> ExposedTraits:
    """Expose a trait to the decision API, or stop (`exposed=False`; a trait the setting
    names stays exposed until it is taken out of the setting)."""
    check_trait(name)
    if exposed:
        context.store.execute(
            "INSERT OR IGNORE INTO exposed_traits VALUES (?, now()::TIMESTAMP)", [name]
        )
    else:
        context.store.execute("DELETE FROM exposed_traits WHERE name = ?", [name])
    context.definitions_changed()
    return listing(context)
