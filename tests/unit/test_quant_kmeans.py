"""Residual k-means codebooks: quality against faiss/numpy references, seeding, empty clusters."""

from __future__ import annotations

import numpy as np

from hourglass.quant.kernel import encode_greedy
from hourglass.quant.kmeans import kmeans, reseed_empty, train_residual_kmeans
from hourglass.quant.synthetic import synthetic_block


def sample(n: int = 4000, dim: int = 16) -> np.ndarray:
    return synthetic_block(0, n, n, dim, 40, 1.0, 0.4, seed=5)[1]


def test_layer_distortion_falls_and_matches_encoding():
    X = sample()
    fit = train_residual_kmeans(X, 3, 32, 10, seed=1)
    assert fit.codebooks.shape == (3, 32, 16) and fit.codebooks.dtype == np.float32
    assert fit.distortion[0] > fit.distortion[1] > fit.distortion[2]
    out = encode_greedy(X, fit.codebooks)  # training residuals are the encoder's residuals
    measured = (out.residual_norms.astype(np.float64) ** 2).mean(axis=0)
    np.testing.assert_allclose(measured, fit.distortion, rtol=1e-5)
    assert fit.empty == [0, 0, 0]


def test_first_layer_is_as_good_as_plain_faiss_kmeans():
    import faiss

    X = sample()
    ours = train_residual_kmeans(X, 1, 32, 10, seed=1).distortion[0]
    ref = faiss.Kmeans(16, 32, niter=10, seed=2, min_points_per_centroid=1)
    ref.train(X)
    ref_err = float(ref.index.search(X, 1)[0].mean())
    assert ours <= ref_err * 1.05
    # and far better than 32 random data points as codewords
    rand = X[np.random.default_rng(0).choice(len(X), 32, replace=False)]
    assert ours < 0.7 * encode_greedy(X, rand[None]).residual_norms[:, 0].__pow__(2).mean()


def test_same_seed_same_codebooks_other_seed_differs():
    X = sample(2000)
    a = train_residual_kmeans(X, 2, 16, 5, seed=3).codebooks
    b = train_residual_kmeans(X, 2, 16, 5, seed=3).codebooks
    c = train_residual_kmeans(X, 2, 16, 5, seed=4).codebooks
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_reseed_fills_empty_codewords_at_worst_points(rng):
    X = rng.standard_normal((500, 4)).astype(np.float32)
    C = X[:8].copy()
    C[5] = 1e4  # far from everything: never the nearest codeword
    C[6] = 1e4 + 1
    fixed, reseeded, empty = reseed_empty(X, C)
    assert reseeded == 2 and empty == 0
    counts = np.bincount(encode_greedy(X, fixed[None]).codes[:, 0], minlength=8)
    assert (counts > 0).all()
    # the new codewords are data points (the worst-quantized ones)
    assert all((fixed[i] == X).all(axis=1).any() for i in (5, 6))


def test_fewer_distinct_points_than_codewords_reports_empty():
    X = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 3 distinct points, 30 rows
    C, _, empty = kmeans(X, 5, 5, seed=0)
    assert empty == 2
    assert len(np.unique(encode_greedy(X, C[None]).codes)) == 3
