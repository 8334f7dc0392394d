"""The Databricks Asset Bundle (deploy/databricks.yml + resources/*.job.yml) is consistent.

What a `databricks bundle validate` would catch offline, and what it would not: every task runs a
console entry point of the wheel (`python_wheel_task`), every `${var.*}` is declared, every
task's parameters parse into the job's typed config, the pipeline job's graph mirrors the Airflow
DAG, pins match requirements/, prod runs as a service principal that alone is granted write on
the schema and volume the bundle creates, the tables go to that volume, and each job, schema and
volume resolved for each target is accepted by the typed models of Databricks' own
`databricks-bundles` package (strict on field names and types).
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
JOB_PARAM = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")
RUN_DATE = "2026-12-07"
# `${workspace.file_path}` is where the bundle syncs the repository root; locally that is ROOT.
USER = "someone@example.com"
BUILTINS = {"workspace.file_path": str(ROOT), "bundle.name": "hourglass",
            "workspace.current_user.userName": USER,
            "workspace.current_user.short_name": "someone"}


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


def lookup_value(value):
    """A `lookup:` variable resolves at deploy time to an ID; here a recognisable stand-in."""
    if isinstance(value, dict) and set(value) == {"lookup"}:
        ((kind, name),) = value["lookup"].items()
        return f"<{kind} {name}>"
    return value


def variables_for(target: str) -> dict:
    values = {k: copy.deepcopy(v.get("default")) for k, v in BUNDLE["variables"].items()}
    values.update(copy.deepcopy(BUNDLE["targets"][target].get("variables") or {}))
    return {k: lookup_value(v) for k, v in values.items()}


def resource_field(target: str, ref: str):
    """`resources.<kind>.<key>.<field>` as deployed: development mode prefixes schema and
    registered model names with `dev_<short name>_` and an experiment path's last part with
    `[dev <short name>] ` (volumes keep theirs; they live in the prefixed schema)."""
    _, kind, key, field = ref.split(".")
    value = resolve(BUNDLE["resources"][kind][key][field], target)
    development = BUNDLE["targets"][target].get("mode") == "development"
    short = BUILTINS["workspace.current_user.short_name"]
    if development and field == "name" and kind in ("schemas", "registered_models"):
        value = f"dev_{short}_{value}"
    if development and (kind, field) == ("experiments", "name"):  # the path's last part
        head, _, base = value.rpartition("/")
        value = f"{head}/[dev {short}] {base}"
    return value


def resolve(obj, target: str):
    """Substitute variables and built-ins the way the CLI does (whole-string refs keep type)."""
    known = {**BUILTINS, "bundle.target": target,
             **{f"var.{k}": v for k, v in variables_for(target).items()}}

    def lookup(name: str):
        return resource_field(target, name) if name.startswith("resources.") else known[name]

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
                value = copy.deepcopy(lookup(whole.group(1)))
                if not isinstance(value, str):
                    return sub(value)
                continue
            new = REF.sub(lambda m: str(lookup(m.group(1))), value)
            if new == value:
                break
            value = new
        # dynamic value references, resolved by Databricks at run time
        return value.replace("{{job.run_id}}", "987654321").replace(
            "{{job.start_time.iso_date}}", RUN_DATE)

    resolved = sub(obj)
    if isinstance(resolved, dict) and "tasks" in resolved:  # a job: its parameters' defaults
        given = {p["name"]: p["default"] for p in resolved.get("parameters", [])}
        resolved = _sub_job_parameters(resolved, given)
    return resolved


def _sub_job_parameters(obj, given: dict[str, str]):
    """`{{job.parameters.<name>}}` → the job parameter's value for this run."""
    if isinstance(obj, dict):
        return {k: _sub_job_parameters(v, given) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_sub_job_parameters(v, given) for v in obj]
    if isinstance(obj, str):
        return JOB_PARAM.sub(lambda m: given[m.group(1)], obj)
    return obj


def task_job(task: dict) -> str:
    """The job a task runs: its `python_wheel_task` entry point is a console command of the
    wheel, `hourglass-<stage>` (hourglass.cli)."""
    from hourglass.cli import JOBS as CLI_JOBS

    by_script = {job.script: name for name, job in CLI_JOBS.items()}
    return by_script[task["python_wheel_task"]["entry_point"]]


def task_parser(task: dict):
    from hourglass.cli import JOBS as CLI_JOBS

    return CLI_JOBS[task_job(task)].parse


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


