"""hourglass.tracking: where runs go, and what a run written through it reads back as."""

from __future__ import annotations

import pytest

from hourglass.config import ConfigError
from hourglass.tracking import (
    RegistryError,
    Run,
    check_model_name,
    experiment_name,
    flatten,
    metric_key,
    registry_uri,
    tracked_run,
    tracking_uri,
)


@pytest.fixture
def no_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "DATABRICKS_RUNTIME_VERSION",
                 "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_uri_is_the_environment_then_databricks_then_sqlite_under_output_root(no_env, tmp_path):
    assert tracking_uri(str(tmp_path)) == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert tracking_uri(f"file:{tmp_path}") == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        tracking_uri("s3a://bucket/tables")
    with pytest.raises(ConfigError):
        tracking_uri("")  # catalog tables: nowhere local to keep a store
    no_env.setenv("DATABRICKS_RUNTIME_VERSION", "16.4")
    assert tracking_uri("s3a://bucket/tables") == "databricks"
    no_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking_uri(str(tmp_path)) == "http://mlflow:5000"


def test_a_bare_experiment_name_is_refused_on_databricks_only(no_env):
    assert experiment_name() == "hourglass"  # local store: any name
    no_env.setenv("MLFLOW_TRACKING_URI", "databricks://prod-profile")
    with pytest.raises(ConfigError, match="absolute workspace path.*set MLFLOW_EXPER"):
        experiment_name()
    no_env.delenv("MLFLOW_TRACKING_URI")
    no_env.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    no_env.setenv("MLFLOW_EXPERIMENT_NAME", "hourglass-dev")
    with pytest.raises(ConfigError, match="'hourglass-dev'"):
        experiment_name()
    no_env.setenv("MLFLOW_EXPERIMENT_NAME", "/Workspace/Users/me@x.com/hourglass")
    assert experiment_name() == "/Workspace/Users/me@x.com/hourglass"
    no_env.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # a server of one's own
    no_env.setenv("MLFLOW_EXPERIMENT_NAME", "hourglass")
    assert experiment_name() == "hourglass"


def test_models_register_in_unity_catalog_on_databricks_under_three_part_names(no_env):
    assert registry_uri("sqlite:///x/mlflow.db") == "sqlite:///x/mlflow.db"
    no_env.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    assert registry_uri("databricks") == "databricks-uc"
    no_env.setenv("MLFLOW_REGISTRY_URI", "databricks")  # the legacy workspace registry, asked for
    assert registry_uri("databricks") == "databricks"
    check_model_name("main.hourglass_dev.sid_retrieval", "databricks-uc")
    check_model_name("hourglass-sid-retrieval", "databricks")
    for bad in ("hourglass-sid-retrieval", "main.sid", "main..sid", "a.b.c.d", ".a.b"):
        with pytest.raises(ConfigError, match="registered_model.*catalog.schema.model"):
            check_model_name(bad, "databricks-uc")


