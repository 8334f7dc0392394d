"""Delta table I/O by path or catalog name, with pinned-version reads and lineage on write.

Writes are one Delta commit per output table (`mode=overwrite`, or `replaceWhere` for a slice
such as one stage's quarantine rows), so a re-run on the same inputs replaces contents rather
than appending duplicates. Lineage (job, config hash, input table versions, package version) is
stored as the commit's `userMetadata`, visible in `DESCRIBE HISTORY`. A write returns its
commit: the version and Delta's operation metrics, so jobs reconcile counts from what the commit
recorded (`numOutputRows`) instead of scanning the table they just wrote.

Tables that several jobs write side by side (quarantine, item_sids_rw, sft_examples, the
statistics and evaluation tables; a scheduler runs `hourglass_stats` and `build_sft_data` as
parallel branches) take slice writes only: the table is created empty first, partitioned by the
slice's columns, so concurrent writers of different slices touch disjoint partitions, which
Delta's conflict detection sees as independent; a commit that still conflicts (two creators at
once, a writer of the same slice, a schema change) is retried a bounded number of times. A retry
replaces the same slice again, so it never duplicates rows.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import hourglass
from hourglass.errors import CommitConflictError, TableNotFoundError
from hourglass.logs import log
from hourglass.table_refs import is_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")

# How many times a slice write that lost a commit race is retried (a Spark conf, so a job's
# --conf or a cluster's settings can change it), and the backoff before each retry.
COMMIT_RETRIES_CONF = "spark.hourglass.commitRetries"
DEFAULT_COMMIT_RETRIES = 8
RETRY_BASE_S, RETRY_CAP_S = 0.5, 15.0
# Delta's commit conflicts by their error classes (the Python classes differ between classic
# PySpark and Spark Connect; the error classes do not).
_CONFLICT_CLASSES = ("DELTA_CONCURRENT_", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")
_CONFLICT_NAMES = ("ConcurrentAppendException", "ConcurrentDeleteReadException",
                   "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
                   "ConcurrentWriteException", "MetadataChangedException",
                   "ProtocolChangedException", "DeltaConcurrentModificationException")


@dataclass(frozen=True)
class TableRead:
    """A DataFrame read at a pinned Delta version, and that version for lineage."""

    df: DataFrame
    ref: str
    version: int


@dataclass(frozen=True)
class Commit:
    """One Delta commit made by `write_table`: its version and its operation metrics."""

    version: int
    metrics: dict[str, str]

    @property
    def rows(self) -> int:
        """Rows the commit wrote from its DataFrame, counted by the write tasks themselves.

        Delta's `numOutputRows` also counts rows it copied out of files it rewrote around a
        `replaceWhere` slice (`numCopiedRows`), so those are taken off; an empty write records
        no `numOutputRows`, only `numFiles` 0."""
        m = self.metrics
        if "numOutputRows" in m:
            return int(m["numOutputRows"]) - int(m.get("numCopiedRows", 0))
        if m.get("numFiles") == "0":
            return 0
        raise RuntimeError(
            f"Delta commit {self.version} recorded no row count: operation metrics are off "
            "(spark.databricks.delta.history.metricsEnabled=false); turn them back on")


def table_exists(spark: SparkSession, ref: str) -> bool:
    """Whether the Delta table exists now, also when another process has just created it."""
    from delta.tables import DeltaTable
    from pyspark.errors import AnalysisException

    if not is_path(ref):
        return spark.catalog.tableExists(ref)
    if DeltaTable.isDeltaTable(spark, ref):
        return True
    # isDeltaTable answers from this JVM's cached snapshot, which a table another process has
    # created since does not refresh; forPath reads the log anew.
    try:
        DeltaTable.forPath(spark, ref)
    except AnalysisException:
        return False
    return True


def _delta_table(spark: SparkSession, ref: str):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)


def latest_version(spark: SparkSession, ref: str) -> int:
    return int(_delta_table(spark, ref).history(1).collect()[0]["version"])


def read_table(spark: SparkSession, ref: str, version: int | None = None) -> TableRead:
    """Read a Delta table pinned to one version, so lineage names exactly what was read."""
    if not table_exists(spark, ref):
        raise TableNotFoundError.of(ref)
    v = latest_version(spark, ref) if version is None else version
    if is_path(ref):
        df = spark.read.format("delta").option("versionAsOf", v).load(ref)
    else:
        df = spark.read.option("versionAsOf", v).table(ref)
    return TableRead(df=df, ref=ref, version=v)


def lineage(job: str, config_hash: str, inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The lineage record stored with every commit a job makes."""
    return {
        "job": job,
        "config_hash": config_hash,
        "inputs": inputs,
        "hourglass_version": hourglass.__version__,
        **extra,
    }


