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
    ([{"stage": "ablation", "run_id": "r", "sft": {"history_max_items": 4, "train_stride": 5},
       "train": {"loss_on": "all_items"}}], [], r"train_stride.*\[1, history_max_items\]"),
    ([{"stage": "ablation", "run_id": "r", "sft": {"history_max_items": 4, "train_stride": 4}}],
     [], "train_stride.*loss_on all_items"),
])
def test_bad_steps_are_named(steps, only, needle):
    with pytest.raises(ConfigError, match=needle):
        PipelineConfig.from_dict({"output_root": "/tmp/x", "steps": steps, "only": only})


def test_overrides_set_step_keys_at_run_time():
    """What a scheduler passes per run (input paths, run ids) reaches the steps it names,
    typed by the step's config; a bad override is named before anything runs."""
    demo = str(ROOT / "configs" / "demo.yaml")
    cfg = PipelineConfig.from_args([
        "--config", demo, "--overrides",
        "ingest.items_path=s3a://b/2026-12-07/items.jsonl,hourglass_stats.head_share=0.5"])
    (ingest,) = [cfg.step_config(s) for s in cfg.steps if s["stage"] == "ingest"]
    assert ingest.items_path == "s3a://b/2026-12-07/items.jsonl"
    assert ingest.interactions_path == "data/amazon-office/interactions.csv"  # untouched
    stats = [cfg.step_config(s) for s in cfg.steps if s["stage"] == "hourglass_stats"]
    assert len(stats) > 1 and {s.head_share for s in stats} == {0.5}
    assert PipelineConfig.from_args(["--config", demo, "--overrides", ""]).given_overrides() == []
    for bad, needle in (("ingest.items_path", "not stage.key=value"),
                        ("nostage.key=1", "names no step"),
                        ("ingest.no_such_key=1", "no_such_key"),
                        ("hourglass_stats.head_share=two", "head_share")):
        with pytest.raises(ConfigError, match=needle):
            PipelineConfig.from_args(["--config", demo, "--overrides", bad])


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


def test_cluster_config_validates_in_the_production_shape():
    cfg = PipelineConfig.from_args(["--config", str(ROOT / "configs" / "cluster.yaml")])
    steps = {s["stage"]: cfg.step_config(s) for s in cfg.steps}
    assert (steps["train_codebooks"].num_layers, steps["train_codebooks"].codebook_size) == (
        3, 4096)
    # placeholders are absolute paths or URIs: relative ones would resolve on whichever host
    places = [cfg.output_root, steps["ingest"].items_path, steps["ingest"].interactions_path,
              steps["report"].report_dir]
    assert all(p.startswith(("/", "s3a://")) for p in places), places
    assert {"ingest", "embed_items", "encode_items", "rewrite_sids", "ablation",
            "report"} <= set(steps)


def test_cluster_ablation_takes_the_demo_recipe():
    """The recipe chosen on the CPU (loss on every item, one train window per history length,
    checkpoint by validation Recall) must not drift between the demo and the production file."""
    recipes = []
    for name in ("demo.yaml", "cluster.yaml"):
        cfg = PipelineConfig.from_args(["--config", str(ROOT / "configs" / name)])
        abl = next(cfg.step_config(s) for s in cfg.steps if s["stage"] == "ablation")
        sft = abl.sft_config()
        assert sft.train_stride == sft.history_max_items > 1, name
        train = abl.train_config("none")
        recipes.append((train.loss_on, train.select_by))
    assert recipes[0] == recipes[1] == ("all_items", "valid_recall")


@pytest.mark.parametrize(("name", "steps", "ds"), [("demo.yaml", 200, "zero2_cpu_fp32.json"),
                                                    ("cluster.yaml", 20000, "zero2_gpu_bf16.json")])
def test_sft_train_takes_a_pipeline_files_ablation_budget(name, steps, ds):
    from hourglass.train.config import parse_train_args

    path = str(ROOT / "configs" / name)
    cfg = parse_train_args(["--config", path, "--strategy", "topk(16)"])
    pipe = PipelineConfig.from_args(["--config", path])
    assert (cfg.output_root, cfg.strategy_name) == (pipe.output_root, "topk_16")
    assert (cfg.max_steps, cfg.deepspeed_config) == (steps, ds)


def test_sft_train_docstring_example_parses(monkeypatch):
    """The example at the top of jobs/sft_train.py, launcher flags and all."""
    import shlex

    from hourglass.train.config import parse_train_args

    monkeypatch.chdir(ROOT)
    doc = (ROOT / "jobs" / "sft_train.py").read_text()
    line = next(ln for ln in doc.splitlines() if "jobs/sft_train.py --config configs/" in ln)
    argv = shlex.split(line.split("jobs/sft_train.py", 1)[1])
    cfg = parse_train_args(["--local_rank=0", *argv])
    assert cfg.output_root == "demo-output/tables" and cfg.max_steps == 200


def test_pipeline_file_without_one_ablation_is_refused_for_sft_train(tmp_path):
    from hourglass.train.config import parse_train_args

    f = tmp_path / "p.yaml"
    f.write_text("output_root: /t\nsteps:\n  - stage: encode_items\n")
    with pytest.raises(ConfigError, match="0 ablation steps"):
        parse_train_args(["--config", str(f)])


def test_search_demo_builds_and_trains_one_prompt_mode():
    """configs/demo-search.yaml: the SFT data and the fine-tune agree on query_history (a
    mismatch would be refused at run time), and it reads the derived queries `make demo-search`
    writes, not the bundled files without them."""
    cfg = PipelineConfig.from_args(["--config", str(ROOT / "configs" / "demo-search.yaml")])
    abl = next(cfg.step_config(s) for s in cfg.steps if s["stage"] == "ablation")
    assert abl.sft_config().prompt_mode == abl.train_config("none").prompt_mode == "query_history"
    ingest = next(s for s in cfg.steps if s["stage"] == "ingest")
    assert ingest["interactions_path"] == "demo-output/search/data/interactions.csv"
    make = (ROOT / "Makefile").read_text()
    assert "--out $(DEMO_OUT)/search/data" in make and "DEMO_OUT    ?= demo-output" in make
