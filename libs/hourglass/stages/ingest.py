"""Stage `ingest`: raw item and interaction files → `items`, `interactions`, `quarantine`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.spark.ingest import (
    INTERACTION_COLUMNS,
    ITEM_COLUMNS,
    STAGE_INTERACTIONS,
    STAGE_ITEMS,
    IngestCounts,
    detect_format,
    query_source,
    read_raw,
    resolve_json_query,
    source_fields,
    split_interactions,
    split_items,
)
from hourglass.spark.quarantine import write_quarantine
from hourglass.spark.tables import lineage, read_table, write_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class IngestConfig(StageConfig):
    """Ingest items and interactions (JSONL, CSV, Parquet or Delta) into contract tables.

    Keys:
        items_path: file or folder of the raw items (title, description, brand, categories)
        interactions_path: file or folder of the raw interactions (user_id, item_id, a time column)
        items_format: auto (by suffix), json, csv, parquet or delta
        interactions_format: auto (by suffix), json, csv, parquet or delta
        ts_column: column of the interactions holding the event time or order position
        query_column: the interactions' optional search query: auto (a column named query if
            the source has one: a CSV's header, a Parquet or Delta schema, or for JSON lines any
            line with a value for it, found in the pass that reads them), none (or empty: ignore
            any), or the source column to read as query
        items_table: output table of items
        interactions_table: output table of interactions
    """

    items_path: str = ""
    interactions_path: str = ""
    items_format: str = "auto"
    interactions_format: str = "auto"
    ts_column: str = "ts"
    query_column: str = "auto"
    items_table: str = "items"
    interactions_table: str = "interactions"

    def validate(self) -> None:
        require(bool(self.items_path), "items_path", "is required")
        require(bool(self.interactions_path), "interactions_path", "is required")
        for key in ("items_format", "interactions_format"):
            require(getattr(self, key) in ("auto", "json", "csv", "parquet", "delta"), key,
                    "must be one of auto, json, csv, parquet, delta")
        require(self.query_column not in ("user_id", "item_id", self.ts_column), "query_column",
                "must not name the user, item or time column")


def run(spark: SparkSession, cfg: IngestConfig) -> IngestCounts:
    """Write `items`, `interactions` and this stage's quarantine slice; reconcile counts."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    items_raw = read_raw(spark, cfg.items_path, ITEM_COLUMNS, cfg.items_format)
    items_raw = items_raw.persist(StorageLevel.MEMORY_AND_DISK)
    renames = {cfg.ts_column: "ts"} if cfg.ts_column != "ts" else {}
    inter_fmt = detect_format(cfg.interactions_path, cfg.interactions_format)
    query = query_source(cfg.query_column,
                         source_fields(spark, cfg.interactions_path, inter_fmt),
                         cfg.interactions_path)
    inter_raw = read_raw(spark, cfg.interactions_path, INTERACTION_COLUMNS, inter_fmt, renames,
                         query)
    inter_raw = inter_raw.persist(StorageLevel.MEMORY_AND_DISK)
    inter_in = resolve_json_query(inter_raw, cfg.query_column, cfg.interactions_path)
    record = lineage("ingest", cfg.config_hash(),
                     {"items": cfg.items_path, "interactions": cfg.interactions_path})

    items, items_bad = split_items(items_raw)
    items_ref = cfg.ref(cfg.items_table)
    items_commit = write_table(items, items_ref, record)
    written_items = read_table(spark, items_ref, items_commit.version).df
    inter, inter_bad = split_interactions(inter_in, written_items)
    inter_commit = write_table(inter, cfg.ref(cfg.interactions_table), record)
    q_ref = cfg.ref(cfg.quarantine_table)
    write_quarantine(items_bad.unionByName(inter_bad), q_ref, [STAGE_ITEMS, STAGE_INTERACTIONS],
                     record)

    q = read_table(spark, q_ref).df.groupBy("stage").count().collect()
    q_counts = {r["stage"]: r["count"] for r in q}
    counts = IngestCounts(
        items_in=items_raw.count(),
        items_written=items_commit.rows,
        items_quarantined=q_counts.get(STAGE_ITEMS, 0),
        interactions_in=inter_raw.count(),
        interactions_written=inter_commit.rows,
        interactions_quarantined=q_counts.get(STAGE_INTERACTIONS, 0),
    )
    items_raw.unpersist()
    inter_raw.unpersist()
    log.info("ingest: %s", counts)
    counts.check()
    reasons = (read_table(spark, q_ref).df.where(F.col("stage").startswith("ingest_"))
               .groupBy("stage", "reason").count().orderBy("stage", "reason").collect())
    for r in reasons:
        log.info("quarantined %s: %s × %d", r["stage"], r["reason"], r["count"])
    return counts
