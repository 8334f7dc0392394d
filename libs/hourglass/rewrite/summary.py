"""One strategy's `rewrite_summary` figures from the table's exact aggregates (plain Python).

The Spark side (`spark.rewrite.summary.summary_aggregates`) only counts; every share, capacity and
length distribution is derived here, so the arithmetic has one home and needs no JVM to test.
"""

from __future__ import annotations

from collections.abc import Mapping

from hourglass.rewrite.strategies import Strategy, capacity_definition, capacity_formula


def strategy_metrics(strategy: Strategy, aggregates: Mapping[str, float], removed: int,
                     num_layers: int, codebook_size: int) -> dict[str, float]:
    """The metric → value rows of one strategy, in the order `rewrite_summary` stores them.

    `aggregates` are the counts of `summary_aggregates` for this strategy (n_items,
    distinct_sids, collided_before/after, shortened_items, mean_length, length_<n>); `removed`
    is the number of layer-2 tokens the strategy drops.
    """
    agg = aggregates
    n = agg.get("n_items", 0.0)
    L, M, k = num_layers, codebook_size, removed

    def share(key: str) -> float:
        return agg.get(key, 0.0) / n if n else 0.0

    return {
        "capacity_definition": capacity_definition(strategy, M, L, k),
        "capacity_formula": capacity_formula(strategy, M, L, k),
        "distinct_sids": agg.get("distinct_sids", 0.0),
        "distinct_sids_before_suffix": agg.get("distinct_sids_before_suffix", 0.0),
        "n_items": n,
        "collision_share_before": share("collided_before"),
        "collision_share_after": share("collided_after"),
        "mean_length": agg.get("mean_length", 0.0),
        "removed_tokens": float(k),
        "shortened_item_share": share("shortened_items"),
        "num_layers": float(L),
        "codebook_size": float(M),
        **{f"length_share_{length}": value for length, value in length_shares(agg).items()},
    }


def length_shares(aggregates: Mapping[str, float]) -> dict[str, float]:
    """SID length → share of items (`length_<n>` counts over `n_items`)."""
    n = aggregates.get("n_items", 0.0)
    return {key.removeprefix("length_"): v / n for key, v in aggregates.items()
            if key.startswith("length_") and n}
