"""A real Spark standalone cluster for the end-to-end tests: one master and two workers, each its
own JVM started with pyspark's `bin/spark-class`, all bound to 127.0.0.1.

Jobs reach it through `deploy/spark-submit/submit.sh`, exactly as users submit to their own
clusters; executors are JVMs that the workers fork, so a test can kill one by its pid. The
fixture stops what it started by the pids it recorded, never by process name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from wheel_util import free_port

LOOPBACK = "127.0.0.1"
WORKERS = 2
WORKER_CORES = 1
WORKER_MEMORY = "1536m"
EXECUTOR_MEMORY = "1g"
ROOT = Path(__file__).resolve().parents[2]


def _spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


@dataclasses.dataclass
class StandaloneCluster:
    """What a test needs of the running cluster: its URL, its processes and where they log."""

    master_url: str
    webui: str
    spark_home: str
    root: Path
    master_pid: int
    worker_pids: list[int]
    base_env: dict[str, str]

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.webui}/json/", timeout=10) as resp:
            return json.load(resp)

    def executor_pids(self) -> list[int]:
        """JVMs the workers forked for applications (CoarseGrainedExecutorBackend)."""
        pids = []
        for wpid in self.worker_pids:
            try:
                children = psutil.Process(wpid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if any("CoarseGrainedExecutorBackend" in a for a in child.cmdline()):
                        pids.append(child.pid)
        return pids

    def python_workers(self) -> list[psutil.Process]:
        """Python processes the executors run (pyspark daemon and its forked workers)."""
        out = []
        for epid in self.executor_pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                out += [p for p in psutil.Process(epid).children(recursive=True)
                        if "python" in p.name()]
        return out

    def submit_env(self, event_log: Path | None = None, extra_args: str = "") -> dict[str, str]:
        """Environment for submit.sh: this master, everything on the loopback address."""
        args = [
            f"--conf spark.driver.host={LOOPBACK}", f"--conf spark.driver.bindAddress={LOOPBACK}",
            "--conf spark.ui.enabled=false", "--driver-memory 1g",
            f"--executor-memory {EXECUTOR_MEMORY}", "--conf spark.sql.shuffle.partitions=4",
            # Delta's default of 50 partitions per log snapshot is for big logs; tables here
            # have a handful of commits (local sessions use 2 as well, hourglass.spark.session).
            "--conf spark.databricks.delta.snapshotPartitions=2",
        ]
        if event_log is not None:
            event_log.mkdir(parents=True, exist_ok=True)
            args += ["--conf spark.eventLog.enabled=true", "--conf spark.eventLog.compress=false",
                     f"--conf spark.eventLog.dir=file://{event_log}"]
        return {**self.base_env, "SPARK_MASTER": self.master_url, "DEPLOY_MODE": "client",
                "SPARK_SUBMIT_ARGS": " ".join([*args, extra_args]).strip()}


def _stop(pids: list[int], timeout: float = 20) -> None:
    """SIGTERM the given pids (and anything they forked), SIGKILL what is left after timeout."""
    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs += [*proc.children(recursive=True), proc]
        except psutil.NoSuchProcess:
            pass
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


def _log_tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def _suite_spark_defaults() -> dict[str, str]:
    """The suite's spark-defaults.conf (SPARK_CONF_DIR, set by tests/conftest.py) as a dict."""
    conf = Path(os.environ["SPARK_CONF_DIR"]) / "spark-defaults.conf"
    pairs = (line.split(None, 1) for line in conf.read_text().splitlines()
             if line.strip() and not line.startswith("#"))
    return {key: value.strip() for key, value in pairs}


