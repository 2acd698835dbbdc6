"""The overview's charts: one colour per source and one per channel, never shared, and a
value keeps its colour whichever days (and so which datasets) a chart shows."""

from __future__ import annotations

from tessera.events.sources import CHANNELS
from tessera.web.pages import CHANNEL_COLOURS, SOURCE_PALETTE, chart_series


def test_every_channel_has_its_own_colour_never_a_sources() -> None:
    assert set(CHANNEL_COLOURS) == set(CHANNELS)
    assert len(set(CHANNEL_COLOURS.values())) == len(CHANNELS)
    assert not set(CHANNEL_COLOURS.values()) & set(SOURCE_PALETTE)


def test_a_value_keeps_its_colour_when_other_values_are_absent() -> None:
    colours = {"crm": "#111111", "web-shop": "#222222"}
    both = chart_series(
        [{"day": "2026-03-01", "source": "crm", "events": 1},
         {"day": "2026-03-01", "source": "web-shop", "events": 2}],
        "source", colours,
    )  # fmt: skip
    later = [{"day": "2026-03-02", "source": "web-shop", "events": 3}]
    alone = chart_series(later, "source", colours)
    assert [d["backgroundColor"] for d in both["datasets"]] == ["#111111", "#222222"]
    assert alone["datasets"][0]["backgroundColor"] == "#222222"
    assert (
        "backgroundColor"
        not in chart_series(
            [{"day": "2026-03-01", "source": "new", "events": 1}], "source", colours
        )["datasets"][0]
    )
