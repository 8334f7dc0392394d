"""Table-scale SID rewriting: `item_sids` → `item_sids_rw`, the same result as the numpy reference.

Nothing per item reaches the driver: the layer-2 ranking is an aggregation (at most M rows come
back), the rewrite is a column expression, collision suffixes are a window over the rewritten
SID, and the summary is a handful of grouped aggregations over the written table. Only the trie
export streams the distinct SIDs of one strategy to the driver, partition by partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from hourglass.rewrite.strategies import TOP_LAYER, Strategy
from hourglass.sid_tokens import layer_letter
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

STAGE = "rewrite_sids"
ITEM_SIDS_COLUMNS = ("item_id", "codes", "residual_norms", "codebook_id")
RW_COLUMNS = ("item_id", "tokens", "strategy", "source_codebook_id")


def infer_num_layers(df: DataFrame) -> int:
    """The most common code length (ties → shorter): rows of another length get quarantined."""
    from pyspark.sql import functions as F

    rows = (df.where(F.col("codes").isNotNull()).groupBy(F.size("codes").alias("n")).count()
            .orderBy(F.desc("count"), F.asc("n")).limit(1).collect())
    return int(rows[0]["n"]) if rows else 0


def max_code(df: DataFrame) -> int:
    """Largest code over all layers; M inferred as this + 1 is only a lower bound."""
    from pyspark.sql import functions as F

    row = df.select(F.max(F.array_max("codes")).alias("m")).collect()[0]
    return -1 if row["m"] is None else int(row["m"])


def split_item_sids(df: DataFrame, num_layers: int, codebook_size: int
                    ) -> tuple[DataFrame, DataFrame]:
    """Valid rows (one per item_id, L codes in 0..M-1) and quarantine rows for the rest."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = df.select(*ITEM_SIDS_COLUMNS).withColumn("item_id", F.trim("item_id"))
    content = F.sha2(F.to_json(F.struct("codes", "codebook_id")), 256)
    by_id = Window.partitionBy("item_id")
    df = (df.withColumn("_content", content)
          .withColumn("_variants", F.size(F.collect_set("_content").over(by_id)))
          .withColumn("_dup", F.row_number().over(by_id.orderBy("_content"))))
    bad_code = F.exists("codes", lambda c: c.isNull() | (c < 0) | (c >= codebook_size))
    reason = (
        F.when(F.col("item_id").isNull() | (F.col("item_id") == ""), F.lit("missing item_id"))
        .when(F.col("codes").isNull(), F.lit("missing codes"))
        .when(F.size("codes") != num_layers,
              F.concat(F.lit("codes of length "), F.size("codes").cast("string"),
                       F.lit(f", expected {num_layers}")))
        .when(bad_code, F.lit(f"null or out-of-range code (valid: 0..{codebook_size - 1})"))
        .when(F.col("codebook_id").isNull(), F.lit("missing codebook_id"))
        .when(F.col("_variants") > 1, F.lit("conflicting duplicate item_id"))
        .when(F.col("_dup") > 1, F.lit("exact duplicate of an earlier row"))
    )
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select(*ITEM_SIDS_COLUMNS)
    bad = quarantine_rows(df.where(F.col("_reason").isNotNull()), STAGE,
                          payload_cols=list(ITEM_SIDS_COLUMNS))
    return good, bad


def layer_counts(df: DataFrame, layer: int = TOP_LAYER) -> tuple[np.ndarray, np.ndarray]:
    """(codes, item counts) of one 1-based layer: an aggregation, at most M rows collected."""
    from pyspark.sql import functions as F

    rows = df.groupBy(F.col("codes")[layer - 1].alias("code")).count().collect()
    codes = np.array([r["code"] for r in rows], dtype=np.int64)
    return codes, np.array([r["count"] for r in rows], dtype=np.int64)


def item_popularity(interactions: DataFrame) -> DataFrame:
    """Interactions per item_id: the first collision-suffix ordering key."""
    from pyspark.sql import functions as F

    return interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("_popularity"))


def _token_col(layer: int, code: Column) -> Column:
    from pyspark.sql import functions as F

    return F.concat(F.lit(f"<{layer_letter(layer)}_"), code.cast("string"), F.lit(">"))


