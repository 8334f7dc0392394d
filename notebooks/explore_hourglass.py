# Databricks notebook source
# MAGIC %md
# MAGIC # Explore the hourglass of a SID table
# MAGIC
# MAGIC Computes the hourglass statistics of one semantic-ID table (`item_sids`, or one strategy
# MAGIC of `item_sids_rw`) with the `hourglass_stats` stage, then draws the paper's pictures: the
# MAGIC layered flow of Figure 2, rank–frequency curves per layer, the entropy / Gini / std bars
# MAGIC of Figure 3 and the residual norms of Figure 4.
# MAGIC
# MAGIC Widgets on Databricks; run locally as plain Python (`python notebooks/explore_hourglass.py`)
# MAGIC the same values come from `NB_<WIDGET>` environment variables, else the defaults, which
# MAGIC read what `make demo` wrote.

# COMMAND ----------

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if "DATABRICKS_RUNTIME_VERSION" not in os.environ:
    matplotlib.use("Agg")  # plain-Python runs write PNGs instead of showing windows

from hourglass.logs import setup_logging
from hourglass.notebook import repo_root, show, widget
from hourglass.report.figures import metric_bars, norm_distribution, rank_frequency
from hourglass.report.flow import flow_figure
from hourglass.spark.report_data import load_report_data
from hourglass.spark.session import get_spark
from hourglass.stages.hourglass_stats import HourglassStatsConfig
from hourglass.stages.hourglass_stats import run as run_stats

setup_logging()
os.chdir(repo_root(globals().get("__file__")))  # relative paths mean what they mean for `make demo`
spark = get_spark("hourglass-explore")

# COMMAND ----------

output_root = widget("output_root", "demo-output/tables", "Tables folder (output_root)")
sid_table = widget("sid_table", "item_sids", "SID table (name under output_root, or a path)")
strategy = widget("strategy", "", "Strategy (item_sids_rw only)")
run_id = widget("run_id", "explore_item_sids", "Statistics run_id")
num_layers = int(widget("num_layers", "0", "L (0: from the table)"))
num_codes = int(widget("num_codes", "0", "M (0: from the table or codebook)"))
head_share = float(widget("head_share", "0.5", "Head share"))
figures_dir = Path(widget("figures_dir", "demo-output/notebooks/explore", "Local figures folder"))

# COMMAND ----------

# MAGIC %md ## Statistics (exact Spark aggregations, written to sid_summary / sid_layer_stats)

# COMMAND ----------

cfg = HourglassStatsConfig(output_root=output_root, run_id=run_id, input_table=sid_table,
                           strategy=strategy, head_share=head_share, num_layers=num_layers,
                           num_codes=num_codes)
cfg.validate()
stats = run_stats(spark, cfg)
print(stats)
refs = {"summary": cfg.summary_table, "layer_stats": cfg.layer_stats_table,
        "flow": cfg.flow_table}
data = load_report_data(spark, {k: cfg.ref(v) for k, v in refs.items()}, [run_id])
summary = data.summary.sort_values("layer").reset_index(drop=True)
columns = ["layer", "used_tokens", "entropy", "norm_entropy", "gini", "std", "utilization",
           "top1_share", "head_tokens", "distinct_prefixes", "capacity", "path_fill",
           "mean_fanout", "max_fanout", "norm_mean"]
show(summary[[c for c in columns if c in summary.columns]], "summary", figures_dir)

# COMMAND ----------

# MAGIC %md ## Is there an hourglass?
# MAGIC The paper's symptom: the middle layer's normalised entropy is below its neighbours' and its
# MAGIC Gini above them (few tokens take most items).

# COMMAND ----------

by_layer = summary.set_index("layer")
layers = list(by_layer.index)
middle = [lay for lay in layers if 1 < lay < max(layers)]
hourglass = {}
for lay in middle:
    ent, gin = by_layer["norm_entropy"], by_layer["gini"]
    hourglass[lay] = bool(ent[lay] < min(ent[lay - 1], ent[lay + 1])
                          and gin[lay] > max(gin[lay - 1], gin[lay + 1]))
    print(f"layer {lay}: normalised entropy {ent[lay]:.3f} (neighbours {ent[lay - 1]:.3f}, "
          f"{ent[lay + 1]:.3f}); Gini {gin[lay]:.3f} (neighbours {gin[lay - 1]:.3f}, "
          f"{gin[lay + 1]:.3f}) -> {'hourglass' if hourglass[lay] else 'no hourglass'}")

# COMMAND ----------

# MAGIC %md ## Figures

# COMMAND ----------

figures = {
    "flow": flow_figure(data.summary, data.layer_stats, data.flow, f"Token flow: {run_id}"),
    "rank_frequency": rank_frequency(data.layer_stats, "Rank-frequency per layer"),
    "metric_bars": metric_bars(data.summary, "Entropy, Gini, std, utilization per layer"),
}
norms = norm_distribution(data.summary, "Residual norm after each layer")
if norms is not None:  # rewritten SIDs carry no residual norms
    figures["residual_norms"] = norms
for name, fig in figures.items():
    show(fig, name, figures_dir)
