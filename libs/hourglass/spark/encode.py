"""Table-scale encoding: `item_embeddings` rows → SIDs inside `mapInArrow`, in one read.

The artifact is broadcast once; each Python worker builds its `ArtifactEncoder` once (a
module-level cache keyed by codebook_id survives across tasks because Spark reuses workers) and
then encodes one Arrow batch at a time, so worker memory is bounded by the batch size
(`spark.sql.execution.arrow.maxRecordsPerBatch`), never by the table. Validation is complete in
Spark SQL (codegen'd array functions, no Python): every row gets its reason (null when valid)
and a bad row's embedding is nulled before the transfer, so the kernel sees valid rows only and
never rejects one. Every row, good or bad, comes out of the pass as a narrow row (codes, norms,
reason, payload; no embedding): `item_sids` and the quarantine are two filters of that output,
so the embeddings are read and validated once, however many rows are bad.

The direct passes (`file_passes`) read the table's Parquet files in the task instead (pyarrow,
`parquet_scan.read_units`, a batch of 65,536 rows at a time) and validate in numpy by the same
rules (`valid_rows`); the bad rows' reasons and payloads still come from the SQL above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from hourglass.errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark import Accumulator, Broadcast
    from pyspark.sql import Column, DataFrame

    from hourglass.quant.artifact import ArtifactEncoder, CodebookArtifact
    from hourglass.spark.parquet_scan import FilePlan

STAGE = "encode_items"
NULL_VALUE = "null value in embedding"
READ_COLUMNS = ("item_id", "model", "embedding")  # what a quarantine payload holds
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
    """item_id, embedding (null on a bad row: only valid rows cross to Python), `_reason`
    (null when encodable) and `_payload` (the row as JSON, bad rows only).

    Two projections, so the reason is computed once per row (Spark does not merge projections
    that would duplicate an expensive expression).
    """
    from pyspark.sql import functions as F

    cols = [c for c in READ_COLUMNS if c in df.columns]
    scored = df.select(*cols, invalid_reason(dim).alias("_reason"))
    payload = F.to_json(F.struct(*[F.col(c) for c in cols]))
    ok = F.col("_reason").isNull()
    return scored.select("item_id", F.when(ok, F.col("embedding")).alias("embedding"), "_reason",
                         F.when(~ok, payload).alias("_payload"))


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


def files_dim(plan: FilePlan, schema: pa.Schema, sample_rows: int = 10_000) -> int | None:
    """`table_dim` from the plan's files, read in plan order with pyarrow on the driver: the
    same rule (most common length among the first non-null embeddings, the shorter on a tie)
    without a Spark job before the encode's own."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from hourglass.spark.parquet_scan import read_unit

    emb = pa.schema([schema.field("embedding")])
    batches = (b for unit in plan.units
               for b in read_unit(*unit, emb, batch_rows=min(sample_rows, 65_536)))
    lengths: list[np.ndarray] = []
    seen = 0
    for b in batches:  # lazily: reading stops at the batch that completes the sample
        n = pc.list_value_length(b.column(0)).drop_null().to_numpy(zero_copy_only=False)
        lengths.append(n[:sample_rows - seen])
        seen += lengths[-1].size
        if seen >= sample_rows:
            break
    if not seen:
        return None
    values, counts = np.unique(np.concatenate(lengths), return_counts=True)
    return int(values[np.argmax(counts)])  # values ascending: the first maximum is the shorter


def check_dim(df: DataFrame, art: CodebookArtifact, sample_rows: int = 10_000,
              plan: FilePlan | None = None) -> int | None:
    """Raise `DimensionMismatchError` unless the table's D equals the codebook's D (read from
    the files of `plan` when it has no reason to read through Spark)."""
    if plan is not None and plan.reason is None:
        from hourglass.spark.parquet_scan import arrow_schema

        dim = files_dim(plan, arrow_schema(df, ["embedding"]), sample_rows)
    else:
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


def embedding_matrix(values: pa.Array, dim: int) -> np.ndarray:
    """Arrow LIST<FLOAT> rows (all valid, D values each) → `(n, D)` float32.

    `flatten` honours the array's offset and slicing; for the float32 child Arrow hands
    Spark's batches in, `to_numpy` is a view of its buffer (no per-row work, no copy).
    """
    n = len(values)
    if n == 0:
        return np.empty((0, dim), dtype=np.float32)
    flat = values.flatten().to_numpy(zero_copy_only=False)
    if flat.size != n * dim:
        raise ValueError(f"rows of unequal length reached the encoder (expected {dim} each)")
    return flat.astype(np.float32, copy=False).reshape(n, dim)


def valid_schema(num_layers: int) -> str:
    """Columns out of the direct pass: the valid rows' id, scalar codes and norms (c0..,
    n0..), which Arrow moves without per-row work. Spark SQL packs codes and norms into the
    ARRAY columns of the contract afterwards."""
    codes = ", ".join(f"c{i} int" for i in range(num_layers))
    norms = ", ".join(f"n{i} float" for i in range(num_layers))
    return f"item_id string, {codes}, {norms}"


