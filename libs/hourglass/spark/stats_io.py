"""Write one run's rows of a shared statistics table, and read them back as pandas."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourglass.spark.tables import read_table, table_exists, write_table
from hourglass.stats.schema import ddl

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _plain(value: Any) -> Any:
    """numpy scalars → Python, NaN → None (undefined is null in the table, not NaN)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def pandas_to_spark(spark: SparkSession, pdf: pd.DataFrame,
                    columns: tuple[tuple[str, str], ...]) -> DataFrame:
    """A small driver-side frame as a DataFrame with the contract schema."""
    cols = [name for name, _ in columns]
    rows = [tuple(_plain(v) for v in rec) for rec in pdf[cols].itertuples(index=False)]
    return spark.createDataFrame(rows, schema=ddl(columns))


def run_filter(run_id: str) -> str:
    """The replaceWhere predicate of one run (run ids are validated to a safe alphabet)."""
    if "'" in run_id or "\\" in run_id:
        raise ValueError(f"unsafe run_id {run_id!r}")
    return f"run_id = '{run_id}'"


def write_run(df: DataFrame, ref: str, run_id: str, record: dict[str, Any],
              partition_by: list[str] | None = None) -> int:
    """Replace `run_id`'s rows of `ref` in one commit (create the table on first write)."""
    exists = table_exists(df.sparkSession, ref)
    return write_table(df, ref, record, replace_where=run_filter(run_id) if exists else None,
                       partition_by=partition_by)


def read_runs(spark: SparkSession, ref: str, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Rows of the given runs (all when None) as pandas; empty frame when the table is absent."""
    from pyspark.sql import functions as F

    if not table_exists(spark, ref):
        return pd.DataFrame()
    df = read_table(spark, ref).df
    if run_ids:
        df = df.where(F.col("run_id").isin(run_ids))
    return df.toPandas()
