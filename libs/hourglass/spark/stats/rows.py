"""The hourglass statistics of a keyed SID frame, by Spark aggregations (exact): the row plan.

Input: the valid rows of `stats.input` (item_id, keys, norms). What comes to the driver: one row
per used (layer, token), histograms of fan-outs, collision sizes and SID lengths, and the
residual-norm histograms of `stats.quantiles`. This row plan serves every input; fixed-length
SIDs whose ids do not repeat take `stats.scan`'s two scans instead (`scan.driver`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from hourglass.spark.stats.input import key_code, key_layer
from hourglass.spark.stats.io import StatsFrames
from hourglass.spark.stats.packed import (
    packed_flow_edges,
    packed_path_aggregates,
    packed_sids,
)
from hourglass.spark.stats.quantiles import exact_order_stats
from hourglass.stats.paths import CollisionStats, DepthStats, collision_stats, depth_stats
from hourglass.stats.plan import packable
from hourglass.stats.quantiles import (
    FINE_BINS,
    NORM_QUANTILES,
    coarse_histogram,
    linear_quantiles,
    needed_ranks,
)
from hourglass.stats.schema import OTHER_TOKEN
from hourglass.stats.summary import (
    AGG_COLUMNS,
    NormStats,
    RunInfo,
    layer_stats_frame,
    summary_frame,
    top_tokens,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def token_aggregates(valid: DataFrame) -> pd.DataFrame:
    """Per (layer, token): count and sums of the norm after / entering the layer."""
    from pyspark.sql import functions as F

    ex = valid.select(F.posexplode("keys").alias("pos", "key"), "norms")
    rows = (ex.select(
                key_layer(F.col("key")).alias("layer"), key_code(F.col("key")).alias("token"),
                F.try_element_at("norms", F.col("pos") + 1).alias("norm"),
                F.when(F.col("pos") > 0, F.try_element_at("norms", F.col("pos")))
                .alias("input_norm"))
            .groupBy("layer", "token")
            .agg(F.count("*").alias("count"), F.sum("norm").alias("norm_sum"),
                 F.sum("input_norm").alias("input_norm_sum"), F.min("norm").alias("norm_min"),
                 F.max("norm").alias("norm_max"))
            .collect())
    cols = [*AGG_COLUMNS, "norm_min", "norm_max"]
    agg = pd.DataFrame([r.asDict() for r in rows], columns=cols)
    floats = ["norm_sum", "input_norm_sum", "norm_min", "norm_max"]
    agg[floats] = agg[floats].astype(float)
    return agg.sort_values(["layer", "token"], ignore_index=True)


def path_aggregates(sids: DataFrame, M: int) -> tuple[list[DepthStats], CollisionStats]:
    """Prefix and collision statistics from the distinct SIDs with item counts (keys, n).

    Works from the deepest level up: the distinct depth-d prefixes grouped by their parent give
    the fan-out into depth d and, as keys, the distinct depth-(d−1) prefixes (plus the SIDs that
    end at d−1). Each level is at most as large as the one below, and no count-distinct is needed.
    """
    from pyspark.sql import functions as F

    from hourglass.spark.session import persist_catalog

    size_dist: dict[int, int] = {}
    lengths: dict[int, int] = {}
    for r in sids.groupBy("n", F.size("keys").alias("len")).count().collect():
        size_dist[r["n"]] = size_dist.get(r["n"], 0) + r["count"]
        lengths[r["len"]] = lengths.get(r["len"], 0) + r["n"] * r["count"]
    deepest = max(lengths, default=0)
    fanouts: dict[int, dict[int, int]] = {}
    level = sids.where(F.size("keys") == deepest).select(F.col("keys").alias("p"))
    held = []
    for d in range(deepest, 1, -1):
        parents = (level.groupBy(F.slice("p", 1, d - 1).alias("p"))
                   .agg(F.count("*").alias("children")).transform(persist_catalog))
        held.append(parents)
        fanouts[d] = {r[0]: r[1] for r in parents.groupBy("children").count().collect()}
        level = parents.select("p")
        if lengths.get(d - 1):
            ending = sids.where(F.size("keys") == d - 1).select(F.col("keys").alias("p"))
            level = level.unionByName(ending).distinct()
    if deepest:
        fanouts[1] = {level.count(): 1}
    for frame in held:
        frame.unpersist()
    depths = [depth_stats(d, M, items_at_depth=sum(v for k, v in lengths.items() if k >= d),
                          sids_ending=lengths.get(d, 0), fanout_dist=fanouts[d])
              for d in range(1, deepest + 1)]
    return depths, collision_stats(size_dist)


def norm_statistics(valid: DataFrame, agg: pd.DataFrame) -> dict[int, NormStats]:
    """Exact mean, min, max, quantiles and histogram of the residual norm after each layer."""
    from pyspark.sql import functions as F

    ex = valid.select(F.posexplode("norms").alias("pos", "x")).select(
        (F.col("pos") + 1).alias("layer"), "x")
    # count, min and max per layer come from the token aggregates: no extra pass
    with_norms = agg[agg["norm_sum"].notna()]
    stats = {int(g): (int(rows["count"].sum()), float(rows["norm_min"].min()),
                      float(rows["norm_max"].max()), float(rows["norm_sum"].sum()))
             for g, rows in with_norms.groupby("layer")}
    if not stats:
        return {}
    ranks = {g: needed_ranks(n, NORM_QUANTILES) for g, (n, _, _, _) in stats.items()}
    bounds = {g: (lo, hi) for g, (_, lo, hi, _) in stats.items()}
    order, fine = exact_order_stats(ex, "layer", "x", bounds, ranks)
    out = {}
    for g, (n, lo, hi, total) in stats.items():
        qs = linear_quantiles(n, NORM_QUANTILES, {k: order[(g, k)] for k in ranks[g]})
        out[g] = NormStats(mean=total / n, min=lo, max=hi, quantiles=qs,
                           hist=coarse_histogram(fine.get(g, {}), FINE_BINS))
    return out


def flow_edges(sids: DataFrame, drawn: dict[int, list[int]], run_id: str) -> pd.DataFrame:
    """Items along each pair of consecutive tokens, tokens outside `drawn` merged per layer."""
    from pyspark.sql import functions as F

    def node(key):
        layer, code = key_layer(key), key_code(key)
        cond = None
        for lay, codes in drawn.items():
            c = (layer == lay) & code.isin(codes) if codes else F.lit(False)
            cond = c if cond is None else cond | c
        return F.struct(layer.alias("layer"),
                        F.when(cond, code).otherwise(F.lit(OTHER_TOKEN)).alias("token"))

    size = F.size("keys")
    pairs = F.zip_with(F.slice("keys", 1, size - 1), F.slice("keys", 2, size - 1),
                       lambda a, b: F.struct(a.alias("a"), b.alias("b")))
    rows = (sids.where(size > 1).select(F.explode(pairs).alias("p"), "n")
            .select(node(F.col("p.a")).alias("s"), node(F.col("p.b")).alias("t"), "n")
            .groupBy("s", "t").agg(F.sum("n").alias("count")).collect())
    out = pd.DataFrame(
        [(run_id, r.s.layer, r.s.token, r.t.layer, r.t.token, r["count"]) for r in rows],
        columns=["run_id", "src_layer", "src_token", "dst_layer", "dst_token", "count"])
    return out.sort_values(["src_layer", "src_token", "dst_layer", "dst_token"],
                           ignore_index=True)


def compute_stats(valid: DataFrame, info: RunInfo, head_share: float = 0.5,
                  flow_top: int = 20) -> StatsFrames:
    """Every statistic of one run; `valid` holds only rows that passed validation."""
    from pyspark.sql import functions as F

    from hourglass.spark.session import persist_catalog

    agg = token_aggregates(valid)
    packed = packable(info.input_kind, info.M, info.num_layers)
    sids = (packed_sids(valid, info.M, info.num_layers) if packed
            else valid.groupBy("keys").agg(F.count("*").alias("n")))
    sids = persist_catalog(sids)
    try:
        depths, collisions = (packed_path_aggregates(sids, info.M, info.num_layers) if packed
                              else path_aggregates(sids, info.M))
        norms = norm_statistics(valid, agg)
        summary = summary_frame(info, agg, depths, collisions, norms, head_share, flow_top)
        drawn = {int(r.layer): [int(t) for t in top_tokens(agg, int(r.layer), int(r.flow_nodes))]
                 for r in summary.itertuples()}
        flow = (packed_flow_edges(sids, drawn, info.M, info.num_layers, info.run_id) if packed
                else flow_edges(sids, drawn, info.run_id))
    finally:
        sids.unpersist()
    return StatsFrames(
        layer_stats=layer_stats_frame(info.run_id, agg, head_share), summary=summary, flow=flow,
        n_items=collisions.n_items,
    )

