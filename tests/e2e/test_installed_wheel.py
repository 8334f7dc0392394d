"""The installed wheel is the product: built by deploy/spark-submit/build_wheel.sh, installed
into a fresh virtualenv outside the repository, and run from a folder outside the repository
through its console commands — the SID stages on a slice of the bundled sample, `sft_train` with
its default (packaged) DeepSpeed config, `evaluate` and `report`.

Honest and quick: the fresh venv gets only the wheel (`pip install --no-deps`); third-party
packages (GBs of torch/CUDA) come from the dev venv's site-packages through a plain path line in
a `.pth` file. A path line does not process that folder's own `.pth` files, so the dev venv's
editable install (`__editable__.hourglass-*.pth` → libs/) stays off: the test asserts that
`hourglass` imports from the fresh venv, that no path of the checkout is on `sys.path`, and that
every dependency the wheel declares (base; the spark, embed and train extras) is installed in a
version its range admits. Nothing is passed through PYTHONPATH, and HOURGLASS_JARS_DIR is unset,
so Spark finds the Delta jars at the documented default (the Maven local repository).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]

CHECK_INSTALL = r"""
import json, sys
from importlib.metadata import distribution, requires, version
from packaging.requirements import Requirement
import hourglass, hourglass.cli
from hourglass.resources import deepspeed_config_file
from hourglass.train.config import TrainConfig

unmet = []
for line in requires("hourglass"):
    req = Requirement(line)
    if req.marker and not any(req.marker.evaluate({"extra": e})
                              for e in ("spark", "embed", "train")):
        continue
    if req.name == "hourglass":  # an extra naming another (train includes embed)
        continue
    have = version(req.name)
    if not req.specifier.contains(have, prereleases=True):
        unmet.append(f"{req} (installed {have})")
