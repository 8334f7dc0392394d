"""Stage `report`: the statistics (and rewrite/evaluation) tables → one HTML page with PNGs.

`build_report(spark, cfg)` is what `make demo` ends with; it returns the path of index.html.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.tracking import tracked_run, tracking_field

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class ReportConfig(StageConfig):
    """Render the hourglass report of `run_ids` (all runs when empty) into `report_dir`.

    Keys:
        report_dir: folder of the HTML report; empty: report/ beside the tables folder
        run_ids: stats runs to report; empty: all
        title: title of the report page
        note: a paragraph under the title, e.g. what the run's budget can and cannot show
        summary_table: statistics summary table
        layer_stats_table: per-token counts table
        flow_table: prefix flow table
        rewrite_summary_table: rewrite figures table
        eval_results_table: evaluation metrics table
    """

    report_dir: str = ""
    run_ids: list[str] = dataclasses.field(default_factory=list)
    title: str = "Hourglass report"
    note: str = ""
    summary_table: str = "sid_summary"
    layer_stats_table: str = "sid_layer_stats"
    flow_table: str = "sid_flow"
    rewrite_summary_table: str = "rewrite_summary"
    eval_results_table: str = "eval_results"
    tracking: bool = tracking_field()

    def validate(self) -> None:
        folder = self.folder()
        require(bool(folder), "report_dir", "is required when output_root is empty")
        require("://" not in folder, "report_dir",
                f"must be a local or FUSE path (e.g. /dbfs/…, /Volumes/…), got {folder!r}")
        require(len(set(self.run_ids)) == len(self.run_ids), "run_ids", "has duplicates")

    def folder(self) -> str:
        """`report_dir`, else `report/` beside the tables folder (`<output_root>/../report`)."""
        if self.report_dir:
            return self.report_dir.removeprefix("file:")
        if not self.output_root:
            return ""
        return str(Path(self.output_root.removeprefix("file:")).parent / "report")


@dataclasses.dataclass
class ReportResult:
    path: str
    runs: list[str]
    figures: int
    tables_read: dict[str, int]


def run(spark: SparkSession, cfg: ReportConfig) -> ReportResult:
    """Read the tables, draw every figure, write index.html; the page's path is in the result."""
    from hourglass.report.render import render_report
    from hourglass.spark.report_data import load_report_data

    refs = {"summary": cfg.summary_table, "layer_stats": cfg.layer_stats_table,
            "flow": cfg.flow_table, "rewrite_summary": cfg.rewrite_summary_table,
            "eval_results": cfg.eval_results_table}
    data = load_report_data(spark, {k: cfg.ref(v) for k, v in refs.items()},
                            cfg.run_ids or None)
    runs = cfg.run_ids or data.run_ids()
    rendered = render_report(data, cfg.folder(), cfg.title, runs, cfg.note)
    path = rendered.path.resolve()
    with tracked_run(cfg.tracking, cfg.output_root or cfg.folder(), "report", "report",
                     {"hourglass.stats_run_ids": ",".join(runs)}) as track:
        track.params(cfg.to_dict())
        track.tags({"hourglass.input_versions": json.dumps(data.sources, sort_keys=True)})
        track.artifacts(path.parent, "report")  # index.html and its PNGs
    log.info("report: %d runs, %d figures → %s", len(runs), len(rendered.figures), path)
    return ReportResult(path=str(path), runs=runs, figures=len(rendered.figures),
                        tables_read=data.sources)


def build_report(spark: SparkSession, cfg: ReportConfig) -> str:
    """Build the report and return the path of its index.html."""
    return run(spark, cfg).path
