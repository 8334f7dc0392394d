"""What the report reads: the statistics tables of the chosen runs, plus the rewrite and
evaluation tables when they exist. Everything here is small (at most one row per token and
layer per run), so it comes to the driver as pandas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class ReportData:
    """The frames one report is drawn from; `sources` maps each table read to its version."""

    summary: pd.DataFrame
    layer_stats: pd.DataFrame
    flow: pd.DataFrame
    rewrite_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    eval_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    sources: dict[str, int] = field(default_factory=dict)

    def run_ids(self) -> list[str]:
        """Runs in table order: original (fixed-length) SIDs first, then by name."""
        from hourglass.report.html import natural_key

        runs = self.summary.drop_duplicates("run_id")
        fixed = runs["input_kind"] != "fixed"
        return [r for _, r in sorted(zip(fixed, runs["run_id"], strict=True),
                                     key=lambda t: (t[0], natural_key(t[1])))]


def load_report_data(spark: SparkSession, refs: dict[str, str],
                     run_ids: list[str] | None = None) -> ReportData:
    """Read `refs` (keys summary, layer_stats, flow, rewrite_summary, eval_results) at their
    latest versions; statistics tables are filtered to `run_ids` (all runs when empty)."""
    from pyspark.sql import functions as F

    from hourglass.spark.tables import read_table, table_exists

    frames, sources = {}, {}
    for key, ref in refs.items():
        if not table_exists(spark, ref):
            if key == "summary":
                raise FileNotFoundError(f"no statistics to report: {ref} does not exist; run "
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
