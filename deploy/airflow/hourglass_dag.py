"""Airflow DAG `hourglass_pipeline`: each Spark stage a SparkSubmitOperator, the DeepSpeed
fine-tune a separate task on the GPU host(s), in its own pool (and queue).

Why this shape: stages talk only through Delta tables, so each is its own retryable task. The SID
stages run `jobs/pipeline.py --only <stage>` on the one pipeline config (as `make demo` and the
Databricks pipeline job do); the fine-tune path trains the strategy chosen for production: its
SFT data and evaluation are Spark jobs, the fine-tune is not (DeepSpeed's launcher starts one
process per GPU, over ssh for several nodes), so it runs the wheel's `hourglass-sft-launch`,
which needs the wheel on the GPU host(s), not a checkout.

Run settings are DAG params, rendered when a task runs (the trigger form, or
`airflow dags trigger hourglass_pipeline --conf '{"strategy": "drop_layer(2)"}'`):

  config       pipeline config: output_root + ordered steps [configs/demo.yaml]
  output_root  folder or bucket of the Delta tables [demo-output/tables]
  strategy     SID strategy fine-tuned and evaluated [topk(16)]
  sft_args     more trainer flags, e.g. "--max_steps 20000 --deepspeed_config
               zero3_gpu_bf16.json" (a packaged config) [the bf16 ZeRO-2 config]
  overrides    pipeline step keys for this run, "stage.key=value,...", e.g.
               "ingest.items_path=s3a://drops/2026-12-07/items.jsonl" [none]

One idempotence key, the DAG run's id (`{{ run_id }}`, one per logical date): the fine-tune trains
in the folder it names and evaluate scores that model into `eval_results` rows of run
`airflow-<run id>`, so a retried task resumes or replaces its own run's work and the next date's
run leaves this one's results intact; the stage tables are replaced by each run (every stage
replaces what it writes). Every task retries with backoff; a failed try calls
`notify_failure` (the task log, and mail when HOURGLASS_ALERT_EMAIL is set).

Installation settings are environment variables of the scheduler and workers, read when the file
is parsed: they say where the code, the cluster and the GPUs are (defaults in brackets):

  HOURGLASS_HOME            repository checkout: jobs/ and the Spark defaults [two folders up]
  HOURGLASS_CONFIG, HOURGLASS_OUTPUT_ROOT, HOURGLASS_STRATEGY, HOURGLASS_SFT_ARGS
                            defaults of the params above
  HOURGLASS_ARCHIVE         packed venv shipped to the executors
                            [build/spark-submit/hourglass-venv.tar.gz]
  HOURGLASS_EXECUTOR_PYTHON instead of the archive: the executors' interpreter, with hourglass
                            installed at that path on every worker [empty: the archive]
  HOURGLASS_JARS_DIR        Delta jars shipped with --jars [.jars]
  HOURGLASS_SPARK_CONF      more Spark settings of every job, "key=value" pairs separated by
                            spaces, e.g. "spark.executor.memory=8g spark.sql.shuffle.partitions=400"
  HOURGLASS_SPARK_CONN_ID   Airflow connection of the Spark master [spark_default]
  HOURGLASS_DEPLOY_MODE     "cluster" runs drivers on the cluster from the archive, with a local
                            config shipped by --files (as submit.sh does); "client"; or empty:
                            the connection's own deploy-mode [empty]
  HOURGLASS_DRIVER_PYTHON   client deploy mode only: driver interpreter with hourglass installed
  HOURGLASS_SFT_LAUNCH      the fine-tune launcher command on the GPU host [hourglass-sft-launch]
  HOURGLASS_DS_HOSTFILE     DeepSpeed hostfile: set for a multi-node fine-tune, else one node
  HOURGLASS_DS_MASTER_ADDR  first host of the hostfile (multi-node only)
  HOURGLASS_GPU_POOL        Airflow pool of the fine-tune (create it: `airflow pools set
                            hourglass_gpu 1 "GPU fine-tunes"`) [hourglass_gpu]
  HOURGLASS_GPU_QUEUE       executor queue of the GPU workers (Celery/Kubernetes) [the default]
  HOURGLASS_ALERT_EMAIL     who is mailed on a failed try (SMTP connection smtp_default) [none]
  HOURGLASS_SCHEDULE        cron expression, or "none" for manual runs [0 3 * * *]
  MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME
                            where the jobs' MLflow runs go; cluster-mode drivers get them as
                            driver environment (deploy/spark-submit/driver-env.list) [a SQLite
                            store under the output root, experiment hourglass]
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.operators.bash import BashOperator

log = logging.getLogger(__name__)

HOME = Path(os.environ.get("HOURGLASS_HOME", Path(__file__).resolve().parents[2]))
ARCHIVE = os.environ.get(
    "HOURGLASS_ARCHIVE", str(HOME / "build" / "spark-submit" / "hourglass-venv.tar.gz")
)
EXECUTOR_PYTHON = os.environ.get("HOURGLASS_EXECUTOR_PYTHON", "")
JARS_DIR = Path(os.environ.get("HOURGLASS_JARS_DIR", HOME / ".jars"))
SPARK_CONN_ID = os.environ.get("HOURGLASS_SPARK_CONN_ID", "spark_default")
EXTRA_CONF = os.environ.get("HOURGLASS_SPARK_CONF", "")
DRIVER_PYTHON = os.environ.get("HOURGLASS_DRIVER_PYTHON", "")
DEPLOY_MODE = os.environ.get("HOURGLASS_DEPLOY_MODE", "") or None
SFT_LAUNCH = os.environ.get("HOURGLASS_SFT_LAUNCH", "hourglass-sft-launch")
DS_HOSTFILE = os.environ.get("HOURGLASS_DS_HOSTFILE", "")
DS_MASTER_ADDR = os.environ.get("HOURGLASS_DS_MASTER_ADDR", "")
GPU_POOL = os.environ.get("HOURGLASS_GPU_POOL", "hourglass_gpu")
GPU_QUEUE = os.environ.get("HOURGLASS_GPU_QUEUE", "")
ALERT_EMAIL = os.environ.get("HOURGLASS_ALERT_EMAIL", "")
SCHEDULE = os.environ.get("HOURGLASS_SCHEDULE", "0 3 * * *")

PARAMS = {
    "config": Param(os.environ.get("HOURGLASS_CONFIG", str(HOME / "configs" / "demo.yaml")),
                    type="string", description="pipeline config: output_root + ordered steps"),
    "output_root": Param(os.environ.get("HOURGLASS_OUTPUT_ROOT",
                                        str(HOME / "demo-output" / "tables")),
                         type="string", description="folder or bucket of the Delta tables"),
    "strategy": Param(os.environ.get("HOURGLASS_STRATEGY", "topk(16)"), type="string",
                      description="SID strategy fine-tuned and evaluated"),
    "sft_args": Param(os.environ.get("HOURGLASS_SFT_ARGS",
                                     "--deepspeed_config zero2_gpu_bf16.json"),
                      type="string", description="more hourglass-sft-train flags"),
    "overrides": Param("", type="string",
                       description="pipeline step keys for this run: stage.key=value,..."),
}

# The fine-tune runs outside Spark; every other task is a spark-submit (see stage_command).
FINE_TUNE = "sft_train"
# The one idempotence key of a run, for every task that keys what it writes by run.
RUN_KEY = "{{ run_id }}"
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


def shipped(config: str) -> bool:
    """In cluster mode the driver runs on another host: a local config travels with the job
    (--files, into the driver's working folder) and is named by its file name, as submit.sh
    does; a URI (hdfs://, s3a://, dbfs:/ ...) is read from where it is."""
    return DEPLOY_MODE == "cluster" and "://" not in config and not config.startswith("dbfs:")


def config_arg(config: str) -> str:
    """The `--config` value a pipeline task's driver reads (a template macro)."""
    return os.path.basename(config) if shipped(config) else config


def config_files(config: str) -> str:
    """What `--files` ships for a pipeline task: the local config in cluster mode, else ""."""
    return str(Path(config).resolve()) if shipped(config) else ""


def spark_conf() -> dict[str, str]:
    """The settings every job needs, from the file submit.sh reads too (one place)."""
    conf = {}
    lines = (HOME / "deploy" / "spark-submit" / "spark-defaults.conf").read_text().splitlines()
    for line in lines:
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[0].startswith("#"):
            conf[parts[0]] = parts[1].strip()
    conf["spark.log.level"] = "WARN"
    for pair in EXTRA_CONF.split():
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("spark."):
            raise ValueError(f"HOURGLASS_SPARK_CONF: {pair!r} is not spark.<key>=<value>")
        conf[key] = value
    if EXECUTOR_PYTHON:  # installed on every worker: no archive to unpack
        conf["spark.pyspark.python"] = EXECUTOR_PYTHON
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
    """(application, arguments) of a Spark task; the arguments are templates of the params."""
    root = ["--output_root", "{{ params.output_root }}"]
    if stage == "build_sft_data":
        return "build_sft_data.py", [*root, "--strategies", "{{ params.strategy }}"]
    if stage == "evaluate":
        return "evaluate.py", [*root, "--run_id", f"airflow-{RUN_KEY}", "--strategies",
                               "{{ params.strategy }}", "--scheduler_run_id", RUN_KEY]
    if stage == "report":
        return "report.py", root
    return "pipeline.py", ["--config", "{{ config_arg(params.config) }}", *root, "--only", stage,
                           "--overrides", "{{ params.overrides }}"]


def fine_tune_command() -> tuple[str, dict[str, str]]:
    """The wheel's DeepSpeed launcher (one node, or the hosts of HOURGLASS_DS_HOSTFILE) and its
    environment; the params reach it as variables, so no value is parsed by the shell."""
    env = {"HG_OUTPUT_ROOT": "{{ params.output_root }}", "HG_STRATEGY": "{{ params.strategy }}",
           "HG_RUN_KEY": RUN_KEY, "HG_SFT_ARGS": "{{ params.sft_args }}",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    if DS_HOSTFILE:  # launcher.log goes to ./build/deepspeed/<time> on the host, and to Airflow
        env |= {"HOSTFILE": DS_HOSTFILE, "MASTER_ADDR": DS_MASTER_ADDR}
    cmd = (f'{SFT_LAUNCH} --output_root "$HG_OUTPUT_ROOT" --strategy "$HG_STRATEGY" '
           '--scheduler_run_id "$HG_RUN_KEY" $HG_SFT_ARGS')
    return cmd, env


def notify_failure(context: dict[str, Any]) -> None:
    """A failed try: one line naming the task, the run, the try and the error, in the task's
    log (and the scheduler's), where an on-call person starts."""
    ti = context.get("task_instance") or context.get("ti")
    log.error("hourglass_pipeline: task %s of run %s failed on try %s: %s (log: %s)",
              getattr(ti, "task_id", "?"), context.get("run_id"),
              getattr(ti, "try_number", "?"), context.get("exception"),
              getattr(ti, "log_url", ""))


def failure_callbacks() -> list[Any]:
    callbacks: list[Any] = [notify_failure]
    if ALERT_EMAIL:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        callbacks.append(SmtpNotifier(
            to=ALERT_EMAIL, subject="hourglass_pipeline: {{ ti.task_id }} failed ({{ run_id }})"))
    return callbacks


with DAG(
    dag_id="hourglass_pipeline",
    description="Items to semantic IDs, hourglass diagnostics, rewriting, DeepSpeed SFT, eval.",
    schedule=None if SCHEDULE == "none" else SCHEDULE,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    params=PARAMS,
    user_defined_macros={"config_arg": config_arg, "config_files": config_files},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5),
                  "retry_exponential_backoff": True, "max_retry_delay": timedelta(minutes=30),
                  "on_failure_callback": failure_callbacks()},
    tags=["hourglass"],
) as dag:
    jars = ",".join(sorted(str(p) for p in JARS_DIR.glob("*.jar"))) or None
    tasks = {}
    for name in UPSTREAM:
        if name == FINE_TUNE:
            command, env = fine_tune_command()
            gpu = {"queue": GPU_QUEUE} if GPU_QUEUE else {}
            tasks[name] = BashOperator(
                task_id=name,
                bash_command=command,
                env=env,
                append_env=True,
                retries=1,  # a retry resumes the run's last checkpoint
                pool=GPU_POOL,
                execution_timeout=timedelta(hours=12),
                **gpu,
            )
        else:
            app, args = stage_command(name)
            tasks[name] = SparkSubmitOperator(
                task_id=name,
                conn_id=SPARK_CONN_ID,
                application=str(HOME / "jobs" / app),
                application_args=args,
                name=f"hourglass-{name}",
                archives=None if EXECUTOR_PYTHON else f"{ARCHIVE}#environment",
                jars=jars,
                conf=spark_conf(),
                deploy_mode=DEPLOY_MODE,
                files="{{ config_files(params.config) }}" if app == "pipeline.py" else None,
                execution_timeout=timedelta(hours=4),
            )
    for name, upstream in UPSTREAM.items():
        for up in upstream:
            tasks[up] >> tasks[name]