def pass_schema(num_layers: int) -> str:
    """Columns out of the Spark-read pass: `valid_schema`'s (codes and norms null on a bad
    row), and the row's reason and payload passed through."""
    return f"{valid_schema(num_layers)}, _reason string, _payload string"


def _layer_columns(ids: pa.Array, codes: np.ndarray, norms: np.ndarray,
                   nulls: np.ndarray | None = None) -> tuple[list[pa.Array], list[str]]:
    """The id and one column per layer's code and norm (null where `nulls`), as named in
    `valid_schema`."""
    import pyarrow as pa

    layers = codes.shape[1]
    cols = [ids, *(pa.array(codes[:, i], mask=nulls) for i in range(layers)),
            *(pa.array(norms[:, i], mask=nulls) for i in range(layers))]
    return cols, ["item_id", *(f"c{i}" for i in range(layers)),
                  *(f"n{i}" for i in range(layers))]


def encode_batch(batch: pa.RecordBatch, enc: ArtifactEncoder) -> pa.RecordBatch:
    """One Arrow batch of scored rows → the same rows with codes and norms (null if bad)."""
    import pyarrow as pa

    reason = batch.column("_reason")
    ok = reason.is_null()
    good = np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool)
    all_ok = reason.null_count == batch.num_rows  # the usual batch: no copy of the embeddings
    X = embedding_matrix(batch.column("embedding") if all_ok
                         else batch.column("embedding").filter(ok), enc.dim)
    if not np.isfinite(X).all():  # cheap next to the GEMM; guards the SQL contract
        ids = batch.column("item_id") if all_ok else batch.column("item_id").filter(ok)
        bad = ids[int(np.flatnonzero(~np.isfinite(X).all(1))[0])].as_py()
        raise RuntimeError(f"item {bad!r} reached the encoder with a non-finite value: "
                           "invalid_reason must have rejected it")
    out = enc.encode(X)
    layers = out.codes.shape[1]
    codes = np.zeros((len(good), layers), np.int32)
    norms = np.zeros((len(good), layers), np.float32)
    codes[good], norms[good] = out.codes, out.residual_norms
    cols, names = _layer_columns(batch.column("item_id"), codes, norms,
                                 None if all_ok else ~good)
    cols += [batch.column("_reason"), batch.column("_payload")]
    names += ["_reason", "_payload"]
    return pa.RecordBatch.from_arrays(cols, names=names)


