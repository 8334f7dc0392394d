"""Progress a person can follow: every Spark job named after the stage step that started it, a
log line per step with its duration, and an optional task progress bar for long steps.

The Spark UI lists jobs by description; without one a stage shows as a column of `collect at
NativeMethodAccessorImpl`. The job group is the stage, so all of a stage's jobs can also be
found (or cancelled) together.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from hourglass.logs import log

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

F = TypeVar("F", bound=Callable)
_DESCRIPTION = "spark.job.description"
_GROUP = "spark.jobGroup.id"


def _context(spark: SparkSession):
    """The SparkContext, or None where there is none (Spark Connect)."""
    try:
        return spark.sparkContext
    except Exception:  # Spark Connect sessions have no SparkContext
        return None


@contextlib.contextmanager
def callers_job_names(spark: SparkSession) -> Iterator[None]:
    """The job group and description as they were before the block, whatever it set."""
    sc = _context(spark)
    old = (sc.getLocalProperty(_GROUP), sc.getLocalProperty(_DESCRIPTION)) if sc else None
    try:
        yield
    finally:
        if sc is not None and old is not None:
            sc.setLocalProperty(_GROUP, old[0])
            sc.setLocalProperty(_DESCRIPTION, old[1])


def names_its_jobs(run: F) -> F:
    """For a stage's `run(spark, cfg)` that names its steps with `next_step`: called directly
    (a notebook, a test) and not under `spark_step`, its step names must not stay on the
    caller's later jobs."""

    @functools.wraps(run)
    def wrapper(spark, *args, **kwargs):
        with callers_job_names(spark):
            return run(spark, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def spark_step(spark: SparkSession, stage: str, step: str, bar: bool = False) -> Iterator[None]:
    """Spark jobs started in the block are described `<stage>: <step>` (group `<stage>`); the
    previous description comes back afterwards, so steps nest. `bar` shows a progress bar of
    the step's finished tasks on stderr."""
    sc = _context(spark)
    start = time.perf_counter()
    stop = threading.Event()
    watcher = None
    with callers_job_names(spark):
        if sc is not None:
            sc.setJobGroup(stage, f"{stage}: {step}")
        log.info("%s: %s", stage, step)
        if bar and sc is not None:
            watcher = threading.Thread(target=_task_bar, args=(sc, stage, step, stop),
                                       daemon=True)
            watcher.start()
        try:
            yield
        finally:
            stop.set()
            if watcher is not None:
                watcher.join(timeout=10)
            log.info("%s: %s done in %.1f s", stage, step, time.perf_counter() - start)


def next_step(spark: SparkSession, stage: str, step: str) -> None:
    """Name the Spark jobs from here on `<stage>: <step>` and log it: for the successive steps
    of one stage, whose `run` is wrapped in `names_its_jobs` (or runs inside a `spark_step`),
    which restores the caller's names at its end."""
    sc = _context(spark)
    if sc is not None:
        sc.setJobGroup(stage, f"{stage}: {step}")
    log.info("%s: %s", stage, step)


def _task_bar(sc, group: str, step: str, stop: threading.Event, every: float = 2.0) -> None:
    """Finished/total tasks of the group's jobs, polled from the status tracker; drawn once the
    step has run a task (a step without Spark jobs shows none), and once more at its end."""
    from tqdm import tqdm

    tracker = sc.statusTracker()
    before = set(tracker.getJobIdsForGroup(group))  # earlier steps of the same stage
    seen: set[int] = set()
    progress = None

    def poll() -> None:
        nonlocal progress
        seen.update(set(tracker.getJobIdsForGroup(group)) - before)
        done = total = 0
        for job in seen:
            info = tracker.getJobInfo(job)
            for stage_id in info.stageIds if info else []:
                s = tracker.getStageInfo(stage_id)
                if s is None:
                    continue
                total += s.numTasks
                # a finished job's stages are done, those it skipped (their shuffle output
                # reused) included, which never report a completed task
                done += s.numTasks if info.status == "SUCCEEDED" else s.numCompletedTasks
        if total and (progress is None or (progress.n, progress.total) != (done, total)):
            if progress is None:
                progress = tqdm(desc=f"{group}: {step}", unit="task", file=sys.stderr,
                                mininterval=every, total=total)
            progress.total, progress.n = total, done
            progress.refresh()  # only when it moved: a step busy outside Spark stays quiet

    try:
        while not stop.wait(every):
            poll()
        poll()
    finally:
        if progress is not None:
            progress.close()
