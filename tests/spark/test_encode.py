"""train_codebooks → encode_items on synthetic tables: codes equal the kernel, every bad-input
class is quarantined with its reason, re-runs are identical, a D mismatch writes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.quant.artifact import (
    ArtifactEncoder,
    build_artifact,
    load_artifact,
    save_artifact,
    write_latest,
)
from hourglass.quant.kernel import encode_greedy
from hourglass.quant.synthetic import synthetic_block
from hourglass.spark.encode import SENTINEL, DimensionMismatchError
from hourglass.spark.tables import commit_lineage, read_table, table_exists
from hourglass.stages import encode_items, train_codebooks
from hourglass.stages.common import main_for

pytestmark = pytest.mark.spark
SCHEMA = "item_id string, embedding array<float>, model string"
D, N = 16, 3000
HUGE = "value beyond +-1e+15 in embedding"
BAD = [  # (item_id, embedding, expected reason)
    ("b-null", None, "null embedding"),
    ("b-short", [0.5] * (D - 1), f"wrong length: {D - 1} values, expected {D}"),
    ("b-long", [0.5] * (D + 1), f"wrong length: {D + 1} values, expected {D}"),
    ("b-empty", [], f"wrong length: 0 values, expected {D}"),
    ("b-nan", [0.1] * (D - 1) + [float("nan")], "NaN in embedding"),
    ("b-inf", [float("inf")] + [0.1] * (D - 1), "inf in embedding"),
    ("b-minf", [0.1] * 3 + [float("-inf")] + [0.1] * (D - 4), "inf in embedding"),
    ("b-nullval", [0.1] * 5 + [None] + [0.1] * (D - 6), "null value in embedding"),
    # the sentinel hides the null from arrays_overlap; the magnitude bound still refuses it
    ("b-sentinel", [SENTINEL, None] + [0.1] * (D - 2), HUGE),
    ("b-huge", [0.1] * 7 + [2e15] + [0.1] * (D - 8), HUGE),
    ("b-neghuge", [-3e30] + [0.1] * (D - 1), HUGE),
    (None, [0.1] * D, "missing item_id"),
    ("  ", [0.1] * D, "missing item_id"),
]


def synthetic_rows(n: int, dim: int, seed: int = 3) -> tuple[list[str], np.ndarray]:
    ids, X = synthetic_block(0, n, n, dim, 30, 1.1, 0.4, seed)
    return [f"s{i}" for i in ids], X


def write_embeddings(spark, root: str, ids, X, bad=(), partitions: int = 2) -> None:
    rows = [(i, x.tolist(), "syn") for i, x in zip(ids, X, strict=True)]
    rows += [(i, e, "syn") for i, e, _ in bad]
    (spark.createDataFrame(rows, SCHEMA).repartition(partitions).write.format("delta")
     .mode("overwrite").save(f"{root}/item_embeddings"))


def sids_by_id(spark, root: str) -> dict[str, tuple]:
    rows = read_table(spark, f"{root}/item_sids").df.collect()
    return {r.item_id: (tuple(r.codes), tuple(r.residual_norms), r.codebook_id) for r in rows}


@pytest.fixture(scope="module")
def encoded(spark, tmp_path_factory):
    """One trained and encoded table shared by the tests that only read it."""
    root = str(tmp_path_factory.mktemp("encode") / "tables")
    ids, X = synthetic_rows(N, D)
    write_embeddings(spark, root, ids, X, BAD)
    trained = train_codebooks.run(spark, train_codebooks.TrainCodebooksConfig.from_dict(
        {"output_root": root, "codebook_size": 16, "sample_size": 2000, "kmeans_iters": 8}))
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(output_root=root))
    return root, ids, X, trained, counts


def test_codes_equal_the_kernel_and_counts_reconcile(spark, encoded):
    root, ids, X, trained, counts = encoded
    assert trained.sample_rows == 2000 and trained.dim == D
    assert trained.distortion[0] > trained.distortion[1] > trained.distortion[2]
    assert (counts.rows_in, counts.encoded, counts.quarantined) == (N + len(BAD), N, len(BAD))
    art = load_artifact(trained.path)
    ref = encode_greedy(X, art.codebooks)
    got = sids_by_id(spark, root)
    np.testing.assert_array_equal(np.array([got[i][0] for i in ids]), ref.codes)
    np.testing.assert_allclose(np.array([got[i][1] for i in ids]), ref.residual_norms,
                               rtol=1e-6)
    assert {v[2] for v in got.values()} == {trained.codebook_id}
    df = read_table(spark, f"{root}/item_sids").df
    assert df.schema.simpleString() == (
        "struct<item_id:string,codes:array<int>,residual_norms:array<float>,codebook_id:string>")
    record = commit_lineage(spark, f"{root}/item_sids")
    assert record["codebook_id"] == trained.codebook_id
    assert record["inputs"] == {f"{root}/item_embeddings": 0}


def test_every_bad_input_class_is_quarantined_with_its_reason(spark, encoded):
    root, *_, counts = encoded
    q = read_table(spark, f"{root}/quarantine").df.where("stage = 'encode_items'").collect()
    assert sorted((r.item_id or "", r.reason) for r in q) == sorted(
        (i or "", reason) for i, _, reason in BAD)
    assert sum(counts.reasons.values()) == len(BAD)
    assert all(r.payload for r in q)


EDGE_OK = [  # valid rows at the boundaries of invalid_reason's rules
    ("\t", [0.1] * D),  # Spark's trim strips spaces only
    ("neg-zero", [-0.0] * D),
    ("at-bound", [1e15, -1e15] + [0.1] * (D - 2)),  # float32(1e15) is just below 1e15
    ("tiny", [1e-45] * D),
]
EDGE_BAD = [("above-bound", [1.0000001e15] + [0.1] * (D - 1)),
            ("maxfloat", [3.4e38] + [0.1] * (D - 1))]


def test_numpy_validity_equals_invalid_reason(spark):
    """The direct read's numpy rules accept exactly the rows the SQL rules give no reason,
    row for row, in whole and sliced batches."""
    from hourglass.spark.encode import score_rows, valid_rows

    rows = [(i, e, "m") for i, e, _ in BAD] + [(i, e, "m") for i, e in EDGE_OK + EDGE_BAD]
    rows += [(f"g{k}", x.tolist(), "m") for k, x in enumerate(synthetic_rows(5, D)[1])]
    df = spark.createDataFrame(rows, SCHEMA).coalesce(1)
    sql = [r._reason is None for r in score_rows(df, D).collect()]
    assert sum(sql) == 5 + len(EDGE_OK)
    batch = df.toArrow().combine_chunks().to_batches()[0]
    assert valid_rows(batch, D).tolist() == sql
    for start in range(0, len(rows), 4):
        assert valid_rows(batch.slice(start, 5), D).tolist() == sql[start:start + 5]
    assert valid_rows(batch.slice(0, 0), D).tolist() == []


def test_direct_read_equals_spark_read(spark, encoded):
    """The fixture's run read the Parquet files; the same run through Spark writes the same
    SIDs and the same quarantine rows, reasons and payloads."""
    from hourglass.spark.parquet_scan import plan_files

    root, ids, *_ = encoded
    src = f"{root}/item_embeddings"
    assert plan_files(spark, src, 0, ["item_id", "model", "embedding"]).reason is None

    def quarantined():
        q = read_table(spark, f"{root}/quarantine").df.where("stage = 'encode_items'")
        return sorted((r.item_id or "", r.reason, r.payload) for r in q.collect())

    direct = quarantined()
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(
        output_root=root, sids_table="item_sids_spark", direct_read=False))
    assert (counts.encoded, counts.quarantined) == (N, len(BAD))
    got = {r.item_id: (tuple(r.codes), tuple(r.residual_norms), r.codebook_id)
           for r in read_table(spark, f"{root}/item_sids_spark").df.collect()}
    assert got == sids_by_id(spark, root)
    assert quarantined() == direct


def test_bad_rows_are_read_again_from_the_units_that_held_them(spark, encoded):
    """The encode pass reports the read units holding bad rows and how many; the bad-row read
    of those units only finds them all, as does the read of every unit when the counts
    disagree."""
    from hourglass.spark.encode import file_passes
    from hourglass.spark.parquet_scan import plan_files

    root, *_, trained, _ = encoded
    src = read_table(spark, f"{root}/item_embeddings")
    art = load_artifact(trained.path)
    plan = plan_files(spark, src.ref, src.version, ["item_id", "model", "embedding"], pack=False)
    passes = file_passes(plan, src.df, spark.sparkContext.broadcast(art), art.codebook_id, D,
                         3)
    assert passes.valid.count() == N
    found = passes.found.value
    assert sum(found.values()) == len(BAD) and set(found) <= set(plan.units)
    expected = sorted((i or "", reason) for i, _, reason in BAD)
    for told in (len(BAD), len(BAD) + 1):  # + 1: the report does not add up, read every unit
        rows = passes.refused(told).collect()
        assert sorted((r.item_id or "", r._reason) for r in rows) == expected
        assert all(r._payload for r in rows)


def test_a_row_numpy_refuses_but_sql_accepts_stops_the_job(spark, encoded, monkeypatch):
    """The executors' numpy rules and the driver's SQL rules must agree row for row; where they
    do not (here the driver's magnitude bound is raised, as a driver and executors of different
    versions would have it), the bad-row read stops the job naming the item, rather than write
    a quarantine row without a reason or lose the row."""
    from hourglass.spark import encode
    from hourglass.spark.parquet_scan import plan_files

    root, *_, trained, _ = encoded
    src = read_table(spark, f"{root}/item_embeddings")
    art = load_artifact(trained.path)
    plan = plan_files(spark, src.ref, src.version, ["item_id", "model", "embedding"], pack=False)
    passes = encode.file_passes(plan, src.df, spark.sparkContext.broadcast(art),
                                art.codebook_id, D, 3)
    assert passes.valid.count() == N
    assert passes.refused(len(BAD)).count() == len(BAD)  # the rules agree: every row a reason
    monkeypatch.setattr(encode, "MAX_ABS", 1e16)  # the driver's SQL now admits b-huge (2e15)
    with pytest.raises(Exception, match="item b-huge failed the numpy checks"):
        passes.refused(len(BAD)).collect()


def test_rerun_through_the_jobs_on_repartitioned_input_gives_the_same_table(spark, encoded,
                                                                            capsys):
    root, ids, X, trained, _ = encoded
    before = sids_by_id(spark, root)
    write_embeddings(spark, root, ids, X, BAD, partitions=5)  # same rows, other files
    again = main_for(train_codebooks.TrainCodebooksConfig, train_codebooks.run, "test-train",
                     argv=["--output_root", root, "--codebook_size", "16",
                           "--sample_size", "2000", "--kmeans_iters", "8"])
    assert again.codebook_id == trained.codebook_id
    counts = main_for(encode_items.EncodeItemsConfig, encode_items.run, "test-encode",
                      argv=["--output_root", root, "--device", "cpu"])
    assert f'"codebook_id": "{trained.codebook_id}"' in capsys.readouterr().out
    assert sids_by_id(spark, root) == before
    q = read_table(spark, f"{root}/quarantine").df.where("stage = 'encode_items'")
    assert q.count() == counts.quarantined == len(BAD)  # replaced, not appended


def test_clean_input_empties_the_slice_of_an_earlier_run(spark, encoded):
    """No bad row: the quarantine slice is emptied in its one commit, without a second scan."""
    root, ids, X, trained, _ = encoded
    before = sids_by_id(spark, root)
    write_embeddings(spark, root, ids, X)
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(output_root=root))
    assert (counts.rows_in, counts.encoded, counts.quarantined) == (N, N, 0)
    assert counts.reasons == {}
    assert read_table(spark, f"{root}/quarantine").df.where("stage = 'encode_items'").count() == 0
    assert sids_by_id(spark, root) == {i: before[i] for i in ids}


@pytest.mark.parametrize("lengths, want", [([3, 3, 5, 5, 5, None, 0], 5),
                                             ([3, 3, 5, 5, None], 3),  # a tie: the shorter
                                             ([None, None], None)])
def test_files_dim_equals_table_dim(spark, tmp_path, lengths, want):
    """D from the files with pyarrow (no Spark job) follows table_dim's rule: the most common
    length of the non-null embeddings, the shorter on a tie, none when all are null."""
    from hourglass.spark.encode import files_dim, table_dim
    from hourglass.spark.parquet_scan import arrow_schema, plan_files

    rows = [(f"i{k}", None if n is None else [0.5] * n, "syn") for k, n in enumerate(lengths)]
    ref = str(tmp_path / "emb")
    spark.createDataFrame(rows, SCHEMA).repartition(3).write.format("delta").save(ref)
    df = read_table(spark, ref).df
    plan = plan_files(spark, ref, 0, ["item_id", "model", "embedding"], pack=False)
    got = files_dim(plan, arrow_schema(df, ["embedding"]))
    assert got == table_dim(df) == want
    if want is not None:  # a sample of one row reads one length of the table
        assert files_dim(plan, arrow_schema(df, ["embedding"]), sample_rows=1) in lengths


def test_dimension_mismatch_stops_before_anything_is_written(spark, encoded, table_root):
    _, _, _, trained, _ = encoded
    ids, X = synthetic_rows(200, D // 2)
    write_embeddings(spark, table_root, ids, X)
    cfg = encode_items.EncodeItemsConfig(output_root=table_root, codebook_path=trained.path)
    with pytest.raises(DimensionMismatchError, match=f"D={D}.*D={D // 2}"):
        encode_items.run(spark, cfg)
    assert not table_exists(spark, f"{table_root}/item_sids")
    assert not table_exists(spark, f"{table_root}/quarantine")


def test_rqvae_artifact_runs_its_encoder_first(spark, table_root, tmp_path):
    rng = np.random.default_rng(7)
    layers = {"encoder.0.weight": rng.standard_normal((12, D)), "encoder.0.bias": np.zeros(12),
              "encoder.1.weight": rng.standard_normal((4, 12)), "encoder.1.bias": np.ones(4)}
    art = build_artifact(rng.standard_normal((3, 8, 4)), "rq_vae", D, 0, 100, [1.0, 0.5, 0.2],
                         extra_arrays=layers)
    root = str(tmp_path / "codebooks")
    save_artifact(art, root)
    write_latest(root, art.codebook_id)
    ids, X = synthetic_rows(500, D, seed=4)
    write_embeddings(spark, table_root, ids, X)
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(
        output_root=table_root, codebook_path=root, chunk_rows=64))
    assert counts.encoded == 500 and counts.codebook_id == art.codebook_id
    got = sids_by_id(spark, table_root)
    np.testing.assert_array_equal(np.array([got[i][0] for i in ids]),
                                  ArtifactEncoder(art).encode(X).codes)
