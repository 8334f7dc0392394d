"""Statistics frames between the driver and the tables: the run's frames (either plan's result),
pandas to the contract schema, and one run's rows back as pandas (writes go through
`hourglass.spark.tables.write_slice`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourglass.spark.tables import read_table, table_exists
from hourglass.stats.schema import ddl

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class StatsFrames:
    """The run's small tables as pandas, written by the caller."""

    layer_stats: pd.DataFrame
    summary: pd.DataFrame
    flow: pd.DataFrame
    n_items: int


def _sql_value(value: Any) -> Any:
    """numpy scalars → Python, NaN → None (undefined is null in the table, not NaN)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_sql_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def pandas_to_spark(spark: SparkSession, pdf: pd.DataFrame,
                    columns: tuple[tuple[str, str], ...]) -> DataFrame:
    """A small driver-side frame as a DataFrame with the contract schema."""
    cols = [name for name, _ in columns]
    rows = [tuple(_sql_value(v) for v in rec) for rec in pdf[cols].itertuples(index=False)]
    return spark.createDataFrame(rows, schema=ddl(columns))


def read_runs(spark: SparkSession, ref: str, run_ids: list[str] | None = None) -> pd.DataFrame:
    """Rows of the given runs (all when None) as pandas; empty frame when the table is absent."""
    from pyspark.sql import functions as F

    if not table_exists(spark, ref):
        return pd.DataFrame()
    df = read_table(spark, ref).df
    if run_ids:
        df = df.where(F.col("run_id").isin(run_ids))
    return df.toPandas()
