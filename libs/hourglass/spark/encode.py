"""Table-scale encoding: `item_embeddings` rows → SIDs inside `mapInPandas`, streaming.

The artifact is broadcast once; each Python worker builds its `ArtifactEncoder` once (a
module-level cache keyed by codebook_id survives across tasks because Spark reuses workers) and
then encodes one Arrow batch at a time, so worker memory is bounded by the batch size
(`spark.sql.execution.arrow.maxRecordsPerBatch`), never by the table. Validation is Spark SQL
(codegen'd array functions, no Python), so each bad row gets a precise reason and never reaches
the kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    import pandas as pd
    from pyspark import Broadcast
    from pyspark.sql import Column, DataFrame

    from hourglass.quant.artifact import ArtifactEncoder, CodebookArtifact

STAGE = "encode_items"
SIDS_SCHEMA = "item_id string, codes array<int>, residual_norms array<float>, codebook_id string"
_ENCODERS: dict[tuple, ArtifactEncoder] = {}  # per Python worker process


class DimensionMismatchError(ValueError):
    """The codebook's D differs from the embeddings' D; raised before anything is written."""


def invalid_reason(dim: int) -> Column:
    """Why a row cannot be encoded (null when it can), in the order a person would fix them."""
    from pyspark.sql import functions as F

    emb = F.col("embedding")
    size = F.size(emb)
    top, bottom = F.array_max(emb), F.array_min(emb)
    return (
        F.when(F.col("item_id").isNull() | (F.trim(F.col("item_id")) == ""),
               F.lit("missing item_id"))
        .when(emb.isNull(), F.lit("null embedding"))
        .when(size != dim, F.concat(F.lit("wrong length: "), size.cast("string"),
                                    F.lit(f" values, expected {dim}")))
        .when(F.size(F.array_compact(emb)) != size, F.lit("null value in embedding"))
        .when(F.isnan(top), F.lit("NaN in embedding"))  # Spark orders NaN above +inf
        .when((top == float("inf")) | (bottom == float("-inf")), F.lit("inf in embedding"))
    )


def split_valid(df: DataFrame, dim: int) -> tuple[DataFrame, DataFrame]:
    """Rows to encode (item_id, embedding) and quarantine rows (stage `encode_items`)."""
    from pyspark.sql import functions as F

    scored = df.withColumn("_reason", invalid_reason(dim))
    good = scored.where(F.col("_reason").isNull()).select("item_id", "embedding")
    bad = scored.where(F.col("_reason").isNotNull())
    payload = [c for c in ("item_id", "model", "embedding") if c in df.columns]
    return good, quarantine_rows(bad, STAGE, payload_cols=payload)


def table_dim(df: DataFrame, sample_rows: int = 10_000) -> int | None:
    """The embedding length of the table: the most common one among its first rows.

    A sample, not a scan, because this runs before every encode; rows of another length later
    in the table are still quarantined one by one as `wrong length`.
    """
    from pyspark.sql import functions as F

    sizes = (df.where(F.col("embedding").isNotNull()).limit(sample_rows)
             .groupBy(F.size("embedding").alias("n")).count()
             .orderBy(F.desc("count"), F.asc("n")).limit(1).collect())
    return int(sizes[0]["n"]) if sizes else None


def check_dim(df: DataFrame, art: CodebookArtifact, sample_rows: int = 10_000) -> int | None:
    """Raise `DimensionMismatchError` unless the table's D equals the codebook's D."""
    dim = table_dim(df, sample_rows)
    if dim is not None and dim != art.dim:
        raise DimensionMismatchError(
            f"codebook {art.codebook_id} has D={art.dim} but the embeddings have D={dim}: "
            "train codebooks on this table (or encode the table they were trained on)"
        )
    return dim


def _worker_encoder(bc: Broadcast, codebook_id: str, device: str,
                    chunk_rows: int | None) -> ArtifactEncoder:
    """The encoder of this worker process, built from the broadcast on first use only."""
    from hourglass.quant.artifact import ArtifactEncoder

    key = (codebook_id, device, chunk_rows)
    if key not in _ENCODERS:
        _ENCODERS.clear()  # one codebook at a time per worker: bounded memory
        _ENCODERS[key] = ArtifactEncoder(bc.value, device=device, chunk_rows=chunk_rows)
    return _ENCODERS[key]


def _blas_threads(threads: int | None):
    """Limit BLAS threads to the task's cores: Spark runs one worker per core already."""
    import contextlib

    if threads is None:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        threads = ctx.cpus() if ctx is not None else None
    if not threads:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the BLAS uses its own default
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def stack_rows(values: pd.Series, dim: int) -> np.ndarray:
    """Series of equal-length arrays (what Arrow gives pandas for ARRAY<FLOAT>) → (n, D)."""
    if len(values) == 0:
        return np.empty((0, dim), dtype=np.float32)
    flat = np.concatenate(values.to_numpy()).astype(np.float32, copy=False)
    if flat.size != len(values) * dim:
        raise ValueError(f"rows of unequal length reached the encoder (expected {dim} each)")
    return flat.reshape(len(values), dim)


def encode_batches(batches: Iterator[pd.DataFrame], bc: Broadcast, codebook_id: str,
                   device: str = "cpu", chunk_rows: int | None = None,
                   threads: int | None = None) -> Iterator[pd.DataFrame]:
    """mapInPandas body: one Arrow batch in, its SIDs out; nothing accumulates."""
    import pandas as pd

    enc = _worker_encoder(bc, codebook_id, device, chunk_rows)
    with _blas_threads(threads):
        for pdf in batches:
            out = enc.encode(stack_rows(pdf["embedding"], enc.dim))
            yield pd.DataFrame({
                "item_id": pdf["item_id"].to_numpy(),
                "codes": list(out.codes),
                "residual_norms": list(out.residual_norms),
                "codebook_id": codebook_id,
            })


def encode_embeddings(good: DataFrame, bc: Broadcast, codebook_id: str, device: str = "cpu",
                      chunk_rows: int | None = None, threads: int | None = None) -> DataFrame:
    """`item_sids` rows for validated (item_id, embedding) rows, via mapInPandas."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return encode_batches(batches, bc, codebook_id, device, chunk_rows, threads)

    return good.mapInPandas(fn, schema=SIDS_SCHEMA)
