"""Arrow→pandas embedding rows → (n, D) matrix: zero-copy fast path and the general path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hourglass.spark.encode import stack_rows


def arrow_series(X: np.ndarray) -> pd.Series:
    n, d = X.shape
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.table({"e": pa.ListArray.from_arrays(offsets, pa.array(X.ravel()))}).to_pandas()["e"]


def test_arrow_batch_is_viewed_without_copy(rng):
    X = rng.standard_normal((500, 24)).astype(np.float32)
    s = arrow_series(X)
    out = stack_rows(s, 24)
    np.testing.assert_array_equal(out, X)
    assert np.shares_memory(out, s.iloc[0])
    sub = s.iloc[100:300]  # a slice of the batch is still one contiguous run
    np.testing.assert_array_equal(stack_rows(sub, 24), X[100:300])


def test_other_layouts_are_copied_correctly(rng):
    X = rng.standard_normal((50, 8)).astype(np.float32)
    rows = pd.Series([x.copy() for x in X])  # independent arrays
    np.testing.assert_array_equal(stack_rows(rows, 8), X)
    reordered = arrow_series(X).iloc[::-1].reset_index(drop=True)  # views, but not in order
    np.testing.assert_array_equal(stack_rows(reordered, 8), X[::-1])
    doubles = pd.Series([x.astype(np.float64) for x in X])
    assert stack_rows(doubles, 8).dtype == np.float32
    assert stack_rows(pd.Series([], dtype=object), 8).shape == (0, 8)
    with pytest.raises(ValueError, match="unequal length"):
        stack_rows(pd.Series([X[0], X[1][:5]]), 8)
