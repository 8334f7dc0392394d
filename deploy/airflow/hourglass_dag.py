"""Airflow DAG `hourglass_pipeline`: each Spark stage a SparkSubmitOperator, the DeepSpeed
fine-tune a separate task on the GPU host(s).

Why this shape: stages talk only through Delta tables, so each is its own retryable task. The SID
stages run `jobs/pipeline.py --only <stage>` on the one pipeline config (as `make demo` and the
Databricks pipeline job do); the fine-tune path trains the strategy chosen for production: its
SFT data and evaluation are Spark jobs, the fine-tune is not (DeepSpeed's launcher starts one
process per GPU, over ssh for several nodes), so it runs the launchers of deploy/deepspeed/.

Install: put (or symlink) this file in the scheduler's dags folder; workers need a checkout of
the repository at HOURGLASS_HOME, the archive built by deploy/spark-submit/pack_venv.sh, and an
Airflow connection `spark_default` (or HOURGLASS_SPARK_CONN_ID) naming the Spark master. The
settings are environment variables of the scheduler and workers (defaults in brackets):

  HOURGLASS_HOME           repository checkout [two folders above this file]
  HOURGLASS_CONFIG         pipeline config: output_root + ordered steps [configs/demo.yaml]
  HOURGLASS_STRATEGY       SID strategy fine-tuned and evaluated [topk(16)]
  HOURGLASS_SFT_ARGS       more trainer flags, e.g. "--max_steps 20000 --deepspeed_config
                           zero3_gpu_bf16.json" (a packaged config) [the bf16 ZeRO-2 config]
  HOURGLASS_OUTPUT_ROOT    folder or bucket of the Delta tables [demo-output]
  HOURGLASS_ARCHIVE        packed venv [build/spark-submit/hourglass-venv.tar.gz]
  HOURGLASS_JARS_DIR       Delta jars shipped with --jars [.jars]
  HOURGLASS_SPARK_CONN_ID  Airflow connection of the Spark master [spark_default]
  HOURGLASS_DEPLOY_MODE    "cluster" runs drivers on the cluster from the archive, with a local
                           HOURGLASS_CONFIG shipped by --files (as submit.sh does); "client";
                           or empty: the connection's own deploy-mode [empty]
  HOURGLASS_DRIVER_PYTHON  client deploy mode only: driver interpreter with hourglass installed
  HOURGLASS_DS_HOSTFILE    DeepSpeed hostfile: set for a multi-node fine-tune, else one node
  HOURGLASS_DS_MASTER_ADDR first host of the hostfile (multi-node only)
  HOURGLASS_SCHEDULE       cron expression, or "none" for manual runs [0 3 * * *]
  MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME
                           where the jobs' MLflow runs go; cluster-mode drivers get them as
                           driver environment (deploy/spark-submit/driver-env.list) [a SQLite
                           store under the output root, experiment hourglass]
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

HOME = Path(os.environ.get("HOURGLASS_HOME", Path(__file__).resolve().parents[2]))
CONFIG = os.environ.get("HOURGLASS_CONFIG", str(HOME / "configs" / "demo.yaml"))
STRATEGY = os.environ.get("HOURGLASS_STRATEGY", "topk(16)")
SFT_ARGS = os.environ.get("HOURGLASS_SFT_ARGS", "--deepspeed_config zero2_gpu_bf16.json")
OUTPUT_ROOT = os.environ.get("HOURGLASS_OUTPUT_ROOT", str(HOME / "demo-output"))
ARCHIVE = os.environ.get(
    "HOURGLASS_ARCHIVE", str(HOME / "build" / "spark-submit" / "hourglass-venv.tar.gz")
)
JARS_DIR = Path(os.environ.get("HOURGLASS_JARS_DIR", HOME / ".jars"))
SPARK_CONN_ID = os.environ.get("HOURGLASS_SPARK_CONN_ID", "spark_default")
DRIVER_PYTHON = os.environ.get("HOURGLASS_DRIVER_PYTHON", "")
DEPLOY_MODE = os.environ.get("HOURGLASS_DEPLOY_MODE", "") or None
# In cluster mode the driver runs on another host: a local config travels with the job (--files,
# into the driver's working folder) and is named by its file name, as submit.sh does; a URI
# (hdfs://, s3a://, dbfs:/ ...) is read from where it is.
SHIP_CONFIG = DEPLOY_MODE == "cluster" and "://" not in CONFIG and not CONFIG.startswith("dbfs:")
DS_HOSTFILE = os.environ.get("HOURGLASS_DS_HOSTFILE", "")
DS_MASTER_ADDR = os.environ.get("HOURGLASS_DS_MASTER_ADDR", "")
SCHEDULE = os.environ.get("HOURGLASS_SCHEDULE", "0 3 * * *")

# The fine-tune runs outside Spark; every other task is a spark-submit (see stage_command).
FINE_TUNE = "sft_train"
# The fine-tune trains in a folder named by the DAG run, and evaluate scores that run's model:
# a retried task resumes its own run, the next night trains anew (never resumes last night's).
SCHEDULER_RUN_ID = "{{ run_id }}"
# task -> upstream tasks, a plain literal. Mirrors deploy/resources/pipeline.job.yml and the order
# of deploy/spark-submit/submit_all.sh (tests check that they agree).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "embed_items": ("ingest",),
    "train_codebooks": ("embed_items",),
    "encode_items": ("train_codebooks",),
    "rewrite_sids": ("encode_items",),
    # one task runs every statistics step: of item_sids and of each rewritten table
    "hourglass_stats": ("rewrite_sids",),
    "build_sft_data": ("rewrite_sids",),
    "sft_train": ("build_sft_data",),
    "evaluate": ("sft_train",),
    "report": ("hourglass_stats", "evaluate"),
}


def spark_conf() -> dict[str, str]:
    """The settings every job needs, from the file submit.sh reads too (one place)."""
    conf = {}
    lines = (HOME / "deploy" / "spark-submit" / "spark-defaults.conf").read_text().splitlines()
    for line in lines:
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[0].startswith("#"):
            conf[parts[0]] = parts[1].strip()
    conf["spark.log.level"] = "WARN"
    if DEPLOY_MODE == "cluster":  # the driver runs elsewhere: hand it the MLflow settings
        names = (HOME / "deploy" / "spark-submit" / "driver-env.list").read_text().split("\n")
        for name in (n.strip() for n in names if n.strip() and not n.startswith("#")):
            if os.environ.get(name):
                conf[f"spark.yarn.appMasterEnv.{name}"] = os.environ[name]
                conf[f"spark.kubernetes.driverEnv.{name}"] = os.environ[name]
    if DRIVER_PYTHON:
        conf["spark.pyspark.driver.python"] = DRIVER_PYTHON
    return conf


def stage_command(stage: str) -> tuple[str, list[str]]:
    """(application, arguments) of a Spark task."""
    root = ["--output_root", OUTPUT_ROOT]
    if stage == "build_sft_data":
        return "build_sft_data.py", [*root, "--strategies", STRATEGY]
    if stage == "evaluate":
        return "evaluate.py", [*root, "--run_id", "airflow-{{ ts_nodash }}", "--strategies",
                               STRATEGY, "--scheduler_run_id", SCHEDULER_RUN_ID]
    if stage == "report":
        return "report.py", root
    config = os.path.basename(CONFIG) if SHIP_CONFIG else CONFIG
    return "pipeline.py", ["--config", config, *root, "--only", stage]


def fine_tune_command() -> str:
    """The DeepSpeed launcher for one node, or for the hosts of HOURGLASS_DS_HOSTFILE."""
    args = (f"--output_root {OUTPUT_ROOT} --strategy '{STRATEGY}' "
            f"--scheduler_run_id '{SCHEDULER_RUN_ID}' {SFT_ARGS}")
    if DS_HOSTFILE:  # launcher.log goes to build/deepspeed/<time> on the host, and to Airflow
        return (f"HOSTFILE={DS_HOSTFILE} MASTER_ADDR={DS_MASTER_ADDR} "
                f"{HOME}/deploy/deepspeed/launch_multi_node.sh {args}")
    return f"{HOME}/deploy/deepspeed/launch_single_node.sh {args}"


with DAG(
    dag_id="hourglass_pipeline",
    description="Items to semantic IDs, hourglass diagnostics, rewriting, DeepSpeed SFT, eval.",
    schedule=None if SCHEDULE == "none" else SCHEDULE,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["hourglass"],
) as dag:
    jars = ",".join(sorted(str(p) for p in JARS_DIR.glob("*.jar"))) or None
    tasks = {}
    for name in UPSTREAM:
        if name == FINE_TUNE:
            tasks[name] = BashOperator(
                task_id=name,
                bash_command=fine_tune_command(),
                env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
                append_env=True,
                execution_timeout=timedelta(hours=12),
            )
        else:
            tasks[name] = SparkSubmitOperator(
                task_id=name,
                conn_id=SPARK_CONN_ID,
                application=str(HOME / "jobs" / stage_command(name)[0]),
                application_args=stage_command(name)[1],
                name=f"hourglass-{name}",
                archives=f"{ARCHIVE}#environment",
                jars=jars,
                conf=spark_conf(),
                deploy_mode=DEPLOY_MODE,
                files=str(Path(CONFIG).resolve()) if SHIP_CONFIG and "--config" in
                stage_command(name)[1] else None,
                execution_timeout=timedelta(hours=4),
            )
    for name, upstream in UPSTREAM.items():
        for up in upstream:
            tasks[up] >> tasks[name]
