"""Retrieval metrics from the rank of one held-out item per user (leave-one-out).

With one relevant item, Recall@k is the share of users whose item is in the top k (the hit
rate) and NDCG@k is the mean of 1/log2(rank + 1) over users with rank <= k (the ideal DCG is 1).
Rank 0 means 'not retrieved'. These numpy versions are the reference for the Spark aggregation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RECALL_KS = (1, 3, 5, 10, 30, 50)
NDCG_KS = (5, 10)


def recall_at(ranks: Sequence[int], k: int) -> float:
    r = np.asarray(ranks)
    return float(np.mean((r >= 1) & (r <= k))) if len(r) else float("nan")


def ndcg_at(ranks: Sequence[int], k: int) -> float:
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return float("nan")
    hit = (r >= 1) & (r <= k)
    gains = np.zeros_like(r)
    gains[hit] = 1.0 / np.log2(r[hit] + 1.0)
    return float(gains.mean())


def metric_rows(ranks: Sequence[int], recall_ks: Sequence[int] = RECALL_KS,
                ndcg_ks: Sequence[int] = NDCG_KS) -> list[tuple[str, int, float]]:
    """(metric, k, value) for every Recall@k and NDCG@k."""
    return ([("recall", k, recall_at(ranks, k)) for k in recall_ks]
            + [("ndcg", k, ndcg_at(ranks, k)) for k in ndcg_ks])


def popularity_order(counts: Mapping[str, int]) -> list[str]:
    """Items by count descending, then item_id: the baseline's ranking for every user."""
    return sorted(counts, key=lambda i: (-counts[i], i))
