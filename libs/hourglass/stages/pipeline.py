"""The whole pipeline as an ordered list of stage steps read from one YAML/JSON file.

Each step names a stage and carries that stage's config keys; `output_root` is shared. Steps
run in order in one Spark session, each a normal stage run (same tables, same lineage), so the
pipeline is exactly the sequence of `jobs/<stage>.py` runs a scheduler would make.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import TYPE_CHECKING, Any

from hourglass.config import ConfigError, StageConfig, require
from hourglass.logs import log
from hourglass.spark.progress import spark_step

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# stage name → (module under hourglass.stages, config class name)
STAGES: dict[str, tuple[str, str]] = {
    "ingest": ("ingest", "IngestConfig"),
    "embed_items": ("embed_items", "EmbedItemsConfig"),
    "synthesize": ("synthesize", "SynthesizeConfig"),
    "train_codebooks": ("train_codebooks", "TrainCodebooksConfig"),
    "encode_items": ("encode_items", "EncodeItemsConfig"),
    "hourglass_stats": ("hourglass_stats", "HourglassStatsConfig"),
    "rewrite_sids": ("rewrite_sids", "RewriteSidsConfig"),
    "build_sft_data": ("build_sft_data", "BuildSftDataConfig"),
    "evaluate": ("evaluate", "EvaluateConfig"),
    "ablation": ("ablation", "AblationConfig"),
    "report": ("report", "ReportConfig"),
}


def stage_entry(name: str):
    """(config class, run function) of a registered stage."""
    if name not in STAGES:
        raise ConfigError(f"config key 'stage': unknown stage {name!r}; known: {sorted(STAGES)}")
    module_name, cls_name = STAGES[name]
    module = importlib.import_module(f"hourglass.stages.{module_name}")
    return getattr(module, cls_name), module.run


@dataclasses.dataclass
class PipelineConfig(StageConfig):
    """Ordered `steps` (each {stage: name, ...its config}); `only` runs a subset by name.

    Keys:
        steps: ordered stages, each a mapping {stage: name, ...that stage's keys}
        only: run only the steps of these stages; empty: all
        overrides: step keys set at run time, each stage.key=value, applied to every step of
            that stage (e.g. ingest.items_path=s3a://bucket/<date>/items.jsonl, from a
            scheduler's run parameters); comma-separated on the command line
    """

    steps: list[dict] = dataclasses.field(default_factory=list)
    only: list[str] = dataclasses.field(default_factory=list)
    overrides: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        require(bool(self.steps), "steps", "needs at least one step")
        for i, step in enumerate(self.steps):
            require(isinstance(step, dict) and "stage" in step, f"steps[{i}]",
                    "each step is a mapping with a 'stage' key")
        names = [s["stage"] for s in self.steps]
        unknown = [n for n in self.only if n not in names]
        require(not unknown, "only", f"names no step: {unknown}")
        unknown = [s for s in self.stage_overrides() if s not in names]
        require(not unknown, "overrides", f"names no step of the pipeline: {unknown}")
        for step in self.steps:  # fail on any bad step config before the first stage runs
            self.step_config(step)

    def given_overrides(self) -> list[str]:
        """The overrides, blanks left out (a scheduler passes "" when a run sets none)."""
        return [o.strip() for o in self.overrides if o.strip()]

    def stage_overrides(self) -> dict[str, dict[str, str]]:
        """{stage: {key: value}} of the overrides; one not of the form stage.key=value is a
        ConfigError naming it."""
        out: dict[str, dict[str, str]] = {}
        for item in self.given_overrides():
            target, sep, value = item.partition("=")
            stage, _, key = target.partition(".")
            require(bool(sep and stage and key), "overrides", f"{item!r} is not stage.key=value")
            out.setdefault(stage, {})[key] = value
        return out

    def preflight(self) -> None:
        for step in self.steps:
            if not self.only or step["stage"] in self.only:
                self.step_config(step).preflight()

    def step_config(self, step: dict[str, Any]) -> StageConfig:
        cfg_cls, _ = stage_entry(step["stage"])
        body = {k: v for k, v in step.items() if k != "stage"}
        body.update(self.stage_overrides().get(step["stage"], {}))
        body.setdefault("output_root", self.output_root)
        try:
            return cfg_cls.from_dict(body)
        except ConfigError as exc:
            raise ConfigError(f"step '{step['stage']}': {exc}") from exc


@dataclasses.dataclass
class StepResult:
    stage: str
    seconds: float
    result: Any


def run(spark: SparkSession, cfg: PipelineConfig) -> list[StepResult]:
    results = []
    for step in cfg.steps:
        if cfg.only and step["stage"] not in cfg.only:
            continue
        step_cfg = cfg.step_config(step)
        _, run_stage = stage_entry(step["stage"])
        log.info("pipeline: stage %s starts", step["stage"])
        start = time.perf_counter()
        with spark_step(spark, step["stage"], step_cfg.summary(), bar=True):
            result = run_stage(spark, step_cfg)
        elapsed = time.perf_counter() - start
        log.info("pipeline: stage %s done in %.1fs: %s", step["stage"], elapsed, result)
        results.append(StepResult(step["stage"], round(elapsed, 1), result))
    return results


def report_paths(results: list[StepResult]) -> list[str]:
    """index.html of every report step that ran, in order."""
    return [r.result.path for r in results if r.stage == "report"]
