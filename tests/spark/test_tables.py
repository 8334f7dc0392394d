"""Delta I/O: pinned reads, one commit per write with lineage, stage-owned quarantine slices,
and a session that depends only on local jars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.tables import (
    Commit,
    _commit_with,
    commit_lineage,
    latest_version,
    lineage,
    read_table,
    write_slice,
    write_table,
)
from hourglass.table_refs import is_path

pytestmark = pytest.mark.spark


def test_session_uses_local_jars_only(spark):
    conf = spark.sparkContext.getConf()
    jars = conf.get("spark.jars").split(",")
    assert jars and all(os.path.isfile(j) for j in jars)
    assert any("delta-spark" in Path(j).name for j in jars)
    assert conf.get("spark.jars.packages", "") == ""
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"


def test_catalog_sized_frames_persist_at_the_configured_level(spark):
    from pyspark import StorageLevel

    from hourglass.errors import ConfigError
    from hourglass.spark.session import CATALOG_CACHE_LEVEL, persist_catalog

    df = spark.range(10)
    try:
        assert persist_catalog(df).storageLevel == StorageLevel.DISK_ONLY  # the default
        df.unpersist()
        spark.conf.set(CATALOG_CACHE_LEVEL, "memory_and_disk")
        assert persist_catalog(df).storageLevel == StorageLevel.MEMORY_AND_DISK
        df.unpersist()
        for bad in ("MEMORY_ONLY_7", "NONE"):
            spark.conf.set(CATALOG_CACHE_LEVEL, bad)
            with pytest.raises(ConfigError, match=CATALOG_CACHE_LEVEL):
                persist_catalog(df)
    finally:
        spark.conf.unset(CATALOG_CACHE_LEVEL)
        df.unpersist()


def test_write_is_one_commit_with_lineage_and_pinned_reads(spark, table_root):
    ref = f"{table_root}/t"
    rec = lineage("unit", "abc", {"src": 3})
    c0 = write_table(spark.createDataFrame([(1, "a"), (2, "b")], "k int, v string"), ref, rec)
    c1 = write_table(spark.createDataFrame([(3, "c")], "k int, v string"), ref, rec)
    assert (c0.version, c1.version) == (0, 1) and latest_version(spark, ref) == 1
    assert (c0.rows, c1.rows) == (2, 1)
    assert commit_lineage(spark, ref)["inputs"] == {"src": 3}
    assert commit_lineage(spark, ref, 0)["job"] == "unit"
    assert [r.k for r in read_table(spark, ref).df.collect()] == [3]
    assert sorted(r.k for r in read_table(spark, ref, version=0).df.collect()) == [1, 2]
    ops = [r.operation for r in spark.sql(f"DESCRIBE HISTORY delta.`{ref}`").collect()]
    assert ops == ["WRITE", "WRITE"]


def test_quarantine_slices_are_replaced_per_stage(spark, table_root):
    ref = f"{table_root}/quarantine"
    schema = "item_id string, stage string, reason string, payload string"
    rec = lineage("unit", "x", {})
    write_quarantine(spark.createDataFrame([("1", "a", "r", "{}"), ("2", "a", "r", "{}")],
                                           schema), ref, "a", rec)
    write_quarantine(spark.createDataFrame([("3", "b", "r", "{}")], schema), ref, "b", rec)
    write_quarantine(spark.createDataFrame([("4", "a", "r2", "{}")], schema), ref, "a", rec)
    rows = sorted((r.item_id, r.stage) for r in read_table(spark, ref).df.collect())
    assert rows == [("3", "b"), ("4", "a")]
    with pytest.raises(ValueError):
        write_quarantine(spark.createDataFrame([], schema), ref, "a' OR '1", rec)


def test_commit_rows_are_the_slice_rows_read_back(spark, table_root):
    """A commit's `rows` against the rows read back: one file holding two stages (Delta
    rewrites it around a replaced slice, copying the other stage's rows), an empty slice, a
    partitioned table, and another writer's commit landing after ours."""
    ref = f"{table_root}/q"
    rec = lineage("unit", "x", {})

    def frame(rows):
        return spark.createDataFrame(rows, "stage string, k int").coalesce(1)

    def rows_of(stage: str) -> int:
        return read_table(spark, ref).df.where(f"stage = '{stage}'").count()

    assert write_table(frame([("a", 1), ("a", 2), ("b", 3), ("b", 4)]), ref, rec).rows == 4
    commit = write_slice(frame([("a", 5), ("a", 6), ("a", 7)]), ref, rec, {"stage": "a"})
    assert commit.metrics["numCopiedRows"] == "2"  # b's rows, copied out of the shared file
    assert commit.rows == rows_of("a") == 3
    assert write_slice(frame([]), ref, rec, {"stage": "b"}).rows == rows_of("b") == 0
    # nothing to add or remove: Delta records no commit; the latest version, no rows
    latest = latest_version(spark, ref)
    empty = write_slice(frame([]), ref, lineage("unit", "empty", {}), {"stage": "z"})
    assert (empty.version, empty.rows) == (latest, 0) and latest_version(spark, ref) == latest
    part = f"{table_root}/p"
    write_slice(frame([("a", 1)]), part, rec, {"stage": "a"}, partition_by=["stage"])
    assert write_slice(frame([("a", 1), ("a", 2)]), part, rec, {"stage": "a"},
                       partition_by=["stage"]).rows == 2
    with pytest.raises(RuntimeError, match="metricsEnabled"):
        _ = Commit(9, {}).rows
    # ours is found by its lineage even when another writer has committed since
    mine = json.dumps(lineage("mine", "y", {}), sort_keys=True)
    spark.createDataFrame([("c", 1)], "stage string, k int").write.format("delta").mode(
        "append").option("userMetadata", mine).save(ref)
    write_slice(frame([("d", 1)]), ref, rec, {"stage": "d"})
    found = _commit_with(spark, ref, mine)
    assert (found.version, found.rows) == (latest_version(spark, ref) - 1, 1)