def encode_batches(batches: Iterator[pa.RecordBatch], bc: Broadcast, codebook_id: str,
                   device: str = "cpu", chunk_rows: int | None = None,
                   threads: int | None = None) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: the worker's encoder, BLAS limited to the task's cores, per batch."""
    enc = _worker_encoder(bc, codebook_id, device, chunk_rows)
    with _blas_threads(threads):
        for batch in batches:
            yield encode_batch(batch, enc)


def encode_rows(scored: DataFrame, bc: Broadcast, codebook_id: str, num_layers: int,
                device: str = "cpu", chunk_rows: int | None = None,
                threads: int | None = None) -> DataFrame:
    """The mapInArrow pass over every row of `score_rows` output: codes and norms of the
    valid rows, reason and payload of the bad ones."""

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return encode_batches(batches, bc, codebook_id, device, chunk_rows, threads)

    return scored.mapInArrow(fn, schema=pass_schema(num_layers))


def valid_rows(batch: pa.RecordBatch, dim: int) -> np.ndarray:
    """Which rows `invalid_reason(dim)` gives no reason, in numpy: an id not blank, `dim`
    values, none null, each finite and within +-MAX_ABS (a null element reads as NaN, which
    no bound admits)."""
    import pyarrow.compute as pc

    from hourglass.spark.parquet_scan import id_present, rows_with

    n = batch.num_rows
    emb = batch.column("embedding")
    ok = id_present(batch.column("item_id"))
    ok &= pc.fill_null(pc.list_value_length(emb), -1).to_numpy(zero_copy_only=False) == dim
    if n == 0:
        return ok
    flat = pc.list_flatten(emb).to_numpy(zero_copy_only=False)  # nulls come as NaN
    if ok.all():  # the usual batch: one max per row over the (n, dim) view
        return np.abs(flat.reshape(n, dim)).max(1).astype(np.float64) <= MAX_ABS
    parents = pc.list_parent_indices(emb).to_numpy(zero_copy_only=False)
    beyond = ~(np.abs(flat).astype(np.float64) <= MAX_ABS)  # NaN compares false
    return ok & ~rows_with(parents, beyond, n)


def encode_valid(batches: Iterator[pa.RecordBatch], bc: Broadcast, codebook_id: str, dim: int,
                 device: str = "cpu", chunk_rows: int | None = None, threads: int | None = None,
                 refused: list[int] | None = None) -> Iterator[pa.RecordBatch]:
    """Raw table rows (read from the files) → the valid rows' codes and norms; the bad rows
    are left for `bad_rows`, which finds the same ones (their number per batch goes to
    `refused`)."""
    import pyarrow as pa

    enc = _worker_encoder(bc, codebook_id, device, chunk_rows)
    with _blas_threads(threads):
        for batch in batches:
            ok = valid_rows(batch, dim)
            if not ok.all():
                batch = batch.filter(pa.array(ok))
                if refused is not None:
                    refused.append(int((~ok).sum()))
            out = enc.encode(embedding_matrix(batch.column("embedding"), dim))
            cols, names = _layer_columns(batch.column("item_id"), out.codes, out.residual_norms)
            yield pa.RecordBatch.from_arrays(cols, names=names)


def bad_rows(batches: Iterator[pa.RecordBatch], dim: int) -> Iterator[pa.RecordBatch]:
    """Raw table rows → those `valid_rows` refuses, as read (no kernel)."""
    import pyarrow as pa

    for batch in batches:
        ok = valid_rows(batch, dim)
        if not ok.all():
            yield batch.filter(pa.array(~ok))


class UnitCounts:
    """Accumulator param: {read unit: bad rows in it}, merged as a union, so the report of a
    retried or speculative task changes nothing (a unit's rows are the same every time)."""

    def zero(self, value: dict) -> dict:
        return {}

    def addInPlace(self, a: dict, b: dict) -> dict:  # noqa: N802 (pyspark's name)
        a.update(b)
        return a


@dataclasses.dataclass
class FilePasses:
    """The passes over a plan's files (those of `df`'s version), one Spark task per task of the
    plan and one Python call per task (pyarrow read, numpy validation, kernel; the JVM never
    decodes the embeddings). `valid`: the valid rows encoded; while it runs, each task reports
    the units where it refused rows, so `refused` re-reads only those."""

    plan: FilePlan
    df: DataFrame
    schema: pa.Schema
    dim: int
    valid: DataFrame
    found: Accumulator

    def refused(self, expected: int | None = None) -> DataFrame:
        """The bad rows as read, each with its reason and payload made by the same SQL as
        `score_rows`, read again from the units `valid` reported (when they hold `expected`
        rows; else from every unit). A row numpy refuses but SQL accepts stops the job."""
        from pyspark.sql import functions as F

        from hourglass.spark.parquet_scan import FilePlan, read_units, unit_frame

        dim, schema, plan = self.dim, self.schema, self.plan
        if expected is not None and sum(self.found.value.values()) == expected:
            plan = FilePlan([[u] for u in sorted(self.found.value)])  # few, each its own task

        def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return bad_rows(read_units(batches, schema), dim)

        raw = self.df.select(*schema.names).schema
        frame = unit_frame(self.df.sparkSession, plan).mapInArrow(fn, raw)
        bad = score_rows(frame, dim)
        guard = F.raise_error(F.concat(
            F.lit("item "), F.coalesce("item_id", F.lit("null")),
            F.lit(" failed the numpy checks of encode.valid_rows but passes invalid_reason: set "
                  "direct_read: false and report this")))
        return bad.withColumn("_reason", F.coalesce("_reason", guard))


def file_passes(plan: FilePlan, df: DataFrame, bc: Broadcast, codebook_id: str, dim: int,
                num_layers: int, device: str = "cpu", chunk_rows: int | None = None,
                threads: int | None = None) -> FilePasses:
    """`FilePasses` over the plan's units with the encoder of the broadcast artifact."""
    from hourglass.spark.parquet_scan import arrow_schema, read_unit, unit_frame, unit_rows

    spark = df.sparkSession
    schema = arrow_schema(df, READ_COLUMNS)
    found = spark.sparkContext.accumulator({}, UnitCounts())

    def encode(chunks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for unit in unit_rows(chunks):
            refused: list[int] = []
            yield from encode_valid(read_unit(*unit, schema), bc, codebook_id, dim, device,
                                    chunk_rows, threads, refused)
            if refused:
                found.add({unit: sum(refused)})

    valid = unit_frame(spark, plan).mapInArrow(encode, valid_schema(num_layers))
    return FilePasses(plan, df, schema, dim, valid, found)


def pack_sids(encoded: DataFrame, codebook_id: str, num_layers: int) -> DataFrame:
    """The `item_sids` contract from a pass's valid rows: arrays packed in SQL."""
    from pyspark.sql import functions as F

    return encoded.select(
        "item_id",
        F.array(*[F.col(f"c{i}") for i in range(num_layers)]).alias("codes"),
        F.array(*[F.col(f"n{i}") for i in range(num_layers)]).alias("residual_norms"),
        F.lit(codebook_id).alias("codebook_id"),
    )


def sids_frame(encoded: DataFrame, codebook_id: str, num_layers: int) -> DataFrame:
    """The `item_sids` contract from the pass: its valid rows, arrays packed in SQL."""
    from pyspark.sql import functions as F

    return pack_sids(encoded.where(F.col("_reason").isNull()), codebook_id, num_layers)


def quarantine_frame(encoded: DataFrame) -> DataFrame:
    """The `quarantine` contract from the pass: its bad rows with reason and payload."""
    from pyspark.sql import functions as F

    return encoded.where(F.col("_reason").isNotNull()).select(
        "item_id", F.lit(STAGE).alias("stage"), F.col("_reason").alias("reason"),
        F.col("_payload").alias("payload"))
