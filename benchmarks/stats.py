"""Hourglass statistics at scale: the benchmark, the synthetic verification, the real sample.

    .venv/bin/python benchmarks/stats.py bench  [--sizes 1000000,10000000] [--M 4096]
    .venv/bin/python benchmarks/stats.py verify [--items 1000000] [--M 256]
    .venv/bin/python benchmarks/stats.py real   [--config configs/demo.yaml]

bench: the stats job (every statistic, all tables written) on SID tables of 1M and 10M rows,
against a plain `groupBy(codes[l]).count()` per layer on the same table in the same process,
run (after one untimed warm-up) before and after the job; the ratio uses their mean. The job
gets its own untimed warm-up on `--warmup_rows` rows first. The job reads the table's Parquet
files itself (`direct_read`, the default for a path table); also timed: the same job reading
through Spark (`spark_read_job`), and one pass that reads and validates through Spark and hands
the first scan's columns to Python to do nothing (`python_pass`: that read's own cost). Codes
are generated inside Spark with a long-tailed layer 2 (the statistics' cost depends on the
code distribution, not on how the codes were made).
verify: Zipf-clustered embeddings (hourglass.quant.synthetic) quantized with the project's
RQ k-means and capacity-balanced RQ (hourglass.quant), L=3; both stats runs, the 1M-item numpy
reference compared table for table, and the report.
real: the demo pipeline's steps up to the rewrite on the bundled sample, then every stats run
and the report.
Each mode prints a table and writes benchmarks/results/stats_<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
LAYER_COLS = ["layer", "n_tokens", "used_tokens", "norm_entropy", "gini", "std", "utilization",
              "top1_share", "distinct_prefixes", "path_fill", "mean_fanout", "max_fanout",
              "norm_mean", "norm_p50"]


def session():
    from hourglass.spark.session import get_spark

    return get_spark("hourglass-bench-stats", conf={"spark.driver.memory": "8g"})


def write_sids_spark(spark, n: int, M: int, ref: str) -> None:
    """n rows of (codes, residual_norms): layers 1 and 3 uniform, layer 2 power-law skewed."""
    from hourglass.spark.synthetic_tables import synthetic_item_sids
    from hourglass.spark.tables import write_table

    write_table(synthetic_item_sids(spark, n, M), ref, {"job": "benchmarks/stats.py"})


def baseline(spark, ref: str, L: int = 3) -> float:
    from pyspark.sql import functions as F

    df = spark.read.format("delta").load(ref)
    start = time.perf_counter()
    for layer in range(L):
        df.groupBy(F.col("codes")[layer]).count().collect()
    return time.perf_counter() - start


def _count_rows(batches):
    import pyarrow as pa

    n = 0
    for b in batches:
        n += b.num_rows
    yield pa.RecordBatch.from_pydict({"n": [n]})


def python_pass(spark, ref: str, L: int, M: int) -> float:
    """What the job's first scan pays before any statistic: read and validate every row, and
    hand the columns it uses to Python (`mapInArrow` to a no-op that counts rows)."""
    from hourglass.spark.stats.input import fixed_frame
    from hourglass.spark.stats.scan.driver import scan_input

    df = spark.read.format("delta").load(ref)
    frame = scan_input(fixed_frame(df, L, M, ("codebook_id",)), "codebook_id")
    start = time.perf_counter()
    frame.mapInArrow(_count_rows, "n LONG").collect()
    return time.perf_counter() - start


def bench(args) -> dict:
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run

    spark = session()
    work = Path(args.work or tempfile.mkdtemp(prefix="hourglass-bench-stats-"))
    rows = []
    if args.warmup_rows:  # untimed, as the baseline's warm-up: Python workers, JIT, Delta
        root = str(work / f"warmup{args.warmup_rows}")
        if not Path(root, "item_sids", "_delta_log").exists():
            write_sids_spark(spark, args.warmup_rows, args.M, f"{root}/item_sids")
        run(spark, HourglassStatsConfig(output_root=root, run_id="warmup", num_layers=3,
                                        num_codes=args.M))
    for n in [int(s) for s in args.sizes.split(",")]:
        root = str(work / f"n{n}")
        if not Path(root, "item_sids", "_delta_log").exists():
            write_sids_spark(spark, n, args.M, f"{root}/item_sids")
        baseline(spark, f"{root}/item_sids")  # warm-up: JIT, Delta snapshot, page cache
        before = baseline(spark, f"{root}/item_sids")
        start = time.perf_counter()
        res = run(spark, HourglassStatsConfig(output_root=root, run_id="bench", num_layers=3,
                                              num_codes=args.M))
        job = time.perf_counter() - start
        after = baseline(spark, f"{root}/item_sids")
        start = time.perf_counter()  # the same job reading the table through Spark
        run(spark, HourglassStatsConfig(output_root=root, run_id="bench_spark_read",
                                        num_layers=3, num_codes=args.M, direct_read=False))
        spark_read = time.perf_counter() - start
        floor = python_pass(spark, f"{root}/item_sids", 3, args.M)
        base = (before + after) / 2
        rows.append({"rows": n, "M": args.M, "stats_job_s": round(job, 1),
                     "groupby_count_s": round(base, 1), "groupby_before_s": round(before, 1),
                     "groupby_after_s": round(after, 1), "ratio": round(job / base, 2),
                     "spark_read_job_s": round(spark_read, 1),
                     "spark_read_ratio": round(spark_read / base, 2),
                     "python_pass_s": round(floor, 1),
                     "python_pass_ratio": round(floor / base, 2),
                     "stats_rows_per_s": round(n / job), "items": res.items,
                     "distinct_sids": None})
        rows[-1]["distinct_sids"] = int(spark.read.format("delta").load(f"{root}/sid_summary")
                                        .where("run_id = 'bench'").first()["n_sids"])
    print(pd.DataFrame(rows).to_string(index=False))
    return {"mode": "bench", "cores": os.cpu_count(), "load_avg": os.getloadavg(), "runs": rows}


def rq_codes(X: np.ndarray, M: int, sample: int, balanced: bool, seed: int):
    from hourglass.quant.balanced import balanced_trainer
    from hourglass.quant.kernel import encode_greedy
    from hourglass.quant.kmeans import train_residual_kmeans

    rng = np.random.default_rng(seed)
    S = X[rng.choice(len(X), min(sample, len(X)), replace=False)]
    fit = train_residual_kmeans(S, 3, M, niter=20, seed=seed,
                                layer_trainer=balanced_trainer() if balanced else None)
    enc = encode_greedy(X, fit.codebooks)
    return enc.codes, enc.residual_norms, fit.distortion


def write_sids_pandas(spark, ids, codes, norms, codebook_id: str, ref: str) -> None:
    from hourglass.spark.tables import write_table

    pdf = pd.DataFrame({"item_id": ids, "codes": list(codes.astype(np.int32)),
                        "residual_norms": list(norms.astype(np.float32)),
                        "codebook_id": codebook_id})
    df = spark.createDataFrame(pdf, "item_id STRING, codes ARRAY<INT>, "
                                    "residual_norms ARRAY<FLOAT>, codebook_id STRING")
    write_table(df.repartition(8), ref, {"job": "benchmarks/stats.py verify"})


def compare_reference(spark, root: str, run_id: str, ids, codes, norms, M: int) -> dict:
    """The 1M-item numpy reference against the tables the Spark job wrote."""
    from pandas.testing import assert_frame_equal

    from hourglass.spark.segments import segment_tags
    from hourglass.spark.stats.io import read_runs
    from hourglass.spark.tables import latest_version
    from hourglass.stats.reference import reference_tables, sids_from_codes
    from hourglass.stats.summary import RunInfo

    start = time.perf_counter()
    table = f"{root}/item_sids_{run_id}"
    info = RunInfo(run_id, "fixed", 3, M, "config", codebook_id=run_id, input_table=table,
                   input_version=latest_version(spark, table))
    want = reference_tables(ids, sids_from_codes(codes), norms, info)
    checked = {}
    for table, keys in (("sid_summary", ["layer"]), ("sid_layer_stats", ["layer", "rank"]),
                        ("sid_flow", ["src_layer", "src_token", "dst_layer", "dst_token"])):
        got = read_runs(spark, f"{root}/{table}", [run_id]).sort_values(keys, ignore_index=True)
        w = want[table].sort_values(keys, ignore_index=True)
        for col in ("fanout_dist", "sid_size_dist"):
            if col in got:
                got[col] = [[tuple(d.values()) if isinstance(d, dict) else tuple(d) for d in v]
                            for v in got[col]]
                w[col] = [[tuple(d) for d in v] for v in w[col]]
        if "norm_hist" in got:
            got["norm_hist"] = [list(v) for v in got["norm_hist"]]
        assert_frame_equal(got[w.columns], w, check_dtype=False, rtol=1e-9, obj=table)
        checked[table] = len(w)
    seg = segment_tags(spark, f"{root}/sid_summary", f"{root}/sid_layer_stats", run_id,
                       2).frame.toPandas().sort_values("item_id", ignore_index=True)
    w = want["item_segments"].sort_values("item_id", ignore_index=True)
    assert seg["item_id"].tolist() == w["item_id"].tolist()
    assert seg["segment"].tolist() == w["segment"].tolist()
    checked["item_segments"] = len(seg)
    return {"rows_compared": checked, "seconds": round(time.perf_counter() - start, 1)}


def verify(args) -> dict:
    from hourglass.quant.synthetic import synthetic_block
    from hourglass.stages.hourglass_stats import HourglassStatsConfig, run
    from hourglass.stages.report import ReportConfig, build_report

    spark = session()
    root = args.work or tempfile.mkdtemp(prefix="hourglass-verify-stats-")
    _, X = synthetic_block(0, args.items, args.items, args.dim, args.clusters, args.zipf,
                           args.spread, args.seed)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"syn_{i}" for i in range(args.items)]
    out = {"mode": "verify", "items": args.items, "M": args.M, "dim": args.dim,
           "clusters": args.clusters, "zipf": args.zipf, "runs": {}}
    for name, balanced in (("rq_kmeans", False), ("rq_balanced", True)):
        codes, norms, distortion = rq_codes(X, args.M, args.sample, balanced, args.seed)
        write_sids_pandas(spark, ids, codes, norms, name, f"{root}/item_sids_{name}")
        res = run(spark, HourglassStatsConfig(output_root=root, run_id=name, num_layers=3,
                                              num_codes=args.M, input_table=f"item_sids_{name}"))
        layers = pd.DataFrame(res.layers)
        print(f"\n{name}: {res.items} items, middle layer collapsed: "
              f"{res.middle_layer_collapsed}\n{layers.to_string(index=False)}")
        out["runs"][name] = {"items": res.items, "distortion": distortion,
                             "middle_layer_collapsed": res.middle_layer_collapsed,
                             "layers": res.layers}
        if name == "rq_kmeans" and args.reference:
            out["runs"][name]["reference"] = compare_reference(spark, root, name, ids, codes,
                                                               norms, args.M)
            print(f"numpy reference equal: {out['runs'][name]['reference']}")
    report = build_report(spark, ReportConfig(output_root=root, report_dir=str(
        RESULTS / "stats_verify_report"), title=f"Synthetic long-tail, {args.items:,} items"))
    out["report"] = report
    print(f"report: {report}")
    return out


def real(args) -> dict:
    import yaml

    from hourglass.spark.stats.io import read_runs
    from hourglass.stages.pipeline import PipelineConfig
    from hourglass.stages.pipeline import run as run_pipeline
    from hourglass.stages.report import ReportConfig, build_report

    spark = session()
    root = args.work or tempfile.mkdtemp(prefix="hourglass-real-stats-")
    conf = yaml.safe_load(Path(args.config).read_text())
    keep = {"ingest", "embed_items", "train_codebooks", "encode_items", "hourglass_stats",
            "rewrite_sids"}
    steps = [s for s in conf["steps"] if s["stage"] in keep]
    results = run_pipeline(spark, PipelineConfig(output_root=f"{root}/tables", steps=steps))
    summary = read_runs(spark, f"{root}/tables/sid_summary")
    for run_id, rows in summary.groupby("run_id", sort=False):
        print(f"\n{run_id}:\n{rows.sort_values('layer')[LAYER_COLS].to_string(index=False)}")
    report = build_report(spark, ReportConfig(output_root=f"{root}/tables", report_dir=str(
        RESULTS / "stats_real_report"), title="Amazon Office sample"))
    print(f"report: {report}")
    stats_steps = [r for r in results if r.stage == "hourglass_stats"]
    return {"mode": "real", "config": args.config, "report": report,
            "stats_seconds": [r.seconds for r in stats_steps],
            "runs": {r.result.run_id: {"middle_layer_collapsed": r.result.middle_layer_collapsed,
                                       "items": r.result.items, "layers": r.result.layers}
                     for r in stats_steps}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["bench", "verify", "real"])
    p.add_argument("--sizes", default="1000000,10000000")
    p.add_argument("--warmup_rows", type=int, default=100_000,
                   help="bench: rows of an untimed job run first (0: none)")
    p.add_argument("--M", type=int, default=None, help="bench 4096, verify 256")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--zipf", type=float, default=1.1)
    p.add_argument("--spread", type=float, default=0.35)
    p.add_argument("--sample", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=int, default=1, help="verify: compare with numpy (0/1)")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--work", default="", help="folder for the Delta tables (default: a tmp dir)")
    args = p.parse_args()
    args.M = args.M or (4096 if args.mode == "bench" else 256)
    out = {"bench": bench, "verify": verify, "real": real}[args.mode](args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stats_{args.mode}.json"
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