def test_jobs_refuse_a_bare_databricks_experiment_before_any_work(no_env, tmp_path, capsys):
    """The check runs between parsing and the Spark session: exit 2, one line, nothing made."""
    from hourglass.stages import evaluate, hourglass_stats, ingest, pipeline
    from hourglass.stages.common import main_for

    no_env.setenv("MLFLOW_TRACKING_URI", "databricks")
    root = str(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_:
        main_for(hourglass_stats.HourglassStatsConfig, None, "hourglass-stats",
                 ["--output_root", root, "--run_id", "r"])
    assert exit_.value.code == 2
    assert "MLFLOW_EXPERIMENT_NAME" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # untracked: no experiment needed
    hourglass_stats.HourglassStatsConfig(output_root=root, run_id="r", tracking=False).preflight()
    paths = {"items_path": "items.jsonl", "interactions_path": "interactions.csv"}
    ingest.IngestConfig(output_root=root, **paths).preflight()
    # a pipeline checks the steps it runs
    steps = [{"stage": "hourglass_stats", "run_id": "r"}, {"stage": "ingest", **paths}]
    pipe = pipeline.PipelineConfig(output_root=root, steps=steps, only=["ingest"])
    pipe.preflight()
    with pytest.raises(ConfigError, match="MLFLOW_EXPERIMENT_NAME"):
        pipeline.PipelineConfig(output_root=root, steps=steps).preflight()
    # Unity Catalog wants a three-part model name, before anything is evaluated
    no_env.setenv("MLFLOW_EXPERIMENT_NAME", "/Shared/hourglass")
    ecfg = evaluate.EvaluateConfig(output_root=root, run_id="e", register_strategy="none")
    with pytest.raises(ConfigError, match="registered_model"):
        ecfg.preflight()
    evaluate.EvaluateConfig(output_root=root, run_id="e", register_strategy="none",
                            registered_model="main.hg.sid_retrieval").preflight()


def test_names_and_params_are_what_mlflow_accepts():
    assert metric_key("all", "recall_at_10") == "all/recall_at_10"
    assert metric_key("train", "topk(16)", "loss") == "train/topk_16_/loss"
    params = flatten({"a": 1, "ds": {"zero_optimization": {"stage": 2}}, "l": [1, 2],
                      "s": "x" * 7000, "n": None})
    assert params == {"a": "1", "ds.zero_optimization.stage": "2", "l": "[1, 2]",
                      "s": "x" * 6000, "n": "null"}


def test_tracking_off_writes_nothing(no_env, tmp_path):
    with tracked_run(False, str(tmp_path), "x", "job") as run:
        run.params({"a": 1})
        run.metrics({"m": 1.0})
        assert not run.active and run.child("c").run_id == ""
    assert not (tmp_path / "mlflow").exists()


@pytest.mark.slow
def test_a_run_reads_back_with_mlflow_client(no_env, tmp_path):
    """Params, per-step metrics, a child run, a table, a failed run and a registered model, all
    in the SQLite store under the root (artifacts beside it, not in the working directory)."""
    mlflow = pytest.importorskip("mlflow")
    no_env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    root = str(tmp_path / "tables")
    with tracked_run(True, root, "job run", "evaluate", {"hourglass.strategy": "none"}) as run:
        run.params({"k": 10, "ds": {"stage": 2}})
        for step, loss in ((1, 2.0), (2, 1.5)):
            run.metrics({"loss": loss, "skipped": None}, step)
        with run.nested("child", {"hourglass.strategy": "topk_16"}) as child:
            child.metrics({"all/recall_at_10": 0.25})
        run.table({"metric": ["recall"], "value": [0.25]}, "rows.json")
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "w.txt").write_text("weights")
        run.artifacts(tmp_path / "model", "model")
        version = run.register("hg-model", run.artifact_uri("model"), {"hourglass.k": 1})
        # a name the registry refuses: one line naming the model and the registry
        with pytest.raises(RegistryError, match="refused model 'hg/model'.*cannot contain"):
            run.register("hg/model", run.artifact_uri("model"), {})
    with pytest.raises(RuntimeError), tracked_run(True, root, "broken", "evaluate") as failed:
        raise RuntimeError("boom")

    client = mlflow.tracking.MlflowClient(tracking_uri(root))
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "job run"
    assert got.data.params == {"k": "10", "ds.stage": "2"}
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [
        (1, 2.0), (2, 1.5)]
    assert "skipped" not in got.data.metrics
    assert got.data.tags["hourglass.job"] == "evaluate"
    assert got.data.tags["hourglass.strategy"] == "none"
    assert got.data.tags["hourglass.code_version"].startswith("0.")
    kid = client.get_run(child.run_id)
    assert kid.data.tags["mlflow.parentRunId"] == run.run_id
    assert kid.data.tags["hourglass.job"] == "evaluate"  # a search by job finds the children
    assert kid.data.tags["hourglass.code_version"] == got.data.tags["hourglass.code_version"]
    assert kid.data.tags["hourglass.strategy"] == "topk_16"
    assert kid.data.metrics == {"all/recall_at_10": 0.25}
    assert client.get_run(failed.run_id).info.status == "FAILED"
    artifacts = got.info.artifact_uri
    assert artifacts.startswith((tmp_path / "tables" / "mlflow" / "artifacts").as_uri())
    assert {a.path for a in client.list_artifacts(run.run_id)} == {"model", "rows.json"}
    mv = client.get_model_version("hg-model", version)
    assert mv.source == f"{artifacts}/model" and mv.tags == {"hourglass.k": "1"}
    assert mv.run_id == run.run_id
    assert isinstance(Run(), Run) and not Run().active


def test_table2_has_one_row_per_strategy_and_subset_and_a_column_per_metric():
    from hourglass.evaluation.tracked import metric_name, strategy_metrics, wide_table

    rows = [("r", "none", "all", "recall", 1, 0.5), ("r", "none", "all", "ndcg", 5, 0.3),
            ("r", "none", "head", "recall", 1, 0.7), ("r", "popularity", "all", "recall", 1, 0.1)]
    assert wide_table(rows) == {
        "strategy": ["none", "none", "popularity"], "subset": ["all", "head", "all"],
        "ndcg_at_5": [0.3, None, None], "recall_at_1": [0.5, 0.7, 0.1]}
    assert strategy_metrics(rows, "none") == {
        "all/recall_at_1": 0.5, "all/ndcg_at_5": 0.3, "head/recall_at_1": 0.7}
    assert metric_name("tail", "invalid_ratio", 10) == "tail/invalid_ratio_at_10"
