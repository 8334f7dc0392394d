"""MLflow tracking of the jobs: one run per job, child runs per strategy, registered models.

Where runs go: `MLFLOW_TRACKING_URI` when set (a Databricks workspace, a tracking server), on
Databricks the workspace, else a SQLite store under `<output_root>/mlflow` (artifacts beside it)
that `mlflow ui --backend-store-uri sqlite:///<output_root>/mlflow/mlflow.db` shows. The
experiment is `MLFLOW_EXPERIMENT_NAME` or `hourglass`; a Databricks workspace takes only an
absolute workspace path, checked before any work (`experiment_name`). Models register where
`MLFLOW_REGISTRY_URI` says, else in Unity Catalog on Databricks (three-part names), else in the
tracking store's own registry. Each tracked config has a `tracking` key
(true by default); without the `mlflow` package a job logs one warning and runs untracked, so a
venv without it still runs every stage. A job needs only `requirements/track.txt` (mlflow-skinny
and the SQLite store's SQLAlchemy/Alembic), which the spark-submit archive carries.

Runs are written through `MlflowClient` with explicit run ids, not the fluent API's global
active run, so a parent and its children (and code that uses the fluent API itself) never
interfere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hourglass.errors import ConfigError, HourglassError
from hourglass.logs import log

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
ENV_REGISTRY = "MLFLOW_REGISTRY_URI"
DEFAULT_EXPERIMENT = "hourglass"
STORE_DIR = "mlflow"  # under output_root: mlflow.db and artifacts/
PARAM_MAX = 6000  # MLflow's limit on a param value
_BAD_KEY = re.compile(r"[^\w./\- ]")


class RegistryError(HourglassError):
    """The model registry refused a registration (a name it does not take, no privilege)."""


def tracking_field() -> Any:
    """The `tracking` key of every tracked job, written once."""
    return dataclasses.field(default=True, metadata={"help": (
        "log this job to MLflow ($MLFLOW_TRACKING_URI, else a SQLite store under "
        "<output_root>/mlflow); false turns tracking off")})


def local_store(root: str) -> Path:
    """The folder of the local store of a run under `root` (an output_root or run folder)."""
    return Path(root.removeprefix("file:")).resolve() / STORE_DIR


def on_databricks_tracking() -> bool:
    """Whether runs go to a Databricks workspace: `MLFLOW_TRACKING_URI` says `databricks`
    (or `databricks://<profile>`), or it is unset on a Databricks cluster."""
    uri = os.environ.get(ENV_URI, "")
    if uri:
        return uri == "databricks" or uri.startswith("databricks://")
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def experiment_name() -> str:
    """`MLFLOW_EXPERIMENT_NAME` or `hourglass`; on Databricks only an absolute workspace path,
    refused before any work otherwise (the workspace would refuse it at the first run)."""
    name = os.environ.get(ENV_EXPERIMENT) or DEFAULT_EXPERIMENT
    if on_databricks_tracking() and not name.startswith("/"):
        raise ConfigError(
            f"MLflow experiment {name!r} is not an absolute workspace path, which Databricks "
            f"requires: set {ENV_EXPERIMENT}, e.g. /Workspace/Users/<you>/hourglass (the "
            "bundle sets it from its experiment resource), or tracking: false")
    return name


def registry_uri(tracking: str) -> str:
    """`MLFLOW_REGISTRY_URI`, else Unity Catalog (`databricks-uc`) on Databricks, else the
    tracking store's own registry."""
    if os.environ.get(ENV_REGISTRY):
        return os.environ[ENV_REGISTRY]
    return "databricks-uc" if on_databricks_tracking() else tracking


def check_model_name(name: str, registry: str) -> None:
    """Unity Catalog registers models only under a three-part `catalog.schema.model` name."""
    if registry.startswith("databricks-uc") and (name.count(".") != 2 or ".." in name
                                                 or name.startswith(".") or name.endswith(".")):
        raise ConfigError(
            f"registered_model {name!r}: Unity Catalog (registry {registry}) takes a three-part "
            "name catalog.schema.model; set registered_model (the bundle passes "
            "${var.catalog}.${var.schema}.<model>), or MLFLOW_REGISTRY_URI for another registry")


def tracking_uri(root: str) -> str:
    """`MLFLOW_TRACKING_URI`, else Databricks' workspace there, else SQLite under `root`."""
    if os.environ.get(ENV_URI):
        return os.environ[ENV_URI]
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return "databricks"
    local = root and (root.startswith("file:") or not re.match(r"^[A-Za-z][\w+.-]+:", root))
    if not local:
        raise ConfigError(
            f"tracking: output_root {root!r} is not a local folder for the MLflow store; set "
            f"{ENV_URI} (e.g. a tracking server or databricks) or tracking: false")
    return f"sqlite:///{local_store(root) / 'mlflow.db'}"


def metric_key(*parts: object) -> str:
    """A metric or param name MLflow accepts (letters, digits, `_ - . / space`)."""
    return _BAD_KEY.sub("_", "/".join(str(p) for p in parts if p != ""))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config values → `a.b` params, as strings within MLflow's length limit."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[metric_key(name)] = text[:PARAM_MAX]
    return out


