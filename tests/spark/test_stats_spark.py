"""Spark statistics against the in-memory reference, frame for frame, on seeded data."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from hourglass.sid_tokens import codes_to_tokens, suffix_token
from hourglass.stats.reference import reference_tables, sids_from_codes, sids_from_tokens
from hourglass.stats.summary import RunInfo

pytestmark = pytest.mark.spark

N, L, M = 3000, 3, 16


def hourglass_codes(rng: np.random.Generator, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Uniform layers 1 and 3, a long-tailed layer 2, and residual norms with ties."""
    codes = np.stack([rng.integers(0, M, n), np.minimum(rng.zipf(1.6, n) - 1, M - 1),
                      rng.integers(0, M, n)], axis=1)
    norms = np.sort(rng.gamma(2.0, 0.3, (n, L)), axis=1)[:, ::-1].astype(np.float32)
    norms[: n // 10, 2] = np.float32(0.125)  # a tenth of the items tie on layer 3
    return codes, np.ascontiguousarray(norms)


def topk_rewrite(codes: np.ndarray, k: int) -> list[list[str]]:
    """Drop layer 2 where its token is among the k most frequent; suffix collisions."""
    values, counts = np.unique(codes[:, 1], return_counts=True)
    top = set(values[np.lexsort((values, -counts))[:k]].tolist())
    toks = [[t for i, t in enumerate(codes_to_tokens(c)) if not (i == 1 and c[1] in top)]
            for c in codes]
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, t in enumerate(toks):
        groups[tuple(t)].append(i)
    for members in groups.values():
        if len(members) > 1:
            for j, i in enumerate(members):
                toks[i] = [*toks[i], suffix_token(j, L)]
    return toks


def spark_tables(frames) -> dict[str, pd.DataFrame]:
    return {"sid_layer_stats": frames.layer_stats, "sid_summary": frames.summary,
            "sid_flow": frames.flow}


def assert_tables_equal(got: dict, want: dict) -> None:
    for name in got:
        g, w = got[name].reset_index(drop=True), want[name].reset_index(drop=True)
        assert_frame_equal(g, w, check_dtype=False, check_exact=False, rtol=1e-9, obj=name)


def fixed_rows(ids, codes, norms) -> list[tuple]:
    return [(ids[i], codes[i].tolist(), norms[i].tolist(), "cb") for i in range(len(ids))]


FIXED_DDL = "item_id STRING, codes ARRAY<INT>, residual_norms ARRAY<FLOAT>, codebook_id STRING"


def test_fixed_length_matches_reference(spark, rng):
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.stats.rows import compute_stats

    codes, norms = hourglass_codes(rng)
    ids = [f"item{i:05d}" for i in range(N)]
    df = spark.createDataFrame(fixed_rows(ids, codes, norms), FIXED_DDL)
    valid = fixed_frame(df, L, M).where("_reason IS NULL")
    info = RunInfo("orig", "fixed", L, M, "config", codebook_id="cb")
    frames = compute_stats(valid, info, head_share=0.5, flow_top=5)
    want = reference_tables(ids, sids_from_codes(codes), norms, info, 0.5, 2, 5)
    assert_tables_equal(spark_tables(frames), want)
    summary = frames.summary.set_index("layer")
    # quantiles are exact: bit-equal to numpy on the float64 values
    for layer in (1, 2, 3):
        x = norms[:, layer - 1].astype(np.float64)
        assert summary.loc[layer, "norm_p50"] == np.quantile(x, 0.5)
        assert summary.loc[layer, "norm_p95"] == np.quantile(x, 0.95)
    assert summary.loc[2, "norm_entropy"] < min(summary.loc[1, "norm_entropy"],
                                                summary.loc[3, "norm_entropy"])
    assert frames.flow["src_token"].eq(-1).any()  # M=16 > 5+1 drawn tokens: an "other" node


def test_scanned_matches_reference(spark, rng, monkeypatch):
    """The two-scan plan on several partitions and ranges, bad rows among the good, and a
    collect limit small enough that every norm rank is refined bit range by bit range."""
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.stats.scan import driver
    from hourglass.spark.stats.scan.driver import compute_scanned

    codes, norms = hourglass_codes(rng)
    norms[: N // 20, 0] = np.float32(0.0)  # zeros (and their bit patterns) among the norms
    ids = [f"item{i:05d}" for i in range(N)]
    bad = [("short", [1, 2], [0.5, 0.2], "cb"), ("range", [1, M, 2], [0.5, 0.2, 0.1], "cb"),
           (None, [1, 2, 3], [0.5, 0.2, 0.1], "cb"), ("nan", [1, 2, 3], [0.5, np.nan, 0.1], "cb")]
    df = spark.createDataFrame(fixed_rows(ids, codes, norms) + bad, FIXED_DDL).repartition(3)
    monkeypatch.setattr(driver, "COLLECT_LIMIT", 40)
    first = driver.first_scan(fixed_frame(df, L, M, ("codebook_id",)), L, M, 4, "codebook_id")
    try:
        assert (first.rows_in, first.invalid, first.repeated_hashes, first.codebooks) == (
            N + 4, 4, 0, 1)
        info = RunInfo("orig", "fixed", L, M, "config", codebook_id="cb")
        frames = compute_scanned(first, info, head_share=0.5, flow_top=5)
    finally:
        first.release()
    want = reference_tables(ids, sids_from_codes(codes), norms, info, 0.5, 2, 5)
    assert_tables_equal(spark_tables(frames), want)
    summary = frames.summary.set_index("layer")
    for layer in (1, 2, 3):  # exact: bit-equal to numpy on the float64 values
        x = norms[:, layer - 1].astype(np.float64)
        assert summary.loc[layer, "norm_p05"] == np.quantile(x, 0.05)
        assert summary.loc[layer, "norm_p50"] == np.quantile(x, 0.5)
    assert set(frames.layer_stats["segment"]) == {"head", "tail"}


def test_scan_sees_repeated_ids(spark, rng):
    """A repeated id stops the two-scan plan (the row plan quarantines the copies)."""
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.stats.scan import driver

    codes, norms = hourglass_codes(rng, 200)
    ids = [f"i{i}" for i in range(200)]
    ids[7] = ids[3]
    df = spark.createDataFrame(fixed_rows(ids, codes, norms), FIXED_DDL).repartition(2)
    first = driver.first_scan(fixed_frame(df, L, M, ("codebook_id",)), L, M, 2, "codebook_id")
    first.release()
    assert (first.rows_in, first.invalid, first.repeated_hashes) == (200, 0, 1)


def test_pack_round_trip_and_merge():
    from hourglass.spark.stats.scan.codec import merge_blocks, pack, unpack

    a = {"sum_x": np.arange(6).reshape(2, 3), "keys_h": np.array([1, 5]),
         "counts_h": np.array([2, 1]), "min_v": np.array([0.5]), "first_o": np.array([7]),
         "sum_empty": np.zeros(0)}
    b = {"sum_x": np.ones((2, 3), np.int64), "keys_h": np.array([5, 9]),
         "counts_h": np.array([4, 1]), "min_v": np.array([0.25]), "first_o": np.array([8]),
         "sum_empty": np.zeros(0)}
    got = unpack(pack(a))
    assert all(np.array_equal(got[k], a[k]) and got[k].dtype == a[k].dtype for k in a)
    m = merge_blocks([unpack(pack(a)), unpack(pack(b))])
    assert m["sum_x"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert (m["keys_h"].tolist(), m["counts_h"].tolist()) == ([1, 5, 9], [2, 5, 1])
    assert (m["min_v"].tolist(), m["first_o"].tolist()) == ([0.25], [7])


def test_rewritten_matches_reference(spark, rng):
    from hourglass.spark.stats.input import rewritten_frame
    from hourglass.spark.stats.rows import compute_stats

    codes, _ = hourglass_codes(rng, 1500)
    toks = topk_rewrite(codes, k=2)
    assert any(len(t) == 2 for t in toks) and any(len(t) == 4 for t in toks)
    ids = [f"r{i}" for i in range(len(toks))]
    df = spark.createDataFrame([(ids[i], toks[i], "topk(2)", "cb") for i in range(len(toks))],
                               "item_id STRING, tokens ARRAY<STRING>, strategy STRING, "
                               "source_codebook_id STRING")
    valid = rewritten_frame(df, L, M).where("_reason IS NULL")
    info = RunInfo("topk2", "rewritten", L, M, "config", strategy="topk(2)", codebook_id="cb")
    frames = compute_stats(valid, info, head_share=0.5, flow_top=4)
    want = reference_tables(ids, sids_from_tokens(toks), None, info, 0.5, 2, 4)
    assert_tables_equal(spark_tables(frames), want)
    summary = frames.summary.set_index("layer")
    assert list(summary.index) == [1, 2, 3, 4]          # the suffix is its own layer
    assert summary.loc[2, "n_tokens"] < len(toks)       # head layer-2 tokens were dropped
    assert summary.loc[1, "collision_share"] == 0.0     # suffixes made every SID unique
    # an edge from layer 1 straight to layer 3 where layer 2 was removed
    assert ((frames.flow["src_layer"] == 1) & (frames.flow["dst_layer"] == 3)).any()


def test_order_statistics_multi_pass(spark, rng):
    """Tiny buckets and collect limit force the refine path; ranks must still be exact."""
    from hourglass.spark.stats.quantiles import exact_order_stats

    x = np.concatenate([rng.normal(0, 1, 3000), np.full(500, 0.25), rng.normal(5, 1e-6, 200)])
    g = np.where(np.arange(x.size) % 2 == 0, 1, 2)
    df = spark.createDataFrame(pd.DataFrame({"g": g, "x": x}))
    ranks = {k: [0, 1, 17, 800, 1000, 1849] for k in (1, 2)}
    bounds = {k: (float(x[g == k].min()), float(x[g == k].max())) for k in (1, 2)}
    got, fine = exact_order_stats(df, "g", "x", bounds, ranks, bins=4, collect_limit=10)
    for k in (1, 2):
        xs = np.sort(x[g == k])
        assert [got[(k, r)] for r in ranks[k]] == [float(xs[r]) for r in ranks[k]]
        assert sum(fine[k].values()) == xs.size


def test_bad_rows_get_reasons(spark):
    from hourglass.spark.stats.input import fixed_frame, rewritten_frame

    fixed = spark.createDataFrame([
        ("ok", [1, 2, 3], [0.5, 0.2, 0.1]), (" ", [1, 2, 3], [0.5, 0.2, 0.1]),
        ("null", None, [0.5, 0.2, 0.1]), ("short", [1, 2], [0.5, 0.2]),
        ("nullcode", [1, None, 3], [0.5, 0.2, 0.1]), ("range", [1, 16, 3], [0.5, 0.2, 0.1]),
        ("neg", [-1, 2, 3], [0.5, 0.2, 0.1]), ("nan", [1, 2, 3], [0.5, float("nan"), 0.1]),
        ("inf", [1, 2, 3], [0.5, float("inf"), 0.1]), ("norms", [1, 2, 3], [0.5, 0.2]),
    ], "item_id STRING, codes ARRAY<INT>, residual_norms ARRAY<FLOAT>")
    got = {r["item_id"]: r["_reason"] for r in fixed_frame(fixed, L, M).collect()}
    assert got == {
        "ok": None, " ": "missing item_id", "null": "null codes",
        "short": "codes length 2, expected 3", "nullcode": "null code",
        "range": "code outside [0, 16)", "neg": "code outside [0, 16)",
        "nan": "residual norm null, NaN, infinite or negative",
        "inf": "residual norm null, NaN, infinite or negative",
        "norms": "residual_norms length 2, expected 3",
    }
    rw = spark.createDataFrame([
        ("ok", ["<a_1>", "<c_3>", "<d_7>"]), ("empty", []), ("junk", ["<a_1>", "b_2"]),
        ("deep", ["<a_1>", "<e_0>"]), ("order", ["<b_1>", "<a_2>"]),
        ("repeat", ["<a_1>", "<a_2>"]), ("range", ["<a_1>", "<b_16>"]),
        ("huge", ["<a_1234567890>"]), ("suffix", ["<a_1>", "<d_99>"]),
    ], "item_id STRING, tokens ARRAY<STRING>")
    got = {r["item_id"]: r["_reason"] for r in rewritten_frame(rw, L, M).collect()}
    assert got == {
        "ok": None, "empty": "empty tokens", "junk": "unparseable token",
        "deep": "layer tag beyond the suffix layer 4",
        "order": "layer tags not strictly increasing",
        "repeat": "layer tags not strictly increasing", "range": "code outside [0, 16)",
        "huge": "unparseable token", "suffix": None,  # suffix indices are not codebook codes
    }
