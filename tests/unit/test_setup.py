"""The setup path itself: pins are consistent, the jar pom matches the Python Delta version,
and after `make setup` a second run has nothing to do (idempotent, no network)."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            pkg, ver = line.split("==")
            out[pkg.lower()] = ver
    return out


def test_installed_versions_match_pins():
    for name in ("base", "spark", "train", "dev"):
        for pkg, ver in _pins(name).items():
            assert version(pkg) == ver, f"{pkg}: installed {version(pkg)}, pinned {ver}"


def test_delta_jar_version_matches_python_package():
    pom = (ROOT / "deploy" / "jars" / "pom.xml").read_text()
    jar_version = re.search(r"<delta.version>([^<]+)</delta.version>", pom).group(1)
    assert jar_version == _pins("spark")["delta-spark"]
    pyspark_minor = ".".join(_pins("spark")["pyspark"].split(".")[:2])
    assert pyspark_minor == "4.0", "delta-spark_2.13 4.0.x is built for Spark 4.0"
    jars = [p.name for p in (ROOT / ".jars").glob("*.jar")]
    assert f"delta-spark_2.13-{jar_version}.jar" in jars
    assert not any(j.startswith("scala-library") for j in jars), "pyspark ships Scala"


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_second_setup_has_nothing_to_do():
    res = subprocess.run(["make", "--question", "setup"], cwd=ROOT, capture_output=True)
    assert res.returncode == 0, "make setup is not up to date after setup: not idempotent"
