"""Residual k-means codebooks (the default `rq_kmeans` quantizer) with faiss, seeded.

Layer by layer: k-means on the current residuals of the training sample, then exact greedy
encoding (`kernel.GreedyEncoder`) to get the next residuals, so training sees exactly the
residuals that encoding will produce. faiss re-splits clusters that empty during its iterations,
but a cluster can still be empty under the final assignment (duplicate points, tiny samples);
such codewords are reseeded at the worst-quantized distinct points, because an empty codeword
is wasted SID capacity, which is precisely what the hourglass is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hourglass.quant.kernel import GreedyEncoder, row_norms


@dataclass(frozen=True)
class ResidualFit:
    """Trained `(L, M, D)` codewords and per-layer training figures on the sample."""

    codebooks: np.ndarray
    distortion: list[float]  # mean ‖r_{l+1}‖² on the sample after each layer
    reseeded: list[int] = field(default_factory=list)  # empty codewords reseeded per layer
    empty: list[int] = field(default_factory=list)  # codewords still unused (too few points)


def assign_exact(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest codeword (ties to the lowest index) and the squared error of each row."""
    out = GreedyEncoder(C[None]).encode(X)
    return out.codes[:, 0].astype(np.int64), out.residual_norms[:, 0] ** 2


def reseed_empty(X: np.ndarray, C: np.ndarray, rounds: int = 3) -> tuple[np.ndarray, int, int]:
    """Move codewords without points onto the worst-quantized distinct points.

    Returns the new centroids, how many were reseeded and how many remain empty (the sample
    has fewer distinct badly-quantized points than empty codewords).
    """
    C = C.copy()
    reseeded = 0
    for _ in range(rounds):
        assign, err = assign_exact(X, C)
        empty = np.flatnonzero(np.bincount(assign, minlength=len(C)) == 0)
        if len(empty) == 0:
            return C, reseeded, 0
        order = np.argsort(-err, kind="stable")
        order = order[err[order] > 0][: 4 * len(empty) + 1024]
        _, first = np.unique(X[order], axis=0, return_index=True)
        donors = order[np.sort(first)][: len(empty)]
        if len(donors) == 0:
            break
        C[empty[: len(donors)]] = X[donors]
        reseeded += len(donors)
    assign, _ = assign_exact(X, C)
    return C, reseeded, int((np.bincount(assign, minlength=len(C)) == 0).sum())


def kmeans(X: np.ndarray, k: int, niter: int, seed: int) -> tuple[np.ndarray, int, int]:
    """faiss k-means on all of `X` (no subsampling), then `reseed_empty`."""
    import faiss

    X = np.ascontiguousarray(X, dtype=np.float32)
    if len(X) < k:
        raise ValueError(f"k-means of {k} codewords needs at least {k} sample rows, got {len(X)}")
    km = faiss.Kmeans(X.shape[1], k, niter=niter, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=len(X) // k + 1)
    km.train(X)
    return reseed_empty(X, km.centroids)


def train_residual_kmeans(X: np.ndarray, num_layers: int, size: int, niter: int, seed: int,
                          layer_trainer=None) -> ResidualFit:
    """Per-layer k-means on residuals; `layer_trainer(layer, R, C_init)` may replace a layer.

    `layer` is 1-based as in the paper. The balanced quantizer passes a trainer that rebalances
    the middle layer (`balanced.py`); everything else stays plain residual k-means.
    """
    R = np.array(X, dtype=np.float32, copy=True)
    books, distortion, reseeded, empty = [], [], [], []
    for layer in range(1, num_layers + 1):
        C, n_reseeded, n_empty = kmeans(R, size, niter, seed + layer)
        if layer_trainer is not None:
            C, n_reseeded2, n_empty = layer_trainer(layer, R, C)
            n_reseeded += n_reseeded2
        assign, _ = assign_exact(R, C)
        R -= C[assign]
        books.append(C.astype(np.float32))
        distortion.append(float(np.mean(row_norms(R).astype(np.float64) ** 2)))
        reseeded.append(n_reseeded)
        empty.append(n_empty)
    return ResidualFit(np.stack(books), distortion, reseeded, empty)
