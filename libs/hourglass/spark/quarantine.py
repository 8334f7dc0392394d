"""The shared `quarantine` table: rows a stage refused, each with a reason and its payload.

Each stage owns the slice `stage = '<name>'` and replaces it in one commit, so a re-run does not
duplicate quarantine rows and stages never overwrite each other's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hourglass.spark.tables import Commit, write_slice

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

QUARANTINE_COLUMNS = ("item_id", "stage", "reason", "payload")


def quarantine_rows(
    df: DataFrame, stage: str, reason_col: str = "_reason", id_col: str = "item_id",
    payload_cols: list[str] | None = None,
) -> DataFrame:
    """Shape refused rows to the quarantine contract; payload is the row as JSON."""
    from pyspark.sql import functions as F

    cols = payload_cols or [c for c in df.columns if c != reason_col]
    return df.select(
        F.col(id_col).cast("string").alias("item_id"),
        F.lit(stage).alias("stage"),
        F.col(reason_col).cast("string").alias("reason"),
        F.to_json(F.struct(*[F.col(c) for c in cols])).alias("payload"),
    )


def write_quarantine(
    df: DataFrame, ref: str, stages: str | list[str], lineage_record: dict[str, Any]
) -> Commit:
    """Replace the slices of `stages` in the quarantine table in one commit (its `rows`: how
    many rows those stages quarantined)."""
    stages = [stages] if isinstance(stages, str) else list(stages)
    return write_slice(df.select(*QUARANTINE_COLUMNS), ref, lineage_record, {"stage": stages})
