"""The report's input read from the tables: the statistics tables of the chosen runs, plus the
rewrite and evaluation tables when they exist, brought to the driver as pandas (they are small:
at most one row per token and layer per run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from hourglass.errors import MissingInputError
from hourglass.report.data import ReportData
from hourglass.spark.tables import read_table, table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def load_report_data(spark: SparkSession, refs: dict[str, str],
                     run_ids: list[str] | None = None) -> ReportData:
    """Read `refs` (keys summary, layer_stats, flow, rewrite_summary, eval_results) at their
    latest versions; statistics tables are filtered to `run_ids` (all runs when empty)."""
    from pyspark.sql import functions as F

    frames, sources = {}, {}
    for key, ref in refs.items():
        if not table_exists(spark, ref):
            if key == "summary":
                raise MissingInputError(f"no statistics to report: {ref} does not exist; run "
                                        "the hourglass_stats stage first")
            frames[key] = pd.DataFrame()
            continue
        read = read_table(spark, ref)
        df = read.df
        if run_ids and key in ("summary", "layer_stats", "flow"):
            df = df.where(F.col("run_id").isin(run_ids))
        frames[key] = df.toPandas()
        sources[ref] = read.version
    missing = sorted(set(run_ids or []) - set(frames["summary"].get("run_id", [])))
    if missing:
        raise ValueError(f"run(s) {missing} are not in {refs['summary']}")
    return ReportData(**frames, sources=sources)
