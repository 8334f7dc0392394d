"""Capacity-balanced middle layer (`rq_balanced`): capacity holds, and the hourglass narrows."""

from __future__ import annotations

import numpy as np

from hourglass.quant.balanced import balanced_assign, balanced_trainer
from hourglass.quant.kernel import encode_greedy
from hourglass.quant.kmeans import train_residual_kmeans
from hourglass.quant.synthetic import synthetic_block


def norm_entropy(codes: np.ndarray, M: int) -> float:
    p = np.bincount(codes, minlength=M) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / np.log(M))


def gini(codes: np.ndarray, M: int) -> float:
    x = np.sort(np.bincount(codes, minlength=M)).astype(np.float64)
    return float((2 * np.arange(1, M + 1) - M - 1) @ x / (M * x.sum()))


def test_capacity_is_respected_and_loose_capacity_is_nearest(rng):
    X = rng.standard_normal((1000, 8)).astype(np.float32)
    C = rng.standard_normal((20, 8)).astype(np.float32)
    tight = balanced_assign(X, C, capacity=50, candidates=4)
    assert (tight >= 0).all()
    assert np.bincount(tight, minlength=20).tolist() == [50] * 20
    loose = balanced_assign(X, C, capacity=1000)
    np.testing.assert_array_equal(loose, encode_greedy(X, C[None]).codes[:, 0])


def test_balancing_layer_two_flattens_its_token_distribution():
    X = synthetic_block(0, 12000, 12000, 32, 300, 1.1, 0.5, seed=11)[1]
    M = 32
    plain = train_residual_kmeans(X, 3, M, 10, seed=1)
    bal = train_residual_kmeans(X, 3, M, 10, seed=1, layer_trainer=balanced_trainer((2,), 1.0, 5))
    np.testing.assert_array_equal(plain.codebooks[0], bal.codebooks[0])  # layer 1 untouched
    codes_plain = encode_greedy(X, plain.codebooks).codes
    h_plain = [norm_entropy(codes_plain[:, i], M) for i in range(3)]
    assert h_plain[1] < min(h_plain[0], h_plain[2]) - 0.05  # the hourglass is there to break
    c_plain, c_bal = codes_plain[:, 1], encode_greedy(X, bal.codebooks).codes[:, 1]
    assert norm_entropy(c_bal, M) > norm_entropy(c_plain, M) + 0.08
    assert gini(c_bal, M) < gini(c_plain, M) - 0.15
    # the price is bounded: final distortion within 15% of plain residual k-means
    assert bal.distortion[-1] < 1.15 * plain.distortion[-1]