def test_every_task_runs_a_console_command_of_the_wheel():
    """No task runs a file of the repository: each names an entry point the installed wheel
    declares (the dev install's metadata is built from the same pyproject.toml)."""
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    for name, (_, job) in JOBS.items():
        for task in job["tasks"]:
            where = f"{name}.{task['task_key']}"
            assert "spark_python_task" not in task, where
            wheel = task["python_wheel_task"]
            assert wheel["package_name"] == "hourglass", where
            assert scripts[wheel["entry_point"]] == f"hourglass.cli:{task_job(task)}", where


def test_one_stage_job_per_job_file():
    stage_jobs = {n.removeprefix("hourglass_") for n in JOBS if n != "hourglass_pipeline"}
    job_files = {p.stem for p in (ROOT / "jobs").glob("*.py")} - {"pipeline"}
    assert stage_jobs == job_files
    for stage in stage_jobs:
        path, job = JOBS[f"hourglass_{stage}"]
        assert path.name == f"{stage}.job.yml"
        (task,) = job["tasks"]
        assert task_job(task) == stage


@pytest.mark.parametrize("target", TARGETS)
def test_task_parameters_parse_into_each_jobs_typed_config(target):
    """Exactly the argv Databricks passes; the pipeline tasks read the pipeline config file."""
    from hourglass.config import ConfigError

    expected_root = resolve("${var.output_root}", target)
    for name, (_, job) in JOBS.items():
        for task in resolve(job, target)["tasks"]:
            params = task["python_wheel_task"]["parameters"]
            try:
                cfg = task_parser(task)(params)
            except ConfigError as exc:
                raise AssertionError(f"{target} {name}.{task['task_key']}: {exc}") from exc
            assert cfg.output_root == expected_root


def test_job_parameters_reach_the_tasks_and_every_task_retries():
    """Run-time settings are job parameters (declared once, each used by a task, each task
    reference declared); every task has a timeout and bounded retries spaced apart."""
    for name, (_, job) in JOBS.items():
        declared = [p["name"] for p in job.get("parameters", [])]
        assert "output_root" in declared, name
        used = set(JOB_PARAM.findall(yaml.safe_dump(job["tasks"])))
        assert used == set(declared), (name, set(declared) ^ used)
        assert "${var.output_root}" not in yaml.safe_dump(job["tasks"]), name
        for task in job["tasks"]:
            where = f"{name}.{task['task_key']}"
            limit = task["timeout_seconds"]  # a config value, not a measured time
            assert 0 < limit <= 86400, where
            assert 1 <= task["max_retries"] <= 3, where
            assert task["min_retry_interval_millis"] >= 60000, where
    pipeline = JOBS["hourglass_pipeline"][1]
    assert {p["name"] for p in pipeline["parameters"]} == {
        "config_file", "output_root", "items_path", "interactions_path", "strategy", "run_date"}


def test_pipeline_parameters_given_at_run_time_reach_the_stage_configs():
    """What `databricks bundle run --params` sets for one run lands in the typed configs."""
    from hourglass.stages.pipeline import PipelineConfig

    job = copy.deepcopy(JOBS["hourglass_pipeline"][1])
    for p in job["parameters"]:
        p["default"] = {"items_path": "/Volumes/m/raw/d/2026-11-30/items.jsonl",
                        "output_root": "/Volumes/m/s/other", "run_date": "2026-11-30",
                        "strategy": "drop_layer(2)"}.get(p["name"], p["default"])
    tasks = {t["task_key"]: t for t in resolve(job, "dev")["tasks"]}
    cfgs = {k: task_parser(t)(t["python_wheel_task"]["parameters"]) for k, t in tasks.items()}
    ingest = cfgs["ingest"]
    assert isinstance(ingest, PipelineConfig)
    (step,) = [ingest.step_config(s) for s in ingest.steps if s["stage"] == "ingest"]
    assert step.items_path == "/Volumes/m/raw/d/2026-11-30/items.jsonl"
    assert step.interactions_path.endswith("data/amazon-office/interactions.csv")
    assert all(c.output_root == "/Volumes/m/s/other" for c in cfgs.values())
    assert cfgs["evaluate"].run_id == "pipeline-2026-11-30"
    assert cfgs["evaluate"].strategy_names() == ["drop_layer_2"]
    assert cfgs["sft_train"].strategy_name == "drop_layer_2"


