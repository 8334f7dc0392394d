"""The shell launchers of deploy/: syntax, and the commands they build (DRY_RUN=1 prints them).

The real spark-submit run is tests/e2e/test_spark_submit.py; the DeepSpeed launchers start
`deepspeed.launcher.runner`, whose CPU two-rank run the SFT tests exercise.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(DEPLOY.glob("**/*.sh"))


def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DRY_RUN": "1", **env}
    return subprocess.run([str(DEPLOY / script), *args], env=full_env, capture_output=True,
                          text=True, check=False)


def argv(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return shlex.split(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_shell_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    if script.name != "common.sh":  # sourced helpers need not be executable
        assert os.access(script, os.X_OK), f"{script} is not executable"


def test_submit_ships_archive_jars_and_settings(tmp_path):
    archive = tmp_path / "env.tar.gz"
    cmd = argv(run("spark-submit/submit.sh", "pipeline", "--config", "my conf.yaml", "--only",
                   "encode_items", SPARK_SUBMIT="spark-submit", HOURGLASS_ARCHIVE=str(archive)))
    assert cmd[cmd.index("--archives") + 1] == f"{archive}#environment"
    jars = cmd[cmd.index("--jars") + 1].split(",")
    assert any(Path(j).name.startswith("delta-spark_2.13-") for j in jars)
    assert all(Path(j).is_file() for j in jars)
    confs = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    assert confs["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    # local[2] (the default): executors live in the driver JVM, so workers share its interpreter
    assert confs["spark.pyspark.driver.python"].endswith("driver-env/bin/python")
    assert confs["spark.pyspark.python"] == confs["spark.pyspark.driver.python"]
    assert cmd[cmd.index("--name") + 1] == "hourglass-encode_items"
    assert cmd[-5:] == [str(ROOT / "jobs" / "pipeline.py"), "--config", "my conf.yaml",
                        "--only", "encode_items"]


def test_submit_cluster_mode_leaves_the_driver_to_the_archive(tmp_path):
    cmd = argv(run("spark-submit/submit.sh", "ingest", SPARK_SUBMIT="spark-submit",
                   DEPLOY_MODE="cluster", SPARK_MASTER="yarn",
                   HOURGLASS_ARCHIVE=str(tmp_path / "a.tar.gz"),
                   SPARK_SUBMIT_ARGS="--num-executors 20 --executor-memory 8g"))
    assert cmd[cmd.index("--master") + 1] == "yarn"
    assert cmd[cmd.index("--deploy-mode") + 1] == "cluster"
    assert not any(a.startswith("spark.pyspark.driver.python") for a in cmd)
    confs = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    assert confs["spark.pyspark.python"] == "./environment/bin/python"  # unpacked by YARN
    assert cmd[cmd.index("--num-executors") + 1] == "20"
    assert cmd[-1] == str(ROOT / "jobs" / "ingest.py")


def test_submit_cluster_mode_ships_a_local_config(tmp_path):
    """The driver runs on another host: a local config goes with --files and the job reads it
    by file name from its working folder; a URI the cluster reads is passed unchanged."""
    conf = tmp_path / "my configs" / "cluster.yaml"
    conf.parent.mkdir()
    conf.write_text("output_root: /shared/hourglass/tables\n")
    env = {"SPARK_SUBMIT": "spark-submit", "DEPLOY_MODE": "cluster", "SPARK_MASTER": "yarn",
           "HOURGLASS_ARCHIVE": str(tmp_path / "a.tar.gz")}
    cmd = argv(run("spark-submit/submit.sh", "pipeline", "--config", str(conf), "--only",
                   "encode_items", **env))
    assert cmd[cmd.index("--files") + 1] == str(conf)
    assert cmd[-4:] == ["--config", "cluster.yaml", "--only", "encode_items"]
    assert cmd.index("--files") < cmd.index(str(ROOT / "jobs" / "pipeline.py"))
    cmd = argv(run("spark-submit/submit.sh", "ingest", f"--config={conf}", **env))
    assert cmd[cmd.index("--files") + 1] == str(conf) and cmd[-1] == "--config=cluster.yaml"
    for uri in ("s3a://bucket/hourglass/cluster.yaml", "dbfs:/hourglass/cluster.yaml",
                f"file:{conf}"):
        cmd = argv(run("spark-submit/submit.sh", "ingest", "--config", uri, **env))
        assert "--files" not in cmd and cmd[-2:] == ["--config", uri]
    missing = run("spark-submit/submit.sh", "ingest", "--config", str(tmp_path / "no.yaml"), **env)
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    client = argv(run("spark-submit/submit.sh", "ingest", "--config", str(conf),
                      **{**env, "DEPLOY_MODE": "client"}))
    assert "--files" not in client and client[-2:] == ["--config", str(conf)]


def test_submit_hands_the_mlflow_settings_to_a_cluster_driver(tmp_path):
    """A cluster-mode driver does not inherit the submitting shell: the MLflow variables set
    there go to it as YARN and Kubernetes driver environment; unset ones and client mode (whose
    driver inherits the shell) add nothing."""
    env = {"SPARK_SUBMIT": "spark-submit", "DEPLOY_MODE": "cluster", "SPARK_MASTER": "yarn",
           "HOURGLASS_ARCHIVE": str(tmp_path / "a.tar.gz"),
           "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000", "MLFLOW_EXPERIMENT_NAME": ""}
    cmd = argv(run("spark-submit/submit.sh", "ingest", **env))
    confs = dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd) if a == "--conf")
    driver_env = {k: v for k, v in confs.items() if "appMasterEnv." in k or "driverEnv." in k}
    assert driver_env == {
        "spark.yarn.appMasterEnv.MLFLOW_TRACKING_URI": "http://mlflow.internal:5000",
        "spark.kubernetes.driverEnv.MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"}
    client = argv(run("spark-submit/submit.sh", "ingest", **{**env, "DEPLOY_MODE": "client"}))
    assert not any("MLFLOW" in a for a in client)


def test_submit_rejects_unknown_job():
    proc = run("spark-submit/submit.sh", "no_such_job", SPARK_SUBMIT="spark-submit")
    assert proc.returncode == 2 and "no such job" in proc.stderr


@pytest.mark.parametrize(("gpus", "ranks"), [("0", "2"), ("4", "4")])
def test_single_node_launcher(gpus, ranks):
    cmd = argv(run("deepspeed/launch_single_node.sh", "--config", "c.yaml", NUM_GPUS=gpus))
    assert cmd[1:4] == ["-m", "deepspeed.launcher.runner", "--num_gpus"]
    assert cmd[4] == ranks
    assert cmd[-4:] == ["--module", "hourglass.train", "--config", "c.yaml"]  # no checkout file
    assert 1024 <= int(cmd[cmd.index("--master_port") + 1]) <= 65535  # a free port by default
    pinned = argv(run("deepspeed/launch_single_node.sh", NUM_GPUS=gpus, MASTER_PORT="29511"))
    assert pinned[pinned.index("--master_port") + 1] == "29511"


def test_multi_node_launcher_uses_the_hostfile():
    example = str(DEPLOY / "deepspeed" / "hostfile.example")
    cmd = argv(run("deepspeed/launch_multi_node.sh", "--config", "c.yaml", HOSTFILE=example,
                   MASTER_ADDR="gpu-node-1", NUM_NODES="2", LAUNCHER="openmpi"))
    for flag, value in (("--hostfile", example), ("--master_addr", "gpu-node-1"),
                        ("--launcher", "openmpi"), ("--num_nodes", "2")):
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[-4:] == ["--module", "hourglass.train", "--config", "c.yaml"]


def test_the_wheels_launch_command_runs_the_shipped_scripts(tmp_path):
    """`hourglass-sft-launch` picks the single- or multi-node script shipped in the package
    (the ones deploy/deepspeed/ links to) and hands them its own interpreter."""
    import sys

    from hourglass.train.launchers import MULTI_NODE, SINGLE_NODE, launcher_script

    for name in (SINGLE_NODE, MULTI_NODE):
        assert launcher_script(name).resolve() == (DEPLOY / "deepspeed" / name).resolve()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "HOSTFILE")}
    launch = [sys.executable, "-m", "hourglass.train.launchers", "--config", "c.yaml"]
    single = subprocess.run(launch, env={**env, "DRY_RUN": "1", "NUM_GPUS": "0"}, cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.split()
    assert single[0] == sys.executable and "--num_gpus" in single
    multi = subprocess.run(launch, env={**env, "DRY_RUN": "1", "MASTER_ADDR": "gpu-node-1",
                                        "HOSTFILE": str(DEPLOY / "deepspeed" / "hostfile.example")},
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert "--hostfile" in multi and multi[-4:] == ["--module", "hourglass.train", "--config",
                                                    "c.yaml"]


def test_multi_node_launcher_refuses_bad_or_missing_hostfile(tmp_path):
    assert "HOSTFILE" in run("deepspeed/launch_multi_node.sh", MASTER_ADDR="h").stderr
    bad = tmp_path / "hostfile"
    bad.write_text("gpu-node-1 slots=8\ngpu-node-2 slot=8\n")
    proc = run("deepspeed/launch_multi_node.sh", HOSTFILE=str(bad), MASTER_ADDR="gpu-node-1")
    assert proc.returncode == 2 and "gpu-node-2 slot=8" in proc.stderr


def test_deepspeed_env_file_lists_only_set_variables(tmp_path):
    out = tmp_path / "ds_env"
    script = (f"ROOT={shlex.quote(str(ROOT))}; source {DEPLOY}/deepspeed/common.sh; "
              f"A=1 B= write_ds_env {out} A B; C='x y' write_ds_env {out}.2 C")
    subprocess.run(["bash", "-c", script], check=True)
    assert out.read_text() == "A=1\n"
    assert Path(f"{out}.2").read_text() == "C=x y\n"