class Run:
    """One MLflow run, or nothing at all when `client` is None (tracking off). `inherited`
    tags (the job and code version) are copied onto its child runs, so a search by job finds
    the per-strategy children too."""

    def __init__(self, client: Any = None, run_id: str = "", experiment_id: str = "",
                 inherited: Mapping[str, Any] | None = None) -> None:
        self.client, self.run_id, self.experiment_id = client, run_id, experiment_id
        self.inherited = dict(inherited or {})

    @property
    def active(self) -> bool:
        return self.client is not None

    def params(self, values: Mapping[str, Any], prefix: str = "") -> None:
        if self.active:
            from mlflow.entities import Param

            items = [Param(k, v) for k, v in flatten(values, prefix).items()]
            for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, values: Mapping[str, float | int | None], step: int = 0) -> None:
        if self.active:
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            items = [Metric(metric_key(k), float(v), now, step)
                     for k, v in values.items() if v is not None]
            for i in range(0, len(items), 1000):
                self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def tags(self, values: Mapping[str, Any]) -> None:
        if self.active:
            from mlflow.entities import RunTag

            tags = [RunTag(k, str(v)) for k, v in values.items() if v not in (None, "")]
            self.client.log_batch(self.run_id, tags=tags)

    def table(self, columns: Mapping[str, list], artifact_file: str) -> None:
        """A table MLflow's UI shows (and `load_table` reads back) as a JSON artifact."""
        if self.active:
            self.client.log_table(self.run_id, dict(columns), artifact_file)

    def text(self, text: str, artifact_file: str) -> None:
        if self.active:
            self.client.log_text(self.run_id, text, artifact_file)

    def artifacts(self, local_dir: str | Path, artifact_path: str) -> None:
        if self.active:
            self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def artifact_uri(self, path: str = "") -> str:
        if not self.active:
            return ""
        base = self.client.get_run(self.run_id).info.artifact_uri
        return f"{base}/{path}" if path else base

    def child(self, name: str, tags: Mapping[str, Any] | None = None) -> Run:
        """A nested run (the UI shows it under this one); ended by `finish`."""
        if not self.active:
            return Run()
        return _create(self.client, self.experiment_id, name,
                       {**self.inherited, **(tags or {}), "mlflow.parentRunId": self.run_id},
                       self.inherited)

    @contextlib.contextmanager
    def nested(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[Run]:
        """A child run for the duration of the block (FAILED if the block raises)."""
        child = self.child(name, tags)
        try:
            yield child
        except BaseException:
            child.finish(failed=True)
            raise
        child.finish()

    def finish(self, failed: bool = False) -> None:
        if self.active:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")

    def register(self, name: str, source: str, tags: Mapping[str, Any],
                 run_id: str = "") -> str:
        """A new version of registered model `name` from `source`; returns its version."""
        if not self.active:
            return ""
        from mlflow.exceptions import MlflowException

        registry = self.client._registry_uri
        try:
            try:
                self.client.create_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = self.client.create_model_version(
                name, source, run_id=run_id or self.run_id,
                tags={k: str(v) for k, v in tags.items() if v not in (None, "")})
        except MlflowException as exc:  # permissions, a name the registry refuses, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.error_code
            raise RegistryError(
                f"the model registry {registry} refused model {name!r} ({first}); check the "
                "name (Unity Catalog: catalog.schema.model) and your privileges on it, or set "
                f"{ENV_REGISTRY}") from exc
        log.info("registered %s version %s (source %s)", name, version.version, source)
        return str(version.version)


def _create(client: Any, experiment_id: str, name: str, tags: Mapping[str, Any],
            inherited: Mapping[str, Any]) -> Run:
    run = client.create_run(experiment_id, run_name=name,
                            tags={k: str(v) for k, v in tags.items() if v not in (None, "")})
    return Run(client, run.info.run_id, experiment_id, inherited)


def _experiment(client: Any, uri: str, root: str) -> str:
    """The experiment's id, created on first use (local artifacts beside the SQLite file)."""
    name = experiment_name()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:") and not os.environ.get(ENV_URI):
        location = (local_store(root) / "artifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    import subprocess

    from hourglass import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, check=True,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+g{sha}" if sha else __version__


@contextlib.contextmanager
def tracked_run(enabled: bool, root: str, name: str, job: str,
                tags: Mapping[str, Any] | None = None) -> Iterator[Run]:
    """An MLflow run of `job` for the duration of the block (FAILED if the block raises).

    Yields an inactive `Run` when tracking is off or mlflow is not installed.
    """
    if not enabled:
        yield Run()
        return
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        log.warning("%s: mlflow is not installed, the run is not tracked (pip install mlflow, "
                    "or set tracking: false)", job)
        yield Run()
        return
    uri = tracking_uri(root)
    if uri.startswith("sqlite:"):
        local_store(root).mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri, registry_uri=registry_uri(uri))
    inherited = {"hourglass.job": job, "hourglass.code_version": code_version()}
    run = _create(client, _experiment(client, uri, root), name, {**inherited, **(tags or {})},
                  inherited)
    log.info("%s: MLflow run %s at %s", job, run.run_id, uri)
    try:
        yield run
    except BaseException:
        run.finish(failed=True)
        raise
    run.finish()
