"""hourglass_stats' direct Parquet read against Spark's own read of the same Delta version."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pandas.testing import assert_frame_equal

pytestmark = pytest.mark.spark

L, M = 3, 8
DDL = "item_id STRING, codes ARRAY<INT>, residual_norms ARRAY<FLOAT>, codebook_id STRING"
INF, NAN = float("inf"), float("nan")
# every rule of stats.input.fixed_frame, and values close to each boundary that pass it
ROWS = [
    ("ok", [0, 7, 3], [0.5, 0.2, 0.0], "cb"),
    ("zero", [0, 0, 0], [-0.0, 0.0, 0.0], "cb"),
    ("  ", [1, 2, 3], [0.5, 0.2, 0.1], "cb"),
    ("", [1, 2, 3], [0.5, 0.2, 0.1], "cb"),
    ("\t", [1, 2, 3], [0.5, 0.2, 0.1], "cb"),
    (" x ", [1, 2, 3], [0.5, 0.2, 0.1], None),
    (None, [1, 2, 3], [0.5, 0.2, 0.1], "cb"),
    ("nullcodes", None, [0.5, 0.2, 0.1], "cb"),
    ("short", [1, 2], [0.5, 0.2, 0.1], "cb"),
    ("long", [1, 2, 3, 4], [0.5, 0.2, 0.1], "cb"),
    ("empty", [], [0.5, 0.2, 0.1], "cb"),
    ("nullcode", [1, None, 3], [0.5, 0.2, 0.1], "cb"),
    ("big", [1, M, 3], [0.5, 0.2, 0.1], "cb"),
    ("neg", [-1, 2, 3], [0.5, 0.2, 0.1], "cb"),
    ("nullnorms", [1, 2, 3], None, "cb"),
    ("shortnorms", [1, 2, 3], [0.5, 0.2], "cb"),
    ("nullnorm", [1, 2, 3], [0.5, None, 0.1], "cb"),
    ("nan", [1, 2, 3], [0.5, NAN, 0.1], "cb"),
    ("inf", [1, 2, 3], [INF, 0.2, 0.1], "cb"),
    ("-inf", [1, 2, 3], [0.5, -INF, 0.1], "cb"),
    ("negnorm", [1, 2, 3], [0.5, -1e-30, 0.1], "cb"),
    ("maxfloat", [1, 2, 3], [3.4e38, 0.2, 0.1], "other"),
]


def test_string_hash_is_a_function_of_the_string():
    """Each id hashes the same alone, in any batch, sliced or as large_string; nulls are 0;
    many similar ids do not collide."""
    from hourglass.spark.parquet_scan import string_hash

    words = ["a", "", None, "abc", "abcdefgh", "abcdefgh\x00", "a\x00", "é" * 9, "x" * 40]
    arr = pa.array(words)
    h = string_hash(arr)
    assert h[2] == 0 and len(set(h[[0, 1, 3, 4, 5, 6, 7, 8]].tolist())) == 8
    for i in range(len(words)):
        assert string_hash(arr.slice(i, 1))[0] == h[i]
        assert string_hash(arr.slice(i))[0] == h[i]
    np.testing.assert_array_equal(string_hash(arr.cast(pa.large_string())), h)
    ids = [f"item-{i:07d}" for i in range(200_000)] + [str(i) for i in range(200_000)]
    assert np.unique(string_hash(pa.array(ids))).size == len(ids)


def _write(spark, rows, ref, ddl=DDL, parts=2):
    from hourglass.spark.tables import write_table

    write_table(spark.createDataFrame(rows, ddl).repartition(parts), ref, {"job": "test"})


def test_numpy_validity_equals_fixed_frame(spark, tmp_path):
    """The files' rows validated with numpy agree, row for row, with the SQL reasons."""
    import pyarrow.parquet as pq

    from hourglass.spark.parquet_scan import fixed_valid, plan_files
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.tables import read_table

    ref = str(tmp_path / "sids")
    _write(spark, ROWS, ref)
    src = read_table(spark, ref)
    want = {r["item_id"]: r["_reason"] is None
            for r in fixed_frame(src.df, L, M).select("item_id", "_reason").collect()}
    plan = plan_files(spark, ref, src.version, ("item_id", "codes", "residual_norms"))
    assert plan.reason is None
    got = {}
    for path, _, _ in plan.units:
        batch = pq.read_table(path).combine_chunks().to_batches()[0]
        for i, ok in zip(batch.column("item_id").to_pylist(), fixed_valid(batch, L, M),
                         strict=True):
            got[i] = bool(ok)
    assert got == want
    assert sorted(i for i, ok in got.items() if ok) == ["\t", " x ", "maxfloat", "ok", "zero"]


