"""Helpers of the installed-wheel runs: the fresh venv's environment, its console commands, and
the SID steps that both the wheel run and the cluster run execute."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

SID_STATS_RUN = "rq"
STRATEGIES = ["none", "topk(4)", "drop_layer(2)"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wheel_env(tmp: Path) -> dict[str, str]:
    """A user's environment: no PYTHONPATH, no HOURGLASS_JARS_DIR (the jars come from the Maven
    repository), local[2] like the reference runs of the tests."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HOURGLASS_JARS_DIR", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update({"DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "HOURGLASS_DRIVER_MEMORY": "2g",
                "HOURGLASS_SPARK_MASTER": "local[2]", "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_LOCAL_DIRS": str(tmp / "spark-local"),
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())})
    return env


def run_console(venv: Path, cwd: Path, script: str, *args: str) -> tuple[dict, float]:
    """Run one console command of the fresh venv; its JSON summary and wall time."""
    start = time.perf_counter()
    proc = subprocess.run([str(venv / "bin" / script), *args], cwd=cwd, env=wheel_env(cwd),
                          capture_output=True, text=True, timeout=900, check=False)
    took = time.perf_counter() - start
    assert proc.returncode == 0, f"{script}: {proc.stderr[-4000:]}"
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index('{\n  "job"'):])
    print(f"{script}: {took:.1f} s")
    return summary, took


def sid_steps(data, onnx_dir: str) -> list[dict]:
    """ingest → embed_items (ONNX) → train_codebooks → encode_items → hourglass_stats →
    rewrite_sids → build_sft_data on a slice of the sample."""
    L, M = 3, 32
    return [
        {"stage": "ingest", "items_path": str(data.items),
         "interactions_path": str(data.interactions), "ts_column": "position"},
        {"stage": "embed_items", "backend": "onnx", "model_dir": onnx_dir, "fields": ["title"],
         "batch_size": 64, "partitions": 4},
        {"stage": "train_codebooks", "method": "rq_kmeans", "num_layers": L,
         "codebook_size": M, "kmeans_iters": 10, "seed": 42},
        {"stage": "encode_items"},
        {"stage": "hourglass_stats", "run_id": SID_STATS_RUN, "input_table": "item_sids"},
        {"stage": "rewrite_sids", "strategies": STRATEGIES, "num_layers": L, "codebook_size": M},
        {"stage": "build_sft_data", "strategies": STRATEGIES, "history_max_items": 10},
    ]
