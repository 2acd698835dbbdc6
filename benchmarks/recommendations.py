"""Recommendations benchmark: does the item-to-item model beat popularity on the demo?

    python benchmarks/recommendations.py [--people 10000] [--data-dir DIR]

1. Loads the demo company (through the collect API, as `tessera demo` does), or reads an
   existing data directory.
2. Reads every interaction (views, basket adds, purchases) as `tessera recommendations
   train` does (personalize/interactions.py).
3. Time split: each person's last purchase is held out, with everything they did from
   that moment on; the model learns from the rest (everyone else's whole history too).
4. For each held-out purchase, 10 products from the item-to-item model (the person's
   history before it; products they bought in the TESSERA_RECOMMENDATIONS_EXCLUDE_BOUGHT_DAYS
   before it excluded, as in production) and 10 from popularity overall (same exclusions),
   in the same run: hit-rate@10 and NDCG@10 of each, and the ratio.
5. Training time on the whole log.

The demo draws 75% of what a person views and buys from their one or two hidden interests
(tessera/demo/generator.py): that is the structure there is to learn. It has no product-to-
product affinity beyond it (within a category every product is equally likely), so the best
any model can do is find the person's categories.

Goal: hit-rate@10 >= 2x popularity's. Prints the table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Table, emit
from pipeline import load_demo

from tessera.personalize import interactions, itemsim
from tessera.personalize import recommendations as recs
from tessera.runtime import Runtime
from tessera.settings import Settings

K = 10


def evaluate(read: interactions.Read, exclude_days: int, neighbours: int) -> dict[str, object]:
    training, held_out = itemsim.leave_last_purchase_out(read.interactions)
    people = recs.histories(training)
    started = time.perf_counter()
    model = itemsim.train(
        {person: history.weights for person, history in people.items()},
        neighbours=neighbours,
        products=read.products,
    )
    train_seconds = time.perf_counter() - started
    ranked_model: dict[str, list[str]] = {}
    ranked_popular: dict[str, list[str]] = {}
    with_history = 0
    for person, (_product, at) in held_out.items():
        history = people.get(person, recs.History())
        with_history += bool(history.weights)
        exclude = history.recently_bought(at, exclude_days)
        ranked_model[person] = [
            r.product_id for r in itemsim.recommend(model, history.weights, n=K, exclude=exclude)
        ]
        ranked_popular[person] = [
            r.product_id for r in itemsim.recommend(model, {}, n=K, exclude=exclude)
        ]
    truth = {person: product for person, (product, _) in held_out.items()}
    item = itemsim.score(ranked_model, truth, K)
    popular = itemsim.score(ranked_popular, truth, K)
    return {
        "people_evaluated": item.people,
        "with_history": with_history,
        "products": len(model.products),
        "interactions": len(read.interactions),
        "item_to_item": {"hit_rate@10": round(item.hit_rate, 4), "ndcg@10": round(item.ndcg, 4)},
        "popularity": {
            "hit_rate@10": round(popular.hit_rate, 4),
            "ndcg@10": round(popular.ndcg, 4),
        },
        "hit_rate_ratio": round(item.hit_rate / popular.hit_rate, 3) if popular.hit_rate else None,
        "train_seconds_split": round(train_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--data-dir", type=Path, default=None, help="an existing demo")
    parser.add_argument("--exclude-bought-days", type=int, default=30)
    parser.add_argument("--neighbours", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(scratch) / "demo"
            load_demo(data_dir, args.people)
        runtime = Runtime.open(Settings(data_dir=data_dir, admin_token="bench" * 6))
        try:
            runtime.pipeline.process()
            read = interactions.read(runtime.store)
            report = evaluate(read, args.exclude_bought_days, args.neighbours)
            started = time.perf_counter()
            trained = recs.train(runtime)
            report["train_seconds_full"] = round(time.perf_counter() - started, 3)
            report["people"] = args.people if args.data_dir is None else None
            report["model"] = trained.model_dump()
        finally:
            runtime.close()
    table = Table("Recommendations: last purchase held out (time split)",
                  ["model", "hit-rate@10", "NDCG@10"])  # fmt: skip
    for label, key in (("item-to-item", "item_to_item"), ("popularity", "popularity")):
        scores = report[key]
        assert isinstance(scores, dict)
        table.add(label, scores["hit_rate@10"], scores["ndcg@10"])
    emit(
        {"benchmark": "recommendations", **report},
        table,
        notes=[
            f"{report['people_evaluated']} held-out purchases ({report['with_history']} with "
            f"history before them), {report['products']} products; hit-rate ratio "
            f"{report['hit_rate_ratio']}x; training on the whole log "
            f"{report['train_seconds_full']} s"
        ],
    )


if __name__ == "__main__":
    main()