def test_pack_units_packs_as_spark_does_by_hand():
    """Largest first, a task closes when the next unit would pass the split size (open cost
    counted after each unit); a file over the split size becomes equal row-group units."""
    from hourglass.spark.parquet_scan import pack_units

    tasks = pack_units({"a": 10, "b": 6, "c": 5, "d": 1}, split_bytes=12, open_cost=1)
    assert tasks == [[("a", 0, 1)], [("b", 0, 1), ("c", 0, 1)], [("d", 0, 1)]]
    assert pack_units({"big": 30}, 12, 0) == [[("big", k, 3)] for k in range(3)]
    assert pack_units({}, 12, 1) == []


def test_plan_files_packs_small_files_into_spark_tasks(spark, tmp_path):
    """Forty small files: the plan's tasks hold as many files each as Spark's own read of the
    same version puts in its partitions, and the units cover every file once."""
    from pyspark.sql import functions as F

    from hourglass.spark.parquet_scan import plan_files
    from hourglass.spark.session import scoped_conf
    from hourglass.spark.tables import write_table

    ref = str(tmp_path / "small")
    rows = spark.range(4000).select(
        F.format_string("item-%d", "id").alias("item_id"),
        F.array(*[(F.col("id") + g) % M for g in range(L)]).cast("array<int>").alias("codes"),
        F.array(*[F.rand(g).cast("float") for g in range(L)]).alias("residual_norms"))
    write_table(rows.repartition(40), ref, {"job": "test"})
    cols = ("item_id", "codes", "residual_norms")
    with scoped_conf(spark, "spark.sql.files.maxPartitionBytes", "16k"), \
            scoped_conf(spark, "spark.sql.files.openCostInBytes", "2k"):
        plan = plan_files(spark, ref, 0, cols)
        held = (spark.read.format("delta").load(ref)
                .select(F.spark_partition_id().alias("p"), F.input_file_name().alias("f"))
                .distinct().groupBy("p").count().collect())
    assert plan.reason is None and 4 < len(plan.tasks) < 40
    assert sorted(len(t) for t in plan.tasks) == sorted(r["count"] for r in held)
    paths = [p for p, _, _ in plan.units]
    assert len(paths) == len(set(paths)) == 40 and {n for _, _, n in plan.units} == {1}


def test_plan_files_says_when_to_read_through_spark(spark, tmp_path):
    from hourglass.spark.parquet_scan import plan_files
    from hourglass.spark.tables import read_table, write_table

    cols = ("item_id", "codes", "residual_norms", "codebook_id")
    ref = str(tmp_path / "plain")
    _write(spark, ROWS, ref, parts=3)
    plan = plan_files(spark, ref, 0, cols)
    assert plan.reason is None and len(plan.units) == 3
    assert {u[1:] for u in plan.units} == {(0, 1)}
    split = plan_files(spark, ref, 0, cols, target_bytes=100)  # tiny target: several per file
    assert all(n > 1 for _, _, n in split.units)
    assert sorted({p for p, _, _ in split.units}) == sorted({p for p, _, _ in plan.units})

    assert "not a path" in plan_files(spark, "default.item_sids", 0, cols).reason
    assert "not a path" in plan_files(spark, "s3://bucket/item_sids", 0, cols).reason
    hadoop = spark._jsc.hadoopConfiguration()
    before = hadoop.get("fs.defaultFS")
    hadoop.set("fs.defaultFS", "hdfs://namenode:8020")  # a bare path would name HDFS
    try:
        assert "fs.defaultFS" in plan_files(spark, ref, 0, cols).reason
        assert plan_files(spark, f"file://{ref}", 0, cols).reason is None
    finally:
        hadoop.set("fs.defaultFS", before or "file:///")
    by_book = str(tmp_path / "by_book")
    write_table(spark.createDataFrame(ROWS, DDL).where("codebook_id IS NOT NULL"), by_book,
                {"job": "test"}, partition_by=["codebook_id"])
    assert "partitioned by ['codebook_id']" in plan_files(spark, by_book, 0, cols).reason

    dv = str(tmp_path / "dv")
    _write(spark, ROWS, dv)
    spark.sql(f"ALTER TABLE delta.`{dv}` SET TBLPROPERTIES "
              "('delta.enableDeletionVectors' = 'true')")
    spark.sql(f"DELETE FROM delta.`{dv}` WHERE item_id = 'ok'")
    version = read_table(spark, dv).version
    assert "deletionVectors" in plan_files(spark, dv, version, cols).reason


