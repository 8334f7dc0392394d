"""What the report is drawn from: the statistics frames of the chosen runs, plus the rewrite and
evaluation frames when they exist. Everything is small (at most one row per token and layer per
run), so it is pandas; `hourglass.spark.report_data` reads it from the tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


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
