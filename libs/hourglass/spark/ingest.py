"""Ingest items and interactions from JSONL, CSV, Parquet or Delta into the contract tables.

Every input row ends in exactly one place: the output table or `quarantine` with a reason, so
`input = written + quarantined` holds and is checked. Values are read as strings and parsed
with `try_cast`, so one bad value quarantines one row instead of failing the job (ANSI mode).

Interactions may carry an optional `query` (the search query that led to the interaction): it is
kept when the source has it, cleaned (whitespace runs → one space, trimmed, blank → null), and
rows whose value cannot be a query are quarantined (see `split_interactions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.config import require
from hourglass.errors import InputError
from hourglass.search import MAX_QUERY_CHARS
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

ITEM_COLUMNS = ("item_id", "title", "description", "brand", "categories")
INTERACTION_COLUMNS = ("user_id", "item_id", "ts")
QUERY = "query"
CORRUPT = "_corrupt_record"
# The JSON type of a non-string `query` value (object, array, boolean, number), else null.
QUERY_TYPE = "_query_type"
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


def source_fields(spark: SparkSession, path: str, fmt: str) -> StructType | None:
    """The source's columns without reading its rows: a CSV's header (all strings), a Parquet or
    Delta schema; None for JSON, whose columns only a scan of every line would tell."""
    from pyspark.sql import types as T

    if fmt == "json":
        return None
    if fmt == "csv":
        header = spark.read.option("header", "true").csv(path).columns  # the first line only
        return T.StructType([T.StructField(c, T.StringType()) for c in header])
    return spark.read.format(fmt).load(path).schema


def query_source(setting: str, fields: StructType | None, path: str) -> str | None:
    """The source column that becomes `query` for the key `query_column`, or None for none.

    `auto` takes a column named `query` if the source has one; an explicit name must be among a
    CSV's, Parquet's or Delta table's columns (a ConfigError otherwise). JSON (`fields` None)
    gets the name as is: `read_raw` reads it wherever it occurs and `resolve_json_query` decides.
    A typed column that is not a string is an InputError naming the column and its type rather
    than a quarantine of every row: the type belongs to the whole column, and quarantining would
    empty `interactions` behind a successful exit where one key fixes the run.
    """
    from pyspark.sql import types as T

    if setting.strip().lower() in ("", "none"):
        return None
    name = QUERY if setting == "auto" else setting
    if fields is None:
        return name
    if name not in fields.names:
        require(setting == "auto", "query_column",
                f"column {name!r} is not in {path} (columns: {', '.join(fields.names)})")
        return None
    dtype = fields[name].dataType
    if not isinstance(dtype, (T.StringType, T.VarcharType, T.CharType)):
        raise InputError(f"{path}: column {name!r} is {dtype.simpleString()}, not a string, so it "
                         "cannot be the query: set query_column to the column of the query text, "
                         "or to none")
    return name


def read_raw(
    spark: SparkSession, path: str, columns: tuple[str, ...], fmt: str = "auto",
    renames: dict[str, str] | None = None, query: str | None = None,
) -> DataFrame:
    """Read `columns` (after `renames` source→contract) as strings, plus a corrupt-record column.

    With `query` (a source column, see `query_source`) the frame also has `query` and
    `QUERY_TYPE`: JSON reads the value as a VARIANT, because Spark's JSON reader with a string
    schema silently turns a number, object, array or boolean into its JSON text.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType, VariantType

    renames = renames or {}
    source_cols = [next((s for s, c in renames.items() if c == col), col) for col in columns]
    fmt = detect_format(path, fmt)
    if fmt == "csv":
        # The header's own columns, so a CSV may carry columns we do not read; no pruning, so a
        # row with too many or too few fields is still caught as corrupt.
        header = source_fields(spark, path, fmt) or StructType(
            [StructField(c, StringType()) for c in source_cols])
        missing = [c for c in [*source_cols, *([query] if query else [])]
                   if c not in header.names]
        if missing:
            raise ValueError(f"{path} lacks required column(s) {missing}")
        df = (spark.read.schema(header.add(CORRUPT, StringType())).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT).option("header", "true")
              .option("enforceSchema", "false").option("columnPruning", "false").csv(path))
    elif fmt == "json":
        query_field = [StructField(query, VariantType())] if query else []
        schema = StructType([StructField(c, StringType()) for c in source_cols] + query_field
                            + [StructField(CORRUPT, StringType())])
        df = (spark.read.schema(schema).option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", CORRUPT).json(path))
    else:
        df = spark.read.format(fmt).load(path)
        missing = [c for c in source_cols if c not in df.columns]
        if "item_id" in missing or "user_id" in missing:
            raise ValueError(f"{path} lacks required column(s) {missing}")
        df = df.select(*[(F.col(c) if c in df.columns else F.lit(None)).cast("string").alias(c)
                         for c in [*source_cols, *([query] if query else [])]])
        df = df.withColumn(CORRUPT, F.lit(None).cast("string"))
    contract = [F.col(s).alias(c) for s, c in zip(source_cols, columns, strict=True)]
    if query is None:
        return df.select(*contract, CORRUPT)
    if fmt != "json":
        return df.select(*contract, F.col(query).alias(QUERY), F.lit(None).cast("string")
                         .alias(QUERY_TYPE), CORRUPT)
    value = F.col(query)
    kind = F.schema_of_variant(value)
    json_type = (F.when(value.isNull() | F.is_variant_null(value) | (kind == "STRING"), None)
                 .when(kind.startswith("OBJECT"), "object")
                 .when(kind.startswith("ARRAY"), "array")
                 .when(kind == "BOOLEAN", "boolean")
                 .otherwise("number"))
    text = (F.when(json_type.isNull(), F.variant_get(value, "$", "string"))
            .otherwise(F.to_json(value)))
    return df.select(*contract, text.alias(QUERY), json_type.alias(QUERY_TYPE), CORRUPT)


def resolve_json_query(raw: DataFrame, setting: str, path: str) -> DataFrame:
    """Keep `query` of a JSON source only if some line has a value for it (JSON null and a
    missing field are alike); if `query_column` names a field no line has a value for, that is a
    ConfigError (most likely a typo). Every line is looked at, so a field that first occurs late
    in the file is still found, at the cost of one pass at most: `raw` should be persisted, so
    that pass fills the cache the split reads, and `take` stops at the first value."""
    from pyspark.sql import functions as F

    if QUERY not in raw.columns:
        return raw
    has_value = F.col(QUERY).isNotNull() | F.col(QUERY_TYPE).isNotNull()
    if raw.where(has_value).take(1):
        return raw
    require(setting == "auto", "query_column", f"no line of {path} has a field {setting!r}")
    return raw.drop(QUERY, QUERY_TYPE)


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


def clean_query(col: str = QUERY):
    """Whitespace runs (Unicode's too) → one space, trimmed; blank → null."""
    from pyspark.sql import functions as F

    text = F.trim(F.regexp_replace(F.col(col), r"(?U)\s+", " "))
    return F.when(text != "", text)


def split_interactions(raw: DataFrame, items: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Valid interactions (known item, parseable ts) and quarantine rows for the rest.

    With a `query` column (see `read_raw`) the output keeps it cleaned (`clean_query`; a null
    query is a valid row), and a row whose value is not a JSON string or is longer than
    `MAX_QUERY_CHARS` after cleaning is quarantined; without one the output is as before.
    """
    from pyspark.sql import functions as F

    with_query = QUERY in raw.columns
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
    out = ["user_id", "item_id", F.col("_ts").alias("ts")]
    payload = [*INTERACTION_COLUMNS, CORRUPT]
    if with_query:
        df = df.withColumn("_query", clean_query())
        reason = (
            reason.when(F.col(QUERY_TYPE).isNotNull(),
                        F.concat(F.lit("query is not a string (JSON "), F.col(QUERY_TYPE),
                                 F.lit(")")))
            .when(F.length("_query") > MAX_QUERY_CHARS,
                  F.lit(f"query longer than {MAX_QUERY_CHARS} characters"))
        )
        out.append(F.col("_query").alias(QUERY))
        payload = [*INTERACTION_COLUMNS, QUERY, CORRUPT]
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select(*out)
    bad = df.where(F.col("_reason").isNotNull())
    return good, quarantine_rows(bad, STAGE_INTERACTIONS, payload_cols=payload)


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
