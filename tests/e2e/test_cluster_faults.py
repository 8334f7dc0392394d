"""Faults on the standalone cluster, both in one application (each application costs a driver
JVM, two executor JVMs and three unpackings of the archive): `jobs/pipeline.py` runs
`encode_items`, during which one executor is killed, then `synthesize` into a second table,
during whose write the driver is killed.

The synthetic table (with a few bad rows appended) is sized so the encode pass takes well over
30 s on the two 1-core executors. Codes are compared with the plain numpy reference
(`encode_reference`) on the same embeddings — what any undisturbed run produces, since the
encode kernel is exact.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from cluster_util import read_delta, submit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
N, DIM, L, M = 250_000, 64, 3, 4096
BAD = {"bad_nan": [float("nan")] * DIM, "bad_short": [0.5] * (DIM - 1), "bad_null": None,
       "bad_inf": [float("inf")] + [0.0] * (DIM - 1)}


def _events(folder: Path) -> list[dict]:
    """The application's Spark event log (Spark 4 writes it as rolling `events_N_*` files). The
    driver was killed, so the last line may be cut off: it is skipped; everything up to the
    encode job's end was flushed (Spark flushes the log at every job and stage end)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (
        p.name.startswith(("events_", "app-", "local-"))))
    assert files, f"no event log under {folder}"
    lines = [x for f in files for x in f.read_text().splitlines() if x.strip()]
    try:
        last = [json.loads(lines[-1])]
    except json.JSONDecodeError:
        last = []
    return [json.loads(line) for line in lines[:-1]] + last


