"""Recipe sweep (issue 15, item 3): validation Recall@10 of recipe variants at equal CPU budget.

Every point fine-tunes one SID strategy (default `none`) on one dataset under the same wall
budget on this host, with checkpoint selection on validation Recall@10 (`select_by:
valid_recall`), and records the best validation figure, its step, seconds per step and the
epochs trained. Nothing here reads the test split: the recipe `quality.py` reports on test is
chosen from these figures. A point changes either the SID side (item text fields, codebook size,
history length: its own tables, built once by the recipe's SID stages; the train window
stride: one more SFT table beside the full one) or the training side
(model shape, learning rate, warm-up, batch): see POINTS. The last point's model is also decoded
at several beam sizes (validation Recall@10 against beam).

    .venv/bin/python benchmarks/recipe_sweep.py --dataset amazon-office --minutes 3
    .venv/bin/python benchmarks/recipe_sweep.py --points base lr1e-3 --minutes 3

JSON is rewritten after every point; a point already in it is not run again (`--rerun` to force).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import quality  # benchmarks/quality.py, beside this script: the same SID stages and recipe

ROOT = Path(__file__).resolve().parents[1]

# SID side: embed fields, codebook size, history items, train window stride (each distinct
# tuple gets its tables).
BASE_SIDS = {"fields": ["title"], "codebook_size": 64, "history": 10, "stride": 1}
# Training side: TrainConfig keys and DeepSpeed JSON values (lr, warm-up, micro batch).
BASE_TRAIN = {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 256,
              "max_seq_len": 64}
BASE_DS = {"lr": 3e-3, "warmup": 20, "batch": 64}
POINTS: dict[str, dict[str, dict]] = {
    "base": {},
    "lr1e-3": {"ds": {"lr": 1e-3}},
    "lr1e-2": {"ds": {"lr": 1e-2}},
    "lr3e-4": {"ds": {"lr": 3e-4}},
    "warmup10pct": {"ds": {"warmup": -10}},  # negative: percent of the steps
    "batch256": {"ds": {"batch": 256}},
    "4x128": {"train": {"num_layers": 4, "intermediate_size": 512}},
    "2x256": {"train": {"hidden_size": 256, "intermediate_size": 512}},
    "tiger-like": {"train": {"num_layers": 8, "num_heads": 4, "intermediate_size": 1024}},
    "fields-all": {"sids": {"fields": ["title", "brand", "categories"]}},
    "m256": {"sids": {"codebook_size": 256}},
    "history20": {"sids": {"history": 20}, "train": {"max_seq_len": 128}},
    "all-items": {"train": {"loss_on": "all_items"}},
    # one window in ten (= history): each train item taught once per epoch, not up to ten times
    "stride10": {"sids": {"stride": 10}, "train": {"loss_on": "all_items"}},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="amazon-office", help="folder under --data-root")
    p.add_argument("--data-root", default=str(ROOT / "data"))
    p.add_argument("--recipe", default=str(ROOT / "configs" / "demo.yaml"),
                   help="pipeline file whose SID stages build each point's tables")
    p.add_argument("--strategy", default="none", help="the SID strategy every point trains")
    p.add_argument("--points", nargs="+", default=list(POINTS), choices=list(POINTS))
    p.add_argument("--combine", nargs="*", default=[],
                   help="points merged into every point run (e.g. the winners of a first pass)")
    p.add_argument("--minutes", type=float, default=3.0, help="training wall minutes per point")
    p.add_argument("--checks", type=int, default=6, help="validation checks per point")
    p.add_argument("--recall-users", type=int, default=2000,
                   help="validation users scored at each check (the same users every point)")
    p.add_argument("--beams", nargs="*", type=int, default=[10, 20, 50],
                   help="beam sizes the last point's model is decoded with on validation")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "recipe_sweep"))
    p.add_argument("--json", default="", help="default: <output>/<dataset>.json")
    p.add_argument("--rerun", action="store_true", help="run points already in the JSON")
    return p.parse_args(argv)


def merged(name: str, combine: list[str]) -> dict[str, dict]:
    """BASE updated by the --combine points, then by the point itself."""
    out = {"sids": dict(BASE_SIDS), "train": dict(BASE_TRAIN), "ds": dict(BASE_DS)}
    for n in [*combine, name]:
        for side, values in POINTS[n].items():
            out[side].update(values)
    return out


def sid_tables(spark: Any, args: argparse.Namespace, sids: dict) -> str:
    """The output_root holding SID tables and sft_examples for these SID settings (built once)."""
    from hourglass.stages import build_sft_data
    from hourglass.stages.pipeline import PipelineConfig
    from hourglass.stages.pipeline import run as run_pipeline

    key = f"{'+'.join(sids['fields'])}_m{sids['codebook_size']}_h{sids['history']}"
    root = Path(args.output) / args.dataset / "tables" / key
    done = root / "_sft_built"
    if done.exists():
        strided_sft(spark, str(root), args, sids)
        return str(root)
    qargs = argparse.Namespace(recipe=args.recipe, data_root=args.data_root,
                               strategies=[args.strategy])
    steps, _ = quality.recipe_steps(qargs, args.dataset, str(root))
    for step in steps:
        if step["stage"] == "embed_items":
            step["fields"] = sids["fields"]
        if step["stage"] in ("train_codebooks", "rewrite_sids"):
            step["codebook_size"] = sids["codebook_size"]
        if step["stage"] == "hourglass_stats":
            step.pop("num_codes", None)
    run_pipeline(spark, PipelineConfig.from_dict({"output_root": str(root), "steps": steps}))
    build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": str(root), "strategies": [args.strategy],
        "history_max_items": sids["history"]}))
    done.write_text("ok")
    strided_sft(spark, str(root), args, sids)
    return str(root)


def sft_table(sids: dict) -> str:
    """The point's SFT table: every window, or one in `stride` (same SIDs, same valid rows)."""
    return "sft_examples" if sids["stride"] == 1 else f"sft_examples_s{sids['stride']}"


