"""Stage `ablation`: the paper's Table 2 in one command.

SFT data for every strategy (one commit), the same model and budget fine-tuned on each with
DeepSpeed, all evaluated on the same users with a popularity baseline, one `eval_results`
commit for the run, and the table printed. Sub-sections `sft`, `train`, `evaluate` hold the keys
of `build_sft_data`, `sft_train` and `evaluate`; the keys that tie them together (output_root,
strategies, run_id, run folders) are set here only.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hourglass.config import ConfigError, StageConfig, require
from hourglass.evaluation.labels import given_label
from hourglass.evaluation.table import invalid_table, results_table
from hourglass.logs import log
from hourglass.rewrite.strategies import parse_strategy
from hourglass.spark.tables import read_table
from hourglass.stages import build_sft_data, evaluate
from hourglass.tracking import Run, metric_key, tracked_run, tracking_field
from hourglass.train.config import TrainConfig
from hourglass.train.layout import ablation_runs_root, run_folder_name, strategy_dir
from hourglass.train.runs import recorded, run_dir_of

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAUNCHERS = ("deepspeed", "torchrun", "python", "distributor")
_OWNED = {"sft": ("output_root", "strategies"),
          "train": ("output_root", "strategy", "output_dir", "scheduler_run_id"),
          "evaluate": ("output_root", "strategies", "run_id", "runs_root", "scheduler_run_id")}


@dataclasses.dataclass
class AblationConfig(StageConfig):
    """Train and evaluate one model per SID strategy under the same budget; print Table 2.

    Keys:
        run_id: names the ablation's rows in eval_results and its run folders (required)
        strategies: SID strategies compared (one fine-tune each, same model and budget)
        sft: build_sft_data keys (besides output_root and strategies)
        train: sft_train keys shared by every strategy's fine-tune
        evaluate: evaluate keys (besides output_root, strategies, run_id, runs_root)
        launcher: how each fine-tune starts: deepspeed, torchrun, python or distributor
        num_procs: ranks per fine-tune
        use_gpu: the distributor launcher trains on GPUs
        build_sft: build sft_examples first (false: reuse the table as it is)
        scheduler_run_id: the scheduler's run id, keeping each scheduled run's models apart
    """

    run_id: str = ""
    strategies: list[str] = dataclasses.field(
        default_factory=lambda: ["none", "drop_layer(2)", "topk(16)", "topk(64)"])
    sft: dict = dataclasses.field(default_factory=dict)
    train: dict = dataclasses.field(default_factory=dict)
    evaluate: dict = dataclasses.field(default_factory=dict)
    launcher: str = "deepspeed"
    num_procs: int = 1
    use_gpu: bool = False
    build_sft: bool = True
    scheduler_run_id: str = ""
    tracking: bool = tracking_field()

    def names(self) -> list[str]:
        return [parse_strategy(s).name for s in self.strategies]

    def runs_root(self) -> str:
        """`<output_root>/sft_runs/<run_id>`, plus the scheduler's run id when given, so each
        scheduled run keeps its models; without one a re-run resumes or retrains in place."""
        return ablation_runs_root(self.output_root, self.run_id, self.scheduler_run_id)

    def sft_config(self) -> build_sft_data.BuildSftDataConfig:
        return _sub(build_sft_data.BuildSftDataConfig, "sft", {
            **self.sft, "output_root": self.output_root, "strategies": self.names()})

    def train_config(self, strategy: str) -> TrainConfig:
        return _sub(TrainConfig, "train", {
            **self.train, "output_root": self.output_root, "strategy": strategy,
            "output_dir": str(strategy_dir(self.runs_root(), strategy)),
            "scheduler_run_id": self.scheduler_run_id})

    def eval_config(self) -> evaluate.EvaluateConfig:
        return _sub(evaluate.EvaluateConfig, "evaluate", {
            **self.evaluate, "output_root": self.output_root, "strategies": self.names(),
            "run_id": self.run_id, "runs_root": self.runs_root()})

    def validate(self) -> None:
        require(bool(self.run_id) and "'" not in self.run_id and "/" not in self.run_id,
                "run_id", "is required (no quotes or slashes)")
        require(bool(self.output_root), "output_root", "is required (tables and run folders)")
        require(run_folder_name(self.scheduler_run_id) not in (".", ".."), "scheduler_run_id",
                "must name a folder")
        require(len(self.strategies) > 0, "strategies", "name at least one strategy")
        for s in self.strategies:
            parse_strategy(s).validate()
        require(len(set(self.names())) == len(self.names()), "strategies", "has duplicates")
        require(self.launcher in LAUNCHERS, "launcher", f"must be one of {LAUNCHERS}")
        require(self.num_procs >= 1, "num_procs", "must be >= 1")
        require(self.launcher != "python" or self.num_procs == 1, "num_procs",
                "launcher 'python' runs one process")
        for section, keys in _OWNED.items():
            clash = sorted(set(getattr(self, section)) & set(keys))
            require(not clash, section, f"must not set {clash}: the ablation sets them")
        stride = self.sft_config().train_stride
        loss_on = self.train_config(self.names()[0]).loss_on
        self.eval_config()
        require(stride == 1 or loss_on == "all_items", "sft.train_stride",
                f"{stride} leaves most train targets in histories only; their items are "
                f"taught only with train.loss_on all_items (got {loss_on!r})")


def _sub(cls: type, section: str, data: dict[str, Any]) -> Any:
    try:
        return cls.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"ablation.{section}: {exc}") from exc


@dataclasses.dataclass(frozen=True)
class AblationResult:
    run_id: str
    strategies: list[str]
    sft_version: int
    training: dict[str, dict]
    eval_version: int
    table: str
    invalid: str


def prepare_run_dir(cfg: TrainConfig, sft_version: int, sids_version: int) -> None:
    """Keep a run folder only if it trained on these table versions with this config, so a
    re-run resumes an interrupted fine-tune but never continues one on other data."""
    run_dir = Path(run_dir_of(cfg))
    if not run_dir.exists():
        return
    old = recorded(run_dir)
    same = (bool(old) and old.get("sft_version") == sft_version
            and old.get("sids_version") == sids_version and old.get("config") == cfg.to_dict())
    if not same:
        log.info("ablation: starting %s afresh (data or config changed)", run_dir)
        shutil.rmtree(run_dir)


def run(spark: SparkSession, cfg: AblationConfig) -> AblationResult:
    """SFT data → one fine-tune per strategy → evaluation → Table 2 on stdout.

    One MLflow run holds the evaluation's per-strategy child runs and Table 2 (the fine-tunes
    are runs of their own, tagged with what they trained on).
    """
    with tracked_run(cfg.tracking, cfg.output_root, f"ablation {cfg.run_id}", "ablation",
                     {"hourglass.eval_run_id": cfg.run_id}) as track:
        track.params({k: v for k, v in cfg.to_dict().items()
                      if k not in ("sft", "train", "evaluate")})
        result = _ablation(spark, cfg, track)
        track.text(result.table, "table2.txt")
        if result.invalid:
            track.text(result.invalid, "invalid_sids.txt")
        for name, t in result.training.items():
            track.metrics({metric_key("train", name, k): v for k, v in t.items()
                           if isinstance(v, (int, float))})
    return result


def _ablation(spark: SparkSession, cfg: AblationConfig, track: Run) -> AblationResult:
    from hourglass.spark.distributor import run_with_distributor
    from hourglass.train.launch import run_training

    names = cfg.names()
    if cfg.build_sft:
        build_sft_data.run(spark, cfg.sft_config())
    sft_cfg = cfg.sft_config()
    sft_version = read_table(spark, sft_cfg.ref(sft_cfg.output_table)).version
    sids_version = read_table(spark, sft_cfg.ref(sft_cfg.sids_table)).version
    training: dict[str, dict] = {}
    for name in names:
        tcfg = dataclasses.replace(cfg.train_config(name), sft_version=sft_version,
                                   sids_version=sids_version)
        prepare_run_dir(tcfg, sft_version, sids_version)
        log.info("ablation %s: training %s (%s, %d process(es))", cfg.run_id, name,
                 cfg.launcher, cfg.num_procs)
        if cfg.launcher == "distributor":
            res = run_with_distributor(tcfg, cfg.num_procs, cfg.use_gpu)
        else:
            res = run_training(tcfg, cfg.launcher, cfg.num_procs)
        training[name] = {k: res.get(k) for k in (
            "train_loss", "valid_loss_start", "valid_loss_end", "steps", "tokens_per_s",
            "seconds", "world_size", "stopped_step", "selected_step", "valid_recall")}
    ecfg = dataclasses.replace(cfg.eval_config(), sft_version=sft_version,
                               sids_version=sids_version)
    out = evaluate.run(spark, ecfg, replace_run=True, parent=track)
    rows = [tuple(r) for r in read_table(spark, ecfg.ref(ecfg.output_table)).df
            .where(f"run_id = '{cfg.run_id}'")
            .select("run_id", "strategy", "subset", "metric", "k", "value").collect()]
    # the rows' names: a strategy's, or `<strategy>+given_<n>` for a diagnostic fine-tune
    labels = [given_label(n, int(cfg.train_config(n).given_prefix)) for n in names]
    shown = [*labels, *([evaluate.POPULARITY] if ecfg.include_popularity else [])]
    table = results_table(rows, shown, ecfg.recall_ks, ecfg.ndcg_ks)
    inv = invalid_table(rows, labels, ecfg.recall_ks) if ecfg.measure_invalid else ""
    print(f"\nAblation {cfg.run_id}: generative retrieval by SID strategy "
          f"(paper Table 2; head/tail rows as Table 1)\n{table}\n")
    if inv:
        print(f"Invalid SIDs among the top-k of free beam search (paper Fig. 5)\n{inv}\n")
    for name, t in training.items():
        chosen = ("" if t["selected_step"] is None else
                  f", kept step {t['selected_step']} (valid Recall {t['valid_recall']:.4f})")
        print(f"train {name}: {t['steps']} steps, loss {t['train_loss']:.4f}, "
              f"valid {t['valid_loss_start']} → {t['valid_loss_end']}, "
              f"{t['tokens_per_s']:.0f} tokens/s, {t['seconds']:.1f} s{chosen}")
    return AblationResult(run_id=cfg.run_id, strategies=names, sft_version=sft_version,
                          training=training, eval_version=out.output_version,
                          table=table, invalid=inv)
