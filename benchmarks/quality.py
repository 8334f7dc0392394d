"""Retrieval quality next to real baselines (issue 15): Table 2 over seeds on both bundled sets.

For each dataset (`data/<name>`): the SID stages of the recipe file (ingest → embed → codebooks
→ encode → stats of the original SIDs → rewrites), `sft_examples` once, then per seed the
ablation (one fine-tune per strategy under the same step budget, trie-constrained beam search on
the test users, free decoding for the invalid ratio, popularity on the same users) and SASRec on
the same windows, the same users and the project's metric code. Printed: Table 2 as mean ± std
over seeds with head/tail lines, the invalid ratios, users, budgets and run times; JSON out.

Budget: `--cpu-minutes` of training wall time per strategy and seed on this host (torch uses all
cores). A short probe fine-tune measures seconds per step, and every strategy trains that many
steps (equal steps keep the learning-rate schedule whole; shorter SIDs are a bit faster). SASRec
gets the same seconds (plus early stopping). The SIDs are fixed per dataset (codebook seed of the
recipe); seeds vary model initialisation and batch order.

    .venv/bin/python benchmarks/quality.py --smoke        # minutes: tiny budget, 100 users, 1 seed
    .venv/bin/python benchmarks/quality.py                # the full run (hours on 2 cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from hourglass.study.flags import add_budget_args
from hourglass.study.sasrec import SASREC, add_sasrec_args, run_sasrec, sasrec_inputs

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("amazon-office", "amazon-scientific")
STRATEGIES = ("none", "drop_layer(2)", "topk(4)", "topk(16)", "topshare(0.5)")
SID_STAGES = ("ingest", "embed_items", "train_codebooks", "encode_items", "rewrite_sids")
POPULARITY = "popularity"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS),
                   help="folders under --data-root, each with items.jsonl and interactions.csv")
    p.add_argument("--data-root", default=str(ROOT / "data"), help="where the datasets live")
    p.add_argument("--recipe", default=str(ROOT / "configs" / "demo.yaml"),
                   help="pipeline file: its SID steps and its ablation step's sft/train/evaluate "
                        "keys, launcher and processes are the recipe under test")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                   help="SID strategies: rewritten, fine-tuned and evaluated")
    add_budget_args(p, minutes=5.0)
    p.add_argument("--probe-steps", type=int, default=100,
                   help="steps of the probe fine-tune that measures seconds per step (the first "
                        "steps are slower: 30 gave 0.189 s/step on amazon-scientific, where the "
                        "fine-tunes then ran 792 steps in 92-149 s, 0.12-0.19)")
    p.add_argument("--beam", type=int, default=20,
                   help="beams of the evaluation's constrained (and free) beam search")
    p.add_argument("--recall-ks", nargs="+", type=int, default=[1, 5, 10, 20],
                   help="k of Recall@k (TIGER reports 5 and 10); at most --beam")
    p.add_argument("--ndcg-ks", nargs="+", type=int, default=[5, 10, 20], help="k of NDCG@k")
    p.add_argument("--users", type=int, default=0,
                   help="test users evaluated (the evaluate stage's seeded sample); 0 = all")
    add_sasrec_args(p)
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "quality"),
                   help="folder for each dataset's tables and fine-tune runs")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "quality.json"),
                   help="where the figures go as JSON")
    p.add_argument("--skip-pipeline", action="store_true",
                   help="reuse the SID tables of an earlier run in --output (same recipe)")
    p.add_argument("--smoke", action="store_true",
                   help="end-to-end check in minutes: seeds [1], 100 users, 0.2 CPU minutes, "
                        "5 probe steps, SASRec 3 epochs; outputs get a -smoke suffix")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.users, args.cpu_minutes, args.probe_steps = [1], 100, 0.2, 5
        args.sasrec_max_epochs = 3
        args.output = args.output.rstrip("/") + "-smoke"
        args.json = str(Path(args.json).with_name(Path(args.json).stem + "-smoke.json"))
    return args


def recipe_steps(args: argparse.Namespace, dataset: str, output_root: str
                 ) -> tuple[list[dict], dict]:
    """(the SID steps for `dataset`, the ablation step) of the recipe file."""
    from hourglass.config import parse_config_text

    recipe = parse_config_text(Path(args.recipe).read_text(), args.recipe)
    steps, ablation = [], None
    data = Path(args.data_root) / dataset
    for step in recipe["steps"]:
        stage = step["stage"]
        if stage == "ablation":
            ablation = dict(step)
        elif stage == "hourglass_stats" and step.get("input_table", "item_sids") == "item_sids":
            steps.append(dict(step))  # the original SIDs' stats: head/tail tags
        elif stage in SID_STAGES:
            step = dict(step)
            if stage == "ingest":
                step.update(items_path=str(data / "items.jsonl"),
                            interactions_path=str(data / "interactions.csv"))
            if stage == "rewrite_sids":
                step["strategies"] = list(args.strategies)
            steps.append(step)
    if ablation is None:
        raise SystemExit(f"{args.recipe}: no ablation step to take the recipe from")
    ablation.pop("stage")
    return [{**s, "output_root": output_root} for s in steps], ablation


def ablation_config(ablation: dict, output_root: str, args: argparse.Namespace, seed: int,
                    max_steps: int) -> Any:
    """The recipe's ablation at this budget; with checkpoint selection by validation Recall
    (`select_by: valid_recall`) it checks `--checks` times over the run."""
    from hourglass.stages.ablation import AblationConfig

    train = {**ablation.get("train", {}), "max_steps": max_steps, "seed": seed}
    if train.get("select_by") == "valid_recall":
        train["eval_every"] = -(-max_steps // args.checks)  # the last check is the last step
        train["log_every"] = min(train.get("log_every", 20), train["eval_every"])
    return AblationConfig.from_dict({
        **ablation, "output_root": output_root, "run_id": f"quality_seed{seed}",
        "strategies": list(args.strategies), "build_sft": False, "train": train,
        "evaluate": {**ablation.get("evaluate", {}), "max_users": args.users,
                     "beam_size": args.beam, "recall_ks": args.recall_ks,
                     "ndcg_ks": args.ndcg_ks}})


def probe_seconds_per_step(cfg: Any, steps: int, folder: Path) -> float:
    """Seconds per fine-tune step of the recipe's model on the first strategy (the trainer's own
    loop timing, start-up excluded)."""
    from hourglass.train.launch import run_training

    shutil.rmtree(folder, ignore_errors=True)
    tcfg = dataclasses.replace(cfg.train_config(cfg.names()[0]), max_steps=steps,
                               output_dir=str(folder), eval_at_start=False, resume=False,
                               select_by="last", eval_every=0, patience=0)
    res = run_training(tcfg, cfg.launcher, cfg.num_procs)
    return float(res["seconds"]) / max(1, int(res["steps"]))


def eval_rows(spark: Any, cfg: Any) -> list[tuple]:
    """(method, subset, metric, k, value) of one ablation run, read back from eval_results."""
    from hourglass.spark.tables import read_table

    ecfg = cfg.eval_config()
    df = read_table(spark, ecfg.ref(ecfg.output_table)).df.where(f"run_id = '{cfg.run_id}'")
    return [tuple(r) for r in df.select("strategy", "subset", "metric", "k", "value").collect()]


def run_dataset(spark: Any, args: argparse.Namespace, dataset: str,
                save: Any = None) -> dict[str, Any]:
    """One dataset's Table 2; `save(partial)` is called after every seed with what is done."""
    from hourglass.baselines.summary import (
        aggregate,
        invalid_mean_std_table,
        jsonable,
        mean_std_table,
    )
    from hourglass.stages import ablation as ablation_stage
    from hourglass.stages import build_sft_data
    from hourglass.stages.pipeline import PipelineConfig
    from hourglass.stages.pipeline import run as run_pipeline

    out = Path(args.output).resolve() / dataset
    output_root = str(out / "tables")
    steps, ablation = recipe_steps(args, dataset, output_root)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if not args.skip_pipeline:
        run_pipeline(spark, PipelineConfig.from_dict({"output_root": output_root,
                                                      "steps": steps}))
    base = ablation_config(ablation, output_root, args, args.seeds[0], 1)
    build_sft_data.run(spark, base.sft_config())
    times["sid_pipeline_and_sft_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    sps = probe_seconds_per_step(base, args.probe_steps, out / "probe")
    max_steps = args.max_steps or max(1, int(args.cpu_minutes * 60 / sps))
    times["probe_s"] = round(time.perf_counter() - t0, 1)
    print(f"{dataset}: {sps:.3f} s per fine-tune step → {max_steps} steps per strategy "
          f"({args.cpu_minutes} CPU minutes)", flush=True)
    inputs = sasrec_inputs(spark, base.sft_config(), base.eval_config())
    per_seed, training = [], {}
    for seed in args.seeds:
        cfg = ablation_config(ablation, output_root, args, seed, max_steps)
        t0 = time.perf_counter()
        res = ablation_stage.run(spark, cfg)
        times[f"ablation_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        rows, info = run_sasrec(inputs, args, seed, args.cpu_minutes)
        times[f"sasrec_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
        per_seed.append([*eval_rows(spark, cfg), *rows])
        training[seed] = {**res.training, SASREC: info}
        if save is not None:
            save({"partial": True, "seconds_per_step": sps, "max_steps": max_steps,
                  "per_seed_rows": dict(zip(args.seeds, per_seed, strict=False)),
                  "training": training, "timings_s": times})
    agg = aggregate(per_seed)
    methods = [*base.names(), SASREC, POPULARITY]
    ks = (inputs["recall_ks"], inputs["ndcg_ks"])
    table = mean_std_table(agg, methods, *ks)
    invalid = invalid_mean_std_table(agg, base.names(), ks[0])
    print(f"\n{dataset}: Table 2, mean ± std over seeds {args.seeds} "
          f"({max_steps} steps ≈ {args.cpu_minutes} CPU min per strategy; SASRec "
          f"{args.cpu_minutes} min)\n{table}\n")
    if invalid:
        print(f"{dataset}: invalid SIDs among the free decoder's top-k\n{invalid}\n")
    for seed, tr in training.items():
        s = tr[SASREC]
        print(f"{dataset} seed {seed}: SASRec best epoch {s['best_epoch']} "
              f"(valid Recall@10 {s['best_valid_recall']:.4f}, stop: {s['stop_reason']}, "
              f"{s['seconds']} s); " + ", ".join(
                  f"{k} {v['steps']} steps {v['seconds']:.0f} s" for k, v in tr.items()
                  if k != SASREC))
    return {"seconds_per_step": sps, "max_steps": max_steps, "users": len(inputs["test_users"]),
            "items": len(inputs["items"]), "table": table, "invalid_table": invalid,
            "summary": jsonable(agg), "per_seed_rows": {s: r for s, r in
                                                        zip(args.seeds, per_seed, strict=True)},
            "training": training, "timings_s": times}


def write_json(args: argparse.Namespace, dataset: str, result: dict, wall: float) -> None:
    """Record one dataset's figures (rewritten after every seed, so a long run that dies keeps
    what it finished); datasets run earlier into the same file, by other invocations, stay."""
    path = Path(args.json)
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault("datasets", {})[dataset] = {**result, "args": vars(args), "wall_s": wall}
    record["host"] = {"cpus": os.cpu_count(), "machine": platform.machine(),
                      "python": platform.python_version()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    from hourglass.logs import setup_logging
    from hourglass.spark.session import get_spark

    args = parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    spark = get_spark("hourglass-quality")
    try:
        for dataset in args.datasets:
            def save(result: dict, name: str = dataset) -> None:
                write_json(args, name, result, round(time.perf_counter() - start, 1))

            save(run_dataset(spark, args, dataset, save))
    finally:
        spark.stop()
    print(f"wall time {time.perf_counter() - start:.0f} s; figures in {args.json}")


if __name__ == "__main__":
    main()
