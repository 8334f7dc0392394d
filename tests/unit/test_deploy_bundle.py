"""The Databricks Asset Bundle (deploy/databricks.yml + resources/*.job.yml) is consistent.

What a `databricks bundle validate` would catch offline, and what it would not: every referenced
file exists, every `${var.*}` is declared, every task's parameters parse into the job's typed
config, the pipeline job's graph mirrors the Airflow DAG, pins match requirements/, and each job
resolved for each target is accepted by the typed Jobs model of Databricks' own `databricks-bundles`
package (strict on field names and types).
"""

from __future__ import annotations

import ast
import copy
import glob
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TARGETS = ("dev", "staging", "prod")
REF = re.compile(r"\$\{([a-z_]+(?:\.[A-Za-z_]+)+)\}")
# `${workspace.file_path}` is where the bundle syncs the repository root; locally that is ROOT.
BUILTINS = {"workspace.file_path": str(ROOT), "bundle.name": "hourglass"}


def load_bundle() -> tuple[dict, dict[Path, dict]]:
    bundle = yaml.safe_load((DEPLOY / "databricks.yml").read_text())
    files = {}
    for pattern in bundle["include"]:
        for name in sorted(glob.glob(str(DEPLOY / pattern))):
            files[Path(name)] = yaml.safe_load(Path(name).read_text())
    return bundle, files


BUNDLE, RESOURCE_FILES = load_bundle()
JOBS = {name: (path, job) for path, doc in RESOURCE_FILES.items()
        for name, job in doc["resources"]["jobs"].items()}


def variables_for(target: str) -> dict:
    values = {k: copy.deepcopy(v.get("default")) for k, v in BUNDLE["variables"].items()}
    values.update(copy.deepcopy(BUNDLE["targets"][target].get("variables") or {}))
    return values


def resolve(obj, target: str):
    """Substitute variables and built-ins the way the CLI does (whole-string refs keep type)."""
    known = {**BUILTINS, "bundle.target": target,
             **{f"var.{k}": v for k, v in variables_for(target).items()}}

    def sub(value):
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v) for v in value]
        if not isinstance(value, str):
            return value
        for _ in range(5):  # variables may refer to built-ins
            whole = REF.fullmatch(value)
            if whole:
                value = copy.deepcopy(known[whole.group(1)])
                if not isinstance(value, str):
                    return sub(value)
                continue
            new = REF.sub(lambda m: str(known[m.group(1)]), value)
            if new == value:
                break
            value = new
        return value.replace("{{job.run_id}}", "987654321")  # a dynamic value reference

    return sub(obj)


def python_task_files() -> list[tuple[str, Path]]:
    return [(f"{name}.{task['task_key']}",
             (path.parent / task["spark_python_task"]["python_file"]).resolve())
            for name, (path, job) in JOBS.items() for task in job["tasks"]]


def config_parser(job_file: Path):
    """The function that turns a job file's argv into its typed config: the job's entry in
    `hourglass.cli.JOBS`, which the job file must call."""
    from hourglass.cli import JOBS

    job = JOBS[job_file.stem]
    assert f"from hourglass.cli import {job.name}\n" in job_file.read_text(), job_file
    return job.parse


