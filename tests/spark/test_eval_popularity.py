"""The popularity baseline evaluate scores (`spark/evaluation.py`) against a plain-numpy
reference: counts exclude each user's held-out target, so the baseline never sees the answers."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.evaluation.metrics import popularity_order
from hourglass.spark.evaluation import popularity_counts, popularity_scored

pytestmark = pytest.mark.spark


def reference_ranks(interactions: list[tuple[str, str]], held_out: list[tuple[str, str]],
                    max_k: int) -> dict[str, int]:
    """numpy: count every interaction, subtract the held-out targets, keep positive counts,
    order by (count desc, item_id), rank each user's target in the first `max_k` (0: absent)."""
    items, counts = np.unique([i for _, i in interactions], return_counts=True)
    count = dict(zip(items.tolist(), counts.tolist(), strict=True))
    for _, target in held_out:
        count[target] -= 1
    kept = [(-c, i) for i, c in count.items() if c > 0]
    top = [i for _, i in sorted(kept)][:max_k]
    return {u: top.index(t) + 1 if t in top else 0 for u, t in held_out}


def test_popularity_baseline_excludes_each_users_held_out_target(spark, rng):
    users = [f"u{u}" for u in range(30)]
    weights = np.array([12, 10, 9, 9, 6, 4, 3, 2, 1, 1], dtype=float)
    catalog = [f"i{i}" for i in range(len(weights))]
    interactions, held_out = [], []
    for u in users:
        seq = rng.choice(catalog, size=int(rng.integers(3, 8)), p=weights / weights.sum())
        interactions += [(u, str(i)) for i in seq]
        held_out.append((u, str(seq[-1])))  # the last item is this user's test target
    # Two users whose only copy of "i9" is their target: without the exclusion it would count.
    for u in ("solo1", "solo2"):
        interactions += [(u, "i0"), (u, "i9")]
        held_out.append((u, "i9"))
    max_k = 6

    inter_df = spark.createDataFrame(interactions, "user_id string, item_id string")
    held_df = spark.createDataFrame(held_out, "user_id string, target_item_id string")
    counts = {r["item_id"]: r["count"] for r in popularity_counts(inter_df, held_df).collect()}
    top = popularity_order(counts)[:max_k]
    got = {r["user_id"]: r["rank"] for r in popularity_scored(held_df, top).collect()}

    want = reference_ranks(interactions, held_out, max_k)
    assert got == want
    naive = {i: c for i, c in zip(*np.unique([i for _, i in interactions], return_counts=True),
                                  strict=True)}
    assert counts != naive  # the held-out targets were taken out, not merely re-ordered
    assert any(r > 0 for r in want.values()) and any(r == 0 for r in want.values())
