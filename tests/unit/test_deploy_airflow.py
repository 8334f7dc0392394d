"""The Airflow DAG (deploy/airflow/hourglass_dag.py).

Two levels: its structure read from the source with `ast` (no Airflow needed), and the DAG
loaded by Airflow's own DagBag (Airflow and its Spark provider are in the dev extra) with the
spark-submit command its operators would run compared with what deploy/spark-submit/submit.sh
runs for the same stage.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "deploy" / "airflow" / "hourglass_dag.py"
SOURCE = DAG_FILE.read_text()
FINE_TUNE = "sft_train"
MLFLOW_URI, TRACKING_SERVER = "MLFLOW_TRACKING_URI", "http://mlflow.internal:5000"


def upstream() -> dict[str, tuple[str, ...]]:
    for node in ast.parse(SOURCE).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "UPSTREAM":
            return ast.literal_eval(node.value)
    raise AssertionError("UPSTREAM not found")


def spark_defaults() -> dict[str, str]:
    lines = (ROOT / "deploy" / "spark-submit" / "spark-defaults.conf").read_text().splitlines()
    return dict(ln.split(None, 1) for ln in lines if ln.strip() and not ln.startswith("#"))


def test_structure_stages_launchers_and_order():
    graph = upstream()
    assert FINE_TUNE in graph and set().union(*graph.values()) <= set(graph)
    imports = {a.name for n in ast.walk(ast.parse(SOURCE)) if isinstance(n, ast.ImportFrom)
               for a in n.names}
    assert {"SparkSubmitOperator", "BashOperator", "DAG"} <= imports
    apps = set(re.findall(r'return "(\w+\.py)"', SOURCE))
    assert "pipeline.py" in apps and all((ROOT / "jobs" / a).is_file() for a in apps)
    # the fine-tune is the wheel's launcher command, not a file of a checkout
    assert '"hourglass-sft-launch"' in SOURCE and "deploy/deepspeed" not in SOURCE
    # submit_all.sh runs the same stages in an order that respects the DAG's dependencies.
    script = (ROOT / "deploy" / "spark-submit" / "submit_all.sh").read_text()
    order = [s for line in re.findall(r"^for stage in (.+); do$", script, re.M)
             for s in line.split()] + re.findall(r'echo "== (\w+)"', script)
    assert sorted(order) == sorted(graph)
    for i, stage in enumerate(order):
        assert set(graph[stage]) <= set(order[:i]), f"{stage} runs before {graph[stage]}"


@pytest.fixture(scope="module")
def airflow_dag(tmp_path_factory):
    # Airflow is pinned in the dev extra: a missing install must fail here, not skip.
    import airflow.providers.apache.spark  # noqa: F401
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    os.environ["AIRFLOW_CONN_HOURGLASS_TEST_SPARK"] = (
        '{"conn_type": "spark", "host": "yarn", "extra": {"deploy-mode": "cluster"}}')
    os.environ["HOURGLASS_SPARK_CONN_ID"] = "hourglass_test_spark"
    os.environ["HOURGLASS_DEPLOY_MODE"] = "cluster"
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag
    # read while the DAG is parsed; never left set (the tracking tests use the local store)
    os.environ[MLFLOW_URI] = TRACKING_SERVER
    try:
        bag = DagBag(dag_folder=str(DAG_FILE.parent))
    finally:
        del os.environ[MLFLOW_URI]
    assert bag.import_errors == {}
    return bag.dags["hourglass_pipeline"]


def test_dagbag_loads_the_dag_with_the_declared_graph(airflow_dag):
    graph = upstream()
    assert {t.task_id for t in airflow_dag.tasks} == set(graph)
    for task in airflow_dag.tasks:
        assert task.upstream_task_ids == set(graph[task.task_id])
    fine_tune = airflow_dag.get_task(FINE_TUNE)
    assert type(fine_tune).__name__ == "BashOperator"
    assert fine_tune.bash_command.startswith("hourglass-sft-launch ")
    assert fine_tune.pool == "hourglass_gpu" and fine_tune.retries == 1
    for task in airflow_dag.tasks:
        if task.task_id == FINE_TUNE:
            continue
        assert type(task).__name__ == "SparkSubmitOperator"
        args = task.application_args
        if task.application == str(ROOT / "jobs" / "pipeline.py"):
            assert args[args.index("--only") + 1] == task.task_id
        else:
            assert task.application == str(ROOT / "jobs" / f"{task.task_id}.py")
        assert spark_defaults().items() <= task.conf.items()


def test_operator_submits_what_submit_sh_submits(airflow_dag):
    """Same archive, jars, Spark settings (with the MLflow URI for the driver), application and
    arguments as the shell path (both in YARN cluster mode, where the driver too runs from the
    archive)."""
    task = copy.copy(airflow_dag.get_task("encode_items"))
    for field, value in _render(airflow_dag, "encode_items", "manual__x").items():
        setattr(task, field, value)  # as rendered for a run with the default params
    dag_cmd = task._get_hook()._build_spark_submit_command(task.application)
    archive = dag_cmd[dag_cmd.index("--archives") + 1]
    assert archive.endswith("#environment")
    env = {**os.environ, "DRY_RUN": "1", "SPARK_SUBMIT": "spark-submit", "SPARK_MASTER": "yarn",
           "DEPLOY_MODE": "cluster", "HOURGLASS_ARCHIVE": archive.removesuffix("#environment"),
           MLFLOW_URI: TRACKING_SERVER}
    # submit.sh is given the local config, as a person would; it ships it and passes its name.
    args = list(task.application_args)
    args[args.index("--config") + 1] = task.files
    assert Path(task.files).name == task.application_args[args.index("--config") + 1]
    out = subprocess.run([str(ROOT / "deploy/spark-submit/submit.sh"), "pipeline", *args],
                         env=env, capture_output=True, text=True, check=True).stdout
    sh_cmd = shlex.split(out)

    def confs(cmd):
        return {cmd[i + 1].split("=", 1)[0]: cmd[i + 1].split("=", 1)[1]
                for i, a in enumerate(cmd) if a == "--conf"}

    def flag(cmd, name):
        return cmd[cmd.index(name) + 1]

    assert spark_defaults().items() <= confs(dag_cmd).items()
    assert confs(dag_cmd)[f"spark.yarn.appMasterEnv.{MLFLOW_URI}"] == TRACKING_SERVER
    assert confs(sh_cmd) == confs(dag_cmd)
    for name in ("--archives", "--jars", "--name", "--master", "--deploy-mode", "--files"):
        assert flag(dag_cmd, name) == flag(sh_cmd, name), name
    assert dag_cmd[-len(task.application_args) - 1:] == sh_cmd[-len(task.application_args) - 1:]


def _render(dag, task_id: str, run_id: str, params: dict | None = None) -> dict:
    """A task's templated fields as Airflow renders them for a run with these params."""
    import jinja2

    task = dag.get_task(task_id)
    merged = {k: v.value if hasattr(v, "value") else v for k, v in dag.params.items()}
    context = {"run_id": run_id, "params": {**merged, **(params or {})},
               **dag.user_defined_macros}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value):
        if isinstance(value, str):
            return env.from_string(value).render(context)
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        return value

    return {f: render(getattr(task, f)) for f in task.template_fields}