def strided_sft(spark: Any, root: str, args: argparse.Namespace, sids: dict) -> None:
    """Build the point's strided SFT table beside the full one, once."""
    from hourglass.stages import build_sft_data

    done = Path(root) / f"_{sft_table(sids)}_built"
    if sids["stride"] == 1 or done.exists():
        return
    build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": root, "strategies": [args.strategy], "history_max_items": sids["history"],
        "train_stride": sids["stride"], "output_table": sft_table(sids)}))
    done.write_text("ok")


def ds_file(folder: Path, ds: dict, steps: int) -> str:
    """The shipped CPU config with this point's lr, warm-up and micro batch."""
    from hourglass.resources import deepspeed_config_file

    cfg = json.loads(deepspeed_config_file("zero2_cpu_fp32.json").read_text())
    cfg["train_micro_batch_size_per_gpu"] = ds["batch"]
    cfg["optimizer"]["params"]["lr"] = ds["lr"]
    warm = ds["warmup"] if ds["warmup"] >= 0 else max(1, steps * -ds["warmup"] // 100)
    cfg["scheduler"]["params"].update(warmup_max_lr=ds["lr"], warmup_num_steps=int(warm))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ds_{ds['lr']}_{warm}_{ds['batch']}.json"
    path.write_text(json.dumps(cfg, indent=1))
    return str(path)


def train_point(root: str, folder: Path, point: dict, args: argparse.Namespace,
                max_steps: int, **extra: Any) -> dict:
    from hourglass.train.config import TrainConfig
    from hourglass.train.launch import run_training

    checks = extra.pop("checks", args.checks)
    cfg = TrainConfig.from_dict({
        "output_root": root, "strategy": args.strategy, "output_dir": str(folder),
        **point["train"], "deepspeed_config": ds_file(folder.parent, point["ds"], max_steps),
        "max_steps": max_steps, "log_every": max(1, max_steps // 20),
        "eval_every": -(-max_steps // checks), "select_by": "valid_recall",
        "recall_users": args.recall_users, "recall_beam": 20, "eval_at_start": False,
        "sft_table": sft_table(point["sids"]),
        "resume": False, "progress": False, "seed": args.seed, **extra})
    return run_training(cfg, "deepspeed", 1)


def seconds_per_step(root: str, folder: Path, point: dict, args: argparse.Namespace) -> float:
    """Training seconds per step of this shape and batch, from a short run with no checks."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    res = train_point(root, folder, point, args, 30, select_by="last", eval_every=0, checks=1)
    return float(res["seconds"]) / max(1, int(res["steps"]))


def train_windows(root: str, args: argparse.Namespace, sids: dict) -> int:
    from hourglass.train.data import read_shard

    shard = read_shard(f"{root}/{sft_table(sids)}", args.strategy, 0, 1, columns=("split",))
    return sum(1 for s in shard.columns["split"] if s == "train")


def beam_recalls(spark: Any, root: str, model_dir: str, args: argparse.Namespace) -> dict:
    """Validation Recall@10 of one model at each beam size, on the sweep's validation users."""
    from hourglass.evaluation.lm import load_finetuned
    from hourglass.train.data import read_shard, read_strategy_columns
    from hourglass.train.selection import RecallProbe

    model, tok, meta = load_finetuned(model_dir)
    _, sids = read_strategy_columns(f"{root}/item_sids_rw", args.strategy,
                                    ["item_id", "tokens"], meta["sids_version"])
    valid = read_shard(f"{root}/sft_examples", args.strategy, 0, 1,
                       meta["sft_version"]).where_split("valid")
    out = {}
    for beam in args.beams:
        t0 = time.perf_counter()
        probe = RecallProbe(model, tok, sids["item_id"], sids["tokens"], valid, 10, beam,
                            model.config.max_position_embeddings)
        out[beam] = {"recall@10": probe.hits() / len(probe), "users": len(probe),
                     "seconds": round(time.perf_counter() - t0, 1)}
        print(f"  beam {beam}: valid Recall@10 {out[beam]['recall@10']:.4f} on {len(probe)} "
              f"users ({out[beam]['seconds']} s)", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    from hourglass.logs import setup_logging
    from hourglass.spark.session import get_spark
    from hourglass.train.layout import METRICS_FILE

    args = parse_args(argv)
    setup_logging()
    out_json = Path(args.json or Path(args.output) / f"{args.dataset}.json")
    record = json.loads(out_json.read_text()) if out_json.exists() else {"points": {}}
    record["args"] = vars(args)
    spark = get_spark("hourglass-recipe-sweep")
    sps_cache: dict[str, float] = {}
    last_model = last_root = ""
    try:
        for name in args.points:
            label = "+".join([*args.combine, name]) if name not in args.combine else name
            if label in record["points"] and not args.rerun:
                print(f"{label}: in {out_json}, skipped", flush=True)
                continue
            point = merged(name, args.combine)
            t0 = time.perf_counter()
            root = sid_tables(spark, args, point["sids"])
            shape = json.dumps([point["sids"], point["train"], point["ds"]["batch"]])
            folder = Path(args.output) / args.dataset / "runs" / label
            if shape not in sps_cache:
                sps_cache[shape] = seconds_per_step(root, folder / "probe", point, args)
            sps = sps_cache[shape]
            steps = max(args.checks, int(args.minutes * 60 / sps))
            res = train_point(root, folder / "run", point, args, steps)
            log = [json.loads(x) for x in (folder / "run" / METRICS_FILE).read_text()
                   .splitlines()]
            curve = {x["step"]: round(x["valid_recall@10"], 4) for x in log
                     if "valid_recall@10" in x}
            record["points"][label] = {
                "settings": point, "seconds_per_step": round(sps, 4), "max_steps": steps,
                "best_valid_recall@10": res["valid_recall"], "selected_step": res["selected_step"],
                "epochs": round(steps * point["ds"]["batch"]
                                / train_windows(root, args, point["sids"]), 2),
                "curve": curve, "train_seconds": round(res["seconds"], 1),
                "valid_loss_end": res["valid_loss_end"], "recall_users": args.recall_users,
                "wall_s": round(time.perf_counter() - t0, 1)}
            print(f"{label}: best valid Recall@10 {res['valid_recall']:.4f} at step "
                  f"{res['selected_step']}/{steps} ({sps:.3f} s/step); curve {curve}", flush=True)
            last_model, last_root = res["model_dir"], root
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(record, indent=1))
        if args.beams and last_model:
            record["beams"] = {"model": last_model, **beam_recalls(spark, last_root, last_model,
                                                                   args)}
            out_json.write_text(json.dumps(record, indent=1))
    finally:
        spark.stop()
    print(f"figures in {out_json}")


if __name__ == "__main__":
    main()
