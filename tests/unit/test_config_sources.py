"""`--config` from where clusters keep configs: which URIs are read locally (no Spark) and which
through the cluster's Hadoop FileSystem (tests/spark/test_config_hadoop.py reads those for real),
DBFS through its FUSE mount, and unreadable files as config errors (exit status 2)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import hourglass.config
from hourglass.config import ConfigError, JobConfig, StageConfig, config_source
from hourglass.stages.common import main_for


@dataclasses.dataclass
class PathsConfig(JobConfig):
    path: str = ""
    k: int = 1


@pytest.mark.parametrize(("uri", "kind", "where"), [
    ("configs/demo.yaml", "local", "configs/demo.yaml"),
    ("/etc/hourglass/c.yaml", "local", "/etc/hourglass/c.yaml"),
    ("file:/etc/hourglass/c.yaml", "local", "/etc/hourglass/c.yaml"),
    ("file:///etc/hourglass/my%20c.yaml", "local", "/etc/hourglass/my c.yaml"),
    ("file://localhost/etc/c.yaml", "local", "/etc/c.yaml"),
    ("C:\\conf\\c.yaml", "local", "C:\\conf\\c.yaml"),
    ("s3a://bucket/hourglass/cluster.yaml", "hadoop", "s3a://bucket/hourglass/cluster.yaml"),
    ("abfss://c@acct.dfs.core.windows.net/c.yaml", "hadoop",
     "abfss://c@acct.dfs.core.windows.net/c.yaml"),
    ("hdfs://namenode:8020/conf/c.yaml", "hadoop", "hdfs://namenode:8020/conf/c.yaml"),
    ("gs://bucket/c.json", "hadoop", "gs://bucket/c.json"),
    ("file://otherhost/c.yaml", "hadoop", "file://otherhost/c.yaml"),
])
def test_scheme_dispatch(uri, kind, where, tmp_path):
    assert config_source(uri, dbfs_fuse=tmp_path / "no-mount") == (kind, where)


def test_dbfs_reads_the_fuse_mount_when_present(tmp_path, monkeypatch):
    assert config_source("dbfs:/c.yaml", tmp_path / "absent") == ("hadoop", "dbfs:/c.yaml")
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text("path: /from/dbfs\nk: 3\n")
    assert config_source("dbfs:/configs/c.yaml", tmp_path) == (
        "local", str(tmp_path / "configs" / "c.yaml"))
    monkeypatch.setattr(hourglass.config, "DBFS_FUSE", tmp_path)
    cfg = PathsConfig.from_args(["--config", "dbfs:/configs/c.yaml"])
    assert (cfg.path, cfg.k) == ("/from/dbfs", 3)


def test_file_uri_is_read_like_a_path(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"path": "/x", "k": 4}')
    assert PathsConfig.from_args(["--config", f"file://{f}"]).k == 4
    assert PathsConfig.from_args(["--config", f"file:{f}"]).k == 4


@pytest.mark.parametrize(("text", "name", "needle"), [
    (None, "missing.yaml", "not found"),
    ("path: [unclosed", "bad.yaml", "does not parse"),
    ("{not json", "bad.json", "does not parse"),
    ("- a\n- b\n", "list.yaml", "must hold a mapping"),
])
def test_unreadable_configs_are_config_errors(tmp_path, text, name, needle):
    f = tmp_path / name
    if text is not None:
        f.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        PathsConfig.from_args(["--config", str(f)])


def test_job_exits_2_on_a_missing_config_before_any_work(tmp_path, capsys):
    def run(spark, cfg):  # never reached: the config fails first
        raise AssertionError("the stage ran")

    with pytest.raises(SystemExit) as exc:
        main_for(StageConfig, run, "hourglass-test", ["--config", str(tmp_path / "no.yaml")])
    assert exc.value.code == 2
    assert "config error" in capsys.readouterr().err


def test_local_configs_never_start_spark(tmp_path):
    """A local or file: config is read without importing pyspark (so without a JVM)."""
    f = tmp_path / "c.yaml"
    f.write_text("output_root: /tables\n")
    code = ("import sys; from hourglass.config import StageConfig; "
            f"cfg = StageConfig.from_args(['--config', 'file:{f}']); "
            "assert cfg.output_root == '/tables', cfg; "
            "assert not [m for m in sys.modules if m.startswith('pyspark')], 'pyspark imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
