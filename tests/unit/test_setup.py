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
    for name in ("base", "spark", "track", "train", "dev"):
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
    res = subprocess.run(["make", "--question", "setup-dev"], cwd=ROOT, capture_output=True)
    assert res.returncode == 0, "make setup is not up to date after setup: not idempotent"


def test_pyspark_files_are_pysparks_own():
    """pyspark-client (the Airflow Spark provider's dependency) installs into pyspark/ too: it must
    be pyspark's version, and every pyspark .py file must still hash as pyspark's RECORD says."""
    import base64
    import hashlib
    from importlib.metadata import distribution

    assert version("pyspark-client") == version("pyspark")
    changed, checked = [], 0
    for f in distribution("pyspark").files or []:
        if f.suffix != ".py" or f.hash is None:
            continue
        digest = hashlib.new(f.hash.mode, f.locate().read_bytes()).digest()
        checked += 1
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != f.hash.value:
            changed.append(str(f))
    assert checked > 300
    assert not changed, f"pyspark files overwritten by another distribution: {changed[:5]}"


EXTRAS = ("spark", "embed", "track", "train", "dev")


def _declared() -> dict[str, list]:
    """The installed metadata's Requires-Dist (what pip reads from pyproject's [project]), by
    extra ("" = install_requires)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    out: dict[str, list] = {}
    for line in requires("hourglass") or []:
        req = Requirement(line)
        extra = ""
        if req.marker is not None:
            extra = next(e for e in EXTRAS if req.marker.evaluate({"extra": e}))
        if req.name == "hourglass":  # an extra that includes another: `train` needs `embed`
            assert set(req.extras) <= set(EXTRAS) and not req.specifier, req
            continue
        out.setdefault(extra, []).append(req)
    return out


def _lock() -> dict[str, str]:
    """Exact versions of the lock (requirements/constraints.txt, the full transitive freeze)."""
    from packaging.utils import canonicalize_name

    out = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            pkg, ver = line.split("==")
            out[canonicalize_name(pkg)] = ver
    return out


def test_dependencies_are_ranges_that_admit_the_lock():
    """A library states compatible ranges (a cluster keeps its runtime's numpy/pandas/pyarrow);
    the exact versions live only in the lock, and every range must admit its locked version."""
    from packaging.utils import canonicalize_name

    declared, lock = _declared(), _lock()
    assert set(declared) == {"", *EXTRAS}
    for extra, reqs in declared.items():
        for req in reqs:
            ops = {spec.operator for spec in req.specifier}
            assert ops and not ops & {"==", "==="}, f"{req}: an exact pin or no range at all"
            locked = lock[canonicalize_name(req.name)]
            assert req.specifier.contains(locked, prereleases=True), \
                f"[{extra or 'install_requires'}] {req} does not admit the locked {locked}"


def test_dependency_names_match_the_pinned_requirement_files():
    """Each extra declares exactly the packages its requirements/<name>.txt pins."""
    from packaging.utils import canonicalize_name

    declared = _declared()
    for extra, name in (("", "base"), *((e, e) for e in EXTRAS)):
        got = {canonicalize_name(r.name) for r in declared[extra]}
        assert got == {canonicalize_name(p) for p in _pins(name)}, name
