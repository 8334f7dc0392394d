"""The Airflow DAG (deploy/airflow/hourglass_dag.py).

Two levels: its structure read from the source with `ast` (no Airflow needed), and the DAG
loaded by Airflow's own DagBag (Airflow and its Spark provider are in the dev extra) with the
spark-submit command its operators would run compared with what deploy/spark-submit/submit.sh
runs for the same stage.
"""

from __future__ import annotations

import ast
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
    launchers = set(re.findall(r"deploy/deepspeed/([\w.]+\.sh)", SOURCE))
    assert launchers == {"launch_single_node.sh", "launch_multi_node.sh"}
    assert all((ROOT / "deploy" / "deepspeed" / s).is_file() for s in launchers)
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
    assert type(airflow_dag.get_task(FINE_TUNE)).__name__ == "BashOperator"
    assert "launch_single_node.sh" in airflow_dag.get_task(FINE_TUNE).bash_command
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
    task = airflow_dag.get_task("encode_items")
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


def test_fine_tune_and_evaluate_share_the_dag_runs_id(airflow_dag):
    """Both tasks get `{{ run_id }}` as `scheduler_run_id`: the fine-tune trains in that run's
    folder and evaluate scores that run's model. Rendered with a real Airflow run id, the
    arguments parse into each job's config."""
    from hourglass.stages.evaluate import EvaluateConfig
    from hourglass.train.config import parse_train_args

    run_id = "scheduled__2026-12-01T03:00:00+00:00"

    def render(text: str) -> str:
        return text.replace("{{ run_id }}", run_id).replace("{{ ts_nodash }}", "20261201T030000")

    evaluate = airflow_dag.get_task("evaluate")
    assert "application_args" in evaluate.template_fields
    args = [render(a) for a in evaluate.application_args]
    assert EvaluateConfig.from_args(args).scheduler_run_id == run_id
    fine_tune = airflow_dag.get_task(FINE_TUNE)
    assert "bash_command" in fine_tune.template_fields
    argv = shlex.split(render(fine_tune.bash_command).split("launch_single_node.sh", 1)[1])
    assert parse_train_args(argv).scheduler_run_id == run_id
