"""Configs read through the cluster's Hadoop FileSystem on the shared session: a `file:` URI
forced through the JVM reader gives the file's bytes, and a URI the cluster cannot read is a
config error (exit status 2) naming the URI and Hadoop's reason."""

from __future__ import annotations

import pytest

from hourglass.config import ConfigError, StageConfig, parse_config_text
from hourglass.spark.hadoop_files import HadoopReadError, read_bytes
from hourglass.stages.common import main_for

pytestmark = pytest.mark.spark


def test_file_uri_through_the_jvm_reader(spark, tmp_path):
    f = tmp_path / "cluster config.yaml"
    text = "output_root: s3a://bucket/hourglass/tables\nsteps:\n  - stage: encode_items\n"
    f.write_text(text + "# ünïcode survives the JVM round trip\n", encoding="utf-8")
    data = read_bytes(spark, f"file://{f}")  # Hadoop paths are literal: no %20 for the space
    assert data == f.read_bytes()
    assert parse_config_text(data.decode("utf-8"), f.name)["output_root"] == (
        "s3a://bucket/hourglass/tables")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 1000)  # larger than one copy buffer
    assert read_bytes(spark, f"file:{big}") == big.read_bytes()


def test_missing_file_names_hadoops_reason(spark, tmp_path):
    with pytest.raises(HadoopReadError, match="FileNotFoundException"):
        read_bytes(spark, f"file:{tmp_path}/absent.yaml")


def test_unreadable_uri_is_a_config_error(spark):
    """No S3A filesystem on this classpath: Hadoop itself says so, and the job exits 2."""
    with pytest.raises(ConfigError, match="s3a://no-bucket/c.yaml.*s3a"):
        StageConfig.from_args(["--config", "s3a://no-bucket/c.yaml"])

    def run(spark, cfg):
        raise AssertionError("the stage ran")

    with pytest.raises(SystemExit) as exc:
        main_for(StageConfig, run, "hourglass-test", ["--config", "s3a://no-bucket/c.yaml"])
    assert exc.value.code == 2
