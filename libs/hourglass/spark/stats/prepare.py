"""Input preparation for the stats stage: L and M, and duplicate item ids, cheaply.

L and M are taken from the config, else from the codebook manifest of the table's first
codebook id (reading one row), and only as a last resort from a full pass over the table.
Duplicate ids are found by grouping a 64-bit hash of item_id (a cheap shuffle of longs); only
rows whose hash repeats are grouped again by the id itself, so hash collisions never
quarantine a row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hourglass.config import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Shape = tuple[int, int, str]  # (L, M, m_source)


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


def resolve_shape(num_layers: int, num_codes: int, book: tuple[int, int] | None,
                  infer: Callable[[], tuple[int | None, int | None]] | None) -> Shape:
    """Config wins, then the codebook manifest, then `infer()` → (longest SID, largest code).

    `infer` is None for rewritten input, whose table cannot tell L and M.
    """
    if num_layers and num_codes:
        return num_layers, num_codes, "config"
    if book:
        return num_layers or book[0], num_codes or book[1], (
            "config" if num_codes else "codebook")
    if infer is None:
        hint = "is required for rewritten input when the codebook artifact is not found"
        raise ConfigError(f"config key '{'num_layers' if not num_layers else 'num_codes'}': "
                          f"{hint}")
    L, top = infer()
    if (not num_layers and not L) or (not num_codes and top is None):
        raise ConfigError("config key 'num_codes': cannot infer L/M from an input without codes")
    L = num_layers or int(L)
    return (L, num_codes, "config") if num_codes else (L, max(int(top) + 1, 2), "inferred")


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
