"""Helpers of the cluster tests: submit through submit.sh, watch the executors' Python, compare
Delta tables read with `deltalake` (independently of Spark)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[2]
SUBMIT = ROOT / "deploy" / "spark-submit" / "submit.sh"


@dataclasses.dataclass
class Submitted:
    """A running `submit.sh` (its own process group, so a test can kill the whole driver)."""

    proc: subprocess.Popen
    log: Path

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def finish(self, timeout: float = 900) -> dict:
        """Wait; return the job's closing JSON summary, or fail with the end of its log."""
        self.proc.wait(timeout=timeout)
        out = self.log.with_suffix(".out").read_text()
        if self.proc.returncode != 0:
            raise AssertionError(f"{self.proc.args[1:3]} exited {self.proc.returncode}:\n"
                                 f"{self.log_tail()}")
        summary, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "job"'):])
        return summary


def submit(job: str, args: list[str], env: dict[str, str], cwd: Path) -> Submitted:
    """Start `deploy/spark-submit/submit.sh <job> args...` as a user would."""
    log = cwd / f"{job}-{len(list(cwd.glob(f'{job}-*.log')))}.log"
    with open(log, "w") as err, open(log.with_suffix(".out"), "w") as out:
        proc = subprocess.Popen([str(SUBMIT), job, *args], cwd=cwd, env=env, stdout=out,
                                stderr=err, start_new_session=True)
    return Submitted(proc, log)


class PythonWorkerWatch:
    """Samples the executors' Python processes while a job runs: interpreter, working folder and
    every shared library they mapped from a site-packages folder."""

    def __init__(self, cluster, every: float = 0.5):
        self.cluster, self.every = cluster, every
        self.seen: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PythonWorkerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for proc in self.cluster.python_workers():
                try:
                    libs = _mapped_site_packages(proc.pid)
                    info = self.seen.setdefault(proc.pid, {
                        "cmdline": proc.cmdline(), "cwd": proc.cwd(), "libs": set(),
                        "pythonpath": proc.environ().get("PYTHONPATH", "")})
                    info["libs"] |= libs
                except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError,
                        ProcessLookupError):
                    pass


def _mapped_site_packages(pid: int) -> set[str]:
    """Files a process mapped from a site-packages folder, from /proc/PID/maps (psutil's
    memory_maps reads smaps, which also sums every page: far more work at this sampling rate)."""
    with open(f"/proc/{pid}/maps") as maps:
        paths = (line.split(None, 5)[-1].strip() for line in maps if "site-packages" in line)
        return {p for p in paths if p.startswith("/")}


def read_delta(path: Path) -> pd.DataFrame:
    from deltalake import DeltaTable

    return DeltaTable(str(path)).to_pandas()


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows ordered by `keys`; array-valued keys (a history) order by their text."""
    order = pd.DataFrame({k: df[k].map(lambda v: str(list(v)) if isinstance(v, np.ndarray)
                                       else v) for k in keys})
    return df.iloc[order.sort_values(keys).index].reset_index(drop=True)


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame, keys: list[str], name: str,
                        atol: float = 0.0) -> None:
    """Same rows in any order; float columns and float arrays within `atol`, the rest exact."""
    assert sorted(got.columns) == sorted(want.columns), name
    assert len(got) == len(want), f"{name}: {len(got)} rows, want {len(want)}"
    got, want = _sorted(got, keys), _sorted(want, keys)
    for col in want.columns:
        a, b = got[col], want[col]
        first = next((v for v in b if v is not None), None)
        if isinstance(first, (np.ndarray, list)) and len(first) and isinstance(
                first[0], (float, np.floating)):
            np.testing.assert_allclose(np.stack(a.to_numpy()), np.stack(b.to_numpy()),
                                       atol=atol, rtol=0, err_msg=f"{name}.{col}")
        elif pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), atol=atol, rtol=0,
                                       equal_nan=True, err_msg=f"{name}.{col}")
        else:
            norm = [list(v) if isinstance(v, np.ndarray) else v for v in a]
            ref = [list(v) if isinstance(v, np.ndarray) else v for v in b]
            assert norm == ref, f"{name}.{col} differs"
