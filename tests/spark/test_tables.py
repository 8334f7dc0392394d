"""Delta I/O: pinned reads, one commit per write with lineage, stage-owned quarantine slices,
and a session that depends only on local jars."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.tables import (
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


def test_write_is_one_commit_with_lineage_and_pinned_reads(spark, table_root):
    ref = f"{table_root}/t"
    rec = lineage("unit", "abc", {"src": 3})
    v0 = write_table(spark.createDataFrame([(1, "a"), (2, "b")], "k int, v string"), ref, rec)
    v1 = write_table(spark.createDataFrame([(3, "c")], "k int, v string"), ref, rec)
    assert (v0, v1) == (0, 1) and latest_version(spark, ref) == 1
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
    first = [("r1", "none", 1), ("r1", "topk_8", 2), ("r2", "none", 3)]
    write_slice(spark.createDataFrame(first, schema), ref, rec, {"run_id": "r1"})
    write_slice(spark.createDataFrame([("r1", "none", 10)], schema), ref, rec,
                {"run_id": "r1", "strategy": ["none"]})
    rows = sorted(tuple(r) for r in read_table(spark, ref).df.collect())
    # The first write created the table with every row; the second replaced (r1, none) only.
    assert rows == [("r1", "none", 10), ("r1", "topk_8", 2), ("r2", "none", 3)]
    with pytest.raises(ValueError):
        write_slice(spark.createDataFrame([], schema), ref, rec, {"run_id": "r1' OR '1"})
    assert sorted(tuple(r) for r in read_table(spark, ref).df.collect()) == rows
