"""The input of a rewrite: `item_sids` validated and split, its shape, its layer-2 token counts.

Rows that cannot be rewritten go to quarantine with their reason (`split_item_sids`); the
layer-2 ranking the strategies remove tokens by is one aggregation, at most M rows per codebook
back to the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hourglass.rewrite.strategies import TOP_LAYER
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

STAGE = "rewrite_sids"
ITEM_SIDS_COLUMNS = ("item_id", "codes", "residual_norms", "codebook_id")


def infer_num_layers(df: DataFrame) -> int:
    """The most common code length (ties → shorter): rows of another length get quarantined."""
    from pyspark.sql import functions as F

    rows = (df.where(F.col("codes").isNotNull()).groupBy(F.size("codes").alias("n")).count()
            .orderBy(F.desc("count"), F.asc("n")).limit(1).collect())
    return int(rows[0]["n"]) if rows else 0


def max_code(df: DataFrame) -> int:
    """Largest code over all layers; M inferred as this + 1 is only a lower bound."""
    from pyspark.sql import functions as F

    row = df.select(F.max(F.array_max("codes")).alias("m")).collect()[0]
    return -1 if row["m"] is None else int(row["m"])


def split_item_sids(df: DataFrame, num_layers: int, codebook_size: int
                    ) -> tuple[DataFrame, DataFrame]:
    """Valid rows (one per item_id, L codes in 0..M-1) and quarantine rows for the rest."""
    from pyspark.sql import functions as F

    from hourglass.spark.stats.input import any_of

    df = df.select(*ITEM_SIDS_COLUMNS).withColumn("item_id", F.trim("item_id"))
    df = _mark_duplicates(df)
    # element by element (the length is checked first): generated code, unlike a lambda
    code = [F.try_element_at("codes", F.lit(i + 1)) for i in range(num_layers)]
    bad_code = any_of([c.isNull() | (c < 0) | (c >= codebook_size) for c in code])
    reason = (
        F.when(F.col("item_id").isNull() | (F.col("item_id") == ""), F.lit("missing item_id"))
        .when(F.col("codes").isNull(), F.lit("missing codes"))
        .when(F.size("codes") != num_layers,
              F.concat(F.lit("codes of length "), F.size("codes").cast("string"),
                       F.lit(f", expected {num_layers}")))
        .when(bad_code, F.lit(f"null or out-of-range code (valid: 0..{codebook_size - 1})"))
        .when(F.col("codebook_id").isNull(), F.lit("missing codebook_id"))
        .when(F.col("_variants") > 1, F.lit("conflicting duplicate item_id"))
        .when(F.col("_dup") > 1, F.lit("exact duplicate of an earlier row"))
    )
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select(*ITEM_SIDS_COLUMNS)
    bad = quarantine_rows(df.where(F.col("_reason").isNotNull()), STAGE,
                          payload_cols=list(ITEM_SIDS_COLUMNS))
    return good, bad


def _mark_duplicates(df: DataFrame) -> DataFrame:
    """`_variants` (distinct contents of the row's item_id) and `_dup` (1 for the first copy).

    Repeated ids are found by a cheap shuffle of 64-bit hashes (`duplicate_ids`); only their
    rows go through the window that compares contents, so a catalog without duplicates (the
    usual case) is never sorted by item_id.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from hourglass.spark.stats.prepare import duplicate_ids

    dups = duplicate_ids(df)
    if dups is None:
        return df.withColumn("_variants", F.lit(1)).withColumn("_dup", F.lit(1))
    marked = df.join(dups.select("item_id", F.lit(True).alias("_repeated")), on="item_id",
                     how="left")
    content = F.sha2(F.to_json(F.struct("codes", "codebook_id")), 256)
    by_id = Window.partitionBy("item_id")
    repeated = (marked.where(F.col("_repeated")).withColumn("_content", content)
                .withColumn("_variants", F.size(F.collect_set("_content").over(by_id)))
                .withColumn("_dup", F.row_number().over(by_id.orderBy("_content")))
                .drop("_content"))
    single = (marked.where(F.col("_repeated").isNull())
              .withColumn("_variants", F.lit(1)).withColumn("_dup", F.lit(1)))
    return repeated.unionByName(single).drop("_repeated")


def layer_counts(df: DataFrame, layer: int = TOP_LAYER
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(codes, item counts) of one 1-based layer, and the codebook ids seen, in one aggregation.

    At most M rows per codebook come back to the driver.
    """
    from pyspark.sql import functions as F

    rows = df.groupBy("codebook_id", F.col("codes")[layer - 1].alias("code")).count().collect()
    per_code: dict[int, int] = {}
    for r in rows:
        per_code[int(r["code"])] = per_code.get(int(r["code"]), 0) + int(r["count"])
    codes = np.array(sorted(per_code), dtype=np.int64)
    counts = np.array([per_code[c] for c in sorted(per_code)], dtype=np.int64)
    return codes, counts, sorted({r["codebook_id"] for r in rows})
