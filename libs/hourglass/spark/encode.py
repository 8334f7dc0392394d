"""Table-scale encoding: `item_embeddings` rows → SIDs inside `mapInPandas`, in one pass.

The artifact is broadcast once; each Python worker builds its `ArtifactEncoder` once (a
module-level cache keyed by codebook_id survives across tasks because Spark reuses workers) and
then encodes one Arrow batch at a time, so worker memory is bounded by the batch size
(`spark.sql.execution.arrow.maxRecordsPerBatch`), never by the table. Validation is complete in
Spark SQL (codegen'd array functions, no Python): every row gets its reason (null when valid),
only valid rows reach the kernel, and the kernel never rejects one. So `item_sids` and the
quarantine are two independent projections of the same scored rows, and nothing needs caching.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from hourglass.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark import Broadcast
    from pyspark.sql import Column, DataFrame

    from hourglass.quant.artifact import ArtifactEncoder, CodebookArtifact

STAGE = "encode_items"
NULL_VALUE = "null value in embedding"
SIDS_SCHEMA = "item_id string, codes array<int>, residual_norms array<float>, codebook_id string"
_ENCODERS: dict[tuple, ArtifactEncoder] = {}  # per Python worker process


class DimensionMismatchError(InputError, ValueError):
    """The codebook's D differs from the embeddings' D; raised before anything is written."""


# A float no embedding holds in practice: arrays_overlap(e, [SENTINEL]) is null exactly when e
# holds a null value (and not the sentinel), a codegen'd test where array_compact/filter would
# push the whole projection out of whole-stage codegen. A row holding the sentinel itself is
# caught by the magnitude bound, so no null value ever reaches the kernel.
SENTINEL = -3.4028234663852886e38  # -FLT_MAX
# Largest |value| encoded: squares summed over D <= 2^16 values stay finite in float32, so the
# kernel's distances and residual norms cannot overflow.
MAX_ABS = 1e15


def invalid_reason(dim: int) -> Column:
    """Why a row cannot be encoded (null when it can), in the order a person would fix them."""
    from pyspark.sql import functions as F

    emb = F.col("embedding")
    size = F.size(emb)
    top, bottom = F.array_max(emb), F.array_min(emb)
    has_null = F.arrays_overlap(emb, F.array(F.lit(SENTINEL).cast("float"))).isNull()
    return (
        F.when(F.col("item_id").isNull() | (F.trim(F.col("item_id")) == ""),
               F.lit("missing item_id"))
        .when(emb.isNull(), F.lit("null embedding"))
        .when(size != dim, F.concat(F.lit("wrong length: "), size.cast("string"),
                                    F.lit(f" values, expected {dim}")))
        .when(has_null, F.lit(NULL_VALUE))
        .when(F.isnan(top), F.lit("NaN in embedding"))  # Spark orders NaN above +inf
        .when((top == float("inf")) | (bottom == float("-inf")), F.lit("inf in embedding"))
        .when((top > MAX_ABS) | (bottom < -MAX_ABS),
              F.lit(f"value beyond +-{MAX_ABS:g} in embedding"))
    )


def score_rows(df: DataFrame, dim: int) -> DataFrame:
    """item_id, embedding, `_reason` (null when encodable) and `_payload` (JSON, bad rows only).

    Two projections, so the reason is computed once per row (Spark does not merge projections
    that would duplicate an expensive expression).
    """
    from pyspark.sql import functions as F

    cols = [c for c in ("item_id", "model", "embedding") if c in df.columns]
    scored = df.select(*cols, invalid_reason(dim).alias("_reason"))
    payload = F.to_json(F.struct(*[F.col(c) for c in cols]))
    return scored.select("item_id", "embedding", "_reason",
                         F.when(F.col("_reason").isNotNull(), payload).alias("_payload"))


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
    """Series of length-D float arrays (what Arrow gives pandas for ARRAY<FLOAT>) → (n, D).

    pyarrow hands pandas each row as a view into one flat buffer; when the first and last rows
    show that layout, the matrix is that buffer (no copy, no per-row work). Otherwise (other
    producers, several chunks) the rows are concatenated. The fast path trusts that every row
    has D values, which `invalid_reason` guarantees for every row that reaches the encoder.
    """
    n = len(values)
    if n == 0:
        return np.empty((0, dim), dtype=np.float32)
    rows = values.to_numpy()
    first, last, base = rows[0], rows[-1], getattr(rows[0], "base", None)
    if (isinstance(base, np.ndarray) and getattr(last, "base", None) is base
            and base.dtype == np.float32 and base.flags.c_contiguous
            and first.dtype == np.float32 and len(first) == len(last) == dim):
        flat = base.reshape(-1)
        start, rem = divmod(first.ctypes.data - flat.ctypes.data, 4)
        span_ok = last.ctypes.data - first.ctypes.data == (n - 1) * dim * 4
        if rem == 0 and span_ok and start >= 0 and start + n * dim <= flat.size:
            return flat[start : start + n * dim].reshape(n, dim)
    flat = np.concatenate(rows).astype(np.float32, copy=False)
    if flat.size != n * dim:
        raise ValueError(f"rows of unequal length reached the encoder (expected {dim} each)")
    return flat.reshape(n, dim)


def udf_schema(num_layers: int) -> str:
    """Scalar columns out of Python (c0.., n0..): Arrow converts them without per-row work,
    where ARRAY columns cost several µs a row in pyspark's pandas→Arrow path. Spark SQL packs
    them into the ARRAY columns of the contract afterwards."""
    codes = ", ".join(f"c{i} int" for i in range(num_layers))
    norms = ", ".join(f"n{i} float" for i in range(num_layers))
    return f"item_id string, {codes}, {norms}"


def encode_batches(batches: Iterator[pd.DataFrame], bc: Broadcast, codebook_id: str,
                   device: str = "cpu", chunk_rows: int | None = None,
                   threads: int | None = None) -> Iterator[pd.DataFrame]:
    """mapInPandas body: one Arrow batch of valid rows in, its codes and norms out."""
    import pandas as pd

    enc = _worker_encoder(bc, codebook_id, device, chunk_rows)
    with _blas_threads(threads):
        for pdf in batches:
            X = stack_rows(pdf["embedding"], enc.dim)
            if not np.isfinite(X).all():  # cheap next to the GEMM; guards the SQL contract
                bad = pdf["item_id"].iloc[int(np.flatnonzero(~np.isfinite(X).all(1))[0])]
                raise RuntimeError(f"item {bad!r} reached the encoder with a non-finite value: "
                                   "invalid_reason must have rejected it")
            out = enc.encode(X)
            cols = {"item_id": pdf["item_id"].to_numpy()}
            cols.update({f"c{i}": out.codes[:, i] for i in range(out.codes.shape[1])})
            cols.update({f"n{i}": out.residual_norms[:, i] for i in range(out.codes.shape[1])})
            yield pd.DataFrame(cols)


def encode_rows(scored: DataFrame, bc: Broadcast, codebook_id: str, num_layers: int,
                device: str = "cpu", chunk_rows: int | None = None,
                threads: int | None = None) -> DataFrame:
    """The mapInPandas pass over the valid rows of `score_rows` output: codes and norms."""
    from pyspark.sql import functions as F

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return encode_batches(batches, bc, codebook_id, device, chunk_rows, threads)

    valid = scored.where(F.col("_reason").isNull()).select("item_id", "embedding")
    return valid.mapInPandas(fn, schema=udf_schema(num_layers))


def sids_frame(encoded: DataFrame, codebook_id: str, num_layers: int) -> DataFrame:
    """The `item_sids` contract from the encoded pass: arrays packed in SQL."""
    from pyspark.sql import functions as F

    return encoded.select(
        "item_id",
        F.array(*[F.col(f"c{i}") for i in range(num_layers)]).alias("codes"),
        F.array(*[F.col(f"n{i}") for i in range(num_layers)]).alias("residual_norms"),
        F.lit(codebook_id).alias("codebook_id"),
    )


def quarantine_frame(scored: DataFrame) -> DataFrame:
    """The `quarantine` contract from `score_rows` output: bad rows with reason and payload,
    in SQL alone (no Python worker, no kernel)."""
    from pyspark.sql import functions as F

    return scored.where(F.col("_reason").isNotNull()).select(
        "item_id", F.lit(STAGE).alias("stage"), F.col("_reason").alias("reason"),
        F.col("_payload").alias("payload"))