def dag_upstream() -> dict[str, tuple[str, ...]]:
    tree = ast.parse((DEPLOY / "airflow" / "hourglass_dag.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "UPSTREAM":
            return ast.literal_eval(node.value)
    raise AssertionError("UPSTREAM not found in the DAG file")


def test_targets_dev_staging_prod():
    targets = BUNDLE["targets"]
    assert set(targets) == set(TARGETS)
    assert [t for t, spec in targets.items() if spec.get("default")] == ["dev"]
    assert targets["dev"]["mode"] == "development"
    assert targets["staging"]["mode"] == targets["prod"]["mode"] == "production"


def test_wheel_artifact_and_libraries_point_at_the_project():
    (artifact,) = BUNDLE["artifacts"].values()
    project = (DEPLOY / artifact["path"]).resolve()
    assert artifact["type"] == "whl" and (project / "setup.py").is_file()
    assert "wheel" in artifact["build"] and "--wheel-dir dist" in artifact["build"]
    for name, (path, job) in JOBS.items():
        for task in job["tasks"]:
            wheels = [lib["whl"] for lib in task.get("libraries", []) if "whl" in lib]
            assert wheels, f"{name}.{task['task_key']} does not install the project wheel"
            for whl in wheels:
                assert (path.parent / whl).resolve().parent == project / "dist"


def test_includes_and_sync_paths_exist():
    assert RESOURCE_FILES, "include matched no resource file"
    for p in BUNDLE["sync"]["paths"]:
        assert (DEPLOY / p).resolve() == ROOT


def test_every_referenced_variable_is_declared_and_every_declared_one_used():
    texts = [(DEPLOY / "databricks.yml").read_text()] + [p.read_text() for p in RESOURCE_FILES]
    used = {m.split(".", 1)[1] for t in texts for m in REF.findall(t) if m.startswith("var.")}
    assert used <= set(BUNDLE["variables"]), used - set(BUNDLE["variables"])
    assert set(BUNDLE["variables"]) <= used, set(BUNDLE["variables"]) - used
    for target in TARGETS:
        for name in BUNDLE["targets"][target].get("variables") or {}:
            assert name in BUNDLE["variables"], f"target {target} sets undeclared {name}"


def test_every_python_file_exists_and_is_a_job_entry():
    for task, path in python_task_files():
        assert path.is_file(), f"task {task}: {path} does not exist"
        assert path.parent == ROOT / "jobs"
        assert 'if __name__ == "__main__":' in path.read_text(), f"{path} is not runnable"


def test_one_stage_job_per_job_file():
    stage_jobs = {n.removeprefix("hourglass_") for n in JOBS if n != "hourglass_pipeline"}
    job_files = {p.stem for p in (ROOT / "jobs").glob("*.py")} - {"pipeline"}
    assert stage_jobs == job_files
    for stage in stage_jobs:
        path, job = JOBS[f"hourglass_{stage}"]
        assert path.name == f"{stage}.job.yml"
        (task,) = job["tasks"]
        assert Path(task["spark_python_task"]["python_file"]).name == f"{stage}.py"


@pytest.mark.parametrize("target", TARGETS)
def test_task_parameters_parse_into_each_jobs_typed_config(target):
    """Exactly the argv Databricks passes; the pipeline tasks read the pipeline config file."""
    from hourglass.config import ConfigError

    expected_root = resolve("${var.output_root}", target)
    for name, (path, job) in JOBS.items():
        for task in resolve(job, target)["tasks"]:
            params = task["spark_python_task"]["parameters"]
            job_file = (path.parent / task["spark_python_task"]["python_file"]).resolve()
            try:
                cfg = config_parser(job_file)(params)
            except ConfigError as exc:
                raise AssertionError(f"{target} {name}.{task['task_key']}: {exc}") from exc
            assert cfg.output_root == expected_root


def test_pipeline_graph_mirrors_the_dag_and_runs_each_stage_once():
    _, job = JOBS["hourglass_pipeline"]
    graph = {t["task_key"]: tuple(d["task_key"] for d in t.get("depends_on", []))
             for t in job["tasks"]}
    assert {k: set(v) for k, v in graph.items()} == {k: set(v) for k, v in dag_upstream().items()}
    done: set[str] = set()
    while len(done) < len(graph):  # a topological walk; a cycle would stall it
        ready = {k for k, ups in graph.items() if k not in done and set(ups) <= done}
        assert ready, f"dependency cycle among {set(graph) - done}"
        done |= ready
    for task in job["tasks"]:
        params = task["spark_python_task"]["parameters"]
        entry = Path(task["spark_python_task"]["python_file"]).stem
        if entry == "pipeline":
            assert params[params.index("--only") + 1] == task["task_key"]
        else:
            assert entry == task["task_key"]


def test_pipeline_job_covers_the_stages_of_the_demo_config():
    """`--only <stage>` tasks must name stages of the config, and every stage of the config (but
    the separate ablation) must be some task; the production strategy must be rewritten there."""
    from hourglass.rewrite.strategies import parse_strategy

    steps = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())["steps"]
    stages = {s["stage"] for s in steps}
    _, job = JOBS["hourglass_pipeline"]
    only = {t["task_key"] for t in job["tasks"]
            if t["spark_python_task"]["python_file"].endswith("/pipeline.py")}
    assert only <= stages
    assert stages - {"ablation"} <= {t["task_key"] for t in job["tasks"]}
    rewritten = {parse_strategy(x).name for s in steps if s["stage"] == "rewrite_sids"
                 for x in s["strategies"]}
    assert parse_strategy(BUNDLE["variables"]["strategy"]["default"]).name in rewritten


def test_fine_tune_on_a_gpu_cluster_and_spark_stages_on_cpu():
    for target in TARGETS:
        for name, (_, job) in JOBS.items():
            job = resolve(job, target)
            clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
            for task in job["tasks"]:
                version = clusters[task["job_cluster_key"]]["spark_version"]
                gpu = task["task_key"] in ("sft_train", "evaluate", "ablation")
                assert ("gpu" in version) == gpu, f"{target} {name}.{task['task_key']}: {version}"


def test_pypi_pins_match_requirements():
    pins = {}
    for req in (ROOT / "requirements").glob("*.txt"):
        for line in req.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                pins[line.split("==")[0].lower()] = line
    for name, (_, job) in JOBS.items():
        for task in job["tasks"]:
            for lib in task.get("libraries", []):
                if "pypi" in lib:
                    spec = lib["pypi"]["package"]
                    assert pins.get(spec.split("==")[0].lower()) == spec, f"{name}: {spec}"


@pytest.mark.parametrize("target", TARGETS)
def test_jobs_accepted_by_databricks_typed_model(target):
    jobs_model = pytest.importorskip("databricks.bundles.jobs")
    for name, (_, job) in JOBS.items():
        resolved = resolve(job, target)
        assert "${" not in str(resolved), f"{name}: unresolved reference"
        jobs_model.Job.from_dict(resolved)  # raises on unknown fields or wrong types
    broken = resolve(JOBS["hourglass_ingest"][1], target)
    broken["tasks"][0]["spark_python_task"]["paramters"] = []
    with pytest.raises(ValueError, match="paramters"):
        jobs_model.Job.from_dict(broken)
