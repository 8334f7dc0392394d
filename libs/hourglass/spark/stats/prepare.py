"""Input preparation for the stats stage: what L and M are read from, and duplicate item ids,
cheaply.

L and M are taken from the config, else from the codebook manifest of the table's first
codebook id (reading one row), and only as a last resort from a full pass over the table (in
the order of `hourglass.stats.plan.resolve_shape`). Duplicate ids are found by grouping a 64-bit
hash of item_id (a cheap shuffle of longs); only rows whose hash repeats are grouped again by
the id itself, so hash collisions never quarantine a row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def first_value(df: DataFrame, col: str) -> str | None:
    """One non-null value of `col` (the table's codebook id, normally the only one)."""
    from pyspark.sql import functions as F

    row = df.select(col).where(F.col(col).isNotNull()).first()
    return row[0] if row else None


def codebook_shape(codebooks_root: str, codebook_id: str | None) -> tuple[int, int] | None:
    """(L, M) from `<codebooks_root>/<codebook_id>/manifest.json` when it is a local file."""
    from hourglass.quant.artifact import MANIFEST_FILE

    root = codebooks_root.removeprefix("file:")
    if not codebook_id or not root or "://" in root:
        return None
    manifest = Path(root) / codebook_id / MANIFEST_FILE
    if not manifest.is_file():
        return None
    data = json.loads(manifest.read_text())
    return int(data["L"]), int(data["M"])


def duplicate_ids(df: DataFrame) -> DataFrame | None:
    """(item_id, _copies) of every id that occurs more than once; None when there is none."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    hashed = df.where(F.col("item_id").isNotNull()).select(
        "item_id", F.xxhash64("item_id").alias("_h"))
    repeated = (hashed.groupBy("_h").count().where(F.col("count") > 1).select("_h")
                .persist(StorageLevel.MEMORY_AND_DISK))
    if repeated.isEmpty():
        repeated.unpersist()
        return None
    dups = (hashed.join(F.broadcast(repeated), on="_h", how="left_semi")
            .groupBy("item_id").agg(F.count("*").alias("_copies"))
            .where(F.col("_copies") > 1).persist(StorageLevel.MEMORY_AND_DISK))
    repeated.unpersist()
    if dups.isEmpty():  # only hash collisions
        dups.unpersist()
        return None
    return dups


def with_duplicates(keyed: DataFrame, dups: DataFrame | None,
                    broadcast_limit: int = 1_000_000) -> DataFrame:
    """Set `_reason` on every copy of a duplicated id (its SID is ambiguous)."""
    from pyspark.sql import functions as F

    if dups is None:
        return keyed
    reason = F.coalesce(F.col("_reason"), F.when(
        F.col("_copies").isNotNull(),
        F.concat(F.lit("duplicate item_id ("), F.col("_copies").cast("string"), F.lit(" rows)"))))
    small = dups.limit(broadcast_limit + 1).count() <= broadcast_limit
    return (keyed.join(F.broadcast(dups) if small else dups, on="item_id", how="left")
            .withColumn("_reason", reason).drop("_copies"))
