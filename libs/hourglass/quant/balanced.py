"""`rq_balanced`: residual k-means whose middle layer is trained with capacity-balanced assignment.

Why this mitigation (paper §3.2): after layer 1 most residuals are small (points near their
centre) and a few are large (outliers). Plain k-means on layer 2 minimises squared error, so it
spends most codewords on the outliers and leaves a handful to absorb the dense small-norm core:
a few layer-2 tokens carry most items (the hourglass). The rewrite strategies of §4 cut those
tokens out after the fact; this quantizer prevents them instead. During training on the sample,
each layer-2 codeword may take at most `ceil(slack·n/M)` points; points that overflow their
nearest codeword go to the next nearest with room, and codewords are re-estimated as the means of
their balanced groups. The centroids therefore move into the dense core in proportion to its
mass. Encoding is unchanged (exact greedy nearest codeword, streamable at table scale, no global
capacity bookkeeping): the mitigation lives entirely in the codewords, so a table encoded with it
is checked by the same hourglass statistics as any other. Per-layer residual normalisation was
the alternative; it changes the reconstruction (x̂ would need stored norms), this does not.
"""

from __future__ import annotations

import math

import numpy as np

from hourglass.quant.kmeans import reseed_empty


def balanced_assign(X: np.ndarray, C: np.ndarray, capacity: int,
                    candidates: int = 16) -> np.ndarray:
    """Assign each row to a codeword, no codeword taking more than `capacity` rows.

    Rounds of proposals: unassigned rows propose to their next-nearest candidate; a codeword
    accepts its closest proposers up to its remaining room (ties by row index). Rows left after
    `candidates` rounds go to the nearest codeword that still has room. Deterministic.
    """
    import faiss

    n, M = len(X), len(C)
    if capacity * M < n:
        raise ValueError(f"capacity {capacity} x {M} codewords cannot hold {n} rows")
    X = np.ascontiguousarray(X, dtype=np.float32)
    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(C, dtype=np.float32))
    dist, cand = index.search(X, min(candidates, M))
    assign = np.full(n, -1, dtype=np.int64)
    room = np.full(M, capacity, dtype=np.int64)
    for r in range(cand.shape[1]):
        rows = np.flatnonzero(assign < 0)
        if len(rows) == 0:
            break
        _accept(rows, cand[rows, r], dist[rows, r], assign, room)
    while (rows := np.flatnonzero(assign < 0)).size:
        open_ids = np.flatnonzero(room > 0)
        sub = faiss.IndexFlatL2(X.shape[1])
        sub.add(np.ascontiguousarray(C[open_ids], dtype=np.float32))
        d1, i1 = sub.search(X[rows], 1)
        _accept(rows, open_ids[i1[:, 0]], d1[:, 0], assign, room)
    return assign


def _accept(rows: np.ndarray, target: np.ndarray, dist: np.ndarray, assign: np.ndarray,
            room: np.ndarray) -> None:
    """Each target takes its closest proposers (then lowest row) up to its remaining room."""
    valid = target >= 0
    rows, target, dist = rows[valid], target[valid], dist[valid]
    order = np.lexsort((rows, dist, target))
    rows, target = rows[order], target[order]
    starts = np.searchsorted(target, target, side="left")
    rank = np.arange(len(target)) - starts
    ok = rank < room[target]
    assign[rows[ok]] = target[ok]
    np.subtract.at(room, target[ok], 1)


def train_balanced_layer(X: np.ndarray, C_init: np.ndarray, slack: float, iters: int,
                         candidates: int = 16) -> tuple[np.ndarray, int, int]:
    """Lloyd iterations with `balanced_assign`; returns codewords, reseeded and empty counts."""
    M = len(C_init)
    capacity = max(1, math.ceil(slack * len(X) / M))
    C = np.array(C_init, dtype=np.float64, copy=True)
    X64 = X.astype(np.float64)
    for _ in range(iters):
        assign = balanced_assign(X, C.astype(np.float32), capacity, candidates)
        counts = np.bincount(assign, minlength=M)
        sums = np.zeros_like(C)
        np.add.at(sums, assign, X64)
        used = counts > 0
        C[used] = sums[used] / counts[used, None]
    return reseed_empty(X, C.astype(np.float32))


def balanced_trainer(layers: tuple[int, ...] = (2,), slack: float = 1.0, iters: int = 10,
                     candidates: int = 16):
    """A `layer_trainer` for `train_residual_kmeans` that balances the given 1-based layers."""

    def trainer(layer: int, R: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, int, int]:
        if layer not in layers:
            return C, 0, 0
        return train_balanced_layer(R, C, slack, iters, candidates)

    return trainer
