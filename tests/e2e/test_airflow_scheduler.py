"""The Airflow DAG run by Airflow itself (`dag.test()`: a DagRun in a real metadata database)
against a Spark standalone master and workers: every SparkSubmitOperator task submits for real,
the fine-tune runs through the wheel's launcher in its pool, the run settings come from the run's
conf. A second run for the next logical date — the DAG's ingest → SFT data → fine-tune →
evaluate tasks, as an operator re-runs that part — replaces the tables it writes and adds its
own model and evaluation, leaving the first run's intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from cluster_util import read_delta
from deltalake import DeltaTable

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("airflow_dag_run.py")
USERS, L, M = 40, 2, 8
FIRST = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
SFT_ARGS = ("--max_steps 4 --hidden_size 32 --num_heads 2 --intermediate_size 64 "
            "--max_seq_len 48 --max_valid_examples 20 --device cpu --progress false "
            "--deepspeed_config zero2_cpu_fp32.json")


@pytest.fixture(scope="module")
def scheduler(standalone_cluster, onnx_model, tmp_path_factory):
    """An Airflow home with a migrated metadata database, the GPU pool, a connection to the
    standalone master, the pipeline config of a small slice of the sample, and the environment
    the scheduler's workers would have."""
    tmp = tmp_path_factory.mktemp("airflow")
    sample = ROOT / "data" / "amazon-office"
    inter = pd.read_csv(sample / "interactions.csv", dtype=str)
    inter = inter[inter["user_id"].isin(inter["user_id"].drop_duplicates().head(USERS))]
    items = pd.read_json(sample / "items.jsonl", lines=True, dtype=False)
    items = items[items["item_id"].isin(set(inter["item_id"]))]
    inter.to_csv(tmp / "interactions.csv", index=False)
    items.to_json(tmp / "items.jsonl", orient="records", lines=True)
    steps = [
        {"stage": "ingest", "items_path": str(tmp / "items.jsonl"),
         "interactions_path": str(tmp / "interactions.csv"), "ts_column": "position"},
        {"stage": "embed_items", "backend": "onnx", "model_dir": onnx_model,
         "fields": ["title"], "batch_size": 64, "partitions": 2},
        {"stage": "train_codebooks", "num_layers": L, "codebook_size": M, "kmeans_iters": 5,
         "seed": 42},
        {"stage": "encode_items"},
        {"stage": "hourglass_stats", "run_id": "rq", "input_table": "item_sids"},
        {"stage": "rewrite_sids", "strategies": ["none"], "num_layers": L, "codebook_size": M},
    ]
    config = tmp / "pipeline.json"
    config.write_text(json.dumps({"output_root": str(tmp / "unused"), "steps": steps}))
    spark_home = standalone_cluster.spark_home
    host, port = standalone_cluster.master_url.removeprefix("spark://").split(":")
    env = {
        **standalone_cluster.base_env,
        "AIRFLOW_HOME": str(tmp / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "deploy" / "airflow"),
        "AIRFLOW_CONN_SPARK_STANDALONE": json.dumps(
            {"conn_type": "spark", "host": f"spark://{host}", "port": int(port),
             "extra": {"deploy-mode": "client"}}),
        "PATH": f"{spark_home}/bin:{os.environ['PATH']}", "SPARK_HOME": spark_home,
        "SPARK_LOCAL_HOSTNAME": "127.0.0.1",
        # the installation: this checkout, executors with hourglass installed (no archive to
        # unpack), the wheel's launcher on one CPU rank
        "HOURGLASS_SPARK_CONN_ID": "spark_standalone", "HOURGLASS_DEPLOY_MODE": "client",
        "HOURGLASS_EXECUTOR_PYTHON": sys.executable, "HOURGLASS_DRIVER_PYTHON": sys.executable,
        "HOURGLASS_SFT_LAUNCH": f"{sys.executable} -m hourglass.train.launchers",
        "HOURGLASS_SPARK_CONF": " ".join([
            "spark.driver.host=127.0.0.1", "spark.driver.bindAddress=127.0.0.1",
            "spark.ui.enabled=false", "spark.executor.memory=1g", "spark.cores.max=1",
            "spark.sql.shuffle.partitions=2", "spark.databricks.delta.snapshotPartitions=2"]),
        "HOURGLASS_SCHEDULE": "none", "CPU_RANKS": "1", "DS_ACCELERATOR": "cpu",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    for cmd in (["db", "migrate"], ["pools", "set", "hourglass_gpu", "1", "GPU fine-tunes"]):
        subprocess.run([airflow, *cmd], env=env, cwd=tmp, check=True, capture_output=True,
                       timeout=600)
    return {"env": env, "tmp": tmp, "config": str(config), "root": str(tmp / "tables"),
            "n_items": len(items), "n_inter": len(inter)}


SECOND_RUN_TASKS = ("ingest", "build_sft_data", "sft_train", "evaluate")


def run_dag(scheduler, logical_date: datetime, tasks: tuple[str, ...] = ()) -> dict:
    conf = {"config": scheduler["config"], "output_root": scheduler["root"], "strategy": "none",
            "sft_args": SFT_ARGS}
    log = scheduler["tmp"] / f"dag-{logical_date:%Y%m%d}.log"
    with open(log, "w") as out:
        # its own process group: whatever the run started (spark-submit, the DeepSpeed ranks)
        # is stopped with it if the test ends first
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), str(ROOT / "deploy" / "airflow"),
             logical_date.isoformat(), json.dumps(conf), *([",".join(tasks)] if tasks else [])],
            env=scheduler["env"], cwd=scheduler["tmp"], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            proc.wait(timeout=1500)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text(errors="replace")
    last = text.strip().splitlines()[-1] if text.strip() else ""
    assert proc.returncode == 0 and last.startswith("{"), text[-6000:]
    result = json.loads(last)
    assert result["state"] == "success" and set(result["tasks"].values()) == {"success"}, (
        result, text[-6000:])
    return result


