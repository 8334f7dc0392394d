"""Head/tail segment of items, from a statistics run's tables and the SID table it measured.

`hourglass_stats` keeps no per-item table (one row per item cost more than every statistic at
10^7 items): `sid_layer_stats` tags each token head or tail, and `sid_summary` names the input
table and the Delta version the run read. An item's segment on a layer is its token's tag,
looked up in that version (time travel), so the tags are the run's exactly even after the SID
table moved on. Only the items asked about need resolving (the held-out targets of an
evaluation), and Spark reads the SID table lazily when the frame is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hourglass.spark.stats.input import FIXED, key_code, key_layer
from hourglass.spark.tables import read_table, table_exists
from hourglass.stats.schema import SEGMENTS, names

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def segments_frame(valid: DataFrame, head: list[int], layer: int, run_id: str,
                   fixed: bool = False) -> DataFrame:
    """(run_id, item_id, layer, token, segment) for every item with a token on `layer`.

    In fixed-length SIDs the layer is the position, read directly; rewritten SIDs are searched
    for the layer's tag (a lambda, evaluated outside generated code).
    """
    from pyspark.sql import functions as F

    if fixed:
        token = key_code(F.try_element_at("keys", F.lit(layer)))
    else:
        on_layer = F.filter("keys", lambda k: key_layer(k) == layer)
        token = key_code(F.try_element_at(on_layer, F.lit(1)))
    return (valid.select("item_id", token.alias("token")).where(F.col("token").isNotNull())
            .select(F.lit(run_id).alias("run_id"), "item_id", F.lit(layer).alias("layer"),
                    "token",
                    F.when(F.col("token").isin(head), F.lit("head"))
                    .otherwise(F.lit("tail")).alias("segment"))
            .select(*names(SEGMENTS)))


@dataclass
class SegmentTags:
    """(item_id, segment) of the run's items, and what they were derived from (lineage)."""

    frame: DataFrame
    run_id: str
    inputs: dict[str, int]


def stats_runs(spark: SparkSession, summary_ref: str) -> dict[str, str]:
    """{run_id: input_kind} of the runs in `sid_summary`; empty when the table is absent."""
    if not table_exists(spark, summary_ref):
        return {}
    rows = read_table(spark, summary_ref).df.select("run_id", "input_kind").distinct().collect()
    return {r["run_id"]: r["input_kind"] for r in rows}


def segment_tags(spark: SparkSession, summary_ref: str, layer_stats_ref: str, run_id: str,
                 layer: int) -> SegmentTags:
    """Each item's segment on `layer` in stats run `run_id`.

    Items without a token on the layer get none; an id the SID table holds more than once gets
    none either (the stats run quarantined it: its SID is ambiguous).
    """
    from pyspark.sql import functions as F

    from hourglass.spark.stats.input import fixed_frame, rewritten_frame

    summary = read_table(spark, summary_ref)
    rows = summary.df.where(F.col("run_id") == run_id).limit(1).collect()
    if not rows:
        raise ValueError(f"{summary_ref} holds no statistics run {run_id!r}")
    run = rows[0].asDict()
    if not run.get("input_table"):
        raise ValueError(f"stats run {run_id!r} in {summary_ref} predates input_table: run "
                         "hourglass_stats again to tag items head or tail")
    stats = read_table(spark, layer_stats_ref)
    head = [int(r["token"]) for r in stats.df.where(
        (F.col("run_id") == run_id) & (F.col("layer") == layer) & (F.col("segment") == "head"))
        .select("token").collect()]
    sids = read_table(spark, run["input_table"], int(run["input_version"]))
    df = sids.df
    fixed = run["input_kind"] == FIXED
    if not fixed and run["strategy"]:
        df = df.where(F.col("strategy") == run["strategy"])
    framed = (fixed_frame if fixed else rewritten_frame)(df, run["num_layers"], run["M"])
    tags = segments_frame(framed.where(F.col("_reason").isNull()), head, layer, run_id, fixed)
    once = (tags.groupBy("item_id").agg(F.count("*").alias("_n"), F.first("segment").alias("s"))
            .where(F.col("_n") == 1).select("item_id", F.col("s").alias("segment")))
    return SegmentTags(once, run_id, {summary.ref: summary.version, stats.ref: stats.version,
                                      sids.ref: sids.version})
