"""Delta table I/O by path or catalog name, with pinned-version reads and lineage on write.

Writes are one Delta commit per output table (`mode=overwrite`, or `replaceWhere` for a slice
such as one stage's quarantine rows), so a re-run on the same inputs replaces contents rather
than appending duplicates. Lineage (job, config hash, input table versions, package version) is
stored as the commit's `userMetadata`, visible in `DESCRIBE HISTORY`. A write returns its
commit: the version and Delta's operation metrics, so jobs reconcile counts from what the commit
recorded (`numOutputRows`) instead of scanning the table they just wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import hourglass
from hourglass.errors import TableNotFoundError
from hourglass.table_refs import is_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")


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
    from delta.tables import DeltaTable

    if is_path(ref):
        return DeltaTable.isDeltaTable(spark, ref)
    return spark.catalog.tableExists(ref)


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
    """Create `ref` from `df`, or replace only the rows of `slice_` (see `slice_predicate`) in
    one commit, so jobs sharing a table (stages in quarantine, runs in the statistics tables,
    strategies in item_sids_rw) each re-run their own rows without touching the others'. The
    commit's `rows` are this slice's rows (None without `read_back`).

    `partition_by` applies when this creates the table; an existing table keeps its own. A
    table partitioned by the slice's columns replaces a slice by dropping its files, where
    otherwise Delta scans and rewrites the files holding the slice's rows."""
    where = slice_predicate(slice_)
    exists = table_exists(df.sparkSession, ref)
    return write_table(df, ref, lineage_record, replace_where=where if exists else None,
                       partition_by=None if exists else partition_by, add_columns=add_columns,
                       read_back=read_back)


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