def test_catalog_names_and_missing_tables(spark, table_root):
    assert is_path(table_root) and not is_path("main.hourglass.items")
    spark.sql("CREATE DATABASE IF NOT EXISTS hg_test")
    write_table(spark.createDataFrame([(1,)], "k int"), "hg_test.items",
                lineage("unit", "y", {}))
    assert read_table(spark, "hg_test.items").df.count() == 1
    spark.sql("DROP TABLE hg_test.items")
    with pytest.raises(FileNotFoundError):
        read_table(spark, f"{table_root}/nope")


def test_write_slice_creates_then_replaces_only_its_slice(spark, table_root):
    ref = f"{table_root}/shared"
    schema = "run_id string, strategy string, value long"
    rec = lineage("unit", "x", {})
    first = [("r1", "none", 1), ("r1", "topk_8", 2)]
    write_slice(spark.createDataFrame(first, schema), ref, rec, {"run_id": "r1"})
    # the first write created the table empty, partitioned by its slice's columns
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{ref}`").collect()[0]
    assert list(detail["partitionColumns"]) == ["run_id"]
    write_slice(spark.createDataFrame([("r2", "none", 3)], schema), ref, rec, {"run_id": "r2"})
    write_slice(spark.createDataFrame([("r1", "none", 10)], schema), ref, rec,
                {"run_id": "r1", "strategy": ["none"]})
    rows = sorted(tuple(r) for r in read_table(spark, ref).df.collect())
    assert rows == [("r1", "none", 10), ("r1", "topk_8", 2), ("r2", "none", 3)]
    # a slice write holding another slice's rows is refused whole, on creation as on replace
    from pyspark.errors import AnalysisException

    stray = spark.createDataFrame([("r1", "none", 5), ("r3", "none", 6)], schema)
    for target in (ref, f"{table_root}/fresh"):
        with pytest.raises(AnalysisException, match="DELTA_REPLACE_WHERE_MISMATCH"):
            write_slice(stray, target, rec, {"run_id": "r1"})
    assert sorted(tuple(r) for r in read_table(spark, ref).df.collect()) == rows
    with pytest.raises(ValueError):
        write_slice(spark.createDataFrame([], schema), ref, rec, {"run_id": "r1' OR '1"})
    assert sorted(tuple(r) for r in read_table(spark, ref).df.collect()) == rows
