"""Exact quantiles from order statistics, and the bucketing that finds them at table scale.

Quantiles follow numpy's default ('linear', Hyndman–Fan 7) on float64 values, so a Spark result
can be compared with `np.quantile(values.astype(np.float64), q)`. The Spark side never sorts the
table: it histograms values into `FINE_BINS` equal-width buckets over [lo, hi] (a monotone map,
so buckets are ordered value ranges), walks the cumulative counts to the bucket holding a
wanted rank, and resolves that bucket exactly (see `spark.stats.quantiles`). The coarse
histogram drawn in the report is the fine one summed in blocks, exact by construction
(FINE_BINS / HIST_BINS is a power of two, so the block edges are the coarse bins' own edges).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

NORM_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HIST_BINS = 64
FINE_BINS = 1 << 12


def quantile_positions(n: int, q: float) -> tuple[int, int, float]:
    """(previous index, next index, weight) of quantile q among n sorted values (numpy 'linear')."""
    if n < 1 or not 0.0 <= q <= 1.0:
        raise ValueError(f"need n >= 1 and 0 <= q <= 1, got n={n}, q={q}")
    virtual = q * (n - 1)
    prev = min(int(math.floor(virtual)), n - 1)
    nxt = min(prev + 1, n - 1)
    return prev, nxt, virtual - prev


def needed_ranks(n: int, qs: Sequence[float]) -> list[int]:
    """The 0-based order statistics that the quantiles `qs` of n values interpolate between."""
    ranks: set[int] = set()
    for q in qs:
        prev, nxt, _ = quantile_positions(n, q)
        ranks.update((prev, nxt))
    return sorted(ranks)


def lerp(a: float, b: float, t: float) -> float:
    """numpy's `_lerp`: a + (b−a)·t, computed from b when t ≥ 0.5 (bit-equal to np.quantile)."""
    diff = b - a
    return b - diff * (1.0 - t) if t >= 0.5 else a + diff * t


def linear_quantiles(n: int, qs: Sequence[float], order_stats: Mapping[int, float]) -> list[float]:
    """Quantiles from the order statistics listed by `needed_ranks`."""
    out = []
    for q in qs:
        prev, nxt, t = quantile_positions(n, q)
        out.append(lerp(float(order_stats[prev]), float(order_stats[nxt]), t))
    return out


def bucket_index(x: np.ndarray, lo: float, hi: float, bins: int = FINE_BINS) -> np.ndarray:
    """The bucket of each value in [lo, hi]; the same double arithmetic as the Spark expression."""
    x = np.asarray(x, dtype=np.float64)
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.int64)
    b = np.floor((x - lo) / (hi - lo) * bins).astype(np.int64)
    return np.minimum(b, bins - 1)


def locate_rank(counts: Sequence[int], rank: int) -> tuple[int, int]:
    """(position in `counts`, rank within that bucket) of the 0-based `rank`-th smallest value."""
    cum = np.cumsum(np.asarray(counts, dtype=np.int64))
    if not 0 <= rank < (cum[-1] if cum.size else 0):
        raise ValueError(f"rank {rank} outside 0..{int(cum[-1]) - 1 if cum.size else -1}")
    pos = int(np.searchsorted(cum, rank, side="right"))
    before = int(cum[pos - 1]) if pos else 0
    return pos, rank - before


def coarse_histogram(fine: Mapping[int, int], fine_bins: int = FINE_BINS,
                     bins: int = HIST_BINS) -> list[int]:
    """Sum a sparse fine histogram {bucket: count} into `bins` equal-width bins."""
    if fine_bins % bins:
        raise ValueError("fine_bins must be a multiple of bins")
    out = [0] * bins
    block = fine_bins // bins
    for b, c in fine.items():
        out[int(b) // block] += int(c)
    return out


def reference_norm_stats(values: np.ndarray, qs: Sequence[float] = NORM_QUANTILES) -> dict:
    """numpy reference of what the Spark job stores for one layer's residual norms."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    b = bucket_index(x, lo, hi)
    fine = dict(zip(*np.unique(b, return_counts=True), strict=True))
    return {
        "mean": float(x.mean()), "min": lo, "max": hi,
        "quantiles": [float(v) for v in np.quantile(x, qs)],
        "hist": coarse_histogram(fine),
    }