def test_two_scheduled_runs_of_the_dag_on_the_standalone_cluster(scheduler):
    root = Path(scheduler["root"])
    first = run_dag(scheduler, FIRST)
    tables_first = {t: read_delta(root / t) for t in ("items", "item_sids", "eval_results")}
    versions_first = {t: DeltaTable(str(root / t)).version() for t in ("items", "item_sids")}
    second = run_dag(scheduler, FIRST + timedelta(days=1), SECOND_RUN_TASKS)
    assert first["run_id"] != second["run_id"] and len(first["tasks"]) == 10
    assert set(second["tasks"]) == set(SECOND_RUN_TASKS)

    # the tables the second run wrote are replaced, never appended to
    items, sids = read_delta(root / "items"), read_delta(root / "item_sids")
    assert len(items) == len(tables_first["items"]) == scheduler["n_items"]
    assert DeltaTable(str(root / "items")).version() > versions_first["items"]  # ingest re-ran
    assert DeltaTable(str(root / "item_sids")).version() == versions_first["item_sids"]
    assert len(read_delta(root / "interactions")) == scheduler["n_inter"]
    assert len(sids) == scheduler["n_items"] and sids["item_id"].is_unique
    assert set(map(len, sids["codes"])) == {L}
    rw = read_delta(root / "item_sids_rw")
    assert set(rw["strategy"]) == {"none"} and len(rw) == scheduler["n_items"]
    assert not read_delta(root / "sft_examples").duplicated(
        ["user_id", "split", "target_item_id", "strategy"]).any()

    # each run trained its own model and evaluated it under its own run id
    ev = read_delta(root / "eval_results")
    first_rows = tables_first["eval_results"]
    assert set(first_rows["run_id"]) == {f"airflow-{first['run_id']}"}
    assert set(ev["run_id"]) == {f"airflow-{r['run_id']}" for r in (first, second)}
    kept = ev[ev["run_id"] == f"airflow-{first['run_id']}"]
    cols = ["run_id", "strategy", "subset", "metric", "k", "value"]
    pd.testing.assert_frame_equal(
        kept[cols].sort_values(cols[:5]).reset_index(drop=True),
        first_rows[cols].sort_values(cols[:5]).reset_index(drop=True))
    users = ev[(ev["metric"] == "users") & (ev["subset"] == "all") & (ev["strategy"] == "none")]
    assert len(users) == 2 and (users["value"] > 0).all()
    models = sorted((root / "sft_runs" / "none").glob("*/final/model.safetensors"))
    assert len(models) == 2
    records = [json.loads((m.parent.parent / "run.json").read_text()) for m in models]
    assert sorted(r["scheduler_run_id"] for r in records) == sorted(
        [first["run_id"], second["run_id"]])
    assert (root.parent / "unused").exists() is False  # the run's output_root won, not the file's