def test_direct_read_equals_spark_read(spark, tmp_path, rng):
    """The same statistics through the files as through Spark, on a table whose first files
    predate its codebook_id column (read as nulls) and with every kind of bad row; the stage on
    the direct read quarantines exactly the rows the SQL rules refuse."""
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.stats.io import pandas_to_spark, read_runs
    from hourglass.spark.stats.scan.driver import compute_scanned, first_scan
    from hourglass.spark.tables import read_table
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run
    from hourglass.stats.schema import FLOW, LAYER_STATS, SUMMARY
    from hourglass.stats.summary import RunInfo

    root, n = str(tmp_path), 600
    codes = rng.integers(0, M, (n, L))
    codes[:, 1] = np.minimum(rng.zipf(1.5, n) - 1, M - 1)
    norms = np.sort(rng.gamma(2.0, 0.3, (n, L)), axis=1)[:, ::-1].astype(np.float32)
    good = [(f"i{i}", codes[i].tolist(), norms[i].tolist()) for i in range(n)]
    ref = f"{root}/item_sids"
    _write(spark, good[:300], ref, ddl="item_id STRING, codes ARRAY<INT>, "
                                       "residual_norms ARRAY<FLOAT>")
    more = [(*g, "cb") for g in good[300:]] + ROWS[2:]
    (spark.createDataFrame(more, DDL).repartition(2).write.format("delta").mode("append")
     .option("mergeSchema", "true").save(ref))
    res = run(spark, HourglassStatsConfig(output_root=root, run_id="direct", num_layers=L,
                                          num_codes=M, tracking=False))
    bad = len(ROWS) - 2 - 3  # the rows fixed_frame refuses (three of ROWS[2:] are valid)
    assert (res.rows_in, res.items, res.quarantined) == (n + len(ROWS) - 2, n + 3, bad)

    src = read_table(spark, ref)
    framed = fixed_frame(src.df, L, M, ("codebook_id",))
    assert framed.where("_reason IS NOT NULL").count() == bad
    info = RunInfo("direct", "fixed", L, M, "config", codebook_id="cb,other",
                   input_table=ref, input_version=src.version)
    first = first_scan(framed, L, M, 2, "codebook_id")  # through Spark
    try:
        assert (first.rows_in, first.invalid, first.codebooks) == (res.rows_in, bad, 2)
        frames = compute_scanned(first, info, head_share=0.5, flow_top=20)
    finally:
        first.release()
    keys = {"sid_summary": ["layer"], "sid_layer_stats": ["layer", "rank"],
            "sid_flow": ["src_layer", "src_token", "dst_layer", "dst_token"]}
    want = {"sid_summary": (frames.summary, SUMMARY),
            "sid_layer_stats": (frames.layer_stats, LAYER_STATS), "sid_flow": (frames.flow, FLOW)}
    for table, by in keys.items():
        got = read_runs(spark, f"{root}/{table}", ["direct"]).sort_values(by, ignore_index=True)
        exp = (pandas_to_spark(spark, *want[table]).toPandas()  # as the tables hold them
               .sort_values(by, ignore_index=True))
        assert_frame_equal(got[list(exp.columns)], exp, check_dtype=False, obj=table)
