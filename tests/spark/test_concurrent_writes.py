"""Tables written by parallel branches: two processes, each with its own Spark session, write
different slices of one table at the same moment, round after round; both always commit, whole
and without duplicates. Conflicts past the retries fail with an error naming the table."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hourglass.errors import CommitConflictError
from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.tables import COMMIT_RETRIES_CONF, is_commit_conflict, lineage

pytestmark = pytest.mark.spark

WRITER = Path(__file__).with_name("slice_writer.py")
ROUNDS = 8  # 4 tables: each created by two racing writers, then re-written by both at once
ROWS = {"stage_a": 40, "stage_b": 70}


@pytest.mark.slow
def test_parallel_writers_of_different_slices_both_commit_every_round(spark, tmp_path):
    sync, root = tmp_path / "sync", tmp_path / "tables"
    sync.mkdir()
    peers = ",".join(ROWS)
    procs = {stage: subprocess.Popen(
        [sys.executable, str(WRITER), "--stage", stage, "--peers", peers, "--rows", str(n),
         "--rounds", str(ROUNDS), "--table_root", str(root), "--sync", str(sync),
         "--out", str(tmp_path / f"{stage}.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for stage, n in ROWS.items()}
    for stage, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"writer {stage} died:\n{out[-3000:]}"
    results = {s: json.loads((tmp_path / f"{s}.json").read_text()) for s in ROWS}

    failed = [(s, r) for s, rounds in results.items() for r in rounds if not r["ok"]]
    assert not failed, f"a parallel writer failed: {failed}"
    for stage, n in ROWS.items():
        assert [r["rows"] for r in results[stage]] == [n] * ROUNDS

    for t in range(ROUNDS // 2):
        df = spark.read.format("delta").load(str(root / f"round-{t}")).toPandas()
        assert df.columns.tolist() == ["item_id", "stage", "reason", "payload"]
        assert not df.duplicated(["item_id"]).any(), f"round-{t}: duplicated rows"
        for stage, n in ROWS.items():
            mine = df[df["stage"] == stage]
            assert sorted(mine["item_id"]) == sorted(f"{stage}-{i}" for i in range(n))
            # the odd round replaced the even round's slice: none of the first write is left
            assert set(mine["reason"]) == {f"round {2 * t + 1}"}
    print("retries per round:", {s: [r["retries"] for r in rs] for s, rs in results.items()})


def test_commit_conflicts_past_the_retries_fail_naming_the_table(spark, table_root):
    from pyspark.sql import functions as F

    ref = f"{table_root}/quarantine"
    schema = "item_id STRING, stage STRING, reason STRING, payload STRING"
    rec = lineage("unit", "conflict", {})
    write_quarantine(spark.createDataFrame([("x", "a", "r", "{}")], schema), ref, "a", rec)

    # Each attempt spends a second computing its rows, while another writer changes the table's
    # metadata every 0.1 s: every commit finds the table changed under it.
    slow = F.udf(lambda s: time.sleep(1.0) or s, "string")
    rows = spark.createDataFrame([("y", "b", "r", "{}")], schema).withColumn("reason",
                                                                              slow("reason"))
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            spark.sql(f"ALTER TABLE delta.`{ref}` SET TBLPROPERTIES ('test.churn' = '{i}')")
            i += 1
            time.sleep(0.1)

    other = threading.Thread(target=churn)
    spark.conf.set(COMMIT_RETRIES_CONF, "2")
    other.start()
    try:
        with pytest.raises(CommitConflictError, match=f"{ref}.*after 2 retries") as err:
            write_quarantine(rows, ref, "b", rec)
    finally:
        stop.set()
        other.join()
        spark.conf.unset(COMMIT_RETRIES_CONF)
    assert is_commit_conflict(err.value.__cause__)
    left = spark.read.format("delta").load(ref).toPandas()
    assert left["stage"].tolist() == ["a"]  # nothing of the refused commit landed


def test_commit_conflict_classification():
    from delta.exceptions import base

    assert is_commit_conflict(base.ConcurrentAppendException(message="files were added"))
    assert is_commit_conflict(base.ProtocolChangedException(message="protocol changed"))
    assert not is_commit_conflict(ValueError("ConcurrentAppendException in a message only"))
    assert not is_commit_conflict(RuntimeError("disk full"))