def write_table(
    df: DataFrame,
    ref: str,
    lineage_record: dict[str, Any],
    replace_where: str | None = None,
    partition_by: list[str] | None = None,
    add_columns: bool = False,
    read_back: bool = True,
) -> Commit | None:
    """Overwrite `ref` (or the `replace_where` slice of it) in one commit; return that commit
    (None without `read_back`: a caller that needs neither its version nor its row count saves
    reading the table's history).

    `add_columns`: a slice written with columns the table lacks adds them (Delta's
    mergeSchema; older rows read null), for tables whose contract gained columns."""
    metadata = json.dumps(lineage_record, sort_keys=True, default=str)
    writer = df.write.format("delta").mode("overwrite").option("userMetadata", metadata)
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
        if add_columns:
            writer = writer.option("mergeSchema", "true")
    else:
        writer = writer.option("overwriteSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if is_path(ref):
        writer.save(ref)
    else:
        writer.saveAsTable(ref)
    return _commit_with(df.sparkSession, ref, metadata) if read_back else None


def _commit_with(spark: SparkSession, ref: str, metadata: str) -> Commit:
    """The newest commit carrying `metadata`: the latest one, unless another writer has
    committed to the table since (then the recent history is searched).

    A write that adds and removes no file (an empty slice where there was none) records no
    commit at all (Delta's `skipRecordingEmptyCommits`): then the table's latest version is
    returned with no files written. Were a busy table to push a real commit of ours out of the
    searched history, its rows would read 0 and the job's reconciliation would refuse them.
    """
    for depth in (1, 20):
        rows = (_delta_table(spark, ref).history(depth)
                .select("version", "userMetadata", "operationMetrics").collect())
        for row in rows:
            if row["userMetadata"] == metadata:
                return Commit(int(row["version"]), dict(row["operationMetrics"] or {}))
    return Commit(int(rows[0]["version"]), {"numFiles": "0"})


def slice_predicate(slice_: Mapping[str, str | Sequence[str]]) -> str:
    """The SQL predicate of a table slice: `col = 'v'` per column, `col IN ('a', 'b')` for a list.

    The one quoting rule for every `replaceWhere`: values are quoted as SQL strings and a value
    holding a quote or a backslash is refused (no escaping to get wrong), as is an empty list.
    """
    if not slice_:
        raise ValueError("a table slice needs at least one column")
    terms = []
    for column, value in slice_.items():
        values = [value] if isinstance(value, str) else list(value)
        bad = [v for v in values if not isinstance(v, str) or "'" in v or "\\" in v]
        if bad or not values:
            raise ValueError(f"unsafe or empty value(s) for {column}: {values!r}")
        quoted = ", ".join(f"'{v}'" for v in values)
        one = isinstance(value, str)
        terms.append(f"{column} = {quoted}" if one else f"{column} IN ({quoted})")
    return " AND ".join(terms)


def write_slice(
    df: DataFrame,
    ref: str,
    lineage_record: dict[str, Any],
    slice_: Mapping[str, str | Sequence[str]],
    partition_by: list[str] | None = None,
    add_columns: bool = False,
    read_back: bool = True,
) -> Commit | None:
    """Replace only the rows of `slice_` (see `slice_predicate`) in one commit, so jobs sharing
    a table (stages in quarantine, runs in the statistics tables, strategies in item_sids_rw)
    each re-run their own rows without touching the others', also at the same moment. The
    commit's `rows` are this slice's rows (None without `read_back`).

    A missing table is first created empty with `df`'s schema, partitioned by `partition_by`
    (default: the slice's columns); an existing table keeps its own partitioning. A table
    partitioned by the slice's columns replaces a slice by dropping its files, and writers of
    different slices never conflict. A commit that loses a race anyway is retried
    (`retry_commit_conflicts`)."""
    where = slice_predicate(slice_)
    spark = df.sparkSession

    def attempt() -> Commit | None:
        if not table_exists(spark, ref):
            create_table(spark, ref, df.schema, partition_by or list(slice_))
        return write_table(df, ref, lineage_record, replace_where=where,
                           add_columns=add_columns, read_back=read_back)

    return retry_commit_conflicts(spark, ref, attempt)


def create_table(spark: SparkSession, ref: str, schema: Any, partition_by: Sequence[str],
                 settle_s: float = 10.0) -> None:
    """Create an empty Delta table unless it exists.

    Of several jobs creating it at once one commits the table; the others fail with a commit
    conflict (retried by `write_slice`) or, while the winner's first commit is being written,
    find a folder that is not a table yet: they wait up to `settle_s` for it to become one."""
    from delta.tables import DeltaTable

    builder = DeltaTable.createIfNotExists(spark)
    builder = builder.location(ref) if is_path(ref) else builder.tableName(ref)
    try:
        builder.addColumns(schema).partitionedBy(*partition_by).execute()
    except Exception as exc:
        if is_commit_conflict(exc):
            raise
        deadline = time.monotonic() + settle_s
        while not table_exists(spark, ref):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        log.info("%s was created by a concurrent job", ref)


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether `exc` is Delta refusing a commit because another one landed first."""
    import delta.exceptions  # noqa: F401  (installs the conversion of Delta's Java exceptions)

    get_class = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    error_class = (get_class() if callable(get_class) else None) or ""
    if error_class.startswith(_CONFLICT_CLASSES):
        return True
    names = {t.__name__ for t in type(exc).__mro__}
    java = getattr(exc, "java_exception", None)  # a Py4JJavaError: calls Delta's own builders
    if java is not None:  # make (DeltaTableBuilder.execute) raise unconverted
        names.add(str(java.getClass().getSimpleName()))
    return bool(names.intersection(_CONFLICT_NAMES))


def retry_commit_conflicts(spark: SparkSession, ref: str, attempt: Callable[[], T]) -> T:
    """Run `attempt` (one idempotent commit to `ref`), again after a commit conflict, at most
    `spark.hourglass.commitRetries` more times with jittered exponential backoff; then raise
    `CommitConflictError` naming the table. Any other failure is raised at once."""
    retries = int(spark.conf.get(COMMIT_RETRIES_CONF, str(DEFAULT_COMMIT_RETRIES)) or 0)
    done = 0
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not is_commit_conflict(exc):
                raise
            if done >= retries:
                raise CommitConflictError(
                    f"commit to {ref} kept conflicting with concurrent writers "
                    f"({type(exc).__name__}) after {retries} retries; nothing of it landed, "
                    f"re-run the task or raise {COMMIT_RETRIES_CONF}") from exc
            wait = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** done) * random.uniform(0.5, 1.5)
            done += 1
            log.warning("commit to %s conflicted with a concurrent writer (%s); retry %d of %d "
                        "in %.1f s", ref, type(exc).__name__, done, retries, wait)
            time.sleep(wait)


def commit_lineage(spark: SparkSession, ref: str, version: int | None = None) -> dict[str, Any]:
    """The lineage record of one commit (the latest by default)."""
    hist = _delta_table(spark, ref).history()
    wanted = version if version is not None else latest_version(spark, ref)
    rows = hist.where(hist.version == wanted)
    meta = rows.select("userMetadata").collect()[0][0]
    return json.loads(meta) if meta else {}


def run_concurrently(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run independent Spark actions, such as commits to different tables, each from its own
    thread (inheriting this thread's job group and description); their driver-side waits and
    small jobs overlap. Every call finishes before the first failure is raised."""
    from pyspark import InheritableThread

    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def target(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as e:  # re-raised below, in the caller's thread
            errors[i] = e

    threads = [InheritableThread(target=target, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results
