"""The metrics a fresh core exposes, and the Grafana dashboard in docs/ built on them: every
series the dashboard queries exists (a renamed metric fails here, not on an operator's
empty panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tessera.operations.metrics import Metrics
from tessera.runtime import Runtime

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"


def test_the_dashboard_queries_only_metrics_the_core_exposes(runtime: Runtime) -> None:
    metrics = Metrics(runtime)
    exposed = {
        sample.name
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    } | {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    queries = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel["targets"]
    ]
    used = {name for query in queries for name in re.findall(r"tessera_[a-z_]+", query)}
    # A counter with no sample yet (no source) is still described: its family name counts.
    missing = {
        name for name in used
        if name not in exposed and name.removesuffix("_total") not in exposed
        and name.removesuffix("_bucket") not in exposed
    }  # fmt: skip
    assert not missing, missing
    assert "tessera_ingest_latency_seconds_bucket" in exposed
