"""Scan 1's input straight from the Parquet files of the pinned Delta version, with pyarrow.

Why: handing the SID table to Python through Spark (JVM decode of the array columns, SQL
validation, row-by-row Arrow conversion) cost 2-3x a plain per-layer `groupBy().count()` on
its own, before any statistic; pyarrow decodes the same columns from the files at about ten
million rows per second per core. The task validates the rows with numpy, by the rules of
`stats.input.fixed_frame`, and hashes the ids itself, then hands the same columns to
`stats.scan.map_side.scan1_partition`.

Only where this reads exactly the rows Spark would (`plan_files` says why not, and the caller
reads through Spark): a table given by path on a filesystem every executor mounts (local, NFS,
a FUSE mount); a protocol `deltalake` can read (it refuses deletion vectors and column mapping);
none of the columns read a partition column. The caller also checks the rows read against
Spark's count of the same version, and the bad rows found here against those Spark's rules
quarantine, so a disagreement raises instead of passing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hourglass.table_refs import is_path

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

COLUMNS = ("item_id", "codes", "residual_norms")
UNIT_SCHEMA = "path STRING, part INT, parts INT"
BATCH_ROWS = 65_536
# the files alone do not give the rows: deleted rows, renamed columns, widened types
UNSAFE_FEATURES = {"deletionVectors", "columnMapping", "typeWidening", "typeWidening-preview"}

# equal ids hash equal in every task (a fixed function of the bytes); a rare collision of two
# different ids only sends the run to the row plan, which compares the ids themselves
_LEN = np.uint64(0xC2B2AE3D27D4EB4F)
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


Unit = tuple[str, int, int]  # (path, part, parts): the row groups i % parts == part of a file


@dataclass(frozen=True)
class FilePlan:
    """Where the rows are: read units packed into Spark tasks (`tasks`, each a list of units
    read in turn by one Python call), or why the table must be read through Spark."""

    tasks: list[list[Unit]]
    reason: str | None = None

    @property
    def units(self) -> list[Unit]:
        return [u for task in self.tasks for u in task]


def _local_path(uri: str) -> str | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else uri
    return None


def _bytes(spark: SparkSession, key: str, default: str) -> int:
    return int(spark._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(
        spark.conf.get(key, default)))


def pack_units(sizes: dict[str, int], split_bytes: int, open_cost: int) -> list[list[Unit]]:
    """Spark's file-scan packing (`FilePartition.getFilePartitions`) over whole row groups: a
    file over `split_bytes` becomes ceil(size / split_bytes) units, and the units, largest
    first, fill tasks of up to `split_bytes`, each unit counted with `open_cost` more. Why:
    one task per small file multiplies per-task costs (a Python call, the scan's blocks,
    which number tasks x ranges) for nothing."""
    units = []
    for path, size in sizes.items():
        n = max(1, math.ceil(size / split_bytes))
        units += [((path, k, n), size / n) for k in range(n)]
    tasks: list[list[Unit]] = []
    current: list[Unit] = []
    filled = 0.0
    for unit, size in sorted(units, key=lambda u: -u[1]):
        if current and filled + size > split_bytes:
            tasks.append(current)
            current, filled = [], 0.0
        current.append(unit)
        filled += size + open_cost
    return tasks + [current] if current else tasks


def plan_files(spark: SparkSession, ref: str, version: int, columns: Iterable[str],
               target_bytes: int | None = None, pack: bool = True) -> FilePlan:
    """The files of `ref` at `version` packed into tasks as Spark would (`pack_units`, split
    size from `spark.sql.files.*` as `FilePartition.maxSplitBytes` makes it; `target_bytes`
    fixes it), or the reason to read through Spark. Without `pack`, one task per unit: for a
    pass whose per-row work dwarfs per-task costs (encoding), where smaller tasks even out the
    load across cores (five tasks of 1-2 units on two cores left one idle for a fifth of the
    job)."""
    if not is_path(ref) or _local_path(ref) is None:
        return FilePlan([], f"{ref} is not a path on a mounted filesystem")
    default_fs = spark._jsc.hadoopConfiguration().get("fs.defaultFS") or "file:///"
    if "://" not in ref and not default_fs.startswith("file:"):
        return FilePlan([], f"{ref} resolves against fs.defaultFS {default_fs}")
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        dt = DeltaTable(_local_path(ref), version=version)
        features = set(dt.protocol().reader_features or ())
        mapping = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
        if features & UNSAFE_FEATURES or mapping != "none":
            return FilePlan([], f"{ref} v{version} uses reader features "
                                f"{sorted(features & UNSAFE_FEATURES) or [mapping]}")
        dt.to_pyarrow_dataset()  # raises for anything else deltalake cannot read
    except (DeltaError, NotImplementedError, OSError, ValueError) as e:
        return FilePlan([], f"deltalake cannot read {ref} v{version}: {e}")
    parts = set(dt.metadata().partition_columns) & set(columns)
    if parts:
        return FilePlan([], f"{ref} is partitioned by {sorted(parts)}")
    sizes = {}
    for uri in dt.file_uris():
        path = _local_path(uri)
        if path is None:
            return FilePlan([], f"{ref} lists a file outside the filesystem: {uri}")
        sizes[path] = os.path.getsize(path)
    open_cost = _bytes(spark, "spark.sql.files.openCostInBytes", "4MB")
    if target_bytes is None:
        min_parts = int(spark.conf.get("spark.sql.files.minPartitionNum", None)
                        or spark.sparkContext.defaultParallelism)
        per_core = sum(s + open_cost for s in sizes.values()) // max(1, min_parts)
        target_bytes = min(_bytes(spark, "spark.sql.files.maxPartitionBytes", "128MB"),
                           max(open_cost, per_core))
    tasks = pack_units(sizes, target_bytes, open_cost)
    return FilePlan(tasks if pack else [[u] for task in tasks for u in task])


def unit_rows(chunks: Iterable[pa.RecordBatch]) -> Iterator[Unit]:
    """The (path, part, parts) read units in Arrow batches of `UNIT_SCHEMA` rows."""
    for chunk in chunks:
        yield from zip(*(chunk.column(c).to_pylist() for c in ("path", "part", "parts")),
                       strict=True)


def read_unit(path: str, part: int, parts: int, schema: pa.Schema,
              batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The rows of one unit's row groups, `schema`'s columns; a column the file lacks (written
    before the column was added) comes as nulls, as Spark reads it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    groups = [g for g in range(pf.metadata.num_row_groups) if g % parts == part]
    have = [f.name for f in schema if f.name in pf.schema_arrow.names]
    if not groups:
        return
    for b in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=have,
                             use_threads=False):
        yield pa.RecordBatch.from_arrays(
            [b.column(f.name).cast(f.type) if f.name in have
             else pa.nulls(b.num_rows, f.type) for f in schema], schema=schema)


def read_units(units: Iterator[pa.RecordBatch], schema: pa.Schema,
               batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The rows of each unit in Arrow batches of `UNIT_SCHEMA` rows (see `read_unit`)."""
    for unit in unit_rows(units):
        yield from read_unit(*unit, schema, batch_rows)


