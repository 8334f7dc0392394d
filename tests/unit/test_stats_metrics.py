"""Token metrics against hand-computed values and independent numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass.stats.metrics import (
    count_std,
    entropy,
    gini,
    head_tokens,
    layer_metrics,
    normalized_entropy,
    rank_order,
    top1_share,
    utilization,
)


def gini_mean_abs_diff(dense: np.ndarray) -> float:
    """Gini as Σ|x_i − x_j| / (2 M² μ): a different formula from the sorted-index one."""
    x = dense.astype(np.float64)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean()))


def test_hand_computed_values():
    # p = (1/4, 1/4, 1/2): H = 1.5 ln 2; M = 4 → H / ln 4 = 0.75
    assert entropy([1, 1, 2]) == pytest.approx(1.5 * math.log(2), abs=1e-12)
    assert normalized_entropy([1, 1, 2], 4) == pytest.approx(0.75, abs=1e-12)
    assert gini([4], 4) == pytest.approx(0.75)            # one token of four: (M−1)/M
    assert gini([1, 1, 1, 1], 4) == pytest.approx(0.0)
    assert gini([1, 2, 3, 4], 4) == pytest.approx(0.25)   # Σ|xi−xj| = 20 over 2·16·2.5
    assert count_std([4], 4) == pytest.approx(math.sqrt(3.0))  # counts 4,0,0,0: mean 1
    assert utilization([5, 1], 8) == 0.25
    assert top1_share([5, 3, 2]) == 0.5


def test_zeros_are_skipped_or_counted_as_the_definitions_say():
    # entropy skips zeros; Gini and std count the unused tokens of M
    assert entropy([0, 3, 0, 3]) == pytest.approx(math.log(2))
    assert gini([3, 3], 4) == pytest.approx(gini([0, 0, 3, 3], 4)) == pytest.approx(0.5)
    assert count_std([3, 3], 4) == pytest.approx(np.std([3, 3, 0, 0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40), st.integers(0, 20))
def test_against_dense_numpy(counts, extra):
    dense = np.array(counts + [0] * extra)
    M = dense.size
    if dense.sum() == 0:
        assert math.isnan(gini(dense, M))
        return
    assert gini(dense, M) == pytest.approx(gini_mean_abs_diff(dense), abs=1e-12)
    assert 0.0 <= gini(dense, M) <= (M - 1) / M + 1e-12
    assert count_std(dense[dense > 0], M) == pytest.approx(np.std(dense), abs=1e-9)
    p = dense[dense > 0] / dense.sum()
    assert entropy(dense) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)
    if M > 1:
        assert -1e-12 <= normalized_entropy(dense, M) <= 1 + 1e-12


def test_head_tokens_smallest_covering_prefix():
    tokens, counts = [7, 3, 9], [2, 5, 3]
    assert head_tokens(tokens, counts, 0.5).tolist() == [3]        # 5/10 reaches 0.5
    assert head_tokens(tokens, counts, 0.51).tolist() == [3, 9]    # needs 8/10
    assert head_tokens(tokens, counts, 1.0).tolist() == [3, 9, 7]
    # ties break to the lower token id, so the head is deterministic
    assert head_tokens([4, 1, 2], [5, 5, 5], 0.3).tolist() == [1]
    assert rank_order([4, 1, 2], [5, 5, 6]).tolist() == [2, 1, 0]
    with pytest.raises(ValueError):
        head_tokens(tokens, counts, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=30), st.floats(0.01, 1.0))
def test_head_is_minimal(counts, share):
    tokens = np.arange(len(counts))
    head = head_tokens(tokens, counts, share)
    counts = np.array(counts)
    covered = counts[head].sum()
    assert covered >= share * counts.sum() - 1e-9
    assert counts[head[:-1]].sum() < share * counts.sum()  # one fewer would not cover
    assert counts[head].min() >= np.delete(counts, head).max(initial=0)


def test_layer_metrics_and_errors():
    m = layer_metrics([0, 2, 2], 4)
    assert (m.n_tokens, m.used_tokens, m.utilization) == (4, 2, 0.5)
    assert m.norm_entropy == pytest.approx(0.5)
    empty = layer_metrics([], 4)
    assert empty.n_tokens == 0 and math.isnan(empty.gini) and math.isnan(empty.entropy)
    with pytest.raises(ValueError):
        gini([1, 2, 3], 2)  # more used tokens than the codebook has
    with pytest.raises(ValueError):
        entropy([1, -1])
