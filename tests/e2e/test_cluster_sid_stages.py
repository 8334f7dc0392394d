"""The SID stages on a real standalone cluster, submitted with deploy/spark-submit/submit.sh, give
the same tables as a `local[2]` run with the same codebook.

One submission runs ingest → embed_items → train_codebooks → encode_items → hourglass_stats →
rewrite_sids → build_sft_data (`jobs/pipeline.py`, as the Databricks job and the Airflow DAG
run them) on a slice of the bundled Amazon Office sample. The executors are the workers' JVMs
and run Python from the packed archive: the test watches their Python processes and checks the
interpreter, the working folder and every site-packages library they mapped. Tables are read
back with `deltalake`, not Spark, and compared with those of the same stages run on `local[2]`
by the installed wheel (`wheel_sid_run`): both train the same codebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cluster_util import PythonWorkerWatch, assert_frames_equal, read_delta, submit
from wheel_util import SID_STATS_RUN, sid_steps

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "spark-submit"
# table → the columns that identify a row
TABLES = {
    "items": ["item_id"],
    "interactions": ["user_id", "ts", "item_id"],
    "quarantine": ["stage", "item_id", "reason"],
    "item_embeddings": ["item_id"],
    "item_sids": ["item_id"],
    "sid_layer_stats": ["run_id", "layer", "token"],
    "sid_summary": ["run_id", "layer"],
    "sid_flow": ["run_id", "src_layer", "src_token", "dst_layer", "dst_token"],
    "item_sids_rw": ["strategy", "item_id"],
    "rewrite_summary": ["strategy", "metric"],
    "sft_examples": ["strategy", "user_id", "split", "target_item_id", "history"],
}


def test_sid_stages_on_the_cluster_equal_local(standalone_cluster, onnx_model, office_slice,
                                               wheel_sid_run, tmp_path):
    cluster_root = tmp_path / "cluster" / "tables"
    steps = sid_steps(office_slice, onnx_model)
    config = tmp_path / "sid-stages.yaml"
    config.write_text(yaml.safe_dump({"output_root": str(cluster_root), "steps": steps}))
    with PythonWorkerWatch(standalone_cluster) as watch:
        job = submit("pipeline", ["--config", str(config)], standalone_cluster.submit_env(),
                     tmp_path)
        summary = job.finish()
    cluster_secs = {s["stage"]: s["seconds"] for s in summary["result"]}
    assert list(cluster_secs) == [s["stage"] for s in steps]

    # The executors ran the archive's interpreter and libraries, nothing of this checkout or venv.
    assert watch.seen, "no Python worker was seen on the executors"
    workers_root = str(standalone_cluster.root)
    spark_home = standalone_cluster.spark_home
    for info in watch.seen.values():
        assert info["cmdline"][0] == "./environment/bin/python", info["cmdline"]
        assert info["cwd"].startswith(workers_root), info["cwd"]
        # PYTHONPATH holds only what the cluster's Spark installation adds (pyspark.zip, py4j).
        assert all(p.startswith(spark_home) for p in info["pythonpath"].split(":")), info
        env_root = f"{info['cwd']}/environment/"
        foreign = [p for p in info["libs"] if not p.startswith(env_root)]
        assert not foreign, f"libraries from outside the archive: {sorted(foreign)[:5]}"
    assert any("onnxruntime" in p for i in watch.seen.values() for p in i["libs"])
    # What was shipped: the wheel (no editable install), without pyspark (the cluster's own).
    (site,) = (BUILD / "driver-env" / "lib").glob("python3*/site-packages")
    assert (site / "hourglass" / "__init__.py").is_file()
    assert not (site / "pyspark").exists()
    assert not list(site.glob("__editable__*")) and not list(site.glob("*.egg-link"))
    _check_tracked_by_the_archive_driver(cluster_root)

    # The reference: the same steps run by the installed wheel on local[2]. Embeddings are
    # bitwise equal (ONNX Runtime, one thread per task, the same batches), the codebook sample
    # is chosen by hash, so both trained the same codebook; every table must match.
    local_secs = {s["stage"]: s["seconds"] for s in wheel_sid_run.summary["result"]}
    print(json.dumps({"cluster_seconds": cluster_secs, "local2_seconds": local_secs}))
    (cluster_cb,) = [p.name for p in (cluster_root / "codebooks").iterdir() if p.is_dir()]
    (local_cb,) = [p.name for p in (wheel_sid_run.root / "codebooks").iterdir() if p.is_dir()]
    assert cluster_cb == local_cb, "the cluster and local[2] runs trained different codebooks"
    for table, keys in TABLES.items():
        got, want = read_delta(cluster_root / table), read_delta(wheel_sid_run.root / table)
        if "input_table" in want:  # the SID table each stats run measured, under its own root
            got["input_table"] = got["input_table"].str.replace(str(cluster_root), "<root>")
            want["input_table"] = want["input_table"].str.replace(str(wheel_sid_run.root),
                                                                  "<root>")
        assert len(want) > 0 or table == "quarantine", table
        assert_frames_equal(got, want, keys, table, atol=1e-5 if table in (
            "item_embeddings", "item_sids", "sid_summary") else 0.0)


def _check_tracked_by_the_archive_driver(root: Path) -> None:
    """The driver ran from the archive (mlflow-skinny and the SQLite store's backend in it) and
    logged the statistics run to the local store under the output root: each summary column a
    metric over the layers equal to the `sid_summary` table the same job wrote."""
    from mlflow.tracking import MlflowClient

    from hourglass.tracking import tracking_uri

    client = MlflowClient(tracking_uri(str(root)))
    exp = client.get_experiment_by_name("hourglass")
    assert exp is not None, "the cluster driver logged no MLflow run"
    (run,) = client.search_runs([exp.experiment_id],
                                f"tags.`hourglass.stats_run_id` = '{SID_STATS_RUN}'")
    assert run.info.status == "FINISHED"
    summary = read_delta(root / "sid_summary")
    summary = summary[summary["run_id"] == SID_STATS_RUN].set_index("layer")
    history = client.get_metric_history(run.info.run_id, "distinct_prefixes")
    assert {m.step: m.value for m in history} == {
        int(layer): float(v) for layer, v in summary["distinct_prefixes"].items()}
