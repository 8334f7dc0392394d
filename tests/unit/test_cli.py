"""Jobs as console entry points, and what an installed wheel finds without a checkout: the
DeepSpeed JSONs (package data) and the Delta jars (Maven local repository by default)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from hourglass.cli import JOBS
from hourglass.spark.session import SparkSetupError, delta_jars, maven_delta_jars

ROOT = Path(__file__).resolve().parents[2]


def test_every_job_file_is_a_console_script_of_the_same_function():
    assert set(JOBS) == {p.stem for p in (ROOT / "jobs").glob("*.py")}
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")
               if ep.value.startswith("hourglass.")}
    want = {script: f"hourglass.cli:{name}" for name, job in JOBS.items()
            for script in (job.script, *job.aliases)}
    # besides the jobs: the fine-tune's launcher, which starts sft_train's ranks, the paper
    # study, and the derived search queries of the bundled data
    assert scripts == {**want, "hourglass-sft-launch": "hourglass.train.launchers:main",
                       "hourglass-paper-tables": "hourglass.study.runner:main",
                       "hourglass-derive-queries": "hourglass.search.queries:main"}
    assert JOBS["hourglass_stats"].script == "hourglass-stats"  # not hourglass-hourglass-stats
    for name, job in JOBS.items():
        text = (ROOT / "jobs" / f"{name}.py").read_text()
        assert f"from hourglass.cli import {name}\n" in text and f"    {name}()\n" in text
        assert job.config_class().section() == name  # one config section per stage name


def test_every_command_prints_its_version(tmp_path):
    from hourglass import __version__

    for script in [*(job.script for job in JOBS.values()), "hourglass-sft-launch",
                   "hourglass-paper-tables", "hourglass-derive-queries"]:
        proc = subprocess.run([str(Path(sys.executable).parent / script), "--version"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, (script, proc.stderr[-2000:])
        assert proc.stdout.split() == [script, __version__], (script, proc.stdout)


def test_console_script_refuses_a_bad_key_before_spark_starts(tmp_path):
    """The installed command parses like the job file: exit 2 naming the key, no JVM."""
    script = Path(sys.executable).parent / JOBS["encode_items"].script
    proc = subprocess.run([str(script), "--output_root", str(tmp_path), "--chunk_rowz", "5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "chunk_rowz" in proc.stderr


def test_delta_jars_from_the_maven_local_repository(tmp_path, monkeypatch):
    """Without HOURGLASS_JARS_DIR the jars of the installed delta-spark's version are taken
    from ~/.m2 (where mvn puts them), both or none."""
    from importlib.metadata import version

    monkeypatch.delenv("HOURGLASS_JARS_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    v = version("delta-spark")
    want = maven_delta_jars()
    assert [p.name for p in want] == [f"delta-spark_2.13-{v}.jar", f"delta-storage-{v}.jar"]
    assert want[0].is_relative_to(tmp_path / ".m2" / "repository" / "io" / "delta")
    want[0].parent.mkdir(parents=True)
    want[0].write_bytes(b"jar")
    with pytest.raises(SparkSetupError, match="delta-storage"):
        delta_jars()  # delta-storage missing: refuse rather than fail at the first write
    want[1].parent.mkdir(parents=True)
    want[1].write_bytes(b"jar")
    assert delta_jars() == [str(p) for p in want]
    folder = tmp_path / "jars"
    folder.mkdir()
    monkeypatch.setenv("HOURGLASS_JARS_DIR", str(folder))
    with pytest.raises(SparkSetupError, match=str(folder)):
        delta_jars()  # an explicit folder wins, and must hold the jars
