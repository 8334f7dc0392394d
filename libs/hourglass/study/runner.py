"""The paper's study on one bundled dataset, one command: `hourglass-paper-tables` (or
`benchmarks/paper_tables.py`).

For each dataset: the recipe's SID pipeline once (ingest → embed → codebooks → encode → stats
of the original SIDs → every strategy the arms need → sft_examples), then one fine-tune per arm
and seed under the same budget of CPU-minutes (a probe measures seconds per step; every arm
trains that many steps), each evaluated on the same test users with the same metric code
(Recall@1/3/5/10/30/50, NDCG@10, head/tail by the target's original layer-2 token, the invalid
ratio of free decoding against k), SASRec and popularity beside them. Table 1, Table 2, the
invalid table and Table 1's head/tail figure go to Markdown, JSON and PNG. Every cell is cached
(`hourglass.study.cache`): an interrupted run resumes, a re-run recomputes nothing.

    hourglass-paper-tables --dataset amazon-office                 # the study (≈2.5 h, 2 cores)
    hourglass-paper-tables --dataset amazon-office --budget-curve  # also 2/5/10 CPU-minutes
    hourglass-paper-tables --dataset amazon-office --quick         # minutes: the smoke run
    hourglass-paper-tables --dataset amazon-office --task search   # personalized search

`--task search` runs the paper's own task (`hourglass.study.search`): queries derived from the
category paths, prompts of `--prompt-mode` (query then history), the base, drop_layer(2) and
the top@K grid with head/tail, beside the search baselines; its outputs go to
`<output>_search/<dataset>/search_tables.{md,json}` and `search_head_tail.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from hourglass import __version__
from hourglass.study.arms import BASE, K_SHARES, Arm, all_arms, strategies, table1_arms
from hourglass.study.arms import table2_arms as table2_arm_list
from hourglass.study.cache import CellCache, fingerprint
from hourglass.study.flags import add_budget_args
from hourglass.study.sasrec import SASREC, add_sasrec_args
from hourglass.study.search import SEARCH_BASELINES, search_arms
from hourglass.study.tables import PAPER_NDCG_KS, PAPER_RECALL_KS

POPULARITY = "popularity"
BASELINES = ((SASREC, "SASRec (same splits, same minutes)"), (POPULARITY, "Popularity"))
PRE_STAGES = ("ingest", "embed_items")
QUICK_TRAIN = {"eval_at_start": False, "max_valid_examples": 64, "recall_users": 32}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hourglass-paper-tables", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", nargs="+", default=["amazon-office"],
                   help="folders under --data-root, each with items.jsonl and interactions.csv")
    p.add_argument("--data-root", default="data", help="where the datasets live")
    p.add_argument("--recipe", default="configs/demo.yaml",
                   help="pipeline file: its SID steps and its ablation step's sft/train/evaluate "
                        "keys, launcher and processes are the recipe every arm trains with")
    p.add_argument("--output", default="benchmarks/results/paper_study",
                   help="folder of each dataset's tables, runs, cached cells and outputs "
                        "(with --task search: <output>_search)")
    p.add_argument("--task", default="rec", choices=("rec", "search"),
                   help="rec: next item from the history (Tables 1-2); search: the paper's "
                        "personalized search, query + history → item (derived queries)")
    p.add_argument("--prompt-mode", default="query_history", choices=("query_history", "query"),
                   help="with --task search: the prompt (query then history, or query alone)")
    add_budget_args(p, minutes=2.0)
    p.add_argument("--probe-steps", type=int, default=100,
                   help="steps of the probe fine-tune that measures seconds per step")
    p.add_argument("--launcher", default="auto", choices=("auto", "deepspeed", "python",
                                                          "torchrun"),
                   help="how fine-tunes start; auto: the recipe's, but `python` (the same "
                        "DeepSpeed engine, without the launcher's ~15 s start) for one process")
    p.add_argument("--beam", type=int, default=50, help="beams of the evaluation (>= 50)")
    p.add_argument("--users", type=int, default=0, help="test users evaluated; 0 = all")
    p.add_argument("--invalid-seeds", type=int, default=1,
                   help="seeds whose free decoding measures the invalid ratio (Fig. 5)")
    p.add_argument("--codebook-size", default="auto",
                   help="M of the study's RQ; auto = the --shapes M with the widest neck")
    p.add_argument("--shapes", nargs="+", type=int, default=[64, 128, 256],
                   help="M values whose layer concentration is measured (and chosen from)")
    p.add_argument("--shapes-only", action="store_true",
                   help="measure the --shapes (embeddings, codebooks, statistics), print their "
                        "table and the M the study would choose, and stop")
    p.add_argument("--k-shares", nargs="+", type=float, default=list(K_SHARES),
                   help="top@K grid as shares of M (the paper's 20/200/400/600 of 4096)")
    p.add_argument("--budget-curve", action="store_true",
                   help="also base, the best rewrite and SASRec at --budget-minutes")
    p.add_argument("--budget-minutes", nargs="+", type=float, default=[2.0, 5.0, 10.0],
                   help="CPU-minutes of the budget curve")
    p.add_argument("--budget-seeds", nargs="+", type=int, default=[3, 3, 1],
                   help="seeds at each --budget-minutes (the first N of --seeds)")
    add_sasrec_args(p)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seed 1, 200 users, 20 steps per model (no probe), beam 50, "
                        "the recipe's M (no shapes), one top@K share (the paper's best, top@400), "
                        "SASRec 2 epochs; outputs under <output>-quick")
    args = p.parse_args(argv)
    if args.task == "search":
        args.output = args.output.rstrip("/") + "_search"
        if args.budget_curve or args.shapes_only:
            p.error("--budget-curve and --shapes-only belong to --task rec")
    if args.quick:
        args.seeds, args.users, args.cpu_minutes, args.max_steps = [1], 200, 0.1, 20
        args.checks, args.sasrec_max_epochs, args.shapes = 1, 2, []
        args.k_shares = [K_SHARES[2]]
        args.output = args.output.rstrip("/") + "-quick"
        if args.budget_curve:
            args.budget_minutes, args.budget_seeds = [0.1, 0.2], [1, 1]
    for ds in args.dataset:
        if not (Path(args.data_root) / ds / "interactions.csv").is_file():
            p.error(f"no {Path(args.data_root) / ds}/interactions.csv: run from the repository "
                    "root or set --data-root")
    if not Path(args.recipe).is_file():
        p.error(f"no recipe file {args.recipe}: run from the repository root or set --recipe")
    if args.beam < max(PAPER_RECALL_KS):
        p.error(f"--beam must be >= {max(PAPER_RECALL_KS)} (Recall@50 needs 50 SIDs)")
    if args.budget_curve and len(args.budget_seeds) != len(args.budget_minutes):
        p.error("--budget-seeds needs one count per --budget-minutes")
    if args.codebook_size != "auto" and not args.codebook_size.isdigit():
        p.error("--codebook-size is auto or an integer")
    if args.codebook_size == "auto" and not args.shapes:
        args.codebook_size = "recipe"
    return args


@dataclasses.dataclass
class Recipe:
    """The recipe file's SID steps and the ablation step the arms train with."""

    pre: list[dict]        # ingest, embed_items
    codebooks: dict        # the train_codebooks step (its keys but `stage`)
    post: list[dict]       # encode_items, stats of item_sids, rewrite_sids
    ablation: dict

    @classmethod
    def load(cls, path: str, data: Path) -> Recipe:
        from hourglass.config import parse_config_text

        steps = parse_config_text(Path(path).read_text(), path)["steps"]
        pre, post, codebooks, ablation = [], [], None, None
        for step in map(dict, steps):
            stage = step["stage"]
            if stage == "ingest":
                step.update(items_path=str(data / "items.jsonl"),
                            interactions_path=str(data / "interactions.csv"))
            if stage in PRE_STAGES:
                pre.append(step)
            elif stage == "train_codebooks":
                codebooks = {k: v for k, v in step.items() if k != "stage"}
            elif stage in ("encode_items", "rewrite_sids") or (
                    stage == "hourglass_stats" and step.get("input_table", "item_sids")
                    == "item_sids"):
                post.append(step)
            elif stage == "ablation":
                ablation = {k: v for k, v in step.items() if k != "stage"}
                # the study registers nothing: its models are measurements, not releases
                ablation["evaluate"] = {k: v for k, v in ablation.get("evaluate", {}).items()
                                        if k not in ("register_strategy", "registered_model")}
        if codebooks is None or ablation is None:
            raise SystemExit(f"{path}: needs a train_codebooks and an ablation step")
        return cls(pre, codebooks, post, ablation)

    def sid_steps(self, M: int, strategy_specs: list[str]) -> list[dict]:
        out = [{"stage": "train_codebooks", **self.codebooks, "codebook_size": M}]
        for step in self.post:
            step = dict(step)
            if step["stage"] == "rewrite_sids":
                step.update(strategies=strategy_specs, codebook_size=M)
            if step["stage"] == "hourglass_stats":
                step.update(num_codes=M, tracking=False)
            out.append(step)
        return out


