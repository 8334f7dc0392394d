# Databricks notebook source
# MAGIC %md
# MAGIC # Run the hourglass pipeline
# MAGIC
# MAGIC Runs the steps of a pipeline config file (the format of `configs/demo.yaml`: a shared
# MAGIC `output_root` and an ordered list of `steps`, each a stage and its keys) in this
# MAGIC notebook's Spark session — the same code path as `make demo`, `jobs/pipeline.py` and the
# MAGIC Databricks pipeline job. `only` runs a subset of the stages by name.
# MAGIC
# MAGIC Widgets on Databricks; in plain Python `NB_<WIDGET>` environment variables or the defaults.
# MAGIC On a cluster give a config whose input paths are absolute (a volume or cloud path).

# COMMAND ----------

from __future__ import annotations

import os

import pandas as pd

from hourglass.logs import setup_logging
from hourglass.notebook import repo_root, show, widget
from hourglass.spark.session import get_spark
from hourglass.spark.tables import read_table, table_exists
from hourglass.stages.common import to_jsonable
from hourglass.stages.pipeline import PipelineConfig
from hourglass.stages.pipeline import run as run_pipeline

setup_logging()
# the demo config's relative paths are relative to the checkout
os.chdir(repo_root(globals().get("__file__")))
spark = get_spark("hourglass-pipeline-notebook")

# COMMAND ----------

config_file = widget("config_file", "configs/demo.yaml", "Pipeline config file")
output_root = widget("output_root", "", "Tables folder (empty: the config's output_root)")
only = widget("only", "", "Only these stages (comma separated; empty: all)")

# COMMAND ----------

# MAGIC %md ## Parse and validate every step before the first one runs

# COMMAND ----------

argv = ["--config", config_file]
argv += ["--output_root", output_root] if output_root else []
argv += ["--only", only] if only else []
cfg = PipelineConfig.from_args(argv)
show(pd.DataFrame([{"step": i, "stage": s["stage"], "keys": ", ".join(k for k in s if k != "stage")}
                   for i, s in enumerate(cfg.steps)]))

# COMMAND ----------

# MAGIC %md ## Run

# COMMAND ----------

results = run_pipeline(spark, cfg)
show(pd.DataFrame([{"stage": r.stage, "seconds": r.seconds, "result": to_jsonable(r.result)}
                   for r in results]))

# COMMAND ----------

# MAGIC %md ## Tables written (Delta, latest versions) and the report

# COMMAND ----------

tables = []
for name in ("items", "interactions", "item_embeddings", "item_sids", "sid_layer_stats",
             "sid_summary", "item_sids_rw", "rewrite_summary", "sft_examples", "eval_results",
             "quarantine"):
    ref = cfg.ref(name)
    if table_exists(spark, ref):
        read = read_table(spark, ref)
        tables.append({"table": name, "ref": ref, "version": read.version,
                       "rows": read.df.count()})
show(pd.DataFrame(tables))
reports = [r.result.path for r in results if r.stage == "report"]
for path in reports:
    print(f"report: {path}")
