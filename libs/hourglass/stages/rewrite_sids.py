"""Stage `rewrite_sids`: `item_sids` → `item_sids_rw`, `rewrite_summary`, a SID index per strategy.

Several strategies coexist in `item_sids_rw` for the ablation: each run replaces only the rows of
the strategies it names (`replaceWhere strategy IN (…)`, one commit per table), so re-running
`topk_16` leaves `none` untouched. All parameters are checked, against the SIDs' layer count too,
before anything is written.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hourglass.config import ConfigError, StageConfig, require
from hourglass.logs import log
from hourglass.rewrite.export import SidIndexInfo, export_sid_index, sid_index_dir
from hourglass.rewrite.strategies import Strategy, parse_strategy, removed_tokens
from hourglass.rewrite.summary import length_shares, strategy_metrics

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from hourglass.spark.tables import TableRead

SUMMARY_TABLE_COLUMNS = ("strategy", "metric", "value")


@dataclasses.dataclass
class RewriteSidsConfig(StageConfig):
    """Rewrite SIDs with one or more strategies (none, drop_layer(l), topk(K), topshare(p),
    topk_share(s), exchange(i,j)).

    Keys:
        strategies: rewrites to apply: none, drop_layer(l), topk(K), topshare(p),
            topk_share(s) (K = round(s·M), at least 1), exchange(i,j) (layers i and j swap)
        resolve_collisions: add a suffix token to SIDs that collide after rewriting
        item_sids_table: input table of fixed-length SIDs
        item_sids_version: Delta version of item_sids to read; empty: the latest
        popularity_table: interactions that rank items for the collision suffixes
        output_table: output table of rewritten SIDs
        summary_table: output table of each strategy's figures (collisions, lengths)
        index_root: folder of the exported SID vocabulary and trie; empty: output_root
        num_layers: L; 0: inferred from item_sids
        codebook_size: M; 0: inferred from item_sids (a lower bound)
    """

    strategies: list[str] = dataclasses.field(default_factory=lambda: ["none"])
    resolve_collisions: bool = True
    item_sids_table: str = "item_sids"
    item_sids_version: int | None = None
    popularity_table: str = "interactions"
    output_table: str = "item_sids_rw"
    summary_table: str = "rewrite_summary"
    index_root: str = ""
    num_layers: int = 0
    codebook_size: int = 0

    def parsed_strategies(self) -> list[Strategy]:
        return [parse_strategy(s) for s in self.strategies]

    def validate(self) -> None:
        require(len(self.strategies) > 0, "strategies", "name at least one strategy")
        parsed = [parse_strategy(s) for s in self.strategies]
        names = [s.name for s in parsed]
        require(len(set(names)) == len(names), "strategies", f"duplicates in {names}")
        require(self.num_layers >= 0, "num_layers", "must be >= 0 (0 = infer from item_sids)")
        require(self.codebook_size >= 0, "codebook_size", "must be >= 0 (0 = infer, lower bound)")
        for s in parsed:
            s.validate(self.num_layers or None)
        root = self.index_folder_root()
        require(bool(root), "index_root", "is required when output_root is empty (catalog tables)")
        require("://" not in root, "index_root",
                f"must be a local or FUSE path (e.g. /dbfs/…, /Volumes/…), got {root!r}")
        for key in ("item_sids_table", "output_table", "summary_table"):
            require(bool(getattr(self, key)), key, "must not be empty")

    def index_folder_root(self) -> str:
        root = self.index_root or self.output_root
        return root.removeprefix("file:") if root.startswith("file:/") else root


@dataclasses.dataclass(frozen=True)
class StrategyOutcome:
    """One strategy's figures (also stored in `rewrite_summary`) and its SID index folder."""

    strategy: str
    rows_written: int
    removed_tokens: int
    distinct_sids: int
    collision_share_before: float
    collision_share_after: float
    capacity_definition: float
    capacity_formula: float
    mean_length: float
    length_shares: dict[str, float]
    index_path: str
    trie_sids: int

    @classmethod
    def of(cls, strategy: str, metrics: dict[str, float], lengths: dict[str, float],
           index: SidIndexInfo) -> StrategyOutcome:
        return cls(
            strategy=strategy, rows_written=int(metrics["n_items"]),
            removed_tokens=int(metrics["removed_tokens"]),
            distinct_sids=int(metrics["distinct_sids"]),
            collision_share_before=metrics["collision_share_before"],
            collision_share_after=metrics["collision_share_after"],
            capacity_definition=metrics["capacity_definition"],
            capacity_formula=metrics["capacity_formula"], mean_length=metrics["mean_length"],
            length_shares=lengths, index_path=index.path, trie_sids=index.n_sids)


def index_manifest(strategy: Strategy, removed: list[int], cfg: RewriteSidsConfig, record: dict,
                   src: TableRead, written: tuple[str, int]) -> dict:
    """The SID index's manifest: the strategy and where its SIDs came from and went to."""
    return {"strategy": strategy.name, "kind": strategy.kind, "params": strategy.params,
            "resolve_collisions": cfg.resolve_collisions,
            "source_codebook_id": record["source_codebook_id"],
            "item_sids": {"ref": src.ref, "version": src.version},
            "item_sids_rw": {"ref": written[0], "version": written[1]},
            "removed_layer2_codes": [int(c) for c in removed],
            "num_layers": record["num_layers"], "codebook_size": record["codebook_size"],
            "config_hash": cfg.config_hash(), "hourglass_version": record["hourglass_version"]}


