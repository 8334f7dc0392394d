"""The mapInPandas body without Spark: row stacking (zero-copy and general paths), the
per-worker encoder cache, and bad rows passing through with their reason."""

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


def test_batches_reuse_one_encoder_and_pass_bad_rows_through(rng):
    art = build_artifact(rng.standard_normal((2, 8, 6)), "rq_kmeans", 6, 0, 10, [1.0, 0.5])
    bc = FakeBroadcast(art)
    X = rng.standard_normal((30, 6)).astype(np.float32)
    batch = pd.DataFrame({"item_id": [f"i{i}" for i in range(30)],
                          "embedding": list(arrow_series(X)),
                          "_reason": [None] * 30, "_payload": [None] * 30})
    batch.loc[5, ["embedding", "_reason", "_payload"]] = [None, "null embedding", "{}"]
    udf._ENCODERS.clear()
    first = list(udf.encode_batches(iter([batch, batch]), bc, art.codebook_id, threads=1))
    again = list(udf.encode_batches(iter([batch]), bc, art.codebook_id, threads=1))
    assert bc.reads == 1  # built once per worker process, reused by later batches and tasks
    ref = encode_greedy(np.delete(X, 5, axis=0), art.codebooks)
    for out in (*first, *again):
        good = out[out["_reason"].isna()]
        np.testing.assert_array_equal(good[["c0", "c1"]].to_numpy(), ref.codes)
        np.testing.assert_allclose(good[["n0", "n1"]].to_numpy(), ref.residual_norms)
        assert out.loc[5, "_reason"] == "null embedding" and out.loc[5, "item_id"] == "i5"


def test_non_finite_rows_missed_by_sql_are_quarantined_not_encoded(rng):
    art = build_artifact(rng.standard_normal((2, 8, 6)), "rq_kmeans", 6, 0, 10, [1.0, 0.5])
    X = rng.standard_normal((10, 6)).astype(np.float32)
    X[3, 2] = np.nan  # how Arrow shows a null value that slipped past the SQL sentinel test
    batch = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)],
                          "embedding": list(arrow_series(X)),
                          "_reason": [None] * 10, "_payload": [None] * 10})
    udf._ENCODERS.clear()
    (out,) = udf.encode_batches(iter([batch]), FakeBroadcast(art), art.codebook_id, threads=1)
    assert out.loc[3, "_reason"] == udf.NULL_VALUE
    assert '"embedding": [' in out.loc[3, "_payload"] and "null" in out.loc[3, "_payload"]
    good = out[out["_reason"].isna()]
    np.testing.assert_array_equal(good[["c0", "c1"]].to_numpy(),
                                  encode_greedy(np.delete(X, 3, axis=0), art.codebooks).codes)