cfg = TrainConfig.from_dict({"output_root": "/nowhere"})
print(json.dumps({
    "hourglass": hourglass.__file__, "cli": hourglass.cli.__file__,
    "dist": str(distribution("hourglass").locate_file("")),
    "sys_path": sys.path, "unmet": unmet,
    "ds_default": cfg.ds_config_path(),
    "ds_file": str(deepspeed_config_file("zero2_cpu_fp32.json")),
}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv holding only the wheel (+ a path line to the dev venv's packages)."""
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([str(ROOT / "deploy" / "spark-submit" / "build_wheel.sh")],
                           env={**os.environ, "HOURGLASS_BUILD_DIR": str(tmp / "build")},
                           capture_output=True, text=True, timeout=600, check=True)
    wheel = Path(build.stdout.strip().splitlines()[-1])
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    (site / "dev_site_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet",
                    "--disable-pip-version-check", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=600)
    return venv


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "HOURGLASS_JARS_DIR", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update({"DS_ACCELERATOR": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "HOURGLASS_DRIVER_MEMORY": "2g",
                "SPARK_LOCAL_DIRS": str(tmp / "spark-local"),
                "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())})
    return env


def test_wheel_installs_alone_with_its_package_data(venv, tmp_path):
    out = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK_INSTALL], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    site = Path(info["dist"]).resolve()
    assert site.is_relative_to(venv.resolve())
    assert Path(info["hourglass"]).resolve().is_relative_to(site)
    assert not [p for p in info["sys_path"] if p and Path(p).resolve().is_relative_to(ROOT)
                and not Path(p).resolve().is_relative_to(ROOT / ".venv")], info["sys_path"]
    assert info["unmet"] == []
    assert info["ds_default"] == info["ds_file"]
    assert Path(info["ds_file"]).resolve().is_relative_to(site)
    for script in ("hourglass-ingest", "hourglass-sft-train", "hourglass-report"):
        assert (venv / "bin" / script).is_file()


def _run(venv: Path, cwd: Path, script: str, *args: str) -> tuple[dict, float]:
    """Run one console command of the fresh venv; its JSON summary and wall time."""
    start = time.perf_counter()
    proc = subprocess.run([str(venv / "bin" / script), *args], cwd=cwd, env=_env(cwd),
                          capture_output=True, text=True, timeout=900, check=False)
    took = time.perf_counter() - start
    assert proc.returncode == 0, f"{script}: {proc.stderr[-4000:]}"
    summary, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    print(f"{script}: {took:.1f} s")
    return summary, took


def test_stages_sft_evaluate_and_report_from_the_wheel(venv, office_slice, tmp_path):
    """The SID stages through `hourglass-pipeline` (one JVM for seven stages keeps this quick;
    the per-stage commands run the same functions), then `hourglass-sft-train`,
    `hourglass-evaluate` and `hourglass-report` each on its own."""
    work = tmp_path / "work"  # the cwd: outside the repository, nothing of it copied here
    work.mkdir()
    items, inter = office_slice.items, office_slice.interactions
    n_items, n_inter = office_slice.n_items, office_slice.n_interactions
    root = str(tmp_path / "tables")
    sid_steps = [
        {"stage": "ingest", "items_path": str(items), "interactions_path": str(inter),
         "ts_column": "position"},
        {"stage": "embed_items", "fields": ["title"], "batch_size": 64},
        {"stage": "train_codebooks", "num_layers": 3, "codebook_size": 16, "kmeans_iters": 10,
         "seed": 7},
        {"stage": "encode_items"},
        {"stage": "hourglass_stats", "run_id": "wheel"},
        {"stage": "rewrite_sids", "strategies": ["none", "topk(4)"]},
        {"stage": "build_sft_data", "strategies": ["none"], "history_max_items": 5},
    ]
    (work / "sid.yaml").write_text(json.dumps({"output_root": root, "steps": sid_steps}))
    common = ["--output_root", root]
    commands = [
        ("hourglass-pipeline", ["--config", "sid.yaml"]),
        # No --deepspeed_config: the default is the JSON shipped in the wheel.
        ("hourglass-sft-train", [*common, "--strategy", "none", "--max_steps", "4",
                                 "--log_every", "2", "--hidden_size", "32", "--num_heads", "2",
                                 "--intermediate_size", "64", "--max_seq_len", "48",
                                 "--max_valid_examples", "40", "--device", "cpu",
                                 "--progress", "false"]),
        ("hourglass-evaluate", [*common, "--run_id", "wheel", "--strategies", "none",
                                "--beam_size", "5", "--recall_ks", "1,5", "--ndcg_ks", "5",
                                "--max_users", "16", "--batch_users", "16", "--partitions", "1",
                                "--segments_run_id", "wheel"]),
        ("hourglass-report", [*common, "--report_dir", str(tmp_path / "report"),
                              "--run_ids", "wheel"]),
    ]
    results, timings = {}, {}
    for script, args in commands:
        results[script], timings[script] = _run(venv, work, script, *args)
        assert results[script]["job"] == script
    steps = results["hourglass-pipeline"]["result"]
    assert [s["stage"] for s in steps] == [s["stage"] for s in sid_steps]
    timings |= {f"  {s['stage']}": s["seconds"] for s in steps}
    print("wheel-mode timings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))

    from deltalake import DeltaTable

    def rows(name: str) -> pd.DataFrame:
        return DeltaTable(f"{root}/{name}").to_pandas()

    assert len(rows("items")) == n_items and len(rows("interactions")) == n_inter
    sids = rows("item_sids")
    assert len(sids) == n_items and sids["item_id"].is_unique
    assert set(map(len, sids["codes"])) == {3}
    rw = rows("item_sids_rw")
    assert sorted(set(rw["strategy"])) == ["none", "topk_4"]
    assert (rw.groupby("strategy").size() == n_items).all()
    sft = rows("sft_examples")
    assert set(sft["split"]) == {"train", "valid", "test"}

    trained = results["hourglass-sft-train"]["result"]
    assert (trained["steps"], trained["world_size"]) == (4, 1)
    assert (Path(trained["model_dir"]) / "model.safetensors").is_file()
    assert Path(trained["model_dir"]).is_relative_to(Path(root) / "sft_runs")
    assert results["hourglass-evaluate"]["result"]["models"] == {"none": trained["model_dir"]}
    ev = rows("eval_results")
    ours = ev[(ev["run_id"] == "wheel") & (ev["strategy"] == "none") & (ev["subset"] == "all")]
    assert set(ours["metric"]) >= {"recall", "ndcg", "users"}
    assert ours.loc[ours["metric"] == "users", "value"].iloc[0] == 16
    assert ((ours["value"] >= 0) & (ours["value"] <= 16)).all()
    html = tmp_path / "report" / "index.html"
    assert html.is_file() and "wheel" in html.read_text()
