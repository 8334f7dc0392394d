"""Fixed-length SIDs packed into one BIGINT: the fast path of the path statistics.

A fixed-length SID (c1..cL) with M^L < 2^62 is the integer Σ c_l·M^(L−l), so its depth-d prefix
is `sid div M^(L−d)` and its layer-l code is `(sid div M^(L−l)) % M`. Grouping and shuffling
one long instead of an array of L keys is what makes the per-SID passes (distinct SIDs, the
prefix cascade, the flow edges) cheap at 10^7 items. Variable-length (rewritten) SIDs use the
array path in `stats.rows`; both produce the same dataclasses and are tested against the same
reference. Which SIDs pack is `hourglass.stats.plan.packable`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from hourglass.spark.stats.input import key_code
from hourglass.stats.paths import CollisionStats, DepthStats, collision_stats, depth_stats
from hourglass.stats.schema import OTHER_TOKEN

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

def packed_sids(valid: DataFrame, M: int, L: int) -> DataFrame:
    """(sid BIGINT, n): the distinct SIDs of `valid` (keys of length L) and their item counts."""
    from pyspark.sql import functions as F

    sid = F.lit(0).cast("bigint")
    for i in range(L):  # spelled out: a lambda (`aggregate`) would leave generated code
        sid = sid * M + key_code(F.try_element_at("keys", F.lit(i + 1))).cast("bigint")
    return valid.select(sid.alias("sid")).groupBy("sid").agg(F.count("*").alias("n"))


def packed_path_aggregates(sids: DataFrame, M: int, L: int
                           ) -> tuple[list[DepthStats], CollisionStats]:
    """Prefix cascade on packed SIDs: the parents of depth d are `p div M`."""
    from pyspark.sql import functions as F

    from hourglass.spark.session import persist_catalog

    size_dist = {r[0]: r[1] for r in sids.groupBy("n").count().collect()}
    n_items = sum(k * v for k, v in size_dist.items())
    fanouts: dict[int, dict[int, int]] = {}
    level = sids.select(F.col("sid").alias("p"))
    held = []
    for d in range(L, 1, -1):
        parents = (level.groupBy(F.expr(f"p div {M}").alias("p"))
                   .agg(F.count("*").alias("children")).transform(persist_catalog))
        held.append(parents)
        fanouts[d] = {r[0]: r[1] for r in parents.groupBy("children").count().collect()}
        level = parents.select("p")
    fanouts[1] = {level.count(): 1}
    for frame in held:
        frame.unpersist()
    depths = [depth_stats(d, M, items_at_depth=n_items, sids_ending=n_items if d == L else 0,
                          fanout_dist=fanouts[d]) for d in range(1, L + 1)]
    return depths, collision_stats(size_dist)


def packed_flow_edges(sids: DataFrame, drawn: dict[int, list[int]], M: int, L: int,
                      run_id: str) -> pd.DataFrame:
    """Items along (layer l, layer l+1) token pairs, tokens outside `drawn` merged per layer."""
    from pyspark.sql import functions as F

    def code(layer: int) -> Column:
        return F.expr(f"(sid div {M ** (L - layer)}) % {M}").cast("int")

    def node(layer: int) -> Column:
        keep = drawn.get(layer) or []
        c = code(layer)
        return F.when(c.isin(keep), c).otherwise(F.lit(OTHER_TOKEN)) if keep else F.lit(
            OTHER_TOKEN)

    pairs = F.array(*[F.struct(F.lit(lay).alias("sl"), node(lay).alias("st"),
                               F.lit(lay + 1).alias("dl"), node(lay + 1).alias("dt"))
                      for lay in range(1, L)])
    rows = (sids.select(F.explode(pairs).alias("e"), "n")
            .groupBy("e.sl", "e.st", "e.dl", "e.dt").agg(F.sum("n").alias("count")).collect())
    out = pd.DataFrame([(run_id, *r) for r in rows],
                       columns=["run_id", "src_layer", "src_token", "dst_layer", "dst_token",
                                "count"])
    return out.sort_values(["src_layer", "src_token", "dst_layer", "dst_token"],
                           ignore_index=True)
