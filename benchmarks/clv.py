"""Predictive traits benchmark: the BG/NBD holdout figure on CDNOW and on the demo, and
churn / purchase propensity against a recency-only baseline on the demo.

    python benchmarks/clv.py [--people 3000] [--skip-demo]

1. CDNOW (Fader, Hardie & Lee 2005; tests/fixtures/cdnow): calibration 1 January to
   30 September 1997, holdout the next 39 weeks. The fitted parameters beside the published
   ones, and the paper's figure as a table: per number of repeat purchases in calibration
   (0..6, 7+), the mean purchases expected in the holdout and those made.
2. The demo company (`tessera demo`, loaded through the collect API): the same models as
   `tessera predict fit` runs them (tessera/predict/service.py): the BG/NBD holdout per
   frequency group, then churn risk and purchase propensity judged on the last
   `predict_window_days` (30) after training on the 30 before: ROC AUC and Brier score of
   the model and of days-since-last-order alone, and the model's calibration table.
Prints the tables on stderr and the report as one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit
from pipeline import load_demo

from tessera.events.timestamps import utc_now
from tessera.predict import btyd, history, service
from tessera.predict.clv import by_frequency
from tessera.runtime import Runtime
from tessera.settings import Settings

CDNOW = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cdnow" / "CDNOW_sample.txt"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74,
             "gamma": 15.44}  # fmt: skip


def cdnow() -> dict[str, Any]:
    orders = []
    for line in CDNOW.read_text().splitlines():
        _, customer, day, _, amount = line.split()
        orders.append((customer, datetime.strptime(day, "%Y%m%d"), float(amount)))
    started = time.perf_counter()
    split = history.summarise(orders, date(1997, 10, 1), date(1998, 7, 1))
    purchases = btyd.fit_bgnbd(split.x, split.t_x, split.big_t)
    spend = btyd.fit_gamma_gamma(split.x, split.m_x)
    fit_s = time.perf_counter() - started
    predicted = purchases.expected_purchases(split.holdout_periods, split.x, split.t_x, split.big_t)
    groups = by_frequency(split.x, predicted, split.holdout_purchases)
    fitted = {"r": purchases.r, "alpha": purchases.alpha, "a": purchases.a, "b": purchases.b,
              "p": spend.p, "q": spend.q, "gamma": spend.gamma}  # fmt: skip
    return {
        "customers": len(split.customers),
        "fitted": {k: round(v, 4) for k, v in fitted.items()},
        "log_likelihood": round(purchases.log_likelihood, 2),
        "groups": [g.__dict__ for g in groups],
        "holdout_predicted": round(float(predicted.sum()), 1),
        "holdout_actual": float(split.holdout_purchases.sum()),
        "fit_s": round(fit_s, 2),
    }


def demo(people: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tessera-clv-") as tmp:
        data_dir = Path(tmp) / "data"
        load_demo(data_dir, people)
        runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench-token-0123456789abc"))
        try:
            runtime.pipeline.process()
            started = time.perf_counter()
            service.refit(runtime.store, runtime.settings, utc_now())
            fit_s = time.perf_counter() - started
            report = service.show(runtime)
        finally:
            runtime.close()
    return {"people": people, "fit_s": round(fit_s, 2),
            "models": [m.model_dump() for m in report.models]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=3_000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    found = {"cdnow": cdnow()}
    tables = []
    params = Table("CDNOW: fitted against published parameters",
                   ["parameter", "fitted", "published"])  # fmt: skip
    for name, value in found["cdnow"]["fitted"].items():
        params.add(name, value, PUBLISHED[name])
    tables.append(params)
    figure = Table(
        "CDNOW: purchases in the 39-week holdout per repeat purchases in calibration",
        ["repeat purchases", "customers", "expected (mean)", "actual (mean)"],
    )
    for g in found["cdnow"]["groups"]:
        figure.add(g["label"], g["customers"], g["predicted"], g["actual"])
    tables.append(figure)
    if not args.skip_demo:
        found["demo"] = demo(args.people)
        for model in found["demo"]["models"]:
            if model["status"] != "fitted":
                continue
            if model["holdout"]:
                table = Table(f"demo ({args.people:,} people): {model['title']}, holdout of "
                              f"{model['figures']['holdout_days']:.0f} days",
                              ["repeat purchases", "customers", "expected (mean)",
                               "actual (mean)"])  # fmt: skip
                for g in model["holdout"]:
                    table.add(g["label"], g["customers"], g["predicted"], g["actual"])
                tables.append(table)
            else:
                f = model["figures"]
                table = Table(f"demo ({args.people:,} people): {model['title']}",
                              ["", "model", "recency only"])  # fmt: skip
                table.add("ROC AUC", f["auc"], f["baseline_auc"])
                table.add("Brier", f["brier"], f["baseline_brier"])
                table.add("judged on / outcome rate", int(f["judged_on"]), f["outcome_rate"])
                tables.append(table)
                calibration = Table(f"demo: {model['name']} calibration (held out)",
                                    ["mean predicted", "observed", "count"])  # fmt: skip
                for b in model["calibration"]:
                    calibration.add(b["predicted"], b["observed"], b["count"])
                tables.append(calibration)
    emit(found, *tables)


if __name__ == "__main__":
    main()
