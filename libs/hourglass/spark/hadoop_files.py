"""Read small files (configs) through the cluster's Hadoop FileSystem.

A job's `--config s3a://…` must be read with the credentials and filesystem settings the
cluster's jobs use for their tables, which live in the session's Hadoop configuration, not in
the Python process: so the bytes come through the JVM (`FileSystem.open`), never a Python client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MAX_BYTES = 16 * 1024 * 1024  # a config, not a data file: refuse to pull more to the driver


class HadoopReadError(OSError):
    """The file could not be read through the session's Hadoop FileSystem."""


def read_bytes(spark: SparkSession, uri: str) -> bytes:
    """The whole file at `uri`, opened with `Path(uri).getFileSystem(hadoopConf)`."""
    jvm = getattr(spark, "_jvm", None)
    jsc = getattr(spark, "_jsc", None)
    if jvm is None or jsc is None:
        raise HadoopReadError(
            f"cannot read {uri}: this Spark session has no JVM (Spark Connect); copy the file "
            "to a local path (e.g. /dbfs/… or /Volumes/…) or ship it with the job")
    from py4j.protocol import Py4JJavaError

    hadoop_fs = jvm.org.apache.hadoop.fs
    try:
        path = hadoop_fs.Path(uri)
        fs = path.getFileSystem(jsc.hadoopConfiguration())
        size = fs.getFileStatus(path).getLen()
        if size > MAX_BYTES:
            raise HadoopReadError(f"{uri} holds {size} bytes; a config may hold {MAX_BYTES}")
        out = jvm.java.io.ByteArrayOutputStream()
        # copyBytes closes both streams (last argument), also when it fails
        jvm.org.apache.hadoop.io.IOUtils.copyBytes(fs.open(path), out, 65536, True)
        return bytes(out.toByteArray())
    except Py4JJavaError as exc:
        cause = exc.java_exception
        raise HadoopReadError(f"cannot read {uri}: {cause.getClass().getName()}: "
                              f"{cause.getMessage()}") from exc
