"""Ingest items and interactions from JSONL, CSV, Parquet or Delta into the contract tables.

Every input row ends in exactly one place: the output table or `quarantine` with a reason, so
`input = written + quarantined` holds and is checked. Values are read as strings and parsed
with `try_cast`, so one bad value quarantines one row instead of failing the job (ANSI mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ITEM_COLUMNS = ("item_id", "title", "description", "brand", "categories")
INTERACTION_COLUMNS = ("user_id", "item_id", "ts")
CORRUPT = "_corrupt_record"
STAGE_ITEMS = "ingest_items"
STAGE_INTERACTIONS = "ingest_interactions"


def detect_format(path: str, fmt: str = "auto") -> str:
    """`auto` picks by extension, or `delta` for a folder with `_delta_log`."""
    if fmt != "auto":
        if fmt not in ("json", "csv", "parquet", "delta"):
            raise ValueError(f"unknown input format {fmt!r}: use json, csv, parquet or delta")
        return fmt
    p = Path(path)
    if (p / "_delta_log").exists():
        return "delta"
    suffix = p.suffix.lower()
    for fmt_name, suffixes in {"json": (".jsonl", ".json", ".ndjson"), "csv": (".csv",),
                               "parquet": (".parquet", ".pq")}.items():
        if suffix in suffixes:
            return fmt_name
    if p.is_dir() and any(p.glob("*.parquet")):
        return "parquet"
    raise ValueError(f"cannot tell the format of {path}: pass the format explicitly")


def read_raw(
    spark: SparkSession, path: str, columns: tuple[str, ...], fmt: str = "auto",
    renames: dict[str, str] | None = None,
) -> DataFrame:
    """Read `columns` (after `renames` source→contract) as strings, plus a corrupt-record column."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    renames = renames or {}
    source_cols = [next((s for s, c in renames.items() if c == col), col) for col in columns]
    fmt = detect_format(path, fmt)
    if fmt in ("json", "csv"):
        schema = StructType([StructField(c, StringType()) for c in source_cols]
                            + [StructField(CORRUPT, StringType())])
        reader = spark.read.schema(schema).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", CORRUPT)
        if fmt == "csv":
            df = reader.option("header", "true").option("enforceSchema", "false").csv(path)
        else:
            df = reader.json(path)
    else:
        df = spark.read.format(fmt).load(path)
        missing = [c for c in source_cols if c not in df.columns]
        if "item_id" in missing or "user_id" in missing:
            raise ValueError(f"{path} lacks required column(s) {missing}")
        df = df.select(*[(F.col(c) if c in df.columns else F.lit(None)).cast("string").alias(c)
                         for c in source_cols]).withColumn(CORRUPT, F.lit(None).cast("string"))
    for src, col in zip(source_cols, columns, strict=True):
        if src != col:
            df = df.withColumnRenamed(src, col)
    return df


def _blank(col: str):
    from pyspark.sql import functions as F

    return F.col(col).isNull() | (F.trim(F.col(col)) == "")


def split_items(raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Valid items (one row per item_id) and quarantine rows for everything else."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    content = F.sha2(F.to_json(F.struct(*[F.col(c) for c in ITEM_COLUMNS[1:]])), 256)
    df = raw.withColumn("item_id", F.trim("item_id")).withColumn("_content", content)
    by_id = Window.partitionBy("item_id")
    df = df.withColumn("_variants", F.size(F.collect_set("_content").over(by_id)))
    df = df.withColumn("_dup", F.row_number().over(by_id.orderBy("_content")))
    reason = (
        F.when(F.col(CORRUPT).isNotNull(), F.lit("unparseable row"))
        .when(_blank("item_id"), F.lit("missing item_id"))
        .when(F.col("_variants") > 1,
              F.concat(F.lit("conflicting duplicate item_id: "), F.col("_variants"),
                       F.lit(" different contents")))
        .when(F.col("_dup") > 1, F.lit("exact duplicate of an earlier row"))
    )
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select(*ITEM_COLUMNS)
    bad = df.where(F.col("_reason").isNotNull())
    bad_q = quarantine_rows(bad, STAGE_ITEMS, payload_cols=[*ITEM_COLUMNS, CORRUPT])
    return good, bad_q


def split_interactions(raw: DataFrame, items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Valid interactions (known item, parseable ts) and quarantine rows for the rest."""
    from pyspark.sql import functions as F

    known = items.select(F.col("item_id").alias("_known_id"), F.lit(True).alias("_known"))
    df = (raw.withColumn("user_id", F.trim("user_id")).withColumn("item_id", F.trim("item_id"))
          .withColumn("_ts", F.expr("try_cast(trim(ts) AS BIGINT)")))
    df = df.join(known, df.item_id == known._known_id, "left")
    reason = (
        F.when(F.col(CORRUPT).isNotNull(), F.lit("unparseable row"))
        .when(_blank("user_id"), F.lit("missing user_id"))
        .when(_blank("item_id"), F.lit("missing item_id"))
        .when(_blank("ts"), F.lit("missing ts"))
        .when(F.col("_ts").isNull(), F.concat(F.lit("unparseable ts: "), F.col("ts")))
        .when(F.col("_known").isNull(), F.lit("unknown item_id"))
    )
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select("user_id", "item_id",
                                                      F.col("_ts").alias("ts"))
    bad = df.where(F.col("_reason").isNotNull())
    return good, quarantine_rows(bad, STAGE_INTERACTIONS,
                                 payload_cols=[*INTERACTION_COLUMNS, CORRUPT])


@dataclass(frozen=True)
class IngestCounts:
    """Row accounting of one ingest run; `check` enforces input = written + quarantined."""

    items_in: int
    items_written: int
    items_quarantined: int
    interactions_in: int
    interactions_written: int
    interactions_quarantined: int

    def check(self) -> None:
        if self.items_in != self.items_written + self.items_quarantined:
            raise RuntimeError(f"item rows do not reconcile: {self}")
        if self.interactions_in != self.interactions_written + self.interactions_quarantined:
            raise RuntimeError(f"interaction rows do not reconcile: {self}")
