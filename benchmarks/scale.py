"""One large run of the SID stages (issue #12, item 4): synthesize → train_codebooks (on a
sample) → encode_items → hourglass_stats → rewrite_sids, by default on 10^8 synthetic items.

Per stage it records wall time, rows/s per core, peak JVM and Python-worker RSS (/proc), the driver
process's own peak (the trie export builds there), spill and the largest task's peak execution
memory (event log), and the size on disk of the table it wrote; then the cluster size for 10^8 and
10^9 items from the measured per-core rates. The defaults keep 10^8 rows on a small disk: D = 32
(float32 embeddings, about 13 GB of Parquet), L = 3, M = 256, Zstandard Parquet, 400 input
partitions (about 250k rows each, so a Python worker holds one Arrow batch at a time and the JVM
never a partition). rewrite_sids writes one strategy (`topk(16)`) and exports its trie; the
interactions for popularity are not generated (collision suffixes then order by item_id alone).

    .venv/bin/python benchmarks/scale.py                       # 10^8 items: hours on 2 cores
    .venv/bin/python benchmarks/scale.py --items 1000000       # the same path, minutes
Writes benchmarks/results/scale.json (and prints each stage as it ends). Linux only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
from pathlib import Path

from probes import dir_mb, event_log_conf, measured, spill, table_mb

RESULTS = Path(__file__).resolve().parent / "results"


def stages(args, root: str):
    """(name, table written, run) for each stage, in pipeline order."""
    from hourglass.stages import (
        encode_items,
        hourglass_stats,
        rewrite_sids,
        synthesize,
        train_codebooks,
    )

    def syn(spark):
        return synthesize.run(spark, synthesize.SynthesizeConfig(
            output_root=root, num_items=args.items, dim=args.dim, partitions=args.partitions,
            num_clusters=1000, zipf_exponent=1.1, spread=0.35, seed=0, block_size=8192))

    def train(spark):
        return train_codebooks.run(spark, train_codebooks.TrainCodebooksConfig(
            output_root=root, num_layers=3, codebook_size=args.M,
            sample_size=args.sample_size, kmeans_iters=20))

    def encode(spark):
        return encode_items.run(spark, encode_items.EncodeItemsConfig(output_root=root))

    def stats(spark):
        return hourglass_stats.run(spark, hourglass_stats.HourglassStatsConfig(
            output_root=root, run_id="scale", tracking=False))

    def rewrite(spark):
        return rewrite_sids.run(spark, rewrite_sids.RewriteSidsConfig(
            output_root=root, strategies=args.strategies.split(";"), popularity_table="",
            num_layers=3, codebook_size=args.M))

    return [("synthesize", "item_embeddings", syn), ("train_codebooks", "codebooks", train),
            ("encode_items", "item_sids", encode), ("hourglass_stats", STATS_TABLES, stats),
            ("rewrite_sids", "item_sids_rw", rewrite)]


STATS_TABLES = ["sid_layer_stats", "sid_summary", "sid_flow"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--M", type=int, default=256)
    ap.add_argument("--sample_size", type=int, default=200_000, help="codebook training rows")
    ap.add_argument("--partitions", type=int, default=400, help="partitions of the embeddings")
    ap.add_argument("--strategies", default="topk(16)", help="rewrite strategies, ';'-separated")
    ap.add_argument("--work_dir", default="/tmp/hourglass-scale")
    ap.add_argument("--keep", action="store_true", help="keep the tables")
    ap.add_argument("--resume", action="store_true",
                    help="continue a run that stopped: keep the stages --out already records "
                         "(their tables are in --work_dir) and run the rest")
    ap.add_argument("--until", default="",
                    help="stop after this stage (e.g. hourglass_stats); empty: run them all")
    ap.add_argument("--out", default=str(RESULTS / "scale.json"))
    args = ap.parse_args()
    from hourglass.spark.session import get_spark

    work = Path(args.work_dir)
    root, events = str(work / "tables"), str(work / "eventlog")
    conf = {**event_log_conf(events), "spark.sql.parquet.compression.codec": "zstd",
            "spark.sql.shuffle.partitions": str(max(8, args.partitions // 2))}
    spark = get_spark("hourglass-scale", conf=conf)
    cores = spark.sparkContext.defaultParallelism
    out = {"items": args.items, "dim": args.dim, "M": args.M, "L": 3, "cores": cores,
           "partitions": args.partitions, "strategies": args.strategies,
           "load_avg_start": os.getloadavg(), "stages": [], "windows": {}}
    if args.resume:
        out = resumed(out, Path(args.out), root)
    windows = out["windows"]
    for name, table, fn in stages(args, root):
        if name in windows:
            print(f"{name}: kept from {args.out}", flush=True)
            continue
        _, start, end, memory = measured(spark, lambda fn=fn: fn(spark))
        windows[name] = (start, end)
        # training reads its sample; every other stage every item
        rows = min(args.sample_size, args.items) if name == "train_codebooks" else args.items
        tables = [table] if isinstance(table, str) else table
        row = {"stage": name, "seconds": round(end - start, 1), "rows": rows,
               "rows_per_s_per_core": round(rows / (end - start) / cores), **memory,
               # the trie export builds in this process; a high-water mark over the run so far
               "driver_python_peak_mb": round(
                   resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "table": "+".join(tables),
               # the current version; the folder also keeps versions a --resume replaced
               "table_mb": round(sum(table_mb(spark, f"{root}/{t}") for t in tables), 1),
               "dir_mb": round(sum(dir_mb(f"{root}/{t}") for t in tables), 1)}
        out["stages"].append(row)
        print(json.dumps(row), flush=True)
        write(out, args.out)  # a stage that fails later keeps what ran (--resume)
        if name == args.until:
            break
    spark.stop()
    spilled = spill(events, windows)
    for row in out["stages"]:
        row.update(spilled[row["stage"]])
    out["sizing"] = sizing(out["stages"])
    out["load_avg_end"] = os.getloadavg()
    out["disk_total_mb"] = dir_mb(root)
    report(out)
    write(out, args.out)
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def write(out: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(out, indent=1))


def resumed(fresh: dict, path: Path, root: str) -> dict:
    """The stages an earlier run of the same shape recorded, whose tables are still there.

    Their windows stay as recorded, so spill is read for them from that run's event log (in the
    same work dir); a different shape or a missing table is an error, not a silent restart.
    """
    old = json.loads(path.read_text())
    shape = ("items", "dim", "M", "L", "partitions", "strategies")
    if any(old[k] != fresh[k] for k in shape):
        raise SystemExit(f"{path} records another run: {[(k, old[k]) for k in shape]}")
    for row in old["stages"]:
        missing = [t for t in row["table"].split("+") if not Path(root, t).is_dir()]
        if missing:
            raise SystemExit(f"cannot resume: {row['stage']}'s tables {missing} are gone")
    old["resumed_at_load_avg"] = os.getloadavg()
    return old


def sizing(stage_rows: list[dict]) -> list[dict]:
    """Core-hours per stage for 10^8 and 10^9 items at the measured per-core rate, and the
    cores that finish the item stages (all but training, which runs on the driver) in 1 h."""
    out = []
    for n in (1e8, 1e9):
        per_stage = {r["stage"]: n / r["rows_per_s_per_core"] / 3600 for r in stage_rows
                     if r["stage"] not in ("synthesize", "train_codebooks")}
        total = sum(per_stage.values())
        out.append({"items": n, "core_hours": {k: round(v, 2) for k, v in per_stage.items()},
                    "core_hours_total": round(total, 2), "cores_for_1h": math.ceil(total)})
    return out


def report(out: dict) -> None:
    cols = ["stage", "seconds", "rows", "rows_per_s_per_core", "peak_jvm_mb", "peak_worker_mb",
            "driver_python_peak_mb",
            "memory_spill_mb", "disk_spill_mb", "peak_task_execution_mb", "table", "table_mb"]
    print("  ".join(cols))
    for r in out["stages"]:
        print("  ".join(str(r.get(c)) for c in cols))
    for s in out["sizing"]:
        print(f"{s['items']:.0e} items: {s['core_hours_total']} core-hours "
              f"({s['cores_for_1h']} cores for 1 h): {s['core_hours']}")


if __name__ == "__main__":
    main()