def base_tokens(strategy: Strategy, removed: np.ndarray, num_layers: int) -> Column:
    """The strategy as one column expression over `codes` (layer-tagged, before suffixes)."""
    from pyspark.sql import functions as F

    tokens = []
    for j in range(num_layers):
        code = F.col("codes")[j]
        tok = _token_col(j + 1, code)
        if strategy.kind == "drop_layer" and j == int(strategy.param) - 1:
            continue
        if strategy.kind in ("topk", "topshare") and j == TOP_LAYER - 1 and len(removed):
            tok = F.when(~code.isin([int(c) for c in removed]), tok)  # null → dropped below
        tokens.append(tok)
    return F.array_compact(F.array(*tokens))


def rewrite_frame(good: DataFrame, strategy: Strategy, removed: np.ndarray, num_layers: int,
                  popularity: DataFrame | None, resolve_collisions: bool) -> DataFrame:
    """`item_sids_rw` rows of one strategy: tokens, then `<d_i>` on colliding SIDs."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = good.select("item_id", "codebook_id",
                     base_tokens(strategy, removed, num_layers).alias("_base"))
    if popularity is not None:
        df = df.join(popularity, on="item_id", how="left")
    else:
        df = df.withColumn("_popularity", F.lit(None).cast("long"))
    tokens = F.col("_base")
    if resolve_collisions:
        same_sid = Window.partitionBy(F.array_join("_base", " "))
        ordered = same_sid.orderBy(F.desc(F.coalesce("_popularity", F.lit(0))), F.asc("item_id"))
        suffix = _token_col(num_layers + 1, F.row_number().over(ordered) - 1)
        tokens = F.when(F.count(F.lit(1)).over(same_sid) > 1,
                        F.concat("_base", F.array(suffix))).otherwise(F.col("_base"))
    return df.select("item_id", tokens.alias("tokens"), F.lit(strategy.name).alias("strategy"),
                     F.col("codebook_id").alias("source_codebook_id"))


def summary_aggregates(rw: DataFrame, num_layers: int) -> dict[str, dict[str, float]]:
    """Per strategy, counts recomputed from the written table alone (suffix tokens stripped).

    Keys: n_items, mean_length, distinct_sids, collided_after, distinct_sids_before_suffix,
    collided_before, shortened_items, length_<n> (items with n tokens).
    """
    from pyspark.sql import functions as F

    prefix = f"<{layer_letter(num_layers + 1)}_"
    df = rw.select("strategy", F.array_join("tokens", " ").alias("_sid"),
                   F.size("tokens").alias("_len"),
                   F.array_join(F.filter("tokens", lambda t: ~t.startswith(prefix)), " ")
                   .alias("_base"),
                   F.size(F.filter("tokens", lambda t: ~t.startswith(prefix))).alias("_base_len"))
    out: dict[str, dict[str, float]] = {}

    def put(rows, **names: str) -> None:
        for r in rows:
            for metric, col in names.items():
                out.setdefault(r["strategy"], {})[metric] = float(r[col] or 0)

    put(df.groupBy("strategy").agg(
        F.count(F.lit(1)).alias("n"), F.avg("_len").alias("mean"),
        F.sum((F.col("_base_len") < num_layers).cast("long")).alias("short")).collect(),
        n_items="n", mean_length="mean", shortened_items="short")
    for key, distinct, collided in (("_sid", "distinct_sids", "collided_after"),
                                    ("_base", "distinct_sids_before_suffix", "collided_before")):
        per_sid = df.groupBy("strategy", key).count()
        put(per_sid.groupBy("strategy").agg(
            F.count(F.lit(1)).alias("d"),
            F.sum(F.when(F.col("count") > 1, F.col("count")).otherwise(0)).alias("c")).collect(),
            **{distinct: "d", collided: "c"})
    for r in df.groupBy("strategy", "_len").count().collect():
        out.setdefault(r["strategy"], {})[f"length_{r['_len']}"] = float(r["count"])
    return out


def stream_sids(rw: DataFrame, strategy_name: str) -> Iterator[list[str]]:
    """Distinct SIDs of one strategy, streamed to the driver a partition at a time."""
    from pyspark.sql import functions as F

    sids = rw.where(F.col("strategy") == strategy_name).select("tokens").distinct()
    for row in sids.toLocalIterator(prefetchPartitions=True):
        yield list(row[0])
