"""Stage `build_sft_data`: `interactions` + `item_sids_rw` → `sft_examples`, one slice a strategy.

Strategies coexist in `sft_examples` (partitioned by `strategy`): a run replaces only the
strategies it names, in one commit, and its own quarantine slices in one more. Users too short
to split are quarantined row by row with the reason, counted and logged, never silently lost.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.errors import InputError
from hourglass.logs import log
from hourglass.rewrite.strategies import parse_strategy
from hourglass.sft.examples import MIN_INTERACTIONS
from hourglass.sft.format import PROMPT_MODES, uses_query
from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.session import persist_catalog
from hourglass.spark.sft import (
    SFT_COLUMNS,
    SftFrames,
    build_examples,
    check_unique_sids,
    history_only,
    quarantine_stage,
)
from hourglass.spark.tables import TableRead, lineage, read_table, write_slice

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class BuildSftDataConfig(StageConfig):
    """Leave-one-out SFT examples (sliding-window train, capped history) per SID strategy.

    Keys:
        strategies: SID strategies to build examples for
        history_max_items: most recent items kept in a prompt's history
        train_stride: keep every train_stride-th train window, back from the last (1: all);
            at history_max_items each train item sits in one kept window, for sft_train's
            loss_on all_items (the dropped windows' targets are counted as history_only)
        min_interactions: fewest interactions a user needs (one test, one valid, one history item)
        prompt_mode: what a prompt holds: history (the item history, recommendation),
            query_history (the target interaction's query, then the history: personalized
            search, the paper's eq. 4) or query (the query alone); the query modes need a
            `query` column in interactions and refuse (quarantine) interactions without one;
            each row records the mode, and sft_train / evaluate refuse a mismatch
        interactions_table: input table of interactions
        interactions_version: Delta version of interactions to read; empty: the latest
        sids_table: input table of rewritten SIDs
        sids_version: Delta version of the SID table to read; empty: the latest
        output_table: output table of SFT examples
    """

    strategies: list[str] = dataclasses.field(default_factory=lambda: ["none"])
    history_max_items: int = 20
    train_stride: int = 1
    min_interactions: int = MIN_INTERACTIONS
    prompt_mode: str = "history"
    interactions_table: str = "interactions"
    interactions_version: int | None = None
    sids_table: str = "item_sids_rw"
    sids_version: int | None = None
    output_table: str = "sft_examples"

    def strategy_names(self) -> list[str]:
        """Canonical names (`topk(16)` → `topk_16`), the keys used in `item_sids_rw`."""
        return [parse_strategy(s).name for s in self.strategies]

    def validate(self) -> None:
        require(len(self.strategies) > 0, "strategies", "name at least one strategy")
        for s in self.strategies:
            parse_strategy(s).validate()
        names = self.strategy_names()
        require(len(set(names)) == len(names), "strategies", f"duplicates in {names}")
        require(self.history_max_items >= 1, "history_max_items", "must be >= 1")
        require(1 <= self.train_stride <= self.history_max_items, "train_stride",
                "must be in [1, history_max_items] (a larger stride skips items entirely)")
        require(self.min_interactions >= MIN_INTERACTIONS, "min_interactions",
                f"must be >= {MIN_INTERACTIONS} (one test, one valid, one history item)")
        require(self.prompt_mode in PROMPT_MODES, "prompt_mode",
                f"must be one of {', '.join(PROMPT_MODES)}")
        for key in ("interactions_table", "sids_table", "output_table"):
            require(bool(getattr(self, key)), key, "must not be empty")


@dataclasses.dataclass(frozen=True)
class SftStrategyCounts:
    """Row accounting of one strategy: interactions_in = examples + first_items + history_only
    + quarantined (history_only: targets of train windows dropped by train_stride); users_in
    counts the distinct non-null user_ids (rows without one are quarantined)."""

    strategy: str
    interactions_in: int
    users_in: int
    users_kept: int
    users_too_short: int
    train: int
    valid: int
    test: int
    first_items: int
    history_only: int
    quarantined: int
    quarantine_reasons: dict[str, int]

    def check(self) -> None:
        examples = self.train + self.valid + self.test
        if self.interactions_in != (examples + self.first_items + self.history_only
                                    + self.quarantined):
            raise RuntimeError(f"sft rows do not reconcile: {self}")
        if self.users_in < self.users_kept or self.valid != self.users_kept or (
                self.test != self.users_kept):
            raise RuntimeError(f"sft users do not reconcile: {self}")


@dataclasses.dataclass(frozen=True)
class SftDataResult:
    output_version: int
    interactions_version: int
    sids_version: int
    strategies: list[SftStrategyCounts]

    def check(self) -> None:
        for s in self.strategies:
            s.check()


def run(spark: SparkSession, cfg: BuildSftDataConfig) -> SftDataResult:
    """Write the named strategies' slices of `sft_examples` and quarantine; reconcile counts."""
    from pyspark.sql import functions as F

    inter = read_table(spark, cfg.ref(cfg.interactions_table), cfg.interactions_version)
    sids = read_table(spark, cfg.ref(cfg.sids_table), cfg.sids_version)
    names = cfg.strategy_names()
    present = {r["strategy"] for r in sids.df.select("strategy").distinct().collect()}
    missing = sorted(set(names) - present)
    if missing:
        raise ValueError(f"{sids.ref}@v{sids.version} has no rows for strategies {missing}; "
                         f"it holds {sorted(present)}")
    check_unique_sids(sids.df, names)
    if uses_query(cfg.prompt_mode) and "query" not in inter.df.columns:
        raise InputError(f"prompt_mode {cfg.prompt_mode} needs a `query` column in "
                         f"{inter.ref}@v{inter.version}: ingest interactions that carry one "
                         "(docs/contract.md; hourglass-derive-queries makes them for the "
                         "bundled samples)")
    frames = [build_examples(inter.df, sids.df.where(F.col("strategy") == name), name,
                             cfg.history_max_items, cfg.min_interactions, cfg.train_stride,
                             cfg.prompt_mode)
              for name in names]
    for f in frames:  # the join and the per-user aggregation, once for all outputs
        persist_catalog(f.users)
    try:
        version, counts = _write_and_count(spark, cfg, inter, sids, names, frames)
    finally:
        for f in frames:
            f.users.unpersist()
    result = SftDataResult(output_version=version, interactions_version=inter.version,
                           sids_version=sids.version, strategies=counts)
    result.check()
    return result


def _write_and_count(spark: SparkSession, cfg: BuildSftDataConfig, inter: TableRead,
                     sids: TableRead, names: list[str], frames: list[SftFrames]
                     ) -> tuple[int, list[SftStrategyCounts]]:
    """One commit for the examples, one for the quarantine, then the counts of each strategy
    from what was written and from the persisted per-user frames."""
    from pyspark.sql import functions as F

    examples = frames[0].examples
    quarantine = frames[0].quarantine
    for f in frames[1:]:
        examples = examples.unionByName(f.examples)
        quarantine = quarantine.unionByName(f.quarantine)
    record = lineage("build_sft_data", cfg.config_hash(),
                     {inter.ref: inter.version, sids.ref: sids.version}, strategies=names,
                     prompt_mode=cfg.prompt_mode)
    out_ref = cfg.ref(cfg.output_table)
    # add_columns: a table written before `query` and `prompt_mode` existed gains them (its
    # older rows read null, i.e. mode history)
    version = write_slice(examples.select(*SFT_COLUMNS), out_ref, record, {"strategy": names},
                          partition_by=["strategy"], add_columns=True).version
    q_ref = cfg.ref(cfg.quarantine_table)
    stages = [quarantine_stage(n) for n in names]
    write_quarantine(quarantine, q_ref, stages, record)

    written = read_table(spark, out_ref, version).df.where(F.col("strategy").isin(names))
    by_split = {(r["strategy"], r["split"]): r["count"]
                for r in written.groupBy("strategy", "split").count().collect()}
    q_rows = (read_table(spark, q_ref).df.where(F.col("stage").isin(stages))
              .groupBy("stage", "reason").count().collect())
    n_in = inter.df.count()  # answered from the Delta log's file statistics when present
    counts = []
    for name, frame in zip(names, frames, strict=True):
        stage = quarantine_stage(name)
        reasons = {r["reason"]: r["count"] for r in q_rows if r["stage"] == stage}
        kept = F.col("n") >= cfg.min_interactions
        row = frame.users.agg(
            F.count("*").alias("users"), F.count(F.when(kept, 1)).alias("kept"),
            F.sum(F.when(kept, history_only(cfg.train_stride))).alias("history_only")).first()
        c = SftStrategyCounts(
            strategy=name, interactions_in=n_in, users_in=row["users"], users_kept=row["kept"],
            users_too_short=row["users"] - row["kept"],
            train=by_split.get((name, "train"), 0), valid=by_split.get((name, "valid"), 0),
            test=by_split.get((name, "test"), 0), first_items=row["kept"],
            history_only=row["history_only"] or 0,
            quarantined=sum(reasons.values()), quarantine_reasons=reasons)
        log.info("build_sft_data %s (prompt_mode %s): %d users kept, %d too short to "
                 "split; train %d (stride %d, %d targets left as history only), valid %d, "
                 "test %d; quarantined %d", name, cfg.prompt_mode, c.users_kept,
                 c.users_too_short, c.train, cfg.train_stride, c.history_only, c.valid, c.test,
                 c.quarantined)
        for reason, n in sorted(reasons.items()):
            log.info("quarantined %s: %s × %d", stage, reason, n)
        counts.append(c)
    return version, counts