def test_every_task_keys_its_run_by_the_run_id_and_reads_the_params(airflow_dag, monkeypatch):
    """Run settings are params rendered per run, not read when the file is parsed; the one
    idempotence key is `{{ run_id }}`: the fine-tune trains in that run's folder and evaluate
    scores that model into rows of run `airflow-<run id>`. Rendered, each parses into its job's
    config."""
    from hourglass.stages.evaluate import EvaluateConfig
    from hourglass.stages.pipeline import PipelineConfig
    from hourglass.train.config import parse_train_args

    run_id = "scheduled__2026-12-01T03:00:00+00:00"
    params = {"output_root": "/data/hg", "strategy": "drop_layer(2)",
              "overrides": "ingest.items_path=/drops/2026-12-01/items.jsonl",
              "config": str(ROOT / "configs" / "demo.yaml")}
    assert set(airflow_dag.params) == {"config", "output_root", "strategy", "sft_args",
                                       "overrides"}
    keys = set()
    for task in airflow_dag.tasks:
        text = " ".join(str(getattr(task, f)) for f in task.template_fields)
        keys |= set(re.findall(r"\{\{ (run_id|ts_nodash|ds|logical_date)[^}]*\}\}", text))
    assert keys == {"run_id"}  # one idempotence key, used by every task that keys by run

    evaluate = _render(airflow_dag, "evaluate", run_id, params)
    ecfg = EvaluateConfig.from_args(evaluate["application_args"])
    assert (ecfg.scheduler_run_id, ecfg.run_id) == (run_id, f"airflow-{run_id}")
    assert ecfg.output_root == "/data/hg" and ecfg.strategy_names() == ["drop_layer_2"]
    rendered = _render(airflow_dag, "ingest", run_id, params)
    assert rendered["files"] == params["config"]  # cluster mode ships the local config
    monkeypatch.chdir(ROOT / "configs")  # where the driver finds it, by its file name
    ingest = PipelineConfig.from_args(rendered["application_args"])
    (step,) = [ingest.step_config(s) for s in ingest.steps if s["stage"] == "ingest"]
    assert step.items_path == "/drops/2026-12-01/items.jsonl" and ingest.output_root == "/data/hg"

    fine_tune = _render(airflow_dag, FINE_TUNE, run_id, params)
    env = fine_tune["env"]
    command = fine_tune["bash_command"]
    for name, value in env.items():
        command = command.replace(f'"${name}"', shlex.quote(value)).replace(f"${name}", value)
    argv = shlex.split(command)
    assert argv[0] == "hourglass-sft-launch"
    tcfg = parse_train_args(argv[1:])
    assert (tcfg.scheduler_run_id, tcfg.strategy_name, tcfg.output_root) == (
        run_id, "drop_layer_2", "/data/hg")


