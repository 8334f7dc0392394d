from __future__ import annotations

import json

import pytest

from hourglass.config import ConfigError
from hourglass.stages.ablation import AblationConfig, prepare_run_dir
from hourglass.stages.evaluate import EvaluateConfig
from hourglass.train.runs import run_dir_of


def _cfg(tmp_path, **kw):
    return AblationConfig.from_dict({"output_root": str(tmp_path), "run_id": "demo",
                                     "strategies": ["none", "topk(4)"], **kw})


def test_sub_sections_are_tied_to_the_run(tmp_path):
    cfg = _cfg(tmp_path, train={"max_steps": 7}, sft={"history_max_items": 5},
               evaluate={"beam_size": 60, "segments_run_id": "rq"})
    assert cfg.names() == ["none", "topk_4"]
    t = cfg.train_config("topk_4")
    assert (t.max_steps, t.strategy, run_dir_of(t)) == (
        7, "topk_4", str(tmp_path / "sft_runs" / "demo" / "topk_4"))
    e = cfg.eval_config()
    assert (e.run_id, e.strategies, e.beam_size) == ("demo", ["none", "topk_4"], 60)
    assert e.strategy_runs("none") == tmp_path / "sft_runs" / "demo" / "none"
    nightly = _cfg(tmp_path, scheduler_run_id="manual__2026-12-01T00:00:00")
    assert run_dir_of(nightly.train_config("none")) == str(
        tmp_path / "sft_runs" / "demo" / "manual__2026-12-01T00_00_00" / "none")
    assert nightly.eval_config().runs_root == nightly.runs_root()
    assert cfg.sft_config().strategies == ["none", "topk_4"]


def test_train_loss_reaches_every_fine_tune(tmp_path):
    cfg = _cfg(tmp_path, train={"loss": "mile", "mile_gamma": 0.5})
    for name in cfg.names():
        t = cfg.train_config(name)
        assert (t.loss, t.loss_gamma) == ("mile", 0.5)
    with pytest.raises(ConfigError, match="ablation.train: config key 'loss'"):
        _cfg(tmp_path, train={"loss": "dice"})


@pytest.mark.parametrize("kw,key", [
    ({"train": {"max_stepz": 3}}, "ablation.train"),
    ({"train": {"strategy": "none"}}, "train"),
    ({"evaluate": {"run_id": "x"}}, "evaluate"),
    ({"train": {"scheduler_run_id": "x"}}, "train"),
    ({"evaluate": {"beam_size": 10}}, "beam_size"),  # smaller than Recall@50 needs
    ({"launcher": "mpirun"}, "launcher"),
    ({"launcher": "python", "num_procs": 2}, "num_procs"),
    ({"run_id": ""}, "run_id"),
    ({"strategies": ["none", "none"]}, "strategies"),
])
def test_bad_values_fail_before_spark_starts(tmp_path, kw, key):
    with pytest.raises(ConfigError, match=key):
        _cfg(tmp_path, **kw)


def test_evaluate_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="run_id"):
        EvaluateConfig.from_dict({"output_root": str(tmp_path)})
    with pytest.raises(ConfigError, match="split"):
        EvaluateConfig.from_dict({"output_root": str(tmp_path), "run_id": "r", "split": "train"})


def test_run_folder_is_kept_only_for_the_same_data_and_config(tmp_path):
    cfg = _cfg(tmp_path).train_config("none")
    run = tmp_path / "sft_runs" / "demo" / "none"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"sft_version": 3, "sids_version": 1,
                                              "config": cfg.to_dict()}))
    prepare_run_dir(cfg, 3, 1)
    assert (run / "checkpoints").exists()  # same inputs: resume
    prepare_run_dir(cfg, 4, 1)
    assert not run.exists()  # new SFT data: start afresh
    run.mkdir(parents=True)
    prepare_run_dir(cfg, 3, 1)  # no run.json: an unknown folder is not resumed
    assert not run.exists()
