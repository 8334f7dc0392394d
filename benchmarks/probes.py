"""Measurements shared by the benchmarks: process memory from /proc, spill from the event log.

Imported by the scripts in this folder (run as `python benchmarks/<name>.py`, which puts this
folder on the path); Linux only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path


def machine_jiffies() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine in clock ticks, summed over its cores, from
    /proc/stat: busy is everything but idle and iowait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


class WorkerMemory(threading.Thread):
    """Peak RSS (VmHWM, reset at start) of the Spark JVM and of the Python workers under it
    that did work during the run; idle leftovers (e.g. a worker that generated data earlier)
    are not counted. In local mode the JVM is driver and executor at once."""

    def __init__(self, jvm_pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.jvm_pid, self.interval = jvm_pid, interval
        self.peak_kb: dict[int, int] = {}
        self.cpu: dict[int, list[int]] = {}  # pid -> [ticks first seen, ticks last seen]
        self.done = threading.Event()
        self.jvm_kb = 0

    def workers(self) -> dict[int, int]:
        """pid -> CPU ticks of every descendant of the JVM whose command line names pyspark."""
        stats = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        found, todo = {}, [self.jvm_pid]
        while todo:
            for pid in children.get(todo.pop(), []):
                todo.append(pid)
                with contextlib.suppress(OSError):
                    if b"pyspark" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found[pid] = stats[pid][1]
        return found

    def run(self) -> None:
        self.jiffies = machine_jiffies()
        for pid in [self.jvm_pid, *self.workers()]:
            with contextlib.suppress(OSError):  # reset the high-water mark
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)
        self.sample()

    def sample(self) -> None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            status = Path(f"/proc/{self.jvm_pid}/status").read_text()
            self.jvm_kb = max(self.jvm_kb, int(status.split("VmHWM:")[1].split()[0]))
        for pid, ticks in self.workers().items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                status = Path(f"/proc/{pid}/status").read_text()
                hwm = int(status.split("VmHWM:")[1].split()[0])
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), hwm)
                self.cpu.setdefault(pid, [ticks, ticks])[1] = ticks

    def stop(self) -> dict:
        """Peaks, and how busy the machine's cores were over the run: `busy_core_s` is CPU time
        summed over every process (what the run cost the cores, whoever ran it), `cpu_busy` that
        as a share of all cores for the run's wall time."""
        self.done.set()
        self.join()
        busy, total = (b - a for a, b in zip(self.jiffies, machine_jiffies(), strict=True))
        tick = os.sysconf("SC_CLK_TCK")
        active = [kb for pid, kb in self.peak_kb.items()
                  if self.cpu[pid][1] - self.cpu[pid][0] > 10]  # > 0.1 s of CPU in the run
        return {"peak_worker_mb": round(max(active) / 1024, 1) if active else None,
                "workers_active": len(active), "workers_seen": len(self.peak_kb),
                "peak_jvm_mb": round(self.jvm_kb / 1024, 1),
                "busy_core_s": round(busy / tick, 2),
                "cpu_busy": round(busy / total, 3) if total else None}


def measured(spark, fn) -> tuple[object, float, float, dict]:
    """(result, start, end, memory) of `fn()`: epoch seconds (the window `spill` attributes
    tasks to) and the JVM and worker peaks of `WorkerMemory` over the call."""
    import time

    mem = WorkerMemory(spark.sparkContext._gateway.proc.pid)
    mem.start()
    start = time.time()
    try:
        result = fn()
    finally:
        end = time.time()
        memory = mem.stop()
    return result, start, end, memory


def event_log_conf(folder: str) -> dict[str, str]:
    """Session settings that write an uncompressed event log to `folder` (for `spill`)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": folder,
            "spark.eventLog.compress": "false"}


def spill(folder: str, windows: dict[str, tuple[float, float]]) -> dict[str, dict]:
    """Per named wall-clock window (epoch seconds): tasks launched in it, bytes they spilled to
    memory and disk, and the largest peak execution memory of one task (MB)."""
    out = {name: {"tasks": 0, "memory_spill_mb": 0.0, "disk_spill_mb": 0.0,
                  "peak_task_execution_mb": 0.0} for name in windows}
    for path in Path(folder).rglob("*"):
        if not path.is_file() or path.name.startswith((".", "appstatus")):
            continue
        with path.open() as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    launch = event["Task Info"]["Launch Time"] / 1000
                    metrics = event.get("Task Metrics") or {}
                    for name, (start, end) in windows.items():
                        if start <= launch <= end:
                            o = out[name]
                            o["tasks"] += 1
                            o["memory_spill_mb"] += metrics.get("Memory Bytes Spilled", 0) / 2**20
                            o["disk_spill_mb"] += metrics.get("Disk Bytes Spilled", 0) / 2**20
                            o["peak_task_execution_mb"] = max(
                                o["peak_task_execution_mb"],
                                metrics.get("Peak Execution Memory", 0) / 2**20)
    return {k: {m: round(v, 1) if isinstance(v, float) else v for m, v in o.items()}
            for k, o in out.items()}


def dir_mb(path: str) -> float:
    """Size on disk of a folder (a Delta table with its log), MB."""
    total = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return round(total / 2**20, 1)


def table_mb(spark, path: str) -> float:
    """Size of a Delta table's current version (its live files), MB: `dir_mb` also counts the
    files of versions a re-run replaced, which stay until VACUUM. Other folders: `dir_mb`."""
    if not (Path(path) / "_delta_log").is_dir():
        return dir_mb(path)
    row = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    return round(row["sizeInBytes"] / 2**20, 1)


def cpu_count() -> int:
    return os.cpu_count() or 1
