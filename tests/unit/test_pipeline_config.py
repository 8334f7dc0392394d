"""The pipeline file: every step of the shipped demo parses before Spark starts, mistakes in a
step are named with the step, and the report's path is what the job prints last."""

from __future__ import annotations

from pathlib import Path

import pytest

from hourglass.config import ConfigError
from hourglass.stages.pipeline import STAGES, PipelineConfig, StepResult, report_paths, stage_entry
from hourglass.stages.report import ReportResult

ROOT = Path(__file__).resolve().parents[2]


def test_demo_config_validates_every_step():
    cfg = PipelineConfig.from_args(["--config", str(ROOT / "configs" / "demo.yaml")])
    stages = [s["stage"] for s in cfg.steps]
    assert stages[0] == "ingest" and stages[-1] == "report"
    assert {"embed_items", "train_codebooks", "encode_items", "hourglass_stats",
            "rewrite_sids", "ablation"} <= set(stages)


@pytest.mark.parametrize(("steps", "only", "needle"), [
    ([{"stage": "no_such_stage"}], [], "unknown stage"),
    ([{"stage": "encode_items", "no_such_key": 1}], [], "step 'encode_items'"),
    ([{"stage": "encode_items"}], ["report"], "only"),
    (["encode_items"], [], "config key 'steps'"),
])
def test_bad_steps_are_named(steps, only, needle):
    with pytest.raises(ConfigError, match=needle):
        PipelineConfig.from_dict({"output_root": "/tmp/x", "steps": steps, "only": only})


def test_report_paths_lists_report_steps_in_order():
    def report(path: str) -> StepResult:
        return StepResult("report", 1.0, ReportResult(path=path, runs=[], figures=0,
                                                      tables_read={}))

    results = [StepResult("ingest", 1.0, object()), report("/a/index.html"),
               StepResult("encode_items", 1.0, object()), report("/b/index.html")]
    assert report_paths(results) == ["/a/index.html", "/b/index.html"]
    assert report_paths(results[:1]) == []


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_stage_section_is_named_like_the_stage(stage):
    """A pipeline step and a job's own section find the job's keys by this one name."""
    cfg_cls, _ = stage_entry(stage)
    assert cfg_cls.section() == stage
