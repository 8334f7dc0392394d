"""The codebook training sample: a seeded, layout-independent choice of valid embedding rows,
brought to the driver as one numpy array (the only place training touches Spark)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hourglass.spark.encode import SENTINEL, invalid_reason

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def sample_embeddings(df: DataFrame, dim: int, size: int, seed: int) -> np.ndarray:
    """Up to `size` valid rows chosen by hash(item_id, seed), in hash order, as (n, D) float32."""
    from pyspark.sql import functions as F

    total = df.count()
    fraction = min(1.0, 1.2 * size / max(total, 1) + 1e-9)
    u = (F.xxhash64(F.col("item_id"), F.lit(seed)).bitwiseAND(F.lit((1 << 53) - 1))
         / float(1 << 53))
    usable = invalid_reason(dim).isNull() & ~F.array_contains("embedding", SENTINEL)
    picked = (df.where(usable)
              .select("item_id", "embedding", u.alias("_u"))
              .where(F.col("_u") < fraction)
              .orderBy("_u", "item_id").limit(size)
              .select("embedding"))
    table = picked.toArrow()
    col = table.column("embedding").combine_chunks()
    if len(col) == 0:
        return np.empty((0, dim), dtype=np.float32)
    X = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), dim)
    return X[np.isfinite(X).all(axis=1)]  # defensive: the SQL test above excludes non-finite
