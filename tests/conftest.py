"""Shared fixtures: one session-scoped local Spark session with Delta, seeded RNGs, tmp roots.

Pure tests never request `spark`, so they run (and import) without a JVM.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Every JVM and process the tests start (local sessions, spark-submit, clusters, launchers)
# listens on and talks to the loopback address only.
os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
# The suite's Spark defaults (JIT and GC of short-lived JVMs; see the file), read by every
# spark-submit the tests start, directly or through pyspark.
os.environ["SPARK_CONF_DIR"] = str(Path(__file__).resolve().parent / "spark-conf")


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for the whole run: UI off, 2 shuffle partitions, Delta on."""
    from hourglass.spark.session import get_spark

    session = get_spark("hourglass-tests", master="local[2]", testing=True)
    yield session
    session.stop()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def table_root(tmp_path) -> str:
    """A fresh folder for Delta tables by path."""
    root = tmp_path / "tables"
    root.mkdir()
    return str(root)


# Session fixtures that cost minutes: the installed wheel's venv and its local[2] SID run (the
# cluster test's reference). Under pytest-xdist every test that needs one runs in one worker, so
# each is made once. The standalone cluster is not among them: it starts in seconds, and a
# worker that needs one starts its own (on its own free ports).
_MADE_ONCE = {"wheel_venv", "wheel_sid_run"}


# tryfirst: pytest-xdist reads the marks in its own collection hook (it appends `@group` to each
# test id), so they must be set before it runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests for `--dist loadgroup`: the tests of one module share a worker (module-scoped
    fixtures such as a trained model are made once), and every test that needs the wheel's
    session fixtures joins one group. Groups are handed out in collection order
    (`--no-loadscope-reorder`), so the long end-to-end modules start first."""
    for item in items:
        shared = _MADE_ONCE.intersection(getattr(item, "fixturenames", ()))
        group = "installed-wheel" if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


_PACK = Path(__file__).resolve().parents[1] / "deploy" / "spark-submit" / "pack_venv.sh"
_packing: list[subprocess.Popen] = []


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Start packing the executors' archive (deploy/spark-submit/pack_venv.sh: minutes on a clean
    clone) in the background as soon as a test that submits to the standalone cluster is
    collected, so it is built while other tests run. submit.sh calls the same script, which
    holds a lock while it packs: a test that gets there first waits, then finds it up to date."""
    if (os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0" or _packing
            or session.config.option.collectonly):
        return
    if not any("standalone_cluster" in getattr(i, "fixturenames", ()) for i in session.items):
        return
    log = _PACK.parents[2] / "build" / "pack_venv.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:
        _packing.append(subprocess.Popen([str(_PACK)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True))


def pytest_sessionfinish(session):
    """An early end (-x, Ctrl-C) leaves no packer running."""
    for proc in _packing:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
