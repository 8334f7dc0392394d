"""Stage `evaluate`: fine-tuned models + `sft_examples` → `eval_results` (paper Tables 1–2, Fig. 5).

For each strategy: constrained beam search ranks items for every held-out user, free beam search
measures the share of invalid SIDs at each k, and both are split by the target's layer-2
head/tail tag (its token's tag in a stats run, `hourglass.spark.segments`). A popularity
baseline (strategy `popularity`) is scored on the same users. One commit replaces the rows of
(run_id, those strategies).

Each strategy's model is the one trained on the SID table version evaluated (the latest, or
`sids_version` by time travel; `scheduler_run_id` names the run of a scheduled pipeline), and its
held-out rows come from the `sft_examples` version it was trained on unless `sft_version` is set.
A model is never scored against SIDs it was not trained on (`hourglass.train.runs.find_model`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.errors import InputError
from hourglass.evaluation.labels import describe, given_label
from hourglass.evaluation.metrics import NDCG_KS, RECALL_KS, popularity_order
from hourglass.evaluation.tracked import ServingCatalog
from hourglass.logs import log
from hourglass.rewrite.strategies import parse_strategy
from hourglass.sft.format import uses_query
from hourglass.spark.progress import spark_step
from hourglass.spark.tables import TableRead, lineage, read_table, table_exists, write_slice
from hourglass.tracking import Run, tracked_run, tracking_field
from hourglass.train.config import TrainConfig
from hourglass.train.layout import run_folder_name, runs_root, strategy_dir
from hourglass.train.runs import (
    TrainedModel,
    find_model,
    trained_given_prefix,
    trained_max_seq_len,
    trained_prompt_mode,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVAL_COLUMNS = "run_id string, strategy string, subset string, metric string, k int, value double"
POPULARITY = "popularity"


@dataclasses.dataclass
class EvaluateConfig(StageConfig):
    """Rank held-out items with trie-constrained beam search; Recall/NDCG/invalid ratio.

    Keys:
        run_id: names this evaluation's rows in eval_results (required)
        strategies: SID strategies whose fine-tuned models are scored
        runs_root: folder of the fine-tune runs, one subfolder per strategy; empty:
            <output_root>/sft_runs
        split: held-out split to score: test or valid
        beam_size: beams of the constrained beam search (>= the largest k)
        recall_ks: k of Recall@k
        ndcg_ks: k of NDCG@k
        measure_invalid: also run free beam search to measure the share of invalid SIDs
        max_users: score a seeded sample of this many users; 0: all
        seed: seed of the user sample
        batch_users: users per beam-search batch
        max_prompt_len: prompt tokens kept; 0: what the trained sequence length leaves
        partitions: partitions of the users while scoring; 0: Spark's default parallelism
        include_popularity: also score the popularity baseline on the same users
        sft_table: table of the held-out examples
        sft_version: Delta version of sft_examples; empty: the one each model was trained on
        sids_table: table of the SIDs decoded against (the version the model was trained on)
        sids_version: Delta version of the SID table; empty: the latest
        interactions_table: interactions that rank items for the popularity baseline
        layer_stats_table: per-token statistics with each token's head/tail segment (from
            hourglass_stats); empty: no head/tail split
        segments_run_id: stats run whose segments tag the targets; empty: the fixed-length run
        segment_layer: layer whose head/tail split the metrics are broken down by
        summary_table: statistics summary: the stats runs and the SID table each measured
        output_table: output table of the metrics
        scheduler_run_id: the scheduler's run id of the fine-tunes to score
        register_strategy: register this strategy's model in the MLflow model registry, as a
            pyfunc with a signature (history item ids in, SIDs and items out); empty: none
        registered_model: name of the registered model; three-part catalog.schema.model for
            Unity Catalog (the registry on Databricks, or MLFLOW_REGISTRY_URI=databricks-uc)
    """

    run_id: str = ""
    strategies: list[str] = dataclasses.field(default_factory=lambda: ["none"])
    runs_root: str = ""
    split: str = "test"
    beam_size: int = 50
    recall_ks: list[int] = dataclasses.field(default_factory=lambda: list(RECALL_KS))
    ndcg_ks: list[int] = dataclasses.field(default_factory=lambda: list(NDCG_KS))
    measure_invalid: bool = True
    max_users: int = 0
    seed: int = 1234
    batch_users: int = 32
    max_prompt_len: int = 0
    partitions: int = 0
    include_popularity: bool = True
    sft_table: str = "sft_examples"
    sft_version: int | None = None
    sids_table: str = "item_sids_rw"
    sids_version: int | None = None
    interactions_table: str = "interactions"
    layer_stats_table: str = "sid_layer_stats"
    segments_run_id: str = ""
    segment_layer: int = 2
    summary_table: str = "sid_summary"
    output_table: str = "eval_results"
    scheduler_run_id: str = ""
    tracking: bool = tracking_field()
    register_strategy: str = ""
    registered_model: str = "hourglass-sid-retrieval"

    def strategy_names(self) -> list[str]:
        return [parse_strategy(s).name for s in self.strategies]

    def strategy_runs(self, strategy: str) -> Path:
        """`<runs_root>/<strategy>`; runs_root defaults to `<output_root>/sft_runs`."""
        return strategy_dir(self.runs_root or runs_root(self.output_root), strategy)

    def registered(self) -> str:
        """The name of the strategy to register ("topk(16)" and "topk_16" alike), or ""."""
        return parse_strategy(self.register_strategy).name if self.register_strategy else ""

    def max_k(self) -> int:
        return max([*self.recall_ks, *self.ndcg_ks])

    def validate(self) -> None:
        require(bool(self.run_id) and "'" not in self.run_id, "run_id",
                "is required (no quotes): it keys this evaluation's rows")
        require(len(self.strategies) > 0, "strategies", "name at least one strategy")
        for s in self.strategies:
            parse_strategy(s).validate()
        require(self.split in ("test", "valid"), "split", "must be test or valid")
        require(self.beam_size >= 1, "beam_size", "must be >= 1")
        for key in ("recall_ks", "ndcg_ks"):
            ks = getattr(self, key)
            require(len(ks) > 0 and all(k >= 1 for k in ks), key, "must be integers >= 1")
        require(self.max_k() <= self.beam_size, "beam_size",
                f"must be >= the largest k ({self.max_k()}): a beam returns that many SIDs")
        for key in ("max_users", "max_prompt_len", "partitions"):
            require(getattr(self, key) >= 0, key, "must be >= 0 (0 = all / automatic)")
        require(self.batch_users >= 1, "batch_users", "must be >= 1")
        require(bool(self.runs_root or self.output_root), "runs_root",
                "is required when output_root is empty")
        require(run_folder_name(self.scheduler_run_id) not in (".", ".."), "scheduler_run_id",
                "must name a folder")
        require(not self.register_strategy or self.registered() in self.strategy_names(),
                "register_strategy", f"must be one of the evaluated {self.strategy_names()}")
        require(not self.register_strategy or self.tracking, "register_strategy",
                "needs tracking: true (the registry is MLflow's)")
        require(bool(self.registered_model), "registered_model", "must not be empty")

    def preflight(self) -> None:
        super().preflight()
        if self.register_strategy:
            from hourglass.tracking import check_model_name, registry_uri, tracking_uri

            uri = tracking_uri(self.output_root or self.runs_root)
            check_model_name(self.registered_model, registry_uri(uri))


def _held_out(sft: DataFrame, strategy: str, split: str) -> DataFrame:
    from pyspark.sql import functions as F

    splits = ["valid", "test"] if split == "valid" else ["test"]
    return sft.where((F.col("strategy") == strategy) & F.col("split").isin(splits))


def _segments(spark: SparkSession, cfg: EvaluateConfig) -> tuple[DataFrame | None, dict]:
    """(target_item_id, segment) of the configured stats run, and its lineage entries."""
    from pyspark.sql import functions as F

    from hourglass.spark.segments import segment_tags, stats_runs

    summary_ref, stats_ref = cfg.ref(cfg.summary_table), cfg.ref(cfg.layer_stats_table)
    runs = stats_runs(spark, summary_ref) if cfg.layer_stats_table else {}
    if not runs or not table_exists(spark, stats_ref):
        log.warning("evaluate: no statistics runs in %s: metrics for subset 'all' only",
                    summary_ref)
        return None, {}
    run_id = cfg.segments_run_id or _fixed_sid_run(runs, summary_ref)
    tags = segment_tags(spark, summary_ref, stats_ref, run_id, cfg.segment_layer)
    out = tags.frame.select(F.col("item_id").alias("target_item_id"), "segment")
    return out, {**tags.inputs, "segments_run_id": run_id}


def _fixed_sid_run(runs: dict[str, str], summary_ref: str) -> str:
    """The stats run to tag targets with: the only one, else the only run over fixed-length
    (unrewritten) SIDs: Table 1 splits by the original layer-2 token."""
    if len(runs) == 1:
        return next(iter(runs))
    fixed = sorted(r for r, kind in runs.items() if kind == "fixed")
    if len(fixed) != 1:
        raise ValueError(f"{summary_ref} holds runs {sorted(runs)} ({len(fixed)} over "
                         "fixed-length SIDs): set segments_run_id to the stats run of the "
                         "original SIDs")
    return fixed[0]


def sample_users(df: DataFrame, n: int, seed: int) -> DataFrame:
    """The same `n` users for every strategy (and for baselines scored outside the job, as
    benchmarks/quality.py's SASRec): order by a seeded hash of user_id."""
    from pyspark.sql import functions as F

    return df.orderBy(F.xxhash64("user_id", F.lit(seed)), "user_id").limit(n) if n else df


@dataclasses.dataclass
class EvaluateResult:
    """What one evaluation wrote: the `eval_results` version, users scored per strategy (and
    the popularity baseline), the model each strategy was scored with and the SID version."""

    run_id: str
    output_version: int
    users: dict[str, int]
    rows: int
    models: dict[str, str]
    sids_version: int
    registered_version: str | None = None


def run(spark: SparkSession, cfg: EvaluateConfig, replace_run: bool = False,
        parent: Run | None = None) -> EvaluateResult:
    """Evaluate every named strategy (and the popularity baseline); write `eval_results`.

    `replace_run` replaces every row of the run_id (the ablation owns its whole run); otherwise
    only the rows of the evaluated strategies, so strategies can be evaluated job by job. Each
    strategy is an MLflow child run of `parent` (the ablation's), else of this job's own run.
    """
    from hourglass.evaluation.tracked import log_evaluation, register_model

    own = tracked_run(cfg.tracking, cfg.output_root or cfg.runs_root, f"evaluate {cfg.run_id}",
                      "evaluate", {"hourglass.eval_run_id": cfg.run_id})
    with contextlib.nullcontext(parent) if parent is not None else own as track:
        track.params(cfg.to_dict(), prefix="" if parent is None else "evaluate.")
        out, rows, models, serving = _evaluate(spark, cfg, replace_run)
        log_evaluation(track, cfg.run_id, rows, out.users, models)
        track.tags({"hourglass.eval_results_version": out.output_version,
                    "hourglass.sids_version": out.sids_version})
        if serving is not None:
            out.registered_version = register_model(
                track, cfg.registered_model, cfg.registered(), models[cfg.registered()], rows,
                cfg.run_id, serving)
    return out


def _evaluate(spark: SparkSession, cfg: EvaluateConfig, replace_run: bool
              ) -> tuple[EvaluateResult, list[tuple], dict[str, TrainedModel],
                         ServingCatalog | None]:
    """The evaluation itself: its summary, the `eval_results` rows, the models scored and the
    catalog of `register_strategy` (None when none is registered)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from hourglass.spark.evaluation import (
        metric_rows,
        popularity_counts,
        popularity_scored,
        rank_users,
    )

    sids = read_table(spark, cfg.ref(cfg.sids_table), cfg.sids_version)
    names = cfg.strategy_names()
    # every pairing is checked before any scoring starts
    models = {n: locate_model(cfg, n, sids.version) for n in names}
    sft_reads = {v: read_table(spark, cfg.ref(cfg.sft_table), v)
                 for v in {sft_version_for(cfg, m) for m in models.values()}}
    inter = read_table(spark, cfg.ref(cfg.interactions_table))
    segments, seg_lineage = _segments(spark, cfg)
    invalid_ks = cfg.recall_ks if cfg.measure_invalid else []
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    n_parts = cfg.partitions or spark.sparkContext.defaultParallelism
    rows: list[tuple] = []
    users: dict[str, int] = {}
    labels: dict[str, str] = {}
    serving = None
    for i, name in enumerate(names):
        model_dir = models[name].model_dir
        sft = sft_reads[sft_version_for(cfg, models[name])]
        test = sample_users(_held_out(sft.df, name, cfg.split).where(F.col("split") == cfg.split),
                            cfg.max_users, cfg.seed)
        given = trained_given_prefix(model_dir)
        label = given_label(name, given)
        with_query = uses_query(check_prompt_mode(sft, name, model_dir))
        test = test.select("user_id", "prompt_tokens", "target_item_id", "target_tokens",
                           *(["query"] if with_query else [])).persist(
            StorageLevel.MEMORY_AND_DISK)
        counts = popularity_counts(inter.df, _held_out(sft.df, name, cfg.split))
        pop = {r["item_id"]: r["count"] for r in counts.collect()}
        cat_rows = sids.df.where(F.col("strategy") == name).select("item_id", "tokens").collect()
        catalog = ([r["item_id"] for r in cat_rows], [list(r["tokens"]) for r in cat_rows], pop)
        catalog_bc = spark.sparkContext.broadcast(catalog)
        longest = max((len(t) for t in catalog[1]), default=0)
        trained_len = trained_max_seq_len(model_dir, TrainConfig.max_seq_len)
        max_prompt = cfg.max_prompt_len or trained_len - (longest + 1)
        if name == cfg.registered() and not given:
            example = test.select("query").first()[0] if with_query else None
            serving = ServingCatalog(*catalog, beam=cfg.beam_size, max_prompt_len=max_prompt,
                                     example_query=example)
        scored = rank_users(test.repartition(n_parts), model_dir, catalog_bc, cfg.beam_size,
                            cfg.max_k(), invalid_ks, max_prompt, cfg.batch_users, threads,
                            given, with_query)
        scored_sets = [(label, scored, invalid_ks)]
        if cfg.include_popularity and i == 0:
            top = popularity_order(pop)[:cfg.max_k()]
            scored_sets.append((POPULARITY, popularity_scored(test, top), []))
        # the beam search runs in these actions: a task bar shows how far it is
        with spark_step(spark, "evaluate", f"beam search of {name} (strategy {i + 1} of "
                        f"{len(names)}, {n_parts} partitions)", bar=True):
            for strategy, frame, inv in scored_sets:
                frame = (frame.join(segments, "target_item_id", "left") if segments is not None
                         else frame.withColumn("segment", F.lit(None).cast("string")))
                frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
                for subset, metric, k, value in metric_rows(frame, cfg.recall_ks, cfg.ndcg_ks,
                                                            inv):
                    rows.append((cfg.run_id, strategy, subset, metric, k, value))
                users[strategy] = frame.count()
                frame.unpersist()
        n_test = test.count()
        if users[label] != n_test:
            raise RuntimeError(f"{label}: scored {users[label]} users of {n_test}")
        test.unpersist()
        catalog_bc.unpersist()
        log.info("evaluate %s: %d users; %s", describe(label), n_test, ", ".join(
            f"{m}@{k}={v:.4f}" for _, st, sub, m, k, v in rows
            if st == label and sub == "all" and m in ("recall", "invalid_ratio") and k == 10))
        labels[name] = label
    written = [*labels.values(), *([POPULARITY] if cfg.include_popularity else [])]
    record = lineage("evaluate", cfg.config_hash(),
                     {**{r.ref: r.version for r in sft_reads.values()}, sids.ref: sids.version,
                      inter.ref: inter.version, **seg_lineage},
                     run_id=cfg.run_id, strategies=written,
                     models={n: dataclasses.asdict(m) for n, m in models.items()},
                     sft_versions={n: sft_version_for(cfg, m) for n, m in models.items()})
    version = write_eval_rows(spark, rows, cfg.ref(cfg.output_table), cfg.run_id,
                              None if replace_run else written, record)
    out = EvaluateResult(cfg.run_id, version, users, len(rows),
                         {n: m.model_dir for n, m in models.items()}, sids.version)
    return out, rows, models, serving


def check_prompt_mode(sft: TableRead, strategy: str, model_dir: str) -> str:
    """The model's prompt mode, after checking the held-out rows were built with it: a model
    never sees prompts of another shape (one line, before any scoring)."""
    from pyspark.sql import functions as F

    mode = trained_prompt_mode(model_dir)
    rows = sft.df.where(F.col("strategy") == strategy)
    if "prompt_mode" in rows.columns:
        found = {r[0] or "history" for r in rows.select("prompt_mode").distinct().collect()}
    else:
        found = {"history"}
    if found != {mode}:
        raise InputError(f"{model_dir} was fine-tuned with prompt_mode {mode}, but "
                         f"{sft.ref} v{sft.version} rows of {strategy!r} were built with "
                         f"{', '.join(sorted(found))}: evaluate it on sft_examples built with "
                         f"prompt_mode {mode}")
    return mode


def locate_model(cfg: EvaluateConfig, strategy: str, sids_version: int) -> TrainedModel:
    """The model of `strategy` trained on `sids_version`; refuses any other pairing."""
    model = find_model(cfg.strategy_runs(strategy), sids_version, cfg.sids_table,
                       cfg.scheduler_run_id)
    log.info("evaluate %s: model %s (trained on %s v%d, sft_examples v%d, codebook %s)",
             strategy, model.model_dir, cfg.sids_table, model.sids_version, model.sft_version,
             model.codebook_id or "unknown")
    return model


def sft_version_for(cfg: EvaluateConfig, model: TrainedModel) -> int:
    """`sft_version` when set, else the version the model was trained on: its held-out rows
    are written in the SID tokens it knows."""
    if cfg.sft_version is None:
        return model.sft_version
    if cfg.sft_version != model.sft_version:
        log.warning("evaluate: %s was trained on sft_examples v%d; held-out rows come from v%d",
                    model.model_dir, model.sft_version, cfg.sft_version)
    return cfg.sft_version


def write_eval_rows(spark: SparkSession, rows: list[tuple], ref: str, run_id: str,
                    strategies: list[str] | None, record: dict) -> int:
    """One commit: replace (run_id, strategies) rows, or all of run_id when strategies is None."""
    df = spark.createDataFrame(rows, EVAL_COLUMNS)
    slice_: dict[str, str | list[str]] = {"run_id": run_id}
    if strategies is not None:
        slice_["strategy"] = strategies
    return write_slice(df, ref, record, slice_).version