class Study:
    """One dataset's study: its tables, cache and the settings every cell shares."""

    def __init__(self, spark: Any, args: argparse.Namespace, dataset: str) -> None:
        self.spark, self.args, self.dataset = spark, args, dataset
        self.out = Path(args.output).resolve() / dataset
        self.root = str(self.out / "tables")
        self.cache = CellCache(self.out / "cells")
        data = Path(args.data_root) / dataset
        self.data_parts: dict[str, Any] = {}  # what else names the data (none for rec)
        self.queries: dict[str, Any] = {}
        if args.task == "search":
            from hourglass.study.search import derive_dataset

            derived = self.out / "data"
            self.queries = derive_dataset(data, derived)
            self.data_parts = {"queries": file_digest(derived / "interactions.csv")}
            data = derived
        self.recipe = Recipe.load(args.recipe, data)
        if args.task == "search":
            for section in ("sft", "train"):
                self.recipe.ablation[section] = {**self.recipe.ablation.get(section, {}),
                                                 "prompt_mode": args.prompt_mode}
        if args.quick:  # a smoke run checks the path, not the model: smallest validation
            self.recipe.ablation["train"] = {**self.recipe.ablation.get("train", {}),
                                             **QUICK_TRAIN}
        self.arms = (search_arms(tuple(args.k_shares)) if args.task == "search"
                     else all_arms(tuple(args.k_shares)))
        self.timings: dict[str, float] = {}
        self.M = 0
        self.pins: dict[str, int] = {}
        self.sps = 0.0
        self.base_fp = ""

    # ---- the SID pipeline, once -------------------------------------------------------
    def shapes(self) -> tuple[str, dict[int, dict]]:
        """(the embeddings' fingerprint, each --shapes M's layer concentration)."""
        from hourglass.study.shapes import measure_shape

        data_fp = fingerprint(recipe=self.recipe.pre, dataset=self.dataset, **self.data_parts)
        self._timed("embed", lambda: self._pipeline(self.recipe.pre), "inputs", fp=data_fp)
        shapes = {}
        for M in self.args.shapes:
            shapes[M] = self._timed(f"shape_M{M}", lambda m=M: measure_shape(
                self.spark, self.root, self.recipe.codebooks, m), f"shape_M{M}", fp=data_fp,
                codebooks=self.recipe.codebooks)
        return data_fp, shapes

    def prepare(self) -> dict:
        """Embeddings, the shapes, the study's SIDs and sft_examples; what they are."""
        from hourglass.study.shapes import choose

        data_fp, shapes = self.shapes()
        size = self.args.codebook_size
        self.M = (choose(shapes) if size == "auto" else
                  int(self.recipe.codebooks.get("codebook_size", 128)) if size == "recipe"
                  else int(size))
        specs = strategies(self.arms)
        sids_fp = fingerprint(data=data_fp, M=self.M, codebooks=self.recipe.codebooks,
                              post=self.recipe.post, strategies=specs,
                              sft=self.recipe.ablation.get("sft", {}))
        self._timed("sid_pipeline", lambda: self._pipeline(self.recipe.sid_steps(self.M, specs)),
                    "sids", fp=sids_fp)
        sft = self._timed("sft_examples", self._build_sft, "sft", fp=sids_fp)
        self.pins = {k: int(sft[k]) for k in ("sft_version", "sids_version")}
        self.base_fp = sids_fp
        if not self.args.max_steps:  # else every model trains max_steps: nothing to measure
            probe_fp = fingerprint(sids=sids_fp, steps=self.args.probe_steps,
                                   train=self.recipe.ablation.get("train", {}),
                                   launcher=self.launcher())
            self.sps = self._timed("probe", self._probe, "probe",
                                   fp=probe_fp)["seconds_per_step"]
        return {"M": self.M, "shapes": {str(k): v for k, v in shapes.items()},
                "pins": self.pins, "seconds_per_step": self.sps}

    def _timed(self, label: str, fn: Any, name: str, **parts: Any) -> dict:
        t0 = time.perf_counter()
        value, cached = self.cache.compute(lambda: fn() or {}, name, **parts)
        if not cached:
            self.timings[label] = round(time.perf_counter() - t0, 1)
        return value

    def _pipeline(self, steps: list[dict]) -> dict:
        from hourglass.stages.pipeline import PipelineConfig
        from hourglass.stages.pipeline import run as run_pipeline

        run_pipeline(self.spark, PipelineConfig.from_dict({"output_root": self.root,
                                                           "steps": steps}))
        return {"done": True}

    def _ablation(self) -> Any:
        from hourglass.stages.ablation import AblationConfig

        return AblationConfig.from_dict({**self.recipe.ablation, "output_root": self.root,
                                         "run_id": "study", "build_sft": False,
                                         "strategies": strategies(self.arms)})

    def _build_sft(self) -> dict:
        from hourglass.spark.tables import read_table
        from hourglass.stages import build_sft_data

        scfg = self._ablation().sft_config()
        build_sft_data.run(self.spark, scfg)
        return {"sft_version": read_table(self.spark, scfg.ref(scfg.output_table)).version,
                "sids_version": read_table(self.spark, scfg.ref(scfg.sids_table)).version}

    def _probe(self) -> dict:
        import shutil

        from hourglass.train.launch import run_training

        abl = self._ablation()
        folder = self.out / "probe"
        shutil.rmtree(folder, ignore_errors=True)
        tcfg = dataclasses.replace(
            abl.train_config("none"), max_steps=self.args.probe_steps, output_dir=str(folder),
            eval_at_start=False, resume=False, select_by="last", eval_every=0, patience=0,
            tracking=False, **self.pins)
        res = run_training(tcfg, self.launcher(), abl.num_procs)
        return {"seconds_per_step": float(res["seconds"]) / max(1, int(res["steps"]))}

    def launcher(self) -> str:
        abl = self.recipe.ablation
        if self.args.launcher != "auto":
            return self.args.launcher
        return "python" if int(abl.get("num_procs", 1)) == 1 else abl.get("launcher", "deepspeed")

    def steps(self, minutes: float) -> int:
        return self.args.max_steps or max(1, int(minutes * 60 / self.sps))

    # ---- cells ------------------------------------------------------------------------
    def cell_parts(self, arm: Arm, seed: int, minutes: float) -> dict:
        a = self.args
        return {"sids": self.base_fp, "arm": dataclasses.asdict(arm), "seed": seed,
                "steps": self.steps(minutes), "checks": a.checks, "beam": a.beam,
                "users": a.users, "invalid": seed in a.seeds[:a.invalid_seeds],
                "recipe": self.recipe.ablation}

    def fine_tune(self, arm: Arm, seed: int, minutes: float) -> dict:
        """One arm at one seed and budget: cached, else trained and evaluated."""
        name = f"{arm.name}-seed{seed}-{minutes:g}min"
        parts = self.cell_parts(arm, seed, minutes)
        return self._timed(f"cell {name}", lambda: self._train_and_evaluate(arm, seed, parts,
                                                                            name),
                           name, **parts)

    def _train_and_evaluate(self, arm: Arm, seed: int, parts: dict, name: str) -> dict:
        from hourglass.spark.tables import read_table
        from hourglass.stages import evaluate
        from hourglass.stages.ablation import prepare_run_dir
        from hourglass.train.launch import run_training

        abl = self._ablation()
        steps = parts["steps"]
        run_dir = self.out / "runs" / f"{name}-{fingerprint(**parts)}"
        train = {"max_steps": steps, "seed": seed, "loss": arm.loss,
                 "given_prefix": arm.given_prefix, "tracking": False}
        if abl.train.get("select_by") == "valid_recall":
            train["eval_every"] = -(-steps // self.args.checks)
            train["log_every"] = min(abl.train.get("log_every", 20), train["eval_every"])
        tcfg = dataclasses.replace(abl.train_config(arm.strategy_name),
                                   output_dir=str(run_dir / arm.strategy_name), **train,
                                   **self.pins)
        tcfg.validate()
        prepare_run_dir(tcfg, self.pins["sft_version"], self.pins["sids_version"])
        t0 = time.perf_counter()
        res = run_training(tcfg, self.launcher(), abl.num_procs)
        train_s = time.perf_counter() - t0
        run_id = f"study_{name.replace('.', '_')}"
        ecfg = dataclasses.replace(
            abl.eval_config(), run_id=run_id, strategies=[arm.strategy_name],
            runs_root=str(run_dir), beam_size=self.args.beam, recall_ks=list(PAPER_RECALL_KS),
            ndcg_ks=list(PAPER_NDCG_KS), max_users=self.args.users,
            measure_invalid=parts["invalid"],
            include_popularity=arm.name == BASE.name and seed == self.args.seeds[0],
            register_strategy="", tracking=False, **self.pins)
        ecfg.validate()
        t0 = time.perf_counter()
        evaluate.run(self.spark, ecfg, replace_run=True)
        eval_s = time.perf_counter() - t0
        df = read_table(self.spark, ecfg.ref(ecfg.output_table)).df.where(f"run_id = '{run_id}'")
        rows = [(arm.name if r["strategy"] == arm.eval_label else r["strategy"], r["subset"],
                 r["metric"], int(r["k"]), float(r["value"])) for r in df.collect()]
        facts = {k: res.get(k) for k in ("steps", "train_loss", "valid_loss_end", "seconds",
                                         "selected_step", "valid_recall")}
        return {"rows": rows, "training": facts, "train_s": round(train_s, 1),
                "eval_s": round(eval_s, 1)}

    def sasrec(self, seed: int, minutes: float, inputs: Any) -> dict:
        from hourglass.study.sasrec import run_sasrec

        a = self.args
        sas = {k: v for k, v in vars(a).items() if k.startswith("sasrec_")}
        parts = {"sids": self.base_fp, "seed": seed, "minutes": minutes, "users": a.users,
                 "sasrec": sas, "recipe": self.recipe.ablation.get("sft", {})}

        def fit() -> dict:
            rows, info = run_sasrec(inputs(), a, seed, minutes)
            return {"rows": rows, "training": info}

        return self._timed(f"sasrec seed{seed} {minutes:g}min", fit,
                           f"sasrec-seed{seed}-{minutes:g}min", **parts)

    def search_baselines(self) -> dict:
        """The search baselines on the test users, once (they have no seed)."""
        from hourglass.study.search import run_search_baselines, search_inputs

        a = self.args
        model_dir = next((s.get("model_dir") for s in self.recipe.pre
                          if s["stage"] == "embed_items"), None)
        parts = {"sids": self.base_fp, "users": a.users, "encoder": model_dir,
                 "recipe": self.recipe.ablation.get("sft", {})}

        def score() -> dict:
            abl = self._ablation()
            ecfg = dataclasses.replace(abl.eval_config(), max_users=a.users)
            return run_search_baselines(search_inputs(self.spark, abl.sft_config(), ecfg),
                                        model_dir or None)

        return self._timed("search baselines", score, "search_baselines", **parts)

    def sasrec_inputs(self) -> Any:
        """SASRec's windows, read once and only when a SASRec cell is not cached."""
        memo: dict[str, Any] = {}

        def get() -> Any:
            if "v" not in memo:
                from hourglass.study.sasrec import sasrec_inputs

                abl = self._ablation()
                ecfg = dataclasses.replace(abl.eval_config(), max_users=self.args.users,
                                           recall_ks=list(PAPER_RECALL_KS),
                                           ndcg_ks=list(PAPER_NDCG_KS))
                memo["v"] = sasrec_inputs(self.spark, abl.sft_config(), ecfg)
            return memo["v"]

        return get


def seed_rows(cells: list[dict]) -> list[list[tuple]]:
    """Rows per seed for `aggregate`: a cell is one seed of one arm (or baseline)."""
    return [[tuple(r) for r in c["rows"]] for c in cells]


def run_dataset(spark: Any, args: argparse.Namespace, dataset: str) -> dict:
    """Both tables (and the budget curve) of one dataset; outputs written beside its tables."""
    from hourglass.baselines.summary import aggregate, jsonable
    from hourglass.study import tables as T

    t_start = time.perf_counter()
    study = Study(spark, args, dataset)
    if args.shapes_only:
        return shapes_only(study, t_start)
    prep = study.prepare()
    minutes = args.cpu_minutes
    cells: dict[tuple[str, int, float], dict] = {}
    for arm in study.arms:
        for seed in args.seeds:
            cells[(arm.name, seed, minutes)] = study.fine_tune(arm, seed, minutes)
    inputs = study.sasrec_inputs()
    for seed in args.seeds:
        cells[(SASREC, seed, minutes)] = study.sasrec(seed, minutes, inputs)
    if args.task == "search":
        return search_outputs(study, prep, cells, t_start)
    agg = aggregate(_by_seed(cells, args.seeds, minutes))
    M = study.M
    t1_arms, t2_arms = table1_arms(), table2_arm_list(tuple(args.k_shares))
    out = {
        "table1": T.table1(agg, t1_arms, BASELINES, M),
        "table2": T.table2(agg, t2_arms, BASELINES, M),
        "invalid": T.invalid_table(agg, study.arms, M),
    }
    curve = budget_curve(study, agg, cells, inputs) if args.budget_curve else None
    wall = round(time.perf_counter() - t_start, 1)
    ks = {a.name: parse_k(a, M) for a in study.arms}
    users = agg.get((BASE.name, "all", "users", 0), (0, 0, 0))[0]
    result = {"dataset": dataset, **prep, "users": int(users), "k_used": ks,
              "steps": study.steps(minutes), **out, "budget_curve": curve,
              "summary": jsonable(agg), "timings_s": study.timings, "wall_s": wall,
              "cells": {f"{k[0]}-seed{k[1]}-{k[2]:g}min": c for k, c in cells.items()}}
    write_outputs(study, args, result, agg, t1_arms)
    return result


def search_outputs(study: Study, prep: dict, cells: dict, t_start: float) -> dict:
    """The search task's tables: the fixes against the base (best in bold) and each arm's
    head/tail lines, the search baselines and SASRec/popularity beside them; Markdown, JSON
    and the head/tail bars (`search_head_tail.png`)."""
    from hourglass.baselines.summary import aggregate, jsonable
    from hourglass.study import tables as T

    args, M, minutes = study.args, study.M, study.args.cpu_minutes
    baselines_cell = study.search_baselines()
    by_seed = _by_seed(cells, args.seeds, minutes)
    by_seed[0] = [*by_seed[0], *map(tuple, baselines_cell["rows"])]  # no seed: counted once
    agg = aggregate(by_seed)
    shown = (*SEARCH_BASELINES, *BASELINES)
    result = {"dataset": study.dataset, "task": "search", "prompt_mode": args.prompt_mode,
              **prep, "queries": study.queries,
              "users": int(agg.get((BASE.name, "all", "users", 0), (0, 0, 0))[0]),
              "k_used": {a.name: parse_k(a, M) for a in study.arms},
              "steps": study.steps(minutes),
              "fixes": T.table2(agg, study.arms, shown, M),
              "head_tail": T.table1(agg, study.arms, (), M),
              "invalid": T.invalid_table(agg, study.arms, M),
              "baselines": baselines_cell["training"],
              "summary": jsonable(agg), "timings_s": study.timings,
              "wall_s": round(time.perf_counter() - t_start, 1),
              "cells": {f"{k[0]}-seed{k[1]}-{k[2]:g}min": c for k, c in cells.items()}}
    q = study.queries
    parts = [f"# Personalized search study: {study.dataset}",
             f"Prompt mode {args.prompt_mode}; M = {M}, {result['users']} test users, seeds "
             f"{args.seeds}, {minutes:g} CPU-minutes = {result['steps']} steps per model, beam "
             f"{args.beam}; wall {result['wall_s'] / 60:.1f} min.",
             f"Queries derived from category paths (docs/search.md): "
             f"{q.get('distinct_queries')} distinct, {q.get('with_query')} of "
             f"{q.get('interactions')} interactions carry one.",
             "## The fixes against the base", result["fixes"],
             f"Dense query + history blend: α = {result['baselines']['alpha']:g} (chosen on "
             "validation Recall@10).",
             "## Head and tail layer-2 token users", result["head_tail"],
             "## Invalid SIDs of free decoding by k", result["invalid"] or "—"]
    study.out.mkdir(parents=True, exist_ok=True)
    T.head_tail_figure(agg, study.arms, M).savefig(study.out / "search_head_tail.png", dpi=110)
    (study.out / "search_tables.md").write_text("\n\n".join(parts) + "\n")
    (study.out / "search_tables.json").write_text(json.dumps(
        {**result, "args": vars(args)}, indent=1, default=str))
    return result


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (the derived queries name the data a cell was computed on)."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def shapes_only(study: Study, t_start: float) -> dict:
    """The shapes' table and the M the criterion picks, in shapes.md beside the tables."""
    from hourglass.study.shapes import choose, shapes_table

    _, shapes = study.shapes()
    table = shapes_table(shapes)
    chosen = choose(shapes) if shapes else None
    study.out.mkdir(parents=True, exist_ok=True)
    (study.out / "shapes.md").write_text(
        f"# RQ shapes: {study.dataset}\n\nChosen M = {chosen} (widest layer-2 neck)\n\n"
        f"{table}\n")
    (study.out / "shapes.json").write_text(json.dumps(
        {"dataset": study.dataset, "chosen": chosen, "shapes": shapes,
         "timings_s": study.timings}, indent=1))
    return {"shapes_table": table, "M": chosen,
            "wall_s": round(time.perf_counter() - t_start, 1)}


def parse_k(arm: Arm, M: int) -> int | None:
    from hourglass.rewrite.strategies import parse_strategy

    return parse_strategy(arm.strategy).top_k(M)


def _by_seed(cells: dict, seeds: list[int], minutes: float) -> list[list[tuple]]:
    """One row list per seed holding every method's rows of that seed and budget."""
    return [[tuple(r) for (_, s, m), c in cells.items() if s == seed and m == minutes
             for r in c["rows"]] for seed in seeds]


def budget_curve(study: Study, agg: Any, cells: dict, inputs: Any) -> dict:
    """Base, the best rewrite of Table 2 (by mean Recall@10) and SASRec at each budget."""
    from hourglass.baselines.summary import aggregate

    args = study.args
    rewrites = [a for a in study.arms if a.loss == "ce" and not a.diagnostic
                and a.strategy not in ("none", "exchange(1,2)")]
    best = max(rewrites, key=lambda a: agg.get((a.name, "all", "recall", 10), (-1,))[0])
    points = []
    for minutes, n_seeds in zip(args.budget_minutes, args.budget_seeds, strict=True):
        seeds = args.seeds[:n_seeds]
        for arm in (BASE, best):
            for seed in seeds:
                cells[(arm.name, seed, minutes)] = study.fine_tune(arm, seed, minutes)
        for seed in seeds:
            cells[(SASREC, seed, minutes)] = study.sasrec(seed, minutes, inputs)
        a = aggregate(_by_seed(cells, seeds, minutes))
        for method in (BASE.name, best.name, SASREC):
            for metric, k in (("recall", 10), ("ndcg", 10)):
                stat = a.get((method, "all", metric, k))
                if stat:
                    points.append({"minutes": minutes, "method": method, "metric": metric,
                                   "k": k, "mean": stat[0], "std": stat[1], "seeds": stat[2],
                                   "steps": study.steps(minutes) if method != SASREC else None})
    return {"best_rewrite": best.name, "points": points}


def curve_table(curve: dict) -> str:
    from hourglass.study.tables import markdown

    rows = [[f"{p['minutes']:g}", p["method"], str(p["steps"] or "—"), str(p["seeds"]),
             f"{p['mean']:.4f} ± {p['std']:.4f}"] for p in curve["points"]
            if p["metric"] == "recall"]
    return markdown(["CPU-minutes", "method", "steps", "seeds", "Recall@10"], rows)


def write_outputs(study: Study, args: argparse.Namespace, result: dict, agg: Any,
                  t1_arms: list[Arm]) -> None:
    """paper_tables.md, paper_tables.json and table1_head_tail.png in the dataset's folder."""
    from hourglass.study.shapes import shapes_table
    from hourglass.study.tables import head_tail_figure

    out = study.out
    fig = head_tail_figure(agg, t1_arms, study.M)
    fig.savefig(out / "table1_head_tail.png", dpi=110)
    shapes = {int(k): v for k, v in result["shapes"].items()}
    parts = [f"# Paper study: {study.dataset}",
             f"M = {study.M}, {result['users']} test users, seeds {args.seeds}, "
             f"{args.cpu_minutes:g} CPU-minutes = {result['steps']} steps per model, "
             f"beam {args.beam}; wall {result['wall_s'] / 60:.1f} min.",
             "## Table 1", result["table1"], "## Table 2", result["table2"],
             "## Invalid SIDs of free decoding by k (paper Fig. 5)", result["invalid"] or "—"]
    if shapes:
        parts += ["## RQ shapes (layer concentration)", shapes_table(shapes)]
    if result["budget_curve"]:
        parts += [f"## Budget curve (best rewrite: {result['budget_curve']['best_rewrite']})",
                  curve_table(result["budget_curve"])]
    (out / "paper_tables.md").write_text("\n\n".join(parts) + "\n")
    host = {"cpus": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version()}
    (out / "paper_tables.json").write_text(json.dumps({**result, "args": vars(args),
                                                       "host": host}, indent=1, default=str))


def main(argv: list[str] | None = None) -> None:
    from hourglass.logs import setup_logging
    from hourglass.spark.session import get_spark

    args = parse_args(argv)
    setup_logging()
    start = time.perf_counter()
    spark = get_spark("hourglass-paper-study")
    try:
        for dataset in args.dataset:
            res = run_dataset(spark, args, dataset)
            folder = Path(args.output).resolve() / dataset
            if args.shapes_only:
                print(f"\n{dataset}: layer concentration by M (chosen M = {res['M']})\n"
                      f"{res['shapes_table']}\n")
                continue
            if args.task == "search":
                print(f"\n{dataset} (search, {args.prompt_mode}): M = {res['M']}, "
                      f"{res['users']} test users, seeds {args.seeds}\n"
                      f"\nThe fixes against the base\n{res['fixes']}\n"
                      f"\nHead and tail\n{res['head_tail']}\n"
                      f"\n{dataset}: wall {res['wall_s'] / 60:.1f} min; outputs in {folder}")
                continue
            print(f"\n{dataset}: M = {res['M']}, {res['users']} test users, seeds {args.seeds}, "
                  f"{res['steps']} steps ≈ {args.cpu_minutes:g} CPU-minutes per model\n"
                  f"\nTable 1\n{res['table1']}\n\nTable 2\n{res['table2']}\n"
                  f"\nInvalid SIDs by k\n{res['invalid']}\n"
                  f"\n{dataset}: wall {res['wall_s'] / 60:.1f} min; outputs in {folder}")
    finally:
        spark.stop()
    print(f"wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
