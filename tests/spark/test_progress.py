"""Spark jobs carry the stage step that started them, and steps nest."""

from __future__ import annotations

import re

import pytest

from hourglass.spark.progress import names_its_jobs, next_step, spark_step

pytestmark = pytest.mark.spark


def test_jobs_of_a_step_are_in_the_stage_group_and_the_description_comes_back(spark, capsys):
    sc = spark.sparkContext
    sc.setLocalProperty("spark.job.description", None)
    sc.setLocalProperty("spark.jobGroup.id", None)
    with spark_step(spark, "encode_items", "Encode every item"):
        with spark_step(spark, "encode_items", "count the input", bar=True):
            assert sc.getLocalProperty("spark.job.description") == "encode_items: count the input"
            assert spark.range(1000).repartition(3).count() == 1000
        assert sc.getLocalProperty("spark.job.description") == "encode_items: Encode every item"
        assert sc.getLocalProperty("spark.jobGroup.id") == "encode_items"
        next_step(spark, "encode_items", "write item_sids")
        assert sc.getLocalProperty("spark.job.description") == "encode_items: write item_sids"
    assert sc.getLocalProperty("spark.job.description") is None
    assert sc.getLocalProperty("spark.jobGroup.id") is None
    assert sc.statusTracker().getJobIdsForGroup("encode_items")


def test_a_stage_run_directly_gives_the_caller_its_job_names_back(spark, tmp_path):
    """A notebook calling `encode_items.run` (no `spark_step` around it): its `next_step` names
    hold during the run and are gone after it, also when it fails."""
    import numpy as np

    from hourglass.quant.artifact import build_artifact, save_artifact
    from hourglass.spark.tables import write_table
    from hourglass.stages import encode_items

    sc = spark.sparkContext
    root = str(tmp_path / "tables")
    C = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    art = save_artifact(build_artifact(C, "rq_kmeans", 3, 1, 10, [0.5, 0.2]), f"{root}/codebooks")
    rows = [(f"i{i}", [float(i), 1.0, -1.0], "t") for i in range(6)]
    write_table(spark.createDataFrame(rows, "item_id string, embedding array<float>, model string"),
                f"{root}/item_embeddings", {"job": "test"})
    seen = []

    @names_its_jobs
    def failing(spark):
        next_step(spark, "encode_items", "write")
        seen.append(sc.getLocalProperty("spark.job.description"))
        raise RuntimeError("boom")

    sc.setJobGroup("mine", "my notebook cell")
    counts = encode_items.run(spark, encode_items.EncodeItemsConfig(output_root=root,
                                                                    codebook_path=art))
    assert counts.encoded == 6
    assert sc.statusTracker().getJobIdsForGroup("encode_items")  # its jobs were named
    assert sc.getLocalProperty("spark.jobGroup.id") == "mine"
    assert sc.getLocalProperty("spark.job.description") == "my notebook cell"
    with pytest.raises(RuntimeError, match="boom"):
        failing(spark)
    assert seen == ["encode_items: write"]
    assert sc.getLocalProperty("spark.job.description") == "my notebook cell"
    sc.setLocalProperty("spark.jobGroup.id", None)
    sc.setLocalProperty("spark.job.description", None)


def test_a_long_step_draws_its_finished_tasks_and_a_step_without_jobs_draws_nothing(spark,
                                                                                  capsys):
    import time

    with spark_step(spark, "hourglass_stats", "scan the SID table", bar=True):
        slow = spark.range(4).repartition(4).rdd.map(lambda x: time.sleep(1.5) or x)
        assert slow.count() == 4
    with spark_step(spark, "ablation", "train none", bar=True):
        time.sleep(2.5)  # no Spark job: like a fine-tune in a child process
    err = capsys.readouterr().err  # the bar is tqdm's "<desc>: <percent>|...| done/total ["
    drawn = re.findall(r"hourglass_stats: scan the SID table: +\d+%\|[^|]*\| (\d+)/(\d+) \[",
                       err)
    assert drawn, err[-2000:]
    done, total = map(int, drawn[-1])
    assert 4 <= done <= total  # at least the four slow tasks (the tracker may lag the rest)
    assert "ablation: train none:" not in err
