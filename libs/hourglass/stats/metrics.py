"""Per-layer token-distribution metrics, from the counts of the tokens that occur.

Counts arrive sparse (the tokens that occur and their counts) with the codebook size M, because
the definitions run over all M tokens, unused ones included: a layer that uses 10 of 4096 codes
must score a high Gini and a low utilization even though its 10 counts look balanced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _as_counts(counts) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.int64).ravel()
    if arr.size and arr.min() < 0:
        raise ValueError("token counts must be non-negative")
    return arr[arr > 0]


def _check_m(counts: np.ndarray, M: int) -> None:
    if M < 1:
        raise ValueError(f"M must be >= 1, got {M}")
    if counts.size > M:
        raise ValueError(f"{counts.size} tokens occur but M is only {M}")


def entropy(counts) -> float:
    """Shannon entropy in nats of p = n / N; zero counts are skipped (0 log 0 = 0)."""
    x = _as_counts(counts)
    n = x.sum()
    if n == 0:
        return float("nan")
    p = x / n
    return float(-(p * np.log(p)).sum())


def normalized_entropy(counts, M: int) -> float:
    """H / log M: 1 for a uniform layer, 0 when every item shares one token."""
    x = _as_counts(counts)
    _check_m(x, M)
    if M == 1:
        return float("nan")
    return entropy(x) / math.log(M)


def gini(counts, M: int) -> float:
    """Gini coefficient over all M tokens, zeros included (0 = uniform, (M-1)/M = one token).

    With counts sorted ascending x_1..x_M: G = 2 Σ i·x_i / (M Σ x) − (M + 1) / M. The M − u
    unused tokens take the first places, so only the u used ones enter the sum.
    """
    x = np.sort(_as_counts(counts))
    _check_m(x, M)
    total = x.sum()
    if total == 0:
        return float("nan")
    idx = np.arange(M - x.size + 1, M + 1, dtype=np.float64)
    return float(2.0 * (idx * x).sum() / (M * total) - (M + 1) / M)


def count_std(counts, M: int) -> float:
    """Population standard deviation of the M token counts (zeros included)."""
    x = _as_counts(counts).astype(np.float64)
    _check_m(x, M)
    mean = x.sum() / M
    sq = ((x - mean) ** 2).sum() + (M - x.size) * mean**2
    return float(math.sqrt(sq / M))


def utilization(counts, M: int) -> float:
    """Share of the M codes that at least one item uses."""
    x = _as_counts(counts)
    _check_m(x, M)
    return x.size / M


def top1_share(counts) -> float:
    """Share of items on the most frequent token."""
    x = _as_counts(counts)
    return float(x.max() / x.sum()) if x.size else float("nan")


def rank_order(tokens, counts) -> np.ndarray:
    """Indices that sort tokens by count descending, ties by token ascending (deterministic)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    return np.lexsort((tokens, -counts))


def head_tokens(tokens, counts, share: float) -> np.ndarray:
    """The most frequent tokens that together cover at least `share` of the items.

    The smallest such prefix of the rank order, so share=0.5 on counts (5, 3, 2) gives the first
    token only. Everything else is the tail. Same rule as the rewrite strategy topshare(p).
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"head share must be in (0, 1], got {share}")
    tokens = np.asarray(tokens, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    keep = counts > 0
    tokens, counts = tokens[keep], counts[keep]
    if counts.size == 0:
        return tokens
    order = rank_order(tokens, counts)
    cum = np.cumsum(counts[order])
    k = int(np.searchsorted(cum, share * cum[-1], side="left")) + 1
    return tokens[order[: min(k, order.size)]]


@dataclass(frozen=True)
class LayerMetrics:
    """The token-distribution metrics of one layer; NaN where no item has a token there."""

    n_tokens: int
    used_tokens: int
    entropy: float
    norm_entropy: float
    gini: float
    std: float
    utilization: float
    top1_share: float


def layer_metrics(counts, M: int) -> LayerMetrics:
    """All token metrics of one layer from its counts (sparse or dense) and codebook size M."""
    x = _as_counts(counts)
    _check_m(x, M)
    if x.size == 0:
        nan = float("nan")
        return LayerMetrics(0, 0, nan, nan, nan, nan, 0.0, nan)
    return LayerMetrics(
        n_tokens=int(x.sum()), used_tokens=int(x.size), entropy=entropy(x),
        norm_entropy=normalized_entropy(x, M), gini=gini(x, M), std=count_std(x, M),
        utilization=utilization(x, M), top1_share=top1_share(x),
    )