def string_hash(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string (as int64; 0 for null), vectorised over the Arrow buffers:
    the bytes laid out as rows of 8-byte words (the last zero padded), each of a string's words
    folded in with a multiply, then murmur3's fmix64: the same value whatever else is in the
    batch. No Python object per row."""
    import pyarrow as pa

    n = len(values)
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    _, off_buf, data_buf = values.buffers()
    offsets = (np.frombuffer(off_buf, np.int32)[values.offset:values.offset + n + 1]
               .astype(np.int64) if n else np.zeros(1, np.int64))
    lens = np.diff(offsets)
    h = lens.astype(np.uint64) * _LEN
    width = -(-int(lens.max(initial=0)) // 8) * 8
    if width:
        data = np.frombuffer(data_buf, np.uint8)[offsets[0]:offsets[-1]]
        grid = np.zeros((n, width), np.uint8)
        grid[np.arange(width) < lens[:, None]] = data  # row-major: each string's bytes in turn
        for j, word in enumerate(grid.view(np.uint64).T):  # a string's own words only
            mixed = (h ^ word) * _M1
            h = np.where(lens > 8 * j, mixed ^ (mixed >> np.uint64(29)), h)
    h ^= h >> np.uint64(33)
    h *= _M1
    h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(33)
    h = h.view(np.int64)
    if values.null_count:
        h[np.asarray(values.is_null().to_numpy(zero_copy_only=False), bool)] = 0
    return h


def id_present(ids: pa.Array) -> np.ndarray:
    """Rows whose id Spark's rules accept: not null, not blank after `trim` (spaces only)."""
    import pyarrow.compute as pc

    return np.asarray(pc.fill_null(pc.not_equal(pc.utf8_trim(ids, " "), ""), False)
                      .to_numpy(zero_copy_only=False), bool)


def rows_with(parents: np.ndarray, bad: np.ndarray, n: int) -> np.ndarray:
    """Rows holding at least one bad element (parents: each element's row)."""
    return np.bincount(parents[bad], minlength=n) > 0 if bad.any() else np.zeros(n, bool)


def fixed_valid(batch: pa.RecordBatch, L: int, M: int) -> np.ndarray:
    """Which rows `stats.input.fixed_frame` gives no `_reason`: an id not blank (Spark's
    `trim` strips spaces only), L codes in [0, M), L norms finite and ≥ 0, none null."""
    import pyarrow.compute as pc

    n = batch.num_rows
    ok = id_present(batch.column("item_id"))
    for name in ("codes", "residual_norms"):
        col = batch.column(name)
        size = pc.fill_null(pc.list_value_length(col), -1).to_numpy(zero_copy_only=False)
        ok &= size == L
        flat = pc.list_flatten(col)
        parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
        null = (np.asarray(flat.is_null().to_numpy(zero_copy_only=False), bool)
                if flat.null_count else np.zeros(len(flat), bool))
        vals = pc.fill_null(flat, 0).to_numpy(zero_copy_only=False)
        if name == "codes":
            bad = null | (vals < 0) | (vals >= M)
        else:
            with np.errstate(invalid="ignore"):
                bad = null | np.isnan(vals) | (vals < 0) | np.isposinf(vals)
        ok &= ~rows_with(parents, bad, n)
    return ok


def scan_batches(batches: Iterator[pa.RecordBatch], L: int, M: int, id_col: str,
                 hash_ids: bool = True) -> Iterator[pa.RecordBatch]:
    """Raw table rows → the columns of `stats.scan.driver.scan_input`: ok, has_id, h, cb, codes,
    norms (ids hashed with `string_hash`, not Spark's xxhash64: one run uses one hash).
    Without `hash_ids`: ok, codes, norms only (the id column need not be read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for b in batches:
        if not hash_ids:
            yield pa.RecordBatch.from_arrays(
                [pa.array(fixed_valid(b, L, M)), b.column("codes"), b.column("residual_norms")],
                names=["ok", "codes", "norms"])
            continue
        books = pc.dictionary_encode(b.column(id_col))
        book_hash = string_hash(books.dictionary)
        index = books.indices.fill_null(0).to_numpy(zero_copy_only=False)
        missing = np.asarray(books.indices.is_null().to_numpy(zero_copy_only=False), bool)
        cb = (pa.array(book_hash[index], mask=missing)
              if len(book_hash) else pa.nulls(b.num_rows, pa.int64()))
        yield pa.RecordBatch.from_arrays(
            [pa.array(fixed_valid(b, L, M)), b.column("item_id").is_valid(),
             pa.array(string_hash(b.column("item_id"))), cb, b.column("codes"),
             b.column("residual_norms")],
            names=["ok", "has_id", "h", "cb", "codes", "norms"])


def unit_frame(spark: SparkSession, plan: FilePlan) -> DataFrame:
    """The plan's read units as a frame, one partition (a Spark task) per task of the plan."""
    tasks = plan.tasks
    rdd = spark.sparkContext.parallelize(tasks, max(1, len(tasks))).flatMap(lambda t: t)
    return spark.createDataFrame(rdd, UNIT_SCHEMA)


def arrow_schema(df: DataFrame, columns: Iterable[str]) -> pa.Schema:
    """The Arrow schema of `columns` of `df` (those it has), as Spark hands them to Python."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    return to_arrow_schema(StructType([df.schema[c] for c in columns if c in df.columns]))


def file_blocks(spark: SparkSession, plan: FilePlan, schema: pa.Schema, L: int, M: int,
                id_col: str, scan: Callable[[Iterator], Iterator], block_schema: str,
                hash_ids: bool = True) -> DataFrame:
    """`scan` over the rows of the plan's units, one Spark task per task of the plan, in one
    Python call per task (read, validate and reduce without another trip through the JVM)."""
    units = unit_frame(spark, plan)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return scan(scan_batches(read_units(batches, schema), L, M, id_col, hash_ids))

    return units.mapInArrow(run, block_schema)
