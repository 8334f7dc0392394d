"""rewrite_sids and build_sft_data at scale (issue #12, item 3): per-item cost and memory by size.

Synthetic inputs from `hourglass.spark.synthetic_tables`: `item_sids` (L=3, M=4096, layer 2
long-tailed: its top token holds ~44% of items, the top 16 ~70%) and `interactions` (users =
items x --users_per_item, lengths 5 + an exponential tail of mean --mean_length, Zipf(1) item
popularity). For each size, in one session after a warm-up on 100k items: rewrite_sids with
three strategies (popularity from the interactions for the collision suffixes, tries exported),
then build_sft_data for two of them. Recorded per stage and size: wall time, µs per item per
core (the figure that must stay flat from 1M to 10M), rows written, peak JVM and Python-worker
RSS, spill and the largest task's peak execution memory (event log), table size on disk.

    .venv/bin/python benchmarks/rewrite_sft.py                     # 1M and 10M items
    .venv/bin/python benchmarks/rewrite_sft.py --sizes 200000 --keep
Writes benchmarks/results/rewrite_sft.json. Linux only (memory is read from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from probes import event_log_conf, measured, spill, table_mb

RESULTS = Path(__file__).resolve().parent / "results"
WARMUP_ITEMS = 100_000
REWRITE = ["none", "drop_layer(2)", "topk(16)"]
SFT = ["none", "topk(16)"]


def write_inputs(spark, root: str, n: int, args) -> dict:
    from hourglass.spark.synthetic_tables import synthetic_interactions, synthetic_item_sids
    from hourglass.spark.tables import lineage, read_table, table_exists, write_table

    users = max(1, int(n * args.users_per_item))
    if args.reuse and table_exists(spark, f"{root}/interactions"):  # kept by an earlier --keep
        return {"items": read_table(spark, f"{root}/item_sids").df.count(), "users": users,
                "interactions": read_table(spark, f"{root}/interactions").df.count()}

    record = lineage("benchmarks/rewrite_sft.py", "", {})
    sids = write_table(synthetic_item_sids(spark, n, args.M), f"{root}/item_sids", record)
    inter = write_table(synthetic_interactions(spark, n, users, mean_length=args.mean_length),
                        f"{root}/interactions", record)
    return {"items": sids.rows, "users": users, "interactions": inter.rows}


def timed_stage(spark, name: str, fn, windows: dict, cores: int, items: int) -> dict:
    result, start, end, memory = measured(spark, fn)
    windows[name] = (start, end)
    wall = end - start
    return {"stage": name, "seconds": round(wall, 2),
            "us_per_item_per_core": round(1e6 * wall * cores / items, 2), **memory,
            "result": result}


def run_size(spark, root: str, n: int, args, windows: dict, tag: str) -> list[dict]:
    from hourglass.stages import build_sft_data, rewrite_sids

    cores = spark.sparkContext.defaultParallelism
    if args.items_per_shuffle_partition:  # as a cluster would: partitions grow with the data
        parts = max(4, -(-n // args.items_per_shuffle_partition))
        spark.conf.set("spark.sql.shuffle.partitions", str(parts))
    rw_cfg = rewrite_sids.RewriteSidsConfig(output_root=root, strategies=REWRITE, num_layers=3,
                                            codebook_size=args.M)
    sft_cfg = build_sft_data.BuildSftDataConfig(output_root=root, strategies=SFT,
                                                history_max_items=args.history)
    out = []
    if "rewrite_sids" in args.stages:
        rw = timed_stage(spark, f"rewrite_sids@{tag}", lambda: rewrite_sids.run(spark, rw_cfg),
                         windows, cores, n)
        r = rw.pop("result")
        rw.update(rows_written=len(REWRITE) * r.items_valid,
                  distinct_sids={o.strategy: o.distinct_sids for o in r.outcomes},
                  table_mb=table_mb(spark, f"{root}/item_sids_rw"))
        out.append(rw)
    if "build_sft_data" not in args.stages:
        return out
    sft = timed_stage(spark, f"build_sft_data@{tag}",
                      lambda: build_sft_data.run(spark, sft_cfg), windows, cores, n)
    s = sft.pop("result")
    examples = sum(c.train + c.valid + c.test for c in s.strategies)
    sft.update(rows_written=examples, interactions=s.strategies[0].interactions_in,
               us_per_interaction_per_core=round(
                   1e6 * sft["seconds"] * cores / s.strategies[0].interactions_in, 2),
               table_mb=table_mb(spark, f"{root}/sft_examples"))
    return [*out, sft]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--M", type=int, default=4096)
    ap.add_argument("--users_per_item", type=float, default=0.1)
    ap.add_argument("--mean_length", type=float, default=9.0)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--items_per_shuffle_partition", type=int, default=0,
                    help="set spark.sql.shuffle.partitions to items / this (at least 4) for "
                         "each size; 0 keeps the session's (4 in local mode)")
    ap.add_argument("--work_dir", default="/tmp/hourglass-bench-rewrite-sft")
    ap.add_argument("--keep", action="store_true", help="keep the tables")
    ap.add_argument("--stages", default="rewrite_sids,build_sft_data",
                    help="stages to time; build_sft_data alone needs item_sids_rw kept in "
                         "--work_dir by an earlier --keep run (with --reuse)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep inputs an earlier --keep run left in --work_dir")
    ap.add_argument("--out", default=str(RESULTS / "rewrite_sft.json"))
    args = ap.parse_args()
    args.stages = args.stages.split(",")
    from hourglass.spark.session import get_spark

    work = Path(args.work_dir)
    events = str(work / "eventlog")
    spark = get_spark("hourglass-bench-rewrite-sft", conf=event_log_conf(events))
    sizes = [int(x) for x in args.sizes.split(",")]
    inputs = {n: write_inputs(spark, str(work / f"n{n}"), n, args) for n in [WARMUP_ITEMS, *sizes]}
    windows: dict = {}
    run_size(spark, str(work / f"n{WARMUP_ITEMS}"), WARMUP_ITEMS, args, windows, "warmup")
    rows = []
    for n in sizes:
        for r in run_size(spark, str(work / f"n{n}"), n, args, windows, str(n)):
            rows.append({"items": n, **inputs[n], **r})
            print(json.dumps(rows[-1]), flush=True)
    spark.stop()
    spilled = spill(events, windows)
    for r in rows:
        r.update(spilled[r["stage"]])
    report(rows)
    summary = {"cpus": os.cpu_count(), "load_avg_end": os.getloadavg(), "args": vars(args),
               "rows": rows, "flatness": flatness(rows)}
    print(json.dumps(summary["flatness"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def flatness(rows: list[dict]) -> dict:
    """Per stage: per-item cost at the largest size over the smallest (target within 15%)."""
    out = {}
    for stage in ("rewrite_sids", "build_sft_data"):
        mine = sorted((r for r in rows if r["stage"].startswith(stage)), key=lambda r: r["items"])
        if len(mine) > 1:
            out[stage] = {"from": mine[0]["items"], "to": mine[-1]["items"],
                          "cost_ratio": round(mine[-1]["us_per_item_per_core"]
                                              / mine[0]["us_per_item_per_core"], 3)}
    return out


def report(rows: list[dict]) -> None:
    cols = ["stage", "items", "interactions", "seconds", "us_per_item_per_core",
            "rows_written", "peak_jvm_mb", "peak_worker_mb", "memory_spill_mb",
            "disk_spill_mb", "peak_task_execution_mb", "table_mb"]
    print("  ".join(cols))
    for r in rows:
        print("  ".join(str(r.get(c)) for c in cols))


if __name__ == "__main__":
    main()