def _wait_for(job, predicate, timeout: float, what: str, every: float = 0.5):
    """Poll `predicate` while `job` runs; a job that ends first fails at once with its log. The
    timeout only bounds a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert job.proc.poll() is None, f"{job.log.stem} ended before the kill:\n{job.log_tail()}"
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# The table whose write the driver dies in: `synthesize` (deterministic by seed) of a second
# table, first made on local[2]; eight tasks in four waves on the two 1-core executors leave
# seconds between the first Parquet file and the commit.
NEXT = "next_embeddings"
NEXT_PARAMS = {"num_items": 200_000, "dim": DIM, "num_clusters": 50, "seed": 9,
               "block_size": 25_000, "partitions": 8, "embeddings_table": NEXT}


@pytest.fixture(scope="module")
def inputs(spark, tmp_path_factory):
    """Synthetic embeddings (+ bad rows) and a codebook for the encode, and the first version of
    the table the killed driver writes; made on local[2], since the faults are those of the
    cluster application."""
    from hourglass.stages import pipeline

    work = tmp_path_factory.mktemp("faults")
    root = work / "tables"
    pipeline.run(spark, pipeline.PipelineConfig.from_dict({"output_root": str(root), "steps": [
        # four files of ~16 MB: four encode tasks, two per executor
        {"stage": "synthesize", "num_items": N, "dim": DIM, "num_clusters": 200,
         "zipf_exponent": 1.1, "seed": 3, "block_size": 50_000, "partitions": 4},
        {"stage": "train_codebooks", "method": "rq_kmeans", "num_layers": L, "codebook_size": M,
         "sample_size": 20_000, "kmeans_iters": 2, "seed": 5},
        {"stage": "synthesize", **NEXT_PARAMS}]}))
    rows = [(k, v, "bad") for k, v in BAD.items()]
    (spark.createDataFrame(rows, "item_id string, embedding array<float>, model string")
     .write.format("delta").mode("append").save(str(root / "item_embeddings")))
    return work, root


def _reference_codes(root: Path) -> dict[str, list[int]]:
    from hourglass.quant.artifact import load_artifact, resolve_artifact
    from hourglass.quant.kernel import encode_greedy

    emb = read_delta(root / "item_embeddings")
    emb = emb[~emb["item_id"].isin(list(BAD))]
    art = load_artifact(resolve_artifact(str(root / "codebooks")))
    X = np.stack(emb["embedding"].to_numpy()).astype(np.float32)
    codes = encode_greedy(X, art.codebooks).codes
    return dict(zip(emb["item_id"], map(list, codes), strict=True))


def _check_sids(root: Path, want: dict[str, list[int]]) -> dict[str, int]:
    sids = read_delta(root / "item_sids")
    assert sids["item_id"].is_unique, "an item was written twice"
    assert len(sids) == len(want)
    got = dict(zip(sids["item_id"], (list(c) for c in sids["codes"]), strict=True))
    assert got == want
    q = read_delta(root / "quarantine")
    q = q[q["stage"] == "encode_items"]
    assert sorted(q["item_id"]) == sorted(BAD)
    assert len(want) + len(BAD) == N + len(BAD) == len(sids) + len(q)  # input = written + quar.
    return {"rows_in": N + len(BAD), "encoded": len(sids), "quarantined": len(q)}


def _committed(table: Path) -> bool:
    return (table / "_delta_log" / f"{0:020d}.json").is_file()


def test_executor_then_driver_killed(standalone_cluster, inputs, spark):
    """One application: an executor JVM is killed (`kill -9`) while `encode_items` runs, and the
    job still succeeds through task retry with every item once and the reference codes; then
    the driver (spark-submit's JVM and its Python) is killed while the executors write a new
    version of a table: nothing is committed, the table reads as before, and a re-run commits
    the same content. The re-run is the same stage on the test's local[2] session: what it must
    show is that the next writer commits cleanly past the dead driver's files."""
    from deltalake import DeltaTable

    from hourglass.stages import synthesize

    work, root = inputs
    next_dir = root / NEXT
    want_next = read_delta(next_dir).sort_values("item_id").reset_index(drop=True)
    next_version, files_before = DeltaTable(str(next_dir)).version(), set(
        next_dir.glob("*.parquet"))
    config = work / "faults.yaml"
    config.write_text(yaml.safe_dump({"output_root": str(root), "steps": [
        {"stage": "encode_items"}, {"stage": "synthesize", **NEXT_PARAMS}]}))
    events = work / "events"
    before = set(standalone_cluster.executor_pids())
    job = submit("pipeline", ["--config", str(config)],
                 standalone_cluster.submit_env(event_log=events), work)

    # 1. An executor, once both run the encode pass's Python workers.
    _wait_for(job, lambda: len({p.ppid() for p in standalone_cluster.python_workers()}) >= 2,
              600, "the encode pass on both executors")
    time.sleep(5)
    victim = sorted(set(standalone_cluster.executor_pids()) - before)[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    # 2. The driver, once encode_items has committed and the write of the next table has begun
    # (Parquet files of its new, uncommitted version appear as the write tasks run).
    _wait_for(job, lambda: _committed(root / "item_sids"), 900, "the encode commit")
    encode_done = time.monotonic() - killed_at
    _wait_for(job, lambda: set(next_dir.glob("*.parquet")) - files_before, 600,
              "the write of the next table", every=0.2)
    os.killpg(job.proc.pid, signal.SIGKILL)  # the spark-submit JVM and its Python driver
    job.proc.wait(timeout=60)
    assert job.proc.returncode == -signal.SIGKILL
    orphans = set(next_dir.glob("*.parquet")) - files_before

    log = _events(events)
    lost = [e for e in log if e["Event"] == "SparkListenerTaskEnd"
            and e["Task End Reason"]["Reason"] == "ExecutorLostFailure"]
    removed = [e for e in log if e["Event"] == "SparkListenerExecutorRemoved"]
    added = [e for e in log if e["Event"] == "SparkListenerExecutorAdded"]
    assert lost, "the kill hit no running task: nothing was retried"
    assert len(removed) >= 1 and len(added) >= 3  # two at start, a replacement after the kill
    retried = {(e["Stage ID"], e["Task Info"]["Index"]) for e in lost}
    succeeded = {(e["Stage ID"], e["Task Info"]["Index"]) for e in log
                 if e["Event"] == "SparkListenerTaskEnd"
                 and e["Task End Reason"]["Reason"] == "Success"}
    # Lost tasks were rerun to success (or their stage was resubmitted as a new attempt).
    assert retried <= succeeded or any(e["Event"] == "SparkListenerStageSubmitted"
                                       and e["Stage Info"]["Stage Attempt ID"] > 0 for e in log)
    counts = _check_sids(root, _reference_codes(root))

    def content() -> pd.DataFrame:
        return read_delta(next_dir).sort_values("item_id").reset_index(drop=True)

    assert DeltaTable(str(next_dir)).version() == next_version, "a killed write must not commit"
    pd.testing.assert_frame_equal(content(), want_next)  # readable at its last version

    local_cfg = synthesize.SynthesizeConfig.from_dict({"output_root": str(root), **NEXT_PARAMS})
    rerun = synthesize.run(spark, local_cfg)
    assert rerun.rows == NEXT_PARAMS["num_items"]
    assert DeltaTable(str(next_dir)).version() == next_version + 1
    pd.testing.assert_frame_equal(content(), want_next)  # the re-run converges to the same content
    live = {Path(f).name for f in DeltaTable(str(next_dir)).file_uris()}
    assert not {p.name for p in orphans} & live, "the killed write's files must stay unreferenced"
    print(json.dumps({"lost_tasks": len(lost), "executors_added": len(added),
                      "encode_committed_s_after_executor_kill": round(encode_done, 1),
                      "rows": counts, "orphan_files_left_by_the_killed_driver": len(orphans)}))
