"""One writer of `test_concurrent_writes`: a process with its own local Spark session (its own
JVM), as a scheduler's parallel branch has, writing its stage's quarantine slice through the
project's writer into each round's table at the same moment as the other writer.

Rounds go in pairs on one table: the even round races to create it, the odd one re-writes both
slices of the existing table. Each round's outcome (and the retries it took) goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from hourglass.logs import log
from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.session import get_spark
from hourglass.spark.tables import lineage

SCHEMA = "item_id STRING, stage STRING, reason STRING, payload STRING"


class RetryCount(logging.Handler):
    """Counts the retries `retry_commit_conflicts` logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "conflicted with a concurrent writer" in record.getMessage()


def barrier(folder: Path, round_: int, me: str, peers: list[str], timeout_s: float = 300) -> None:
    """Wait until every writer is ready for this round, so their commits race."""
    (folder / f"ready-{round_}-{me}").touch()
    deadline = time.monotonic() + timeout_s
    while not all((folder / f"ready-{round_}-{p}").exists() for p in peers):
        if time.monotonic() > deadline:
            raise TimeoutError(f"round {round_}: the other writer never got ready")
        time.sleep(0.002)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", required=True)
    ap.add_argument("--peers", required=True, help="comma-separated stages of all writers")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--table_root", required=True)
    ap.add_argument("--sync", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    retries = RetryCount()
    log.addHandler(retries)
    spark = get_spark(f"writer-{args.stage}", master="local[1]", testing=True)
    results = []
    for r in range(args.rounds):
        ref = f"{args.table_root}/round-{r // 2}"
        rows = [(f"{args.stage}-{i}", args.stage, f"round {r}", json.dumps({"round": r}))
                for i in range(args.rows)]
        df = spark.createDataFrame(rows, SCHEMA)
        before = retries.count
        barrier(Path(args.sync), r, args.stage, args.peers.split(","))
        try:
            commit = write_quarantine(df, ref, args.stage, lineage("writer", args.stage, {}))
            results.append({"round": r, "ok": True, "rows": commit.rows,
                            "retries": retries.count - before})
        except Exception as exc:  # recorded: the test reports every round's failure
            results.append({"round": r, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    Path(args.out).write_text(json.dumps(results))
    spark.stop()


if __name__ == "__main__":
    main()
