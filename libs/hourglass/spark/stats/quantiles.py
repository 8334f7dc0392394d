"""Exact order statistics per group at table scale, without sorting or collecting the table.

Pass 1 histograms each group's values into FINE_BINS equal-width buckets over [min, max]
(count, min and max per bucket). The bucket holding a wanted rank is a value range [bmin, bmax]
that contains exactly that bucket's values, because the bucket map is monotone. If bmin == bmax
the answer is known; if the bucket is small its values are collected (value, count) and the rank
read off; otherwise the bucket is histogrammed again. Typically two passes, and what reaches the
driver is at most groups × FINE_BINS histogram rows plus a few small buckets.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from hourglass.stats.quantiles import FINE_BINS, locate_rank

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Interval = tuple[int, float, float]  # (group, lo, hi), both ends inclusive


def _interval_id(intervals: list[Interval], group: str, value: str) -> Column:
    from pyspark.sql import functions as F

    expr = None
    for i, (g, lo, hi) in enumerate(intervals):
        cond = (F.col(group) == g) & (F.col(value) >= F.lit(lo)) & (F.col(value) <= F.lit(hi))
        expr = F.when(cond, F.lit(i)) if expr is None else expr.when(cond, F.lit(i))
    return expr


def _histograms(df: DataFrame, intervals: list[Interval], group: str, value: str,
                bins: int) -> dict[int, list[tuple[int, int, float, float]]]:
    """{interval: [(bucket, count, bmin, bmax) ascending]} for each interval."""
    from pyspark.sql import functions as F

    iid = _interval_id(intervals, group, value)
    lo = F.element_at(F.array(*[F.lit(lo) for _, lo, _ in intervals]), F.col("iid") + 1)
    hi = F.element_at(F.array(*[F.lit(hi) for _, _, hi in intervals]), F.col("iid") + 1)
    x = F.col("x")
    bucket = F.when(hi > lo, F.least(F.floor((x - lo) / (hi - lo) * bins), F.lit(bins - 1)))
    rows = (df.select(iid.alias("iid"), F.col(value).alias("x")).where(F.col("iid").isNotNull())
            .select("iid", "x", F.coalesce(bucket, F.lit(0)).cast("int").alias("b"))
            .groupBy("iid", "b")
            .agg(F.count("*").alias("n"), F.min("x").alias("bmin"), F.max("x").alias("bmax"))
            .collect())
    out: dict[int, list] = defaultdict(list)
    for r in rows:
        out[r["iid"]].append((r["b"], r["n"], r["bmin"], r["bmax"]))
    return {k: sorted(v) for k, v in out.items()}


def _values(df: DataFrame, intervals: list[Interval], group: str,
            value: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{interval: (sorted distinct values, their counts)} for small intervals."""
    from pyspark.sql import functions as F

    iid = _interval_id(intervals, group, value)
    rows = (df.select(iid.alias("iid"), F.col(value).alias("x")).where(F.col("iid").isNotNull())
            .groupBy("iid", "x").count().collect())
    out: dict[int, list] = defaultdict(list)
    for r in rows:
        out[r["iid"]].append((r["x"], r["count"]))
    return {k: (np.array([x for x, _ in sorted(v)]), np.array([c for _, c in sorted(v)]))
            for k, v in out.items()}


def exact_order_stats(
    df: DataFrame, group: str, value: str, bounds: dict[int, tuple[float, float]],
    ranks: dict[int, list[int]], bins: int = FINE_BINS, collect_limit: int = 200_000,
    max_passes: int = 12,
) -> tuple[dict[tuple[int, int], float], dict[int, dict[int, int]]]:
    """Exact `rank`-th smallest `value` (0-based) per `group`; and pass 1's fine histograms.

    `bounds` holds each group's exact (min, max); `value` must be DOUBLE without nulls/NaN.
    """
    pending = {(g, r): ((g, *bounds[g]), r) for g, rs in ranks.items() for r in rs}
    result: dict[tuple[int, int], float] = {}
    fine: dict[int, dict[int, int]] = {}
    first = True
    for _ in range(max_passes):
        if not pending:
            return result, fine
        intervals = sorted({iv for iv, _ in pending.values()})
        index = {iv: i for i, iv in enumerate(intervals)}
        hists = _histograms(df, intervals, group, value, bins)
        if first:
            fine = {iv[0]: {b: n for b, n, _, _ in hists.get(index[iv], [])} for iv in intervals}
            first = False
        to_collect: dict[tuple[int, int], tuple[Interval, int]] = {}
        nxt = {}
        for target, (iv, rank) in pending.items():
            buckets = hists[index[iv]]
            pos, within = locate_rank([n for _, n, _, _ in buckets], rank)
            _, n, bmin, bmax = buckets[pos]
            sub = (iv[0], bmin, bmax)
            if bmin == bmax:
                result[target] = float(bmin)
            elif n <= collect_limit:
                to_collect[target] = (sub, within)
            else:
                nxt[target] = (sub, within)
        if to_collect:
            small = sorted({iv for iv, _ in to_collect.values()})
            vals = _values(df, small, group, value)
            for target, (iv, within) in to_collect.items():
                xs, counts = vals[small.index(iv)]
                pos, _ = locate_rank(counts, within)
                result[target] = float(xs[pos])
        pending = nxt
    raise RuntimeError(f"order statistics did not converge in {max_passes} passes: {pending}")
