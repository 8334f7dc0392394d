"""The mapInPandas body without Spark: row stacking (zero-copy and general paths), the
per-worker encoder cache, and the guard against a non-finite row reaching the kernel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from hourglass.quant.artifact import build_artifact
from hourglass.quant.kernel import encode_greedy
from hourglass.spark import encode as udf
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


class FakeBroadcast:
    """Counts reads of `.value`, which is what Spark deserialises on a worker."""

    def __init__(self, value):
        self._value, self.reads = value, 0

    @property
    def value(self):
        self.reads += 1
        return self._value


def test_batches_reuse_one_encoder_and_equal_the_kernel(rng):
    art = build_artifact(rng.standard_normal((2, 8, 6)), "rq_kmeans", 6, 0, 10, [1.0, 0.5])
    bc = FakeBroadcast(art)
    X = rng.standard_normal((30, 6)).astype(np.float32)
    batch = pd.DataFrame({"item_id": [f"i{i}" for i in range(30)],
                          "embedding": list(arrow_series(X))})
    udf._ENCODERS.clear()
    first = list(udf.encode_batches(iter([batch, batch]), bc, art.codebook_id, threads=1))
    again = list(udf.encode_batches(iter([batch]), bc, art.codebook_id, threads=1))
    assert bc.reads == 1  # built once per worker process, reused by later batches and tasks
    ref = encode_greedy(X, art.codebooks)
    for out in (*first, *again):
        assert list(out.columns) == ["item_id", "c0", "c1", "n0", "n1"]
        assert out["item_id"].tolist() == batch["item_id"].tolist()
        np.testing.assert_array_equal(out[["c0", "c1"]].to_numpy(), ref.codes)
        np.testing.assert_allclose(out[["n0", "n1"]].to_numpy(), ref.residual_norms)


def test_a_non_finite_row_reaching_the_kernel_stops_the_task(rng):
    """SQL validation is complete; a NaN here means its contract broke, so fail loudly."""
    art = build_artifact(rng.standard_normal((2, 8, 6)), "rq_kmeans", 6, 0, 10, [1.0, 0.5])
    X = rng.standard_normal((10, 6)).astype(np.float32)
    X[3, 2] = np.nan
    batch = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)],
                          "embedding": list(arrow_series(X))})
    udf._ENCODERS.clear()
    with pytest.raises(RuntimeError, match="'i3' reached the encoder with a non-finite"):
        list(udf.encode_batches(iter([batch]), FakeBroadcast(art), art.codebook_id, threads=1))
