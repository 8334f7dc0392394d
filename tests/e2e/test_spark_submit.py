"""One job submitted the way a cluster runs it: deploy/spark-submit/submit.sh on local[2].

The script packs the slim venv (wheel, no editable install, no pyspark) with venv-pack, caches it
under build/spark-submit/ (git-ignored; rebuilt only when libs/ or requirements/ change) and
submits `jobs/synthesize.py` with `--archives` and the Delta jars. synthesize runs Python on the
executors (mapInArrow), so the job succeeds only if the archive's interpreter and packages work
there; its table must equal the generator run here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "spark-submit"
PARAMS = {"num_items": 3000, "dim": 8, "num_clusters": 12, "zipf_exponent": 1.2, "spread": 0.3,
          "block_size": 1000, "seed": 7}


def test_synthesize_submitted_with_the_packed_venv(tmp_path):
    out = tmp_path / "tables"
    args = ["--output_root", str(out), "--partitions", "2"]
    for key, value in PARAMS.items():
        args += [f"--{key}", str(value)]
    env = {**os.environ, "SPARK_MASTER": "local[2]",
           "SPARK_SUBMIT_ARGS": "--conf spark.ui.enabled=false --driver-memory 1g"}
    proc = subprocess.run([str(ROOT / "deploy" / "spark-submit" / "submit.sh"), "synthesize",
                           *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    assert summary["job"] == "hourglass-synthesize"
    assert summary["result"]["rows"] == PARAMS["num_items"]

    # What was shipped: the archive, and the driver's copy unpacked from it.
    assert (BUILD / "hourglass-venv.tar.gz").stat().st_size > 10_000_000
    (site,) = (BUILD / "driver-env" / "lib").glob("python3*/site-packages")
    assert (site / "hourglass" / "__init__.py").is_file()
    assert not (site / "pyspark").exists()  # the cluster's Spark provides it
    assert not list(site.glob("__editable__*")) and not list(site.glob("*.egg-link"))

    # What was written: one commit with lineage, rows equal to the generator run here.
    from deltalake import DeltaTable

    from hourglass.quant.synthetic import synthetic_block

    table = DeltaTable(str(out / "item_embeddings"))
    assert table.version() == 0
    meta = json.loads(table.history()[0]["userMetadata"])
    assert meta["job"] == "synthesize"
    got = table.to_pandas().set_index("item_id")
    assert len(got) == PARAMS["num_items"]
    p = PARAMS
    for block in range(p["num_items"] // p["block_size"]):
        ids, X = synthetic_block(block, p["block_size"], p["num_items"], p["dim"],
                                 p["num_clusters"], p["zipf_exponent"], p["spread"], p["seed"])
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        rows = np.stack(got.loc[[f"syn_{i}" for i in ids], "embedding"].to_numpy())
        np.testing.assert_allclose(rows, X.astype(np.float32), rtol=1e-6, atol=1e-7)
