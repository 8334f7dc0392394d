"""The trie export of rewrite_sids: SIDs sorted by Spark's executors against sorted on the driver.

`build_tries` (what the stage runs) has the executors order the written SIDs, so the driver only
appends them to the trie, in order. The baseline is the export it replaced: the SIDs stream to
the driver in table order and the driver sorts them (`SidTrieBuilder`: a padded id matrix and
`np.lexsort`) before building. Each method runs in its own process, and the high-water mark
of the driver's Python is reset when the export starts, so its peak is that export's alone;
both must give the same arrays (compared by hash).
Input: an `item_sids_rw` table (`--table`, e.g. the one `scale.py --keep` leaves), else one made
here by rewrite_sids from synthetic item_sids (L=3, M=4096, long-tailed layer 2).

    .venv/bin/python benchmarks/trie_export.py --items 1000000
    .venv/bin/python benchmarks/trie_export.py --strategies topk_16 \
        --table /tmp/hourglass-scale/tables/item_sids_rw
Writes benchmarks/results/trie_export.json. Linux only (memory is read from /proc).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from probes import measured

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("executor_sort", "driver_sort")


def driver_sort(rw, names: list[str]) -> dict:
    """The replaced export: IPC blobs in table order, sorted and built on the driver."""
    from pyspark.sql import functions as F

    from hourglass.rewrite.trie import SidTrieBuilder
    from hourglass.spark.rewrite.tries import _ipc_blobs, build_from_blobs

    blobs = (rw.where(F.col("strategy").isin(names)).select("strategy", "tokens")
             .mapInArrow(_ipc_blobs, "strategy string, ipc binary"))
    return build_from_blobs(blobs, {name: SidTrieBuilder() for name in names})


def trie_hash(trie) -> str:
    digest = hashlib.sha256()
    for arr in (trie.offsets, trie.edge_tokens, trie.terminal):
        digest.update(arr.tobytes())
    digest.update("\n".join(trie.vocab).encode())
    return digest.hexdigest()[:16]


def _status_mb(field: str) -> float:
    status = Path("/proc/self/status").read_text()
    return round(int(status.split(f"{field}:")[1].split()[0]) / 1024, 1)


def child(args) -> None:
    """One export in this process; prints its figures as one JSON line."""
    from hourglass.spark.rewrite.tries import build_tries
    from hourglass.spark.session import get_spark

    spark = get_spark("trie-export-bench", conf={
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions)})
    rw = spark.read.format("delta").load(args.table)
    names = args.strategies.split(",")
    fn = build_tries if args.method == "executor_sort" else driver_sort
    Path("/proc/self/clear_refs").write_text("5")  # reset this process's high-water mark
    before = _status_mb("VmRSS")
    tries, start, end, memory = measured(spark, lambda: fn(rw, names))
    peak = _status_mb("VmHWM")
    out = {"method": args.method, "seconds": round(end - start, 1),
           "driver_python_peak_mb": peak, "driver_python_growth_mb": round(peak - before, 1),
           **memory,
           "tries": {n: {"n_sids": len(t), "n_nodes": t.n_nodes,
                         "arrays_mb": round(t.nbytes() / 2**20, 1), "sha": trie_hash(t)}
                     for n, t in tries.items()}}
    spark.stop()
    print("RESULT " + json.dumps(out), flush=True)


def make_table(args) -> str:
    """An item_sids_rw table from synthetic item_sids (not timed)."""
    from hourglass.spark.session import get_spark
    from hourglass.spark.synthetic_tables import synthetic_item_sids
    from hourglass.spark.tables import lineage, table_exists, write_table
    from hourglass.stages import rewrite_sids

    root = f"{args.work_dir}/tables"
    spark = get_spark("trie-export-bench-setup")
    if not table_exists(spark, f"{root}/item_sids_rw"):
        write_table(synthetic_item_sids(spark, args.items, args.M), f"{root}/item_sids",
                    lineage("benchmarks/trie_export.py", "", {}))
        rewrite_sids.run(spark, rewrite_sids.RewriteSidsConfig(
            output_root=root, strategies=["none", "topk(16)"], popularity_table="",
            num_layers=3, codebook_size=args.M))
    spark.stop()
    return f"{root}/item_sids_rw"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--table", default="", help="an item_sids_rw table; empty: make one")
    ap.add_argument("--strategies", default="none,topk_16", help="strategy names, ','-separated")
    ap.add_argument("--items", type=int, default=1_000_000, help="items of the table made here")
    ap.add_argument("--M", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=1, help="runs of each method, order alternating")
    ap.add_argument("--shuffle_partitions", type=int, default=200)
    ap.add_argument("--work_dir", default="/tmp/hourglass-bench-trie-export")
    ap.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--out", default=str(RESULTS / "trie_export.json"))
    args = ap.parse_args()
    if args.method:
        return child(args)
    table = args.table or make_table(args)
    runs = []
    for rep in range(args.reps):
        for method in (METHODS if rep % 2 == 0 else METHODS[::-1]):
            cmd = [sys.executable, __file__, "--method", method, "--table", table,
                   "--strategies", args.strategies,
                   "--shuffle_partitions", str(args.shuffle_partitions)]
            t0 = time.time()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"{method} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
            run = {**json.loads(lines[-1][len("RESULT "):]), "rep": rep,
                   "process_seconds": round(time.time() - t0, 1)}
            runs.append(run)
            print(json.dumps(run), flush=True)
    hashes = {json.dumps({n: t["sha"] for n, t in r["tries"].items()}) for r in runs}
    if len(hashes) != 1:
        sys.exit(f"the methods built different tries: {hashes}")
    out = {"table": table, "strategies": args.strategies, "runs": runs, "same_tries": True}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        out[method] = {key: [r[key] for r in mine] for key in
                       ("seconds", "driver_python_peak_mb", "driver_python_growth_mb")}
    print(f"{'method':<14} {'seconds':>16} {'driver Python peak MB':>24} {'growth MB':>20}")
    for method in METHODS:
        m = out[method]
        print(f"{method:<14} {str(m['seconds']):>16} {str(m['driver_python_peak_mb']):>24} "
              f"{str(m['driver_python_growth_mb']):>20}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"same tries: yes; wrote {args.out}")


if __name__ == "__main__":
    main()