@dataclasses.dataclass(frozen=True)
class RewriteResult:
    """Row accounting of one run; `check` enforces input = valid + quarantined everywhere."""

    items_in: int
    items_valid: int
    items_quarantined: int
    num_layers: int
    codebook_size: int
    item_sids_version: int
    output_version: int
    outcomes: list[StrategyOutcome]
    index_paths: dict[str, str]

    def check(self) -> None:
        if self.items_in != self.items_valid + self.items_quarantined:
            raise RuntimeError(f"item_sids rows do not reconcile: {self}")
        for o in self.outcomes:
            if o.rows_written != self.items_valid:
                raise RuntimeError(f"{o.strategy}: wrote {o.rows_written} rows for "
                                   f"{self.items_valid} valid items")
            if o.trie_sids != o.distinct_sids:
                raise RuntimeError(f"{o.strategy}: trie holds {o.trie_sids} SIDs, table "
                                   f"{o.distinct_sids}")


def _layout(spark: SparkSession, cfg: RewriteSidsConfig, df: DataFrame) -> tuple[int, int]:
    """(L, M) from the config, else inferred from the data; checks strategies against L."""
    from hourglass.spark.rewrite.input import infer_num_layers, max_code

    L = cfg.num_layers or infer_num_layers(df)
    for s in cfg.parsed_strategies():
        s.validate(L)
    M = cfg.codebook_size
    if not M:
        M = max_code(df) + 1
        log.warning("rewrite_sids: codebook_size not set; using max code + 1 = %d, a lower "
                    "bound, for capacities and the range check", M)
    if M < 1:
        raise ConfigError("config key 'codebook_size': cannot infer it from an empty item_sids")
    return L, M


def run(spark: SparkSession, cfg: RewriteSidsConfig) -> RewriteResult:
    """Write this run's strategies to `item_sids_rw` and `rewrite_summary`; export the tries."""
    from pyspark.sql import functions as F

    from hourglass.spark.quarantine import write_quarantine
    from hourglass.spark.rewrite.columns import item_popularity, rewrite_frame, with_popularity
    from hourglass.spark.rewrite.input import STAGE, layer_counts, split_item_sids
    from hourglass.spark.rewrite.summary import summary_aggregates, summary_partitions
    from hourglass.spark.rewrite.tries import build_tries
    from hourglass.spark.session import persist_catalog
    from hourglass.spark.tables import lineage, read_table, write_slice

    src = read_table(spark, cfg.ref(cfg.item_sids_table), cfg.item_sids_version)
    inputs = {src.ref: src.version}
    L, M = _layout(spark, cfg, src.df)
    strategies = cfg.parsed_strategies()
    names = [s.name for s in strategies]
    popularity = None
    if cfg.popularity_table:
        pop_src = read_table(spark, cfg.ref(cfg.popularity_table))
        inputs[pop_src.ref] = pop_src.version
        popularity = item_popularity(pop_src.df)

    good, bad = split_item_sids(src.df, L, M)
    good = with_popularity(good, popularity if cfg.resolve_collisions else None)
    good = persist_catalog(good)
    codes, counts, codebooks = layer_counts(good)
    if len(codebooks) > 1:
        raise ValueError(f"{src.ref} mixes codebooks {codebooks}: rewrite one codebook at a time")
    removed = {s.name: removed_tokens(s, codes, counts, M) for s in strategies}
    for s in strategies:
        if s.top_k(M) is not None:
            log.info("rewrite_sids %s: K = %d of M = %d layer-2 tokens removed", s.name,
                     len(removed[s.name]), M)
    record = lineage("rewrite_sids", cfg.config_hash(), inputs, strategies=names,
                     source_codebook_id=codebooks[0] if codebooks else None,
                     num_layers=L, codebook_size=M)

    q_ref = cfg.ref(cfg.quarantine_table)
    quarantined = write_quarantine(bad, q_ref, STAGE, record).rows
    frames = [rewrite_frame(good, s, removed[s.name], L, cfg.resolve_collisions, M)
              for s in strategies]
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    out_ref = cfg.ref(cfg.output_table)
    out_version = write_slice(union, out_ref, record, {"strategy": names}).version
    written = read_table(spark, out_ref, out_version).df.where(F.col("strategy").isin(names))

    parts = summary_partitions(int(counts.sum()) * len(names),
                               spark.sparkContext.defaultParallelism)
    aggregates = summary_aggregates(written, L, parts)
    tries = build_tries(written, names)
    summary_rows, outcomes = [], []
    for s in strategies:
        agg = aggregates.get(s.name, {})
        metrics = strategy_metrics(s, agg, len(removed[s.name]), L, M)
        summary_rows += [(s.name, metric, float(v)) for metric, v in metrics.items()]
        manifest = index_manifest(s, removed[s.name], cfg, record, src, (out_ref, out_version))
        info = export_sid_index(sid_index_dir(cfg.index_folder_root(), s.name),
                                tries.pop(s.name), manifest)
        outcomes.append(StrategyOutcome.of(s.name, metrics, length_shares(agg), info))

    summary = spark.createDataFrame(summary_rows, "strategy STRING, metric STRING, value DOUBLE")
    write_slice(summary, cfg.ref(cfg.summary_table), record, {"strategy": names})
    result = RewriteResult(
        items_in=src.df.count(), items_valid=int(counts.sum()),
        items_quarantined=quarantined,
        num_layers=L, codebook_size=M, item_sids_version=src.version,
        output_version=out_version, outcomes=outcomes,
        index_paths={o.strategy: o.index_path for o in outcomes})
    good.unpersist()
    for o in outcomes:
        log.info("rewrite_sids %s: %d SIDs for %d items, collisions %.4f → %.4f, capacity %.4g "
                 "(paper %.4g), index %s", o.strategy, o.distinct_sids, o.rows_written,
                 o.collision_share_before, o.collision_share_after, o.capacity_definition,
                 o.capacity_formula, o.index_path)
    result.check()
    return result
