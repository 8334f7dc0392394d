"""Stage `hourglass_stats`: `item_sids` or `item_sids_rw` → the hourglass statistics tables.

Writes `sid_layer_stats` (each token tagged head or tail), `sid_summary` (naming the input table
and version measured) and `sid_flow` for one `run_id` (replacing only that run's rows, so the
original SIDs and every rewrite share the tables) and quarantines bad rows in the slice
`hourglass_stats_<run_id>`. An item's head/tail segment is derived where it is needed
(`hourglass.spark.segments`), not written per item.

Fixed-length SIDs take `spark.stats.scan`'s two scans; rewritten SIDs, and fixed ones whose ids
repeat, the row plan of `spark.stats.rows` (which finds and quarantines the duplicates).

L and M come, in this order, from `num_layers` / `num_codes`; from the manifest of the codebook
artifact the table names (`codebook_id`, or `source_codebook_id` of rewritten SIDs) under
`codebooks_root`; and, for fixed-length input only, from the table itself (longest `codes`,
largest code + 1, which undercounts M when the top codes are unused). The summary's `m_source`
says which (`config`, `codebook`, `inferred`). Rewritten input cannot be inferred from: a dropped
head token or a suffix layer makes both L and M ambiguous in the table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from hourglass.config import ConfigError, StageConfig, require
from hourglass.logs import log
from hourglass.spark.progress import names_its_jobs, next_step
from hourglass.spark.quarantine import quarantine_rows, write_quarantine
from hourglass.spark.stats.input import PAYLOAD, detect_kind
from hourglass.spark.tables import TableRead, lineage, read_table
from hourglass.stats.plan import (
    FIXED,
    ID_COLUMN,
    REWRITTEN,
    Shape,
    StatsPlan,
    codebooks_root,
    plan_stats,
    resolve_shape,
    scan_ranges,
)
from hourglass.stats.summary import middle_layer_collapsed
from hourglass.tracking import Run, tracked_run, tracking_field

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from hourglass.spark.stats.io import StatsFrames
    from hourglass.stats.summary import RunInfo

_RUN_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
RESULT_COLUMNS = ("layer", "n_tokens", "norm_entropy", "gini", "std", "utilization",
                  "top1_share", "distinct_prefixes", "path_fill", "mean_fanout", "norm_p50")


@dataclasses.dataclass
class HourglassStatsConfig(StageConfig):
    """Hourglass statistics of one SID table (fixed or rewritten) under a deterministic run_id.

    Keys:
        run_id: names this run's rows in the statistics tables (required; letters, digits, _ . -)
        input_table: SID table to measure: item_sids (fixed length) or item_sids_rw (rewritten)
        input_kind: auto (from the columns), fixed or rewritten
        strategy: the strategy's rows to measure in a rewritten table holding several
        num_layers: L; 0: from the codebook manifest, else inferred (fixed input only)
        num_codes: M; 0: from the codebook manifest, else inferred (fixed input only)
        head_share: share of items the head tokens cover (the rest are tail)
        segment_layer: layer whose head-token count the result reports
        flow_top_tokens: most frequent tokens per layer kept in sid_flow (the flow figure's nodes)
        check_duplicates: quarantine items that appear more than once
        direct_read: fixed-length SIDs read from the table's Parquet files with pyarrow where
            exact (a path on a mounted filesystem, no deletion vectors or column mapping);
            false: always through Spark
        codebooks_root: where the codebook manifests are; empty: <output_root>/codebooks
        layer_stats_table: output table of per-token counts per layer
        summary_table: output table of the per-layer summary
        flow_table: output table of the prefix flow between layers
    """

    run_id: str = ""
    input_table: str = "item_sids"
    input_kind: str = "auto"
    strategy: str = ""
    num_layers: int = 0
    num_codes: int = 0
    head_share: float = 0.5
    segment_layer: int = 2
    flow_top_tokens: int = 20
    check_duplicates: bool = True
    direct_read: bool = True
    codebooks_root: str = ""  # empty: <output_root>/codebooks
    layer_stats_table: str = "sid_layer_stats"
    summary_table: str = "sid_summary"
    flow_table: str = "sid_flow"
    tracking: bool = tracking_field()

    def validate(self) -> None:
        require(bool(_RUN_ID.match(self.run_id)), "run_id",
                "is required: 1-100 characters of letters, digits, '_', '.', '-'")
        require(self.input_kind in ("auto", FIXED, REWRITTEN), "input_kind",
                "must be auto, fixed or rewritten")
        require(self.num_layers >= 0, "num_layers", "must be >= 0 (0 = infer)")
        require(self.num_codes == 0 or self.num_codes >= 2, "num_codes",
                "must be >= 2, or 0 to infer")
        require(0.0 < self.head_share <= 1.0, "head_share", "must be in (0, 1]")
        require(self.segment_layer >= 1, "segment_layer", "must be >= 1")
        require(self.flow_top_tokens >= 1, "flow_top_tokens", "must be >= 1")
        require(not self.strategy.startswith("exchange"), "strategy",
                f"{self.strategy}: an exchange only reorders each SID's tokens, so its layers "
                "hold exactly the tokens of `none`: measure strategy none (the statistics read "
                "layers by their tags, in increasing order)")

    def require_shape(self) -> None:
        """Rewritten input whose codebook manifest is not found needs L and M spelled out."""
        hint = "is required for rewritten input when the codebook artifact is not found"
        require(self.num_layers >= 1, "num_layers", hint)
        require(self.num_codes >= 2, "num_codes", hint)

    @property
    def quarantine_stage(self) -> str:
        return "hourglass_stats_" + re.sub(r"[^A-Za-z0-9]", "_", self.run_id)


@dataclasses.dataclass
class HourglassStatsResult:
    """Counts that reconcile (rows_in = items + quarantined) and the headline figures."""

    run_id: str
    input_kind: str
    num_layers: int
    num_codes: int
    m_source: str
    rows_in: int
    items: int
    quarantined: int
    head_tokens: int
    layers: list[dict] = dataclasses.field(default_factory=list)
    middle_layer_collapsed: bool | None = None

    def check(self) -> None:
        if self.rows_in != self.items + self.quarantined:
            raise RuntimeError(f"rows do not reconcile: {self.rows_in} in != {self.items} "
                               f"counted + {self.quarantined} quarantined")


def _shape(cfg: HourglassStatsConfig, kind: str, codebook_id: str | None,
           infer=None) -> Shape:
    """(L, M, m_source): config, else the codebook manifest, else `infer()` (fixed input)."""
    from hourglass.spark.stats.prepare import codebook_shape

    root = codebooks_root(cfg.codebooks_root, cfg.output_root)
    book = None if cfg.num_layers and cfg.num_codes else codebook_shape(root, codebook_id)
    return resolve_shape(cfg.num_layers, cfg.num_codes, book,
                         infer if kind == FIXED else None)


def _select_input(spark: SparkSession, cfg: HourglassStatsConfig):
    """(pinned read, kind, the rows of this run): one strategy's rows of a rewritten table."""
    from pyspark.sql import functions as F

    src = read_table(spark, cfg.ref(cfg.input_table))
    kind = detect_kind(src.df) if cfg.input_kind == "auto" else cfg.input_kind
    df = src.df
    if kind == REWRITTEN and cfg.strategy:
        df = df.where(F.col("strategy") == cfg.strategy)
    elif kind == REWRITTEN:
        found = sorted(r[0] for r in df.select("strategy").distinct().limit(3).collect())
        if len(found) > 1:
            raise ConfigError(f"config key 'strategy': {src.ref} holds several strategies "
                              f"({', '.join(map(str, found))}, …); name one")
    return src, kind, df


@names_its_jobs
def run(spark: SparkSession, cfg: HourglassStatsConfig) -> HourglassStatsResult:
    """Compute and write one run's statistics; quarantine bad rows; reconcile the counts."""
    with tracked_run(cfg.tracking, cfg.output_root, f"hourglass_stats {cfg.run_id}",
                     "hourglass_stats", {"hourglass.stats_run_id": cfg.run_id}) as track:
        track.params(cfg.to_dict())
        return _run(spark, cfg, track)


def _log_summary(track: Run, summary, lineage_tags: dict) -> None:
    """Each summary column as a metric over the layers (step = layer), the table itself, and
    what it was computed from."""
    track.tags(lineage_tags)
    for row in summary.to_dict("records"):
        track.metrics({k: v for k, v in row.items() if k != "layer"
                       and isinstance(v, (int, float)) and not isinstance(v, bool)
                       and v == v}, int(row["layer"]))  # v == v: NaN is not a metric
    track.table({c: [_round(v) for v in summary[c].tolist()] for c in summary.columns},
                "sid_summary.json")


def _run(spark: SparkSession, cfg: HourglassStatsConfig, track: Run) -> HourglassStatsResult:
    from hourglass.spark.stats.input import fixed_frame, infer_fixed_shape, rewritten_frame
    from hourglass.spark.stats.prepare import first_value

    src, kind, df = _select_input(spark, cfg)
    book = first_value(df, ID_COLUMN[kind])
    plan = plan_stats(kind, _shape(cfg, kind, book, lambda: infer_fixed_shape(df)))
    L, M, m_source = plan.shape
    framed = (fixed_frame if kind == FIXED else rewritten_frame)(df, L, M, plan.carried)
    pinned = _Input(src, plan, book)
    done = None
    if plan.scanned:
        done = _run_scanned(spark, cfg, pinned, framed)
    if done is None:
        done = _run_rows(spark, cfg, pinned, framed)
    frames, info = done.frames, done.info
    next_step(spark, "hourglass_stats", f"write {frames.n_items} items' statistics of run "
              f"{cfg.run_id}")
    quarantined = _write_tables(spark, cfg, frames, done.record, done.quarantine)
    summary = frames.summary
    seg_row = summary[summary["layer"] == cfg.segment_layer]
    result = HourglassStatsResult(
        run_id=cfg.run_id, input_kind=kind, num_layers=L, num_codes=M, m_source=m_source,
        rows_in=int(done.rows_in), items=frames.n_items, quarantined=quarantined,
        head_tokens=int(seg_row["head_tokens"].iloc[0]) if len(seg_row) else 0,
        layers=[{k: _round(r[k]) for k in RESULT_COLUMNS} for r in summary.to_dict("records")],
        middle_layer_collapsed=middle_layer_collapsed(summary),
    )
    log.info("hourglass_stats %s: %d rows, %d items, %d quarantined", cfg.run_id,
             result.rows_in, result.items, result.quarantined)
    _log_summary(track, summary, {
        "hourglass.input_table": src.ref, "hourglass.input_version": src.version,
        "hourglass.input_kind": kind, "hourglass.strategy": info.strategy,
        "hourglass.codebook_id": info.codebook_id})
    result.check()
    return result


class _Input(NamedTuple):
    """The pinned input of a run and its plan, as both plans need them."""

    src: TableRead
    plan: StatsPlan
    book: str | None  # one codebook id read from the table


class _Outcome(NamedTuple):
    """What either plan hands over for writing."""

    rows_in: int
    quarantine: Callable[[], int]  # writes the quarantine slice unless written; its rows
    frames: StatsFrames
    info: RunInfo
    record: dict[str, Any]  # the lineage of every table written


def _describe(cfg: HourglassStatsConfig, pinned: _Input, ids: list[str], strategy: str | None):
    """(RunInfo, lineage record) of this run."""
    from hourglass.stats.summary import RunInfo

    src, kind, (L, M, m_source) = pinned.src, pinned.plan.kind, pinned.plan.shape
    if len(ids) > 1:
        log.warning("%s mixes codebooks %s: token statistics across codebooks are not "
                    "comparable", src.ref, ids)
    info = RunInfo(run_id=cfg.run_id, input_kind=kind, num_layers=L, M=M, m_source=m_source,
                   strategy=strategy, codebook_id=",".join(ids) or None, input_table=src.ref,
                   input_version=src.version)
    record = lineage("hourglass_stats", cfg.config_hash(), {src.ref: src.version},
                     run_id=cfg.run_id, input_kind=kind, strategy=strategy,
                     codebook_id=info.codebook_id, num_layers=L, num_codes=M,
                     m_source=m_source)
    return info, record


def _quarantine(cfg: HourglassStatsConfig, kind: str, bad, record) -> int:
    rows = quarantine_rows(bad, cfg.quarantine_stage, payload_cols=PAYLOAD[kind])
    return write_quarantine(rows, cfg.ref(cfg.quarantine_table), cfg.quarantine_stage,
                            record).rows


def _run_scanned(spark: SparkSession, cfg: HourglassStatsConfig, pinned: _Input,
                 framed) -> _Outcome | None:
    """Fixed-length packable SIDs: `spark.stats.scan`'s two scans. None when an id hash repeats
    (the row plan then finds and quarantines the duplicates)."""
    from pyspark.sql import functions as F

    from hourglass.spark.parquet_scan import COLUMNS, FilePlan, plan_files
    from hourglass.spark.stats.scan.driver import compute_scanned, first_scan

    src, kind, id_col = pinned.src, pinned.plan.kind, pinned.plan.id_col
    L, M = pinned.plan.shape.L, pinned.plan.shape.M
    files = plan_files(spark, src.ref, src.version, (*COLUMNS, id_col)) if cfg.direct_read \
        else FilePlan([], "direct_read is off")
    if files.reason:
        log.info("hourglass_stats %s: reading %s through Spark: %s", cfg.run_id, src.ref,
                 files.reason)
    tasks = len(files.tasks) if not files.reason else framed.rdd.getNumPartitions()
    ranges = scan_ranges(spark.sparkContext.defaultParallelism, tasks)
    next_step(spark, "hourglass_stats", f"scan {src.ref} v{src.version} ({kind}, L={L}, M={M}, "
              f"{ranges} ranges, {'Spark' if files.reason else 'Parquet files'})")
    first = first_scan(framed, L, M, ranges, id_col, files)
    try:
        if not files.reason and first.rows_in != (held := src.df.count()):
            raise RuntimeError(f"{src.ref} v{src.version}: its Parquet files gave "
                               f"{first.rows_in} rows, Spark counts {held}: set direct_read: "
                               "false and report this")
        if first.repeated_hashes and cfg.check_duplicates:
            log.info("hourglass_stats %s: %d repeated id hashes: checking ids row by row",
                     cfg.run_id, first.repeated_hashes)
            return None
        if first.codebooks > 1:  # by hash: one distinct hash is the one id `book` read
            ids = sorted(r[0] for r in framed.select(id_col).where(F.col(id_col).isNotNull())
                         .distinct().collect())
        else:
            ids = [pinned.book] if first.codebooks else []
        info, record = _describe(cfg, pinned, ids, None)
        next_step(spark, "hourglass_stats", f"quarantine {first.invalid} bad rows of "
                  f"{first.rows_in}")
        bad = framed.where(F.col("_reason").isNotNull() if first.invalid else F.lit(False))
        quarantine = partial(_quarantine, cfg, kind, bad, record)  # written with the tables
        next_step(spark, "hourglass_stats", "flow edges, norm quantiles and histograms")
        frames = compute_scanned(first, info, cfg.head_share, cfg.flow_top_tokens)
    finally:
        first.release()
    return _Outcome(first.rows_in, quarantine, frames, info, record)


def _run_rows(spark: SparkSession, cfg: HourglassStatsConfig, pinned: _Input,
              framed) -> _Outcome:
    """The row plan (`spark.stats.rows`): any input, duplicates quarantined."""
    from pyspark.sql import functions as F

    from hourglass.spark.session import persist_catalog
    from hourglass.spark.stats.prepare import duplicate_ids, first_value, with_duplicates
    from hourglass.spark.stats.rows import compute_stats

    src, kind, id_col = pinned.src, pinned.plan.kind, pinned.plan.id_col
    L, M, extra = pinned.plan.shape.L, pinned.plan.shape.M, pinned.plan.carried
    # the cache holds what the statistics read; quarantine payloads are re-read from the source
    cached = (framed.select("item_id", "keys", "norms", "_reason", *extra)
              .transform(persist_catalog))
    dups = None
    try:
        next_step(spark, "hourglass_stats", f"read {src.ref} v{src.version} ({kind}, L={L}, M={M})")
        # one pass fills the cache and gives the row count, the invalid rows and the ids
        first = cached.agg(F.count(F.lit(1)), F.count("_reason"),
                           F.array_sort(F.collect_set(id_col))).first()
        rows_in, invalid, ids = int(first[0]), int(first[1]), list(first[2])
        next_step(spark, "hourglass_stats", f"quarantine bad rows and duplicates of {rows_in}")
        strategy = (cfg.strategy or first_value(cached, "strategy")) if kind == REWRITTEN else None
        info, record = _describe(cfg, pinned, ids, strategy)
        dups = duplicate_ids(cached) if cfg.check_duplicates else None
        bad = with_duplicates(framed, dups).where(F.col("_reason").isNotNull())
        if not invalid and dups is None:  # nothing to quarantine: empty the slice, no scan
            bad = bad.where(F.lit(False))
        quarantined = _quarantine(cfg, kind, bad, record)
        quarantine = partial(int, quarantined)  # written: the cache is about to go
        valid = (with_duplicates(cached, dups).where(F.col("_reason").isNull())
                 .select("item_id", "keys", "norms"))
        next_step(spark, "hourglass_stats", "token counts, summary and flow per layer")
        frames = compute_stats(valid, info, cfg.head_share, cfg.flow_top_tokens)
    finally:
        cached.unpersist()
        if dups is not None:
            dups.unpersist()
    return _Outcome(rows_in, quarantine, frames, info, record)


def _write_tables(spark: SparkSession, cfg: HourglassStatsConfig, frames, record,
                  quarantine: Callable[[], int]) -> int:
    """This run's slices of the statistics tables and the quarantine, committed concurrently
    (independent tables); the rows quarantined."""
    from hourglass.spark.stats.io import pandas_to_spark
    from hourglass.spark.tables import run_concurrently, write_slice
    from hourglass.stats.schema import FLOW, LAYER_STATS, SUMMARY

    def write(pdf, table: str, cols) -> None:
        # a run's slice is small (≤ L·M rows): one file, in the run's own partition of a table
        # this creates, and its commit not read back
        write_slice(pandas_to_spark(spark, pdf, cols).coalesce(1), cfg.ref(table), record,
                    {"run_id": cfg.run_id}, partition_by=["run_id"], add_columns=True,
                    read_back=False)

    return run_concurrently([
        quarantine,
        partial(write, frames.layer_stats, cfg.layer_stats_table, LAYER_STATS),
        partial(write, frames.summary, cfg.summary_table, SUMMARY),
        partial(write, frames.flow, cfg.flow_table, FLOW)])[0]


def _round(value):
    return round(float(value), 6) if isinstance(value, float) else value
