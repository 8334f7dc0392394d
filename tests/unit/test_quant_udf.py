"""The mapInArrow body without Spark: the embedding matrix out of Arrow lists (zero-copy,
sliced and filtered batches), bad rows passed through with null codes, the per-worker encoder
cache, and the guard against a non-finite row reaching the kernel."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from hourglass.quant.artifact import build_artifact
from hourglass.quant.kernel import encode_greedy
from hourglass.spark import encode as udf
from hourglass.spark.encode import embedding_matrix


def arrow_lists(X: np.ndarray) -> pa.ListArray:
    n, d = X.shape
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(X.ravel()))


def test_arrow_lists_are_viewed_without_copy(rng):
    X = rng.standard_normal((500, 24)).astype(np.float32)
    lists = arrow_lists(X)
    out = embedding_matrix(lists, 24)
    np.testing.assert_array_equal(out, X)
    assert np.shares_memory(out, lists.values.to_numpy())
    np.testing.assert_array_equal(embedding_matrix(lists[100:300], 24), X[100:300])


def test_filtered_and_other_layouts_give_the_right_rows(rng):
    X = rng.standard_normal((50, 8)).astype(np.float32)
    keep = np.arange(50) % 3 != 0
    filtered = arrow_lists(X).filter(pa.array(keep))
    np.testing.assert_array_equal(embedding_matrix(filtered, 8), X[keep])
    doubles = pa.array([x.astype(np.float64).tolist() for x in X], pa.list_(pa.float64()))
    assert embedding_matrix(doubles, 8).dtype == np.float32
    np.testing.assert_array_equal(embedding_matrix(doubles, 8), X)
    assert embedding_matrix(arrow_lists(X)[:0], 8).shape == (0, 8)
    with pytest.raises(ValueError, match="unequal length"):
        embedding_matrix(pa.array([X[0].tolist(), X[1][:5].tolist()]), 8)


def scored_batch(X: np.ndarray, bad: dict[int, str] | None = None) -> pa.RecordBatch:
    """What `score_rows` hands the pass: bad rows with a reason, payload and null embedding."""
    bad = bad or {}
    n = len(X)
    emb = [None if i in bad else X[i].tolist() for i in range(n)]
    return pa.RecordBatch.from_arrays(
        [pa.array([f"i{i}" for i in range(n)]), pa.array(emb, pa.list_(pa.float32())),
         pa.array([bad.get(i) for i in range(n)], pa.string()),
         pa.array([f'{{"item_id":"i{i}"}}' if i in bad else None for i in range(n)],
                  pa.string())],
        names=["item_id", "embedding", "_reason", "_payload"])


class FakeBroadcast:
    """Counts reads of `.value`, which is what Spark deserialises on a worker."""

    def __init__(self, value):
        self._value, self.reads = value, 0

    @property
    def value(self):
        self.reads += 1
        return self._value


def small_artifact(rng):
    return build_artifact(rng.standard_normal((2, 8, 6)), "rq_kmeans", 6, 0, 10, [1.0, 0.5])


def test_batches_reuse_one_encoder_and_equal_the_kernel(rng):
    art = small_artifact(rng)
    bc = FakeBroadcast(art)
    X = rng.standard_normal((30, 6)).astype(np.float32)
    batch = scored_batch(X)
    udf._ENCODERS.clear()
    first = list(udf.encode_batches(iter([batch, batch]), bc, art.codebook_id, threads=1))
    again = list(udf.encode_batches(iter([batch]), bc, art.codebook_id, threads=1))
    assert bc.reads == 1  # built once per worker process, reused by later batches and tasks
    ref = encode_greedy(X, art.codebooks)
    for out in (*first, *again):
        assert out.schema.names == ["item_id", "c0", "c1", "n0", "n1", "_reason", "_payload"]
        assert out.column("item_id").to_pylist() == [f"i{i}" for i in range(30)]
        codes = np.column_stack([out.column(c).to_numpy() for c in ("c0", "c1")])
        np.testing.assert_array_equal(codes, ref.codes)
        norms = np.column_stack([out.column(c).to_numpy() for c in ("n0", "n1")])
        np.testing.assert_allclose(norms, ref.residual_norms)
        assert out.column("_reason").null_count == 30


def test_bad_rows_pass_through_with_null_codes_and_good_rows_keep_theirs(rng):
    art = small_artifact(rng)
    X = rng.standard_normal((12, 6)).astype(np.float32)
    bad = {0: "null embedding", 5: "NaN in embedding", 11: "missing item_id"}
    udf._ENCODERS.clear()
    (out,) = udf.encode_batches(iter([scored_batch(X, bad)]), FakeBroadcast(art),
                                art.codebook_id, threads=1)
    good = [i for i in range(12) if i not in bad]
    ref = encode_greedy(X[good], art.codebooks)
    for layer in range(2):
        codes = out.column(f"c{layer}").to_pylist()
        norms = out.column(f"n{layer}").to_pylist()
        assert [codes[i] for i in bad] == [None] * 3 and [norms[i] for i in bad] == [None] * 3
        assert [codes[i] for i in good] == ref.codes[:, layer].tolist()
        np.testing.assert_allclose([norms[i] for i in good], ref.residual_norms[:, layer],
                                   rtol=1e-6)
    assert out.column("_reason").to_pylist() == [bad.get(i) for i in range(12)]
    assert out.column("_payload").to_pylist()[5] == '{"item_id":"i5"}'


def test_an_all_bad_batch_needs_no_kernel_rows(rng):
    art = small_artifact(rng)
    X = rng.standard_normal((3, 6)).astype(np.float32)
    udf._ENCODERS.clear()
    (out,) = udf.encode_batches(iter([scored_batch(X, dict.fromkeys(range(3), "x"))]),
                                FakeBroadcast(art), art.codebook_id, threads=1)
    assert out.num_rows == 3 and out.column("c0").null_count == 3


def test_a_non_finite_row_reaching_the_kernel_stops_the_task(rng):
    """SQL validation is complete; a NaN here means its contract broke, so fail loudly."""
    art = small_artifact(rng)
    X = rng.standard_normal((10, 6)).astype(np.float32)
    X[3, 2] = np.nan
    udf._ENCODERS.clear()
    with pytest.raises(RuntimeError, match="'i3' reached the encoder with a non-finite"):
        list(udf.encode_batches(iter([scored_batch(X, {1: "x"})]), FakeBroadcast(art),
                                art.codebook_id, threads=1))
