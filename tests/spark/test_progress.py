"""Spark jobs carry the stage step that started them, and steps nest."""

from __future__ import annotations

import pytest

from hourglass.spark.progress import next_step, spark_step

pytestmark = pytest.mark.spark


def test_jobs_of_a_step_are_in_the_stage_group_and_the_description_comes_back(spark, capsys):
    sc = spark.sparkContext
    sc.setLocalProperty("spark.job.description", None)
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
