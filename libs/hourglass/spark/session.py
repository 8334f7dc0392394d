"""One Spark session factory for laptops, CI, spark-submit and Databricks.

Locally it builds `local[*]` with the Delta extension and catalog and local Delta jars
($HOURGLASS_JARS_DIR, else the Maven local repository; never `spark.jars.packages`: a session
start must not touch the network). Under spark-submit or on Databricks it takes the session the
cluster provides.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


# Storage level of the frames as large as the catalog that a job reads more than once.
CATALOG_CACHE_LEVEL = "spark.hourglass.catalogCacheLevel"


class SparkSetupError(RuntimeError):
    """The local Spark runtime is incomplete (e.g. Delta jars not fetched)."""


def on_cluster() -> bool:
    """True under spark-submit (a JVM already launched us) or on Databricks."""
    env = os.environ
    return bool(env.get("PYSPARK_GATEWAY_PORT") or env.get("DATABRICKS_RUNTIME_VERSION"))


def persist_catalog(df: DataFrame) -> DataFrame:
    """Persist a frame with a row per item (or per SID) at the level `CATALOG_CACHE_LEVEL` names.

    DISK_ONLY unless the session says otherwise: with MEMORY_AND_DISK the block store may fill
    the whole unified region (60% of the heap), and a local session's JVM, which is driver and
    executor at once, then needs more than the rest; hourglass_stats died so (Java heap space, 4
    GB) filling its cache of 10^8 rows. Blocks on local disk come back through the page cache.
    Executors with memory to spare can set MEMORY_AND_DISK.
    """
    from pyspark import StorageLevel

    from hourglass.errors import ConfigError

    name = df.sparkSession.conf.get(CATALOG_CACHE_LEVEL, "DISK_ONLY") or "DISK_ONLY"
    level = getattr(StorageLevel, name.strip().upper(), None)
    if not isinstance(level, StorageLevel) or level == StorageLevel.NONE:
        raise ConfigError(f"Spark conf '{CATALOG_CACHE_LEVEL}': '{name}' is not a storage level "
                          "(e.g. DISK_ONLY, MEMORY_AND_DISK)")
    return df.persist(level)


@contextmanager
def scoped_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a session conf for the plans made inside the block, then restore it."""
    old = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if old is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, old)


def maven_delta_jars(delta_version: str | None = None, repo: Path | None = None) -> list[Path]:
    """The delta-spark_2.13 and delta-storage jars of one version in a Maven local repository.

    The version is that of the installed `delta-spark` Python package (the jars must match it);
    the repository is `~/.m2/repository`, where `mvn` (as `make setup` runs it) puts them.
    """
    from importlib.metadata import version

    v = delta_version or version("delta-spark")
    base = (repo or Path.home() / ".m2" / "repository") / "io" / "delta"
    return [base / "delta-spark_2.13" / v / f"delta-spark_2.13-{v}.jar",
            base / "delta-storage" / v / f"delta-storage-{v}.jar"]


def delta_jars(jars_dir: str | None = None) -> list[str]:
    """Local Delta jars, never fetched: `jars_dir`, else $HOURGLASS_JARS_DIR, else the Maven
    local repository (`maven_delta_jars`), so an installed wheel needs no checkout."""
    folder = jars_dir or os.environ.get("HOURGLASS_JARS_DIR")
    if folder:
        jars = sorted(str(p) for p in Path(folder).glob("*.jar"))
        where = f"in {folder}"
    else:
        found = maven_delta_jars()
        jars = [str(p) for p in found if p.is_file()]
        where = f"at {', '.join(map(str, found))}"
        jars = jars if len(jars) == len(found) else []
    if not any("delta-spark" in Path(j).name for j in jars):
        raise SparkSetupError(
            f"no Delta jars {where}: run `make setup` (it fetches them with mvn), or set "
            "HOURGLASS_JARS_DIR to a folder holding the delta-spark_2.13 and delta-storage jars"
        )
    return jars


def get_spark(
    app_name: str = "hourglass",
    master: str | None = None,
    conf: dict[str, str] | None = None,
    testing: bool = False,
) -> SparkSession:
    """Return the active/cluster session, or build a local one with Delta.

    `testing` turns the UI off and uses few shuffle partitions, which keeps small tests fast.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(app_name)
    if on_cluster() and master is None:
        for key, value in (conf or {}).items():
            builder = builder.config(key, value)
        return builder.getOrCreate()
    settings = {
        "spark.jars": ",".join(delta_jars()),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.memory": os.environ.get("HOURGLASS_DRIVER_MEMORY", "4g"),
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        # Local workers must run this interpreter (the venv with hourglass installed).
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
    }
    resolved_master = master or os.environ.get("HOURGLASS_SPARK_MASTER", "local[*]")
    if resolved_master.startswith("local"):
        # Nothing outside this machine talks to a local session: listen on loopback only (the
        # default would pick the first non-loopback interface when the hostname is loopback).
        settings.update({"spark.driver.host": "127.0.0.1",
                         "spark.driver.bindAddress": "127.0.0.1"})
    if testing:
        settings.update({"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
    settings.update(conf or {})
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = builder.master(resolved_master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("HOURGLASS_SPARK_LOG_LEVEL", "WARN"))
    return spark