def test_a_failed_try_is_reported_by_the_failure_callback(airflow_dag, caplog):
    import logging
    import types

    callbacks = airflow_dag.default_args["on_failure_callback"]
    ti = types.SimpleNamespace(task_id="encode_items", try_number=2, log_url="http://af/log")
    with caplog.at_level(logging.ERROR):
        for callback in callbacks:
            callback({"task_instance": ti, "run_id": "manual__x",
                      "exception": RuntimeError("executor lost")})
    (line,) = [r.getMessage() for r in caplog.records if "hourglass_pipeline" in r.getMessage()]
    assert "encode_items" in line and "manual__x" in line and "try 2" in line
    assert "executor lost" in line
    for task in airflow_dag.tasks:
        assert task.retries >= 1 and task.on_failure_callback == callbacks


def _dag_module(monkeypatch, **env: str):
    """The DAG file imported afresh under an installation's environment."""
    import importlib.util

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("hourglass_dag_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installation_settings_reach_every_spark_job(airflow_dag, monkeypatch):
    """Cluster-specific Spark settings and executors with hourglass installed (no archive)."""
    dag = _dag_module(monkeypatch, HOURGLASS_SPARK_CONF="spark.executor.memory=8g "
                      "spark.sql.shuffle.partitions=400", HOURGLASS_EXECUTOR_PYTHON="/opt/hg/py",
                      HOURGLASS_DEPLOY_MODE="client")
    conf = dag.spark_conf()
    assert conf["spark.executor.memory"] == "8g"
    assert conf["spark.sql.shuffle.partitions"] == "400"
    assert conf["spark.pyspark.python"] == "/opt/hg/py"
    task = dag.dag.get_task("encode_items")
    assert task._archives is None and task.conf == conf
    with pytest.raises(ValueError, match="HOURGLASS_SPARK_CONF.*executor.memory"):
        _dag_module(monkeypatch, HOURGLASS_SPARK_CONF="executor.memory=8g")
