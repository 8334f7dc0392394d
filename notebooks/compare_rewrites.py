# Databricks notebook source
# MAGIC %md
# MAGIC # Compare SID rewriting strategies
# MAGIC
# MAGIC Rewrites `item_sids` with several strategies (paper §4: `none`, `drop_layer(2)`,
# MAGIC `topk(K)`, `topshare(p)`) through the `rewrite_sids` stage, computes the hourglass
# MAGIC statistics of each rewritten table, and puts them side by side: capacity (from the
# MAGIC definition and the paper's formula), distinct SIDs, collisions before and after the suffix,
# MAGIC SID lengths, and the per-layer entropy / Gini / utilization of each strategy.
# MAGIC
# MAGIC Widgets on Databricks; in plain Python `NB_<WIDGET>` environment variables or the defaults
# MAGIC (which read what `make demo` wrote).

# COMMAND ----------

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
    matplotlib.use("Agg")  # plain-Python runs write PNGs instead of showing windows

import pandas as pd

from hourglass.logs import setup_logging
from hourglass.notebook import repo_root, show, widget
from hourglass.report.figures import metric_bars, rank_frequency
from hourglass.rewrite.strategies import parse_strategy
from hourglass.spark.report_data import load_report_data
from hourglass.spark.session import get_spark
from hourglass.stages.hourglass_stats import HourglassStatsConfig
from hourglass.stages.hourglass_stats import run as run_stats
from hourglass.stages.rewrite_sids import RewriteSidsConfig
from hourglass.stages.rewrite_sids import run as run_rewrite

setup_logging()
os.chdir(repo_root(globals().get("__file__")))  # relative paths mean what they mean for `make demo`
spark = get_spark("hourglass-compare-rewrites")

# COMMAND ----------

output_root = widget("output_root", "demo-output/tables", "Tables folder (output_root)")
item_sids_table = widget("item_sids_table", "item_sids", "Fixed-length SID table")
strategies = [s.strip() for s in widget(
    "strategies", "none;drop_layer(2);topk(4);topk(16);topshare(0.5)",
    "Strategies, separated by ;").split(";") if s.strip()]
resolve_collisions = widget("resolve_collisions", "true", "Suffix colliding SIDs") == "true"
codebook_size = int(widget("codebook_size", "0", "M (0: max code + 1, a lower bound)"))
figures_dir = Path(widget("figures_dir", "demo-output/notebooks/compare", "Local figures folder"))

# COMMAND ----------

# MAGIC %md ## Rewrite (one Delta commit for all strategies, plus one SID trie per strategy)

# COMMAND ----------

rw_cfg = RewriteSidsConfig(output_root=output_root, strategies=strategies,
                           item_sids_table=item_sids_table,
                           resolve_collisions=resolve_collisions, codebook_size=codebook_size)
rw_cfg.validate()
rewrite = run_rewrite(spark, rw_cfg)
outcomes = pd.DataFrame([{
    "strategy": o.strategy, "items": o.rows_written, "tokens_removed": o.removed_tokens,
    "distinct_sids": o.distinct_sids, "capacity": o.capacity_definition,
    "capacity_paper_formula": o.capacity_formula,
    "collision_share_before": o.collision_share_before,
    "collision_share_after": o.collision_share_after, "mean_length": o.mean_length,
    **{f"share_len_{k}": v for k, v in sorted(o.length_shares.items())},
} for o in rewrite.outcomes])
show(outcomes, "rewrite_outcomes", figures_dir)

# COMMAND ----------

# MAGIC %md ## Hourglass statistics of the original and of every rewritten table

# COMMAND ----------

runs = {"original": ("", item_sids_table)}
for spec in strategies:
    runs[f"rw_{parse_strategy(spec).name}"] = (parse_strategy(spec).name, rw_cfg.output_table)
stat_cfgs = {}
for run_id, (strategy, table) in runs.items():
    stat_cfgs[run_id] = HourglassStatsConfig(
        output_root=output_root, run_id=run_id, input_table=table, strategy=strategy,
        num_layers=rewrite.num_layers, num_codes=rewrite.codebook_size)
    stat_cfgs[run_id].validate()
    print(run_stats(spark, stat_cfgs[run_id]))
any_cfg = next(iter(stat_cfgs.values()))
refs = {"summary": any_cfg.summary_table, "layer_stats": any_cfg.layer_stats_table,
        "flow": any_cfg.flow_table}
data = load_report_data(spark, {k: any_cfg.ref(v) for k, v in refs.items()}, list(runs))
per_layer = (data.summary.pivot_table(index="run_id", columns="layer",
                                      values=["norm_entropy", "gini", "utilization"])
             .reindex(list(runs)))
show(per_layer.round(4), "per_layer_metrics", figures_dir)

# COMMAND ----------

# MAGIC %md ## Side by side

# COMMAND ----------

figures = {
    "metric_bars": metric_bars(data.summary, "Per-layer metrics by strategy"),
    "rank_frequency": rank_frequency(data.layer_stats, "Rank-frequency by strategy"),
}
for name, fig in figures.items():
    show(fig, name, figures_dir)
