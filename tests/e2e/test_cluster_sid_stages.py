"""The SID stages on a real standalone cluster, submitted with deploy/spark-submit/submit.sh, give
the same tables as a `local[2]` run with the same codebook.

One submission runs ingest → embed_items → train_codebooks → encode_items → hourglass_stats →
rewrite_sids → build_sft_data (`jobs/pipeline.py`, as the Databricks job and the Airflow DAG
run them) on a slice of the bundled Amazon Office sample. The executors are the workers' JVMs
and run Python from the packed archive: the test watches their Python processes and checks the
interpreter, the working folder and every site-packages library they mapped. Tables are read
back with `deltalake`, not Spark, and compared with those of the same stages run in-process on
`local[2]`, encoding with the codebook the cluster trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cluster_util import PythonWorkerWatch, assert_frames_equal, read_delta, submit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
L, M = 3, 32
STRATEGIES = ["none", "topk(4)", "drop_layer(2)"]
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
    "item_segments": ["run_id", "layer", "item_id"],
    "item_sids_rw": ["strategy", "item_id"],
    "rewrite_summary": ["strategy", "metric"],
    "sft_examples": ["strategy", "user_id", "split", "target_item_id", "history"],
}


def _steps(data, onnx_dir: str, codebooks: Path | None = None) -> list[dict]:
    """The SID stages; with `codebooks`, those of another run (not trained here)."""
    encode = {"stage": "encode_items", **({"codebook_path": str(codebooks)} if codebooks
                                          else {})}
    stats = {"stage": "hourglass_stats", "run_id": "rq", "input_table": "item_sids",
             **({"codebooks_root": str(codebooks.parent)} if codebooks else {})}
    steps = [
        {"stage": "ingest", "items_path": str(data.items),
         "interactions_path": str(data.interactions), "ts_column": "position"},
        {"stage": "embed_items", "backend": "onnx", "model_dir": onnx_dir, "fields": ["title"],
         "batch_size": 64, "partitions": 4},
        {"stage": "train_codebooks", "method": "rq_kmeans", "num_layers": L,
         "codebook_size": M, "kmeans_iters": 10, "seed": 42},
        encode,
        stats,
        {"stage": "rewrite_sids", "strategies": STRATEGIES, "num_layers": L,
         "codebook_size": M},
        {"stage": "build_sft_data", "strategies": STRATEGIES, "history_max_items": 10},
    ]
    return [s for s in steps if codebooks is None or s["stage"] != "train_codebooks"]


def test_sid_stages_on_the_cluster_equal_local(standalone_cluster, spark, onnx_model,
                                               office_slice, tmp_path):
    from hourglass.stages.pipeline import PipelineConfig, run

    cluster_root, local_root = tmp_path / "cluster" / "tables", tmp_path / "local" / "tables"
    config = tmp_path / "sid-stages.yaml"
    config.write_text(yaml.safe_dump({"output_root": str(cluster_root),
                                      "steps": _steps(office_slice, onnx_model)}))
    with PythonWorkerWatch(standalone_cluster) as watch:
        job = submit("pipeline", ["--config", str(config)], standalone_cluster.submit_env(),
                     tmp_path)
        summary = job.finish()
    cluster_secs = {s["stage"]: s["seconds"] for s in summary["result"]}
    assert list(cluster_secs) == [s["stage"] for s in _steps(office_slice, onnx_model)]

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

    # The same stages on local[2], encoding with the codebook the cluster trained.
    (artifact,) = (p for p in (cluster_root / "codebooks").iterdir() if p.is_dir())
    cfg = PipelineConfig.from_dict({"output_root": str(local_root),
                                    "steps": _steps(office_slice, onnx_model, artifact)})
    local_secs = {r.stage: r.seconds for r in run(spark, cfg)}
    print(json.dumps({"cluster_seconds": cluster_secs, "local2_seconds": local_secs}))

    for table, keys in TABLES.items():
        got, want = read_delta(cluster_root / table), read_delta(local_root / table)
        assert len(want) > 0 or table == "quarantine", table
        assert_frames_equal(got, want, keys, table, atol=1e-5 if table in (
            "item_embeddings", "item_sids", "sid_summary") else 0.0)
