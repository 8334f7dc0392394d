"""The rewrite's counts, recomputed from the written `item_sids_rw` alone in one Spark job.

Only counts come back (one row per strategy); every share, capacity and length distribution is
derived from them by `hourglass.rewrite.summary`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hourglass.sid_tokens import layer_letter

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Rows per task of the summary's shuffle: its hash aggregations keep every distinct SID of
# the task in memory (see `summary_aggregates`).
SUMMARY_ROWS_PER_TASK = 1_000_000


def summary_partitions(rows: int, parallelism: int) -> int:
    """Shuffle partitions for `summary_aggregates` over `rows` rows: about `SUMMARY_ROWS_PER_TASK`
    each, never fewer than the cluster's cores."""
    return max(parallelism, -(-rows // SUMMARY_ROWS_PER_TASK))


def summary_aggregates(rw: DataFrame, num_layers: int,
                       partitions: int | None = None) -> dict[str, dict[str, float]]:
    """Per strategy, counts recomputed from the written table alone, in one Spark job.

    Suffix tokens are stripped to recover the SID before collision resolution. Keys: n_items,
    mean_length, distinct_sids, collided_after, distinct_sids_before_suffix, collided_before,
    shortened_items (fewer than L codebook tokens), length_<n> (items with n tokens).

    The rows are shuffled once, by (strategy, SID before suffix): a SID's rows share its base,
    so the count per SID and then per base are hash aggregations inside those partitions (no
    second exchange, no sort); the last aggregation has one row per strategy. Pass
    `partitions` (`summary_partitions` of the row count): adaptive execution does not coalesce
    a set number. Left to it, partitions are sized by compressed shuffle bytes, and token
    strings compress so well that at 10^8 rows its 11 partitions of ~9M distinct SIDs each
    overflowed the tasks' hash maps, which fell back to sorting and spilled 33 GB (236 s; 142 s
    and no spill with 100 partitions, same counts).
    """
    from pyspark.sql import functions as F

    prefix = f"<{layer_letter(num_layers + 1)}_"
    base = F.filter("tokens", lambda t: ~t.startswith(prefix))
    keyed = rw.select("strategy", F.array_join("tokens", " ").alias("_sid"),
                      F.array_join(base, " ").alias("_base"), F.size("tokens").alias("_len"),
                      F.size(base).alias("_base_len"))
    by_base = ("strategy", "_base")
    keyed = (keyed.repartition(*by_base) if partitions is None
             else keyed.repartition(partitions, *by_base))
    per_sid = keyed.groupBy("strategy", "_base", "_sid", "_len", "_base_len").count()
    c, lengths = F.col("count"), range(1, num_layers + 2)
    per_base = per_sid.groupBy("strategy", "_base", "_base_len").agg(
        F.sum(c).alias("items"), F.count(F.lit(1)).alias("sids"),
        F.sum(c * F.col("_len")).alias("tokens"),
        F.sum(F.when(c > 1, c).otherwise(0)).alias("collided_after"),
        *[F.sum(F.when(F.col("_len") == n, c).otherwise(0)).alias(f"length_{n}")
          for n in lengths])
    items = F.col("items")
    aggs = [
        F.sum(items).alias("n_items"),
        (F.sum("tokens") / F.sum(items)).alias("mean_length"),
        F.sum("sids").alias("distinct_sids"),
        F.sum("collided_after").alias("collided_after"),
        F.count(F.lit(1)).alias("distinct_sids_before_suffix"),
        F.sum(F.when(items > 1, items).otherwise(0)).alias("collided_before"),
        F.sum(F.when(F.col("_base_len") < num_layers, items).otherwise(0))
        .alias("shortened_items"),
        *[F.sum(f"length_{n}").alias(f"length_{n}") for n in lengths],
    ]
    out: dict[str, dict[str, float]] = {}
    for r in per_base.groupBy("strategy").agg(*aggs).collect():
        values = {k: float(v or 0) for k, v in r.asDict().items() if k != "strategy"}
        out[r["strategy"]] = {k: v for k, v in values.items()
                              if not (k.startswith("length_") and v == 0)}
    return out
