"""The synthetic long-tail generator: partition independence, Zipf sizes, spread, edges."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.quant.synthetic import cluster_centres, synthetic_block, zipf_weights

ARGS = {"n_total": 2500, "dim": 16, "n_clusters": 50, "zipf_exponent": 1.2, "spread": 0.2,
        "seed": 9}


def test_blocks_do_not_depend_on_order_or_on_other_blocks():
    blocks = [synthetic_block(b, 1000, **ARGS) for b in range(3)]
    again = [synthetic_block(b, 1000, **ARGS) for b in (2, 0, 1)]
    for (ids, X), (ids2, X2) in zip(blocks, [again[1], again[2], again[0]], strict=True):
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(X, X2)
    ids = np.concatenate([b[0] for b in blocks])
    np.testing.assert_array_equal(ids, np.arange(2500))
    assert [len(b[0]) for b in blocks] == [1000, 1000, 500]
    assert synthetic_block(3, 1000, **ARGS)[1].shape == (0, 16)


def test_types_and_seed():
    ids, X = synthetic_block(0, 100, **ARGS)
    assert ids.dtype == np.int64 and X.dtype == np.float32 and X.shape == (100, 16)
    other = synthetic_block(0, 100, **{**ARGS, "seed": 10})[1]
    assert not np.array_equal(X, other)


def test_cluster_sizes_follow_zipf_and_spread_sets_noise():
    args = {**ARGS, "n_total": 40000}
    X = synthetic_block(0, 40000, **args)[1]
    centres = cluster_centres(16, 50, 9)
    nearest = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    share = np.bincount(nearest, minlength=50) / len(X)
    w = zipf_weights(50, 1.2)
    np.testing.assert_allclose(share[:5], w[:5], atol=0.01)  # head clusters as Zipf says
    noise = np.linalg.norm(X - centres[nearest], axis=1)
    assert abs(np.median(noise) - 0.2) < 0.03


def test_invalid_arguments():
    with pytest.raises(ValueError):
        synthetic_block(0, 0, **ARGS)
    with pytest.raises(ValueError):
        synthetic_block(0, 10, **{**ARGS, "spread": -1.0})
