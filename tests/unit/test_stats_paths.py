"""Path, collision and quantile helpers against hand-computed values and numpy."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.stats.paths import reference_path_stats
from hourglass.stats.quantiles import (
    FINE_BINS,
    bucket_index,
    coarse_histogram,
    linear_quantiles,
    locate_rank,
    needed_ranks,
    reference_norm_stats,
)


def test_fixed_length_paths_by_hand():
    sids = [(1, 2, 3), (1, 2, 4), (1, 5, 3), (2, 2, 3), (1, 2, 3)]
    depths, coll = reference_path_stats(sids, M=8)
    d1, d2, d3 = depths
    assert (d1.distinct_prefixes, d1.capacity, d1.path_fill) == (2, 8.0, 2 / 5)
    assert d1.fanout_dist == {2: 1} and d1.mean_fanout == 2
    assert (d2.distinct_prefixes, d2.capacity, d2.path_fill) == (3, 64.0, 3 / 5)
    assert d2.fanout_dist == {1: 1, 2: 1} and d2.mean_fanout == 1.5 and d2.max_fanout == 2
    assert (d3.distinct_prefixes, d3.path_fill, d3.sids_ending) == (4, 4 / 5, 5)
    assert d3.fanout_dist == {1: 2, 2: 1} and d3.mean_fanout == pytest.approx(4 / 3)
    assert coll.size_dist == {1: 3, 2: 1}
    assert (coll.n_sids, coll.colliding_sids, coll.colliding_items) == (4, 1, 2)
    assert (coll.collision_share, coll.max_items_per_sid, coll.mean_items_per_sid) == (
        0.4, 2, 1.25)


def test_variable_length_paths_by_hand():
    a1, a2, b2, c3, d0, d1 = (1, 1), (1, 2), (2, 2), (3, 3), (4, 0), (4, 1)
    sids = [(a1, c3, d0), (a1, c3, d1), (a1, b2, c3), (a2,)]
    depths, coll = reference_path_stats(sids, M=4)
    assert [d.items_at_depth for d in depths] == [4, 3, 3]
    assert [d.sids_ending for d in depths] == [1, 0, 3]
    assert [d.distinct_prefixes for d in depths] == [2, 2, 3]
    # a2 ends at depth 1: a leaf, not a parent of fan-out 0
    assert depths[1].fanout_dist == {2: 1} and depths[1].fanout_parents == 1
    assert depths[2].fanout_dist == {1: 1, 2: 1}
    assert depths[1].path_fill == 2 / 3  # min(M², items reaching depth 2) = 3
    assert coll.colliding_items == 0 and coll.n_sids == 4


def test_quantiles_equal_numpy_bit_for_bit(rng):
    for n in (1, 2, 3, 10, 1001):
        x = np.sort(rng.standard_normal(n).astype(np.float32).astype(np.float64))
        qs = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0, 0.333]
        ranks = needed_ranks(n, qs)
        got = linear_quantiles(n, qs, {r: x[r] for r in ranks})
        assert got == [float(v) for v in np.quantile(x, qs)]


def test_locate_rank_and_histograms(rng):
    counts = [3, 0, 2, 5]
    assert [locate_rank(counts, r) for r in (0, 2, 3, 4, 5, 9)] == [
        (0, 0), (0, 2), (2, 0), (2, 1), (3, 0), (3, 4)]
    with pytest.raises(ValueError):
        locate_rank(counts, 10)
    x = rng.gamma(2.0, size=5000)
    b = bucket_index(x, x.min(), x.max())
    assert b.min() == 0 and b.max() == FINE_BINS - 1
    assert np.all(np.diff(b[np.argsort(x)]) >= 0)  # monotone: buckets are value ranges
    coarse = coarse_histogram(dict(zip(*np.unique(b, return_counts=True), strict=True)))
    edges = np.linspace(x.min(), x.max(), 65)
    assert coarse == np.histogram(x, bins=edges)[0].tolist()
    ref = reference_norm_stats(x.astype(np.float32))
    assert sum(ref["hist"]) == 5000 and ref["min"] <= ref["quantiles"][0] <= ref["max"]