def _strict_keys(value, tp, where: str) -> list[str]:
    """Keys of `value` that the databricks-sdk type `tp` (a dataclass of its service models,
    possibly inside Optional/List/Dict) does not declare, recursively."""
    import dataclasses
    import enum
    import typing

    origin = typing.get_origin(tp)
    if origin is typing.Union:
        (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [k for i, v in enumerate(value) for k in _strict_keys(v, item, f"{where}[{i}]")]
    if origin is dict:
        _, item = typing.get_args(tp)
        return [k for n, v in value.items() for k in _strict_keys(v, item, f"{where}.{n}")]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [] if value in {e.value for e in tp} else [f"{where}={value!r}"]
    if not dataclasses.is_dataclass(tp):
        return []
    hints = typing.get_type_hints(tp)
    bad = [f"{where}.{k}" for k in value if k not in hints]
    return bad + [k for n, v in value.items() if n in hints
                  for k in _strict_keys(v, hints[n], f"{where}.{n}")]


@pytest.mark.parametrize("target", TARGETS)
def test_every_key_is_known_to_the_databricks_sdk_job_types(target):
    """Each job as deployed, key by key against `databricks.sdk.service.jobs.JobSettings` (the
    REST API's own types): a key the API does not know would be ignored or refused there."""
    from databricks.sdk.service.jobs import JobSettings

    for name, (_, job) in JOBS.items():
        resolved = resolve(job, target)
        for task in resolved["tasks"]:  # bundle-only: the CLI uploads the wheel and rewrites
            for lib in task.get("libraries", []):  # the path (the API takes a workspace path)
                if "whl" in lib:
                    lib["whl"] = lib["whl"].replace("../../dist/", "/Workspace/dist/")
        assert _strict_keys(resolved, JobSettings, name) == []
        JobSettings.from_dict(resolved)
    broken = resolve(JOBS["hourglass_ingest"][1], target)
    broken["tasks"][0]["max_retrys"] = 2
    broken["parameters"][0]["defualt"] = "x"
    assert _strict_keys(broken, JobSettings, "ingest") == [
        "ingest.parameters[0].defualt", "ingest.tasks[0].max_retrys"]


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
        params = task["python_wheel_task"]["parameters"]
        entry = task_job(task)
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
    only = {t["task_key"] for t in job["tasks"] if task_job(t) == "pipeline"}
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
    """Each job as deployed to the target, with the target's `run_as` applied to it."""
    from databricks.bundles import jobs as jobs_model

    run_as = resolve(BUNDLE["targets"][target].get("run_as"), target)
    for name, (_, job) in JOBS.items():
        resolved = resolve(job, target)
        assert "${" not in str(resolved), f"{name}: unresolved reference"
        if run_as:
            resolved["run_as"] = run_as
        jobs_model.Job.from_dict(resolved)  # raises on unknown fields or wrong types
    broken = resolve(JOBS["hourglass_ingest"][1], target)
    broken["tasks"][0]["python_wheel_task"]["paramters"] = []
    with pytest.raises(ValueError, match="paramters"):
        jobs_model.Job.from_dict(broken)


@pytest.mark.parametrize("target", TARGETS)
def test_schema_and_volume_accepted_by_databricks_typed_models(target):
    from databricks.bundles.schemas import Schema
    from databricks.bundles.volumes import Volume

    schemas, volumes = BUNDLE["resources"]["schemas"], BUNDLE["resources"]["volumes"]
    assert set(BUNDLE["resources"]) == {"schemas", "volumes", "experiments", "registered_models"}
    for spec, model in [(v, Schema) for v in schemas.values()] + [(v, Volume)
                                                                  for v in volumes.values()]:
        resolved = resolve(spec, target)
        assert "${" not in str(resolved)
        obj = model.from_dict(resolved)
        for grant in obj.grants:
            assert grant.principal and grant.privileges
            assert all(not isinstance(p, str) for p in grant.privileges), "unknown privilege"
        broken = {**resolved, "grants": [{"principal": "x", "privilegez": ["READ_VOLUME"]}]}
        with pytest.raises(ValueError, match="privilegez"):
            model.from_dict(broken)


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_cluster_tracks_to_the_bundles_absolute_experiment(target):
    """The experiment resource (an absolute workspace path, as Databricks requires) is what
    every job cluster gets as MLFLOW_EXPERIMENT_NAME, so no tracked task falls back to a bare
    name; the registered model is the bundle's three-part Unity Catalog model."""
    from databricks.bundles.experiments import MlflowExperiment
    from databricks.bundles.registered_models import RegisteredModel

    from hourglass.tracking import check_model_name

    (experiment,) = BUNDLE["resources"]["experiments"].values()
    MlflowExperiment.from_dict(resolve(experiment, target))
    deployed = resource_field(target, "resources.experiments.hourglass.name")
    assert deployed.startswith("/Workspace/") and "${" not in deployed
    for name, (_, job) in JOBS.items():
        for cluster in resolve(job, target).get("job_clusters", []):
            env = cluster["new_cluster"].get("spark_env_vars", {})
            assert env.get("MLFLOW_EXPERIMENT_NAME") == deployed, (name, cluster["job_cluster_key"])
    (model,) = BUNDLE["resources"]["registered_models"].values()
    RegisteredModel.from_dict(resolve(model, target))
    name = variables_for(target)["registered_model"]
    full = resolve(name, target)
    check_model_name(full, "databricks-uc")
    assert full.split(".")[1] == resource_field(target, "resources.schemas.hourglass.name")
    pipeline = resolve(JOBS["hourglass_pipeline"][1], target)
    (evaluate,) = [t for t in pipeline["tasks"] if t["task_key"] == "evaluate"]
    params = evaluate["python_wheel_task"]["parameters"]
    assert params[params.index("--registered_model") + 1] == full


def _grants(spec: dict, target: str) -> dict[str, set[str]]:
    return {g["principal"]: set(g["privileges"]) for g in resolve(spec, target)["grants"]}


@pytest.mark.parametrize("target", TARGETS)
def test_the_jobs_identity_alone_may_write_and_the_tables_go_to_the_bundles_volume(target):
    """prod runs as a service principal (never a person); in every target the identity the
    jobs run as is granted write on the bundle's schema and volume, the readers only read, and
    `output_root` is that volume (dev: in the dev-prefixed schema)."""
    run_as = BUNDLE["targets"][target].get("run_as")
    writer = resolve("${var.writer}", target)
    if target == "prod":
        assert set(run_as) == {"service_principal_name"}
        assert resolve(run_as["service_principal_name"], target) == writer
        assert writer == "<service_principal hourglass-prod>"  # looked up at deploy time
    else:  # dev and staging run as whoever deploys them
        assert run_as is None and writer == USER
    readers = resolve("${var.readers_group}", target)
    (schema,) = BUNDLE["resources"]["schemas"].values()
    (volume,) = BUNDLE["resources"]["volumes"].values()
    assert _grants(schema, target) == {writer: {"USE_SCHEMA", "CREATE_TABLE", "MODIFY", "SELECT"},
                                       readers: {"USE_SCHEMA", "SELECT"}}
    assert _grants(volume, target) == {writer: {"READ_VOLUME", "WRITE_VOLUME"},
                                       readers: {"READ_VOLUME"}}
    vol = resolve(volume, target)
    assert vol["schema_name"] == resource_field(target, "resources.schemas.hourglass.name")
    expected = {"dev": "/Volumes/main/dev_someone_hourglass_dev/tables",
                "staging": "/Volumes/main/hourglass_staging/tables",
                "prod": "/Volumes/main/hourglass/tables"}[target]
    assert resolve("${var.output_root}", target) == expected
    assert expected == f"/Volumes/{vol['catalog_name']}/{vol['schema_name']}/{vol['name']}"


def test_scheduled_fine_tunes_are_keyed_by_the_scheduler_run_id():
    """A nightly run trains its own model (not resume last night's) and the pipeline's evaluate
    scores that model: both carry the job run's id. The standalone evaluate job is given the id
    of the fine-tune run it scores per run, not its own."""
    keyed = {("hourglass_pipeline", "sft_train"), ("hourglass_pipeline", "evaluate"),
             ("hourglass_sft_train", "sft_train"), ("hourglass_ablation", "ablation")}
    for name, (_, job) in JOBS.items():
        for task in resolve(job, "prod")["tasks"]:
            cfg = task_parser(task)(task["python_wheel_task"]["parameters"])
            has = getattr(cfg, "scheduler_run_id", "")
            assert has == ("987654321" if (name, task["task_key"]) in keyed else ""), \
                f"{name}.{task['task_key']}: scheduler_run_id={has!r}"
