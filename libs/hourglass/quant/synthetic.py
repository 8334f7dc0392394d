"""Seeded long-tail clustered embeddings for scale work, generated block by block.

The paper traces the hourglass to long-tailed, clustered data (§3.2), so the generator draws
cluster sizes from a Zipf law and points as isotropic Gaussians around unit-norm centres. Every
block is keyed by its index alone (the centres by the seed alone), so any partitioning of the
blocks over Spark tasks yields the same rows: `jobs/synthesize.py` maps block indices to rows
inside executors, and tests can regenerate any block on the driver.
"""

from __future__ import annotations

import numpy as np

_CENTRES, _ASSIGN, _NOISE = 0, 1, 2  # independent random streams per purpose


def cluster_centres(dim: int, n_clusters: int, seed: int) -> np.ndarray:
    """Unit-norm cluster centres `(n_clusters, dim)` float32, a function of the seed only."""
    rng = np.random.default_rng([seed, _CENTRES])
    C = rng.standard_normal((n_clusters, dim))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    return C.astype(np.float32)


def zipf_weights(n_clusters: int, zipf_exponent: float) -> np.ndarray:
    """Probability of each cluster, ∝ (rank+1)^−s; s = 0 gives equal sizes."""
    w = (np.arange(1, n_clusters + 1, dtype=np.float64)) ** (-zipf_exponent)
    return w / w.sum()


def synthetic_block(block_index: int, block_size: int, n_total: int, dim: int, n_clusters: int,
                    zipf_exponent: float, spread: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows `[block_index·block_size, min(n_total, (block_index+1)·block_size))`.

    Returns `ids` int64 (the global row numbers) and `X` float32 `(rows, dim)`: a Zipf-chosen
    centre plus Gaussian noise of expected norm `spread`. Blocks past `n_total` are empty.
    """
    if block_size < 1 or n_total < 0 or dim < 1 or n_clusters < 1 or block_index < 0:
        raise ValueError("block_size, dim, n_clusters must be >= 1; n_total, block_index >= 0")
    if spread < 0 or zipf_exponent < 0:
        raise ValueError("spread and zipf_exponent must be >= 0")
    start = block_index * block_size
    rows = max(0, min(block_size, n_total - start))
    ids = np.arange(start, start + rows, dtype=np.int64)
    if rows == 0:
        return ids, np.empty((0, dim), dtype=np.float32)
    centres = cluster_centres(dim, n_clusters, seed)
    cdf = np.cumsum(zipf_weights(n_clusters, zipf_exponent))
    assign_rng = np.random.default_rng([seed, _ASSIGN, block_index])
    cluster = np.minimum(np.searchsorted(cdf, assign_rng.random(rows), side="right"),
                         n_clusters - 1)
    noise_rng = np.random.default_rng([seed, _NOISE, block_index])
    X = noise_rng.standard_normal((rows, dim), dtype=np.float32)
    X *= np.float32(spread / np.sqrt(dim))
    X += centres[cluster]
    return ids, X