@pytest.fixture(scope="session")
def standalone_cluster(tmp_path_factory):
    """A master and two 1-core workers on 127.0.0.1; yields once both workers are registered."""
    root = tmp_path_factory.mktemp("standalone")
    spark_class = os.path.join(_spark_home(), "bin", "spark-class")
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_HOME": _spark_home(),
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_LOCAL_HOSTNAME": LOOPBACK,
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        # the master and worker daemons: the JVM options of the suite's drivers
        "SPARK_DAEMON_JAVA_OPTS": _suite_spark_defaults()["spark.driver.extraJavaOptions"],
    }
    # A worker gets only what it needs: no venv or checkout on its Python path.
    env.pop("PYTHONPATH", None)
    env.pop("PYSPARK_PYTHON", None)
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    started: list[int] = []
    logs = root / "logs"
    logs.mkdir()

    def launch(name: str, *args: str, extra_env: dict[str, str] | None = None) -> int:
        log = open(logs / f"{name}.out", "wb")  # noqa: SIM115 - the child owns it until it ends
        proc = subprocess.Popen([spark_class, *args], env={**env, **(extra_env or {})},
                                stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
        started.append(proc.pid)
        return proc.pid

    master_url, webui = f"spark://{LOOPBACK}:{port}", f"http://{LOOPBACK}:{ui_port}"
    try:
        master = launch("master", "org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
                        "--port", str(port), "--webui-port", str(ui_port))
        workers = []
        for i in range(WORKERS):
            work, local = root / f"worker{i}", root / f"local{i}"
            work.mkdir()
            local.mkdir()
            workers.append(launch(
                f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK,
                "--cores", str(WORKER_CORES), "--memory", WORKER_MEMORY,
                "--webui-port", str(free_port()), "--work-dir", str(work), master_url,
                extra_env={"SPARK_LOCAL_DIRS": str(local)}))
        # Drivers submitted to it keep their scratch (Spark unpacks --archives there too, 0.9 GB
        # per application, left behind when a test kills a driver) under this fixture's folder.
        driver_local = root / "driver-local"
        driver_local.mkdir()
        cluster = StandaloneCluster(master_url, webui, _spark_home(), root, master, workers,
                                    {**os.environ, "SPARK_LOCAL_IP": LOOPBACK,
                                     "SPARK_LOCAL_DIRS": str(driver_local)})
        deadline = time.monotonic() + 180
        while True:
            for pid in started:
                if not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie":
                    pytest.fail(f"cluster process {pid} ended:\n{_log_tail(logs / 'master.out')}")
            try:
                if cluster.state().get("aliveworkers") == WORKERS:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"workers did not register in 180 s:\n{_log_tail(logs / 'master.out')}")
            time.sleep(1)
        yield cluster
    finally:
        _stop(started[::-1])


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> str:
    """The bundled all-MiniLM-L6-v2 exported to ONNX: executors embed without torch."""
    from hourglass.embed.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("models") / "minilm-onnx"
    export_onnx(str(out))
    return str(out)


@dataclasses.dataclass(frozen=True)
class SampleSlice:
    items: Path
    interactions: Path
    n_items: int
    n_interactions: int


@pytest.fixture(scope="session")
def office_slice(tmp_path_factory) -> SampleSlice:
    """The first 120 users of the bundled Amazon Office sample and every item they touched
    (774 items, 1,256 interactions): real data, small enough for the multi-process tests."""
    import pandas as pd

    sample, out = ROOT / "data" / "amazon-office", tmp_path_factory.mktemp("office-slice")
    inter = pd.read_csv(sample / "interactions.csv", dtype=str)
    inter = inter[inter["user_id"].isin(inter["user_id"].drop_duplicates().head(120))]
    items = pd.read_json(sample / "items.jsonl", lines=True, dtype=False)
    items = items[items["item_id"].isin(set(inter["item_id"]))]
    inter.to_csv(out / "interactions.csv", index=False)
    items.to_json(out / "items.jsonl", orient="records", lines=True)
    return SampleSlice(out / "items.jsonl", out / "interactions.csv", len(items), len(inter))


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv outside the checkout holding only the built wheel, plus a path line to
    the dev venv's site-packages for the third-party packages (GBs of torch/CUDA). A plain path
    line does not process that folder's own `.pth` files, so the dev venv's editable install
    (`__editable__.hourglass-*.pth` → libs/) stays off; test_installed_wheel checks it."""
    import sys
    import sysconfig

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


@dataclasses.dataclass(frozen=True)
class WheelRun:
    work: Path
    root: Path
    steps: list
    summary: dict
    seconds: float


@pytest.fixture(scope="session")
def wheel_sid_run(wheel_venv, office_slice, onnx_model, tmp_path_factory) -> WheelRun:
    """The SID stages run by the installed wheel's `hourglass-pipeline` on local[2], from a folder
    outside the checkout: the wheel test goes on from these tables, and they are the local[2]
    reference the cluster run must equal."""
    from wheel_util import run_console, sid_steps

    tmp = tmp_path_factory.mktemp("wheel-run")
    work, root = tmp / "work", tmp / "tables"
    work.mkdir()
    steps = sid_steps(office_slice, onnx_model)
    (work / "sid.json").write_text(json.dumps({"output_root": str(root), "steps": steps}))
    summary, seconds = run_console(wheel_venv, work, "hourglass-pipeline", "--config", "sid.json")
    return WheelRun(work, root, steps, summary, seconds)
