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
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from wheel_util import SID_STATS_RUN, run_console, wheel_env

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


def test_wheel_installs_alone_with_its_package_data(wheel_venv, tmp_path):
    venv = wheel_venv
    out = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK_INSTALL], cwd=tmp_path,
                         env=wheel_env(tmp_path), capture_output=True, text=True, check=True)
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


def test_stages_sft_evaluate_and_report_from_the_wheel(wheel_venv, wheel_sid_run, office_slice,
                                                      tmp_path):
    """The SID stages through `hourglass-pipeline` (the shared `wheel_sid_run`: one JVM for
    seven stages keeps this quick; the per-stage commands run the same functions; its tables are
    also the local[2] reference of the cluster test), then `hourglass-sft-train`,
    `hourglass-evaluate` and `hourglass-report` each on its own."""
    work, root = wheel_sid_run.work, str(wheel_sid_run.root)
    n_items, n_inter = office_slice.n_items, office_slice.n_interactions
    common = ["--output_root", root]
    commands = [
        # No --deepspeed_config: the default is the JSON shipped in the wheel.
        ("hourglass-sft-train", [*common, "--strategy", "none", "--max_steps", "4",
                                 "--log_every", "2", "--hidden_size", "32", "--num_heads", "2",
                                 "--intermediate_size", "64", "--max_seq_len", "48",
                                 "--max_valid_examples", "40", "--device", "cpu",
                                 "--progress", "false"]),
        ("hourglass-evaluate", [*common, "--run_id", "wheel", "--strategies", "none",
                                "--beam_size", "5", "--recall_ks", "1,5", "--ndcg_ks", "5",
                                "--max_users", "16", "--batch_users", "16", "--partitions", "1",
                                "--segments_run_id", SID_STATS_RUN]),
        ("hourglass-report", [*common, "--report_dir", str(tmp_path / "report"),
                              "--run_ids", SID_STATS_RUN]),
    ]
    results, timings = {}, {"hourglass-pipeline": wheel_sid_run.seconds}
    for script, args in commands:
        results[script], timings[script] = run_console(wheel_venv, work, script, *args)
        assert results[script]["job"] == script
    steps = wheel_sid_run.summary["result"]
    assert [s["stage"] for s in steps] == [s["stage"] for s in wheel_sid_run.steps]
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
    assert sorted(set(rw["strategy"])) == ["drop_layer_2", "none", "topk_4"]
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
    assert html.is_file() and SID_STATS_RUN in html.read_text()


def test_fine_tune_launcher_runs_from_the_wheel_outside_the_checkout(wheel_venv, wheel_sid_run,
                                                                     tmp_path):
    """`hourglass-sft-launch` of the installed wheel, from a folder outside the repository: the
    DeepSpeed launcher script shipped in the package starts two CPU ranks of
    `python -m hourglass.train` with the venv's interpreter; no file of the checkout is used."""
    root = str(wheel_sid_run.root)
    env = {**wheel_env(tmp_path), "CPU_RANKS": "2"}
    env.pop("PYTHON", None)
    proc = subprocess.run(
        [str(wheel_venv / "bin" / "hourglass-sft-launch"), "--output_root", root,
         "--strategy", "topk(4)", "--max_steps", "4", "--log_every", "2", "--hidden_size", "32",
         "--num_heads", "2", "--intermediate_size", "64", "--max_seq_len", "48",
         "--max_valid_examples", "40", "--device", "cpu", "--progress", "false",
         "--deepspeed_config", "zero2_cpu_fp32.json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (log,) = (tmp_path / "build" / "deepspeed").glob("*/launcher.log")
    launch = log.read_text().splitlines()[0].split()
    assert launch[1] == str(wheel_venv / "bin" / "python")
    assert launch[-len(proc.args) + 1:] == proc.args[1:]
    assert launch[launch.index("--module") + 1] == "hourglass.train"
    assert not any(str(ROOT) in a for a in launch), launch
    (result_file,) = Path(root, "sft_runs", "topk_4").glob("*/train_result.json")
    result = json.loads(result_file.read_text())
    assert (result["steps"], result["world_size"]) == (4, 2)
