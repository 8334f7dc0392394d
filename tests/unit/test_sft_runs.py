"""Fine-tune runs keyed by what they train on, and the pairing of models with SID versions.

Tables are real Delta tables written with `deltalake` (no Spark); model folders hold the
`hourglass_sft.json` the trainer writes. The trained end-to-end case is
tests/e2e/test_scheduled_reruns.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hourglass.config import ConfigError
from hourglass.errors import InputError
from hourglass.train.config import TrainConfig
from hourglass.train.layout import META_FILE, RESULT_FILE, RUN_FILE, run_folder_name
from hourglass.train.runs import (
    ModelMismatchError,
    find_model,
    finished_result,
    plan_run,
    run_dir_of,
)


def _write_sids(root: Path, codebook: str, mode: str = "overwrite") -> None:
    table = pa.table({"item_id": ["i0", "i1"], "tokens": [["<a_0>"], ["<a_1>"]],
                      "strategy": ["none", "none"], "source_codebook_id": [codebook] * 2})
    write_deltalake(str(root / "item_sids_rw"), table, mode=mode)


def _write_sft(root: Path, mode: str = "overwrite") -> None:
    table = pa.table({"user_id": ["u"], "split": ["train"], "strategy": ["none"]})
    write_deltalake(str(root / "sft_examples"), table, mode=mode)


def _cfg(root: Path, **kw) -> TrainConfig:
    return TrainConfig.from_dict({"output_root": str(root), "strategy": "none", **kw})


def test_run_folder_is_keyed_by_versions_and_codebook(tmp_path):
    _write_sids(tmp_path, "cb0123456789abcdef")
    _write_sft(tmp_path)
    first = plan_run(_cfg(tmp_path))
    assert (first.sft_version, first.sids_version, first.codebook_id) == (
        0, 0, "cb0123456789abcdef")
    assert first.run_dir == str(tmp_path / "sft_runs" / "none" / "sft0-sids0-cb0123456789")
    assert plan_run(_cfg(tmp_path)) == first  # unchanged inputs: the same run
    _write_sids(tmp_path, "cbffff")  # new codebook → new SIDs → new SFT data
    _write_sft(tmp_path)
    second = plan_run(_cfg(tmp_path))
    assert second.run_dir == str(tmp_path / "sft_runs" / "none" / "sft1-sids1-cbffff")
    old = plan_run(_cfg(tmp_path, sft_version=0, sids_version=0))  # time travel
    assert old.run_dir == first.run_dir


def test_scheduler_run_id_names_the_folder_and_keeps_its_inputs(tmp_path):
    _write_sids(tmp_path, "cb1")
    _write_sft(tmp_path)
    run_id = "scheduled__2026-12-01T03:00:00+00:00"
    cfg = _cfg(tmp_path, scheduler_run_id=run_id)
    folder = tmp_path / "sft_runs" / "none" / "scheduled__2026-12-01T03_00_00_00_00"
    assert cfg.fixed_run_dir() == str(folder) == run_dir_of(cfg)
    assert run_folder_name(run_id) == folder.name
    plan = plan_run(cfg)
    folder.mkdir(parents=True)
    (folder / RUN_FILE).write_text(json.dumps(plan.record()))
    _write_sids(tmp_path, "cb2")  # a retry of the same scheduled run after new SIDs landed
    again = plan_run(cfg)
    assert (again.sids_version, again.codebook_id) == (0, "cb1")  # resumes on its own data
    with pytest.raises(ConfigError, match="sids_version=0"):  # exit status 2: fix the config
        plan_run(_cfg(tmp_path, scheduler_run_id=run_id, sids_version=1))
    with pytest.raises(ConfigError, match="scheduler_run_id"):
        _cfg(tmp_path, scheduler_run_id="..")


def test_finished_run_is_recognised_only_for_its_inputs_and_steps(tmp_path):
    _write_sids(tmp_path, "cb1")
    _write_sft(tmp_path)
    cfg = _cfg(tmp_path, max_steps=5)
    plan = plan_run(cfg)
    final = Path(plan.run_dir) / "final"
    final.mkdir(parents=True)
    assert finished_result(plan, 5) is None
    (final / META_FILE).write_text(json.dumps({**plan.record(), "steps": 5}))
    (Path(plan.run_dir) / RESULT_FILE).write_text(json.dumps({"steps": 5, "train_loss": 1.0}))
    assert finished_result(plan, 5) == {"steps": 5, "train_loss": 1.0}
    assert finished_result(plan, 8) is None  # a bigger budget resumes from the checkpoint


def _model(folder: Path, sids: int, sft: int, codebook: str = "cb") -> Path:
    (folder / "final").mkdir(parents=True)
    (folder / "final" / META_FILE).write_text(json.dumps(
        {"sids_version": sids, "sft_version": sft, "codebook_id": codebook}))
    return folder


def test_find_model_pairs_a_model_only_with_its_own_sids(tmp_path):
    runs = tmp_path / "none"
    _model(runs / "sft0-sids0-cbA", 0, 0, "cbA")
    _model(runs / "sft1-sids1-cbB", 1, 1, "cbB")
    _model(runs / "sft2-sids1-cbB", 1, 2, "cbB")  # SFT data rebuilt on the same SIDs
    assert find_model(runs, 0, "item_sids_rw").model_dir == str(runs / "sft0-sids0-cbA" / "final")
    assert find_model(runs, 1, "item_sids_rw").sft_version == 2  # the newest SFT data
    with pytest.raises(ModelMismatchError, match=r"trained on versions \[0, 1\].*--sids_version 1"):
        find_model(runs, 3, "item_sids_rw")
    with pytest.raises(FileNotFoundError):
        find_model(tmp_path / "topk_4", 0, "item_sids_rw")


def test_a_named_model_is_refused_against_other_sids(tmp_path):
    runs = tmp_path / "none"
    _model(runs / "nightly_7", 4, 6, "cb7")
    with pytest.raises(ModelMismatchError, match="trained on item_sids_rw version 4 .*reads "
                                                 "version 5.*--sids_version 4"):
        find_model(runs, 5, "item_sids_rw", scheduler_run_id="nightly:7")
    assert find_model(runs, 4, "item_sids_rw", "nightly:7").codebook_id == "cb7"
    flat = _model(tmp_path / "ablation" / "none", 2, 2)  # a run folder given as output_dir
    assert find_model(flat, 2, "item_sids_rw").model_dir == str(flat / "final")
    with pytest.raises(ModelMismatchError):
        find_model(flat, 3, "item_sids_rw")
    (tmp_path / "old" / "final").mkdir(parents=True)  # a model without the record
    with pytest.raises(ModelMismatchError, match="records no table versions"):
        find_model(tmp_path / "old", 0, "item_sids_rw")


def test_another_objective_trains_in_its_own_folder_and_evaluation_picks_the_default(tmp_path):
    _write_sids(tmp_path, "cb0123456789abcdef")
    _write_sft(tmp_path)
    base = plan_run(_cfg(tmp_path)).run_dir
    given = plan_run(_cfg(tmp_path, given_prefix=1)).run_dir
    focal = plan_run(_cfg(tmp_path, loss="focal", given_prefix=1)).run_dir
    assert given == base + "-given1" and focal == base + "-given1-focal2"
    assert plan_run(_cfg(tmp_path, loss="mile", mile_gamma=0.5)).run_dir == base + "-mile0.5"
    runs = tmp_path / "none"
    _model(runs / "sft0-sids0-cbA", 0, 0, "cbA")
    _model(runs / "sft0-sids0-cbA-given1", 0, 0, "cbA")
    assert find_model(runs, 0, "item_sids_rw").model_dir == str(runs / "sft0-sids0-cbA" / "final")
    _model(tmp_path / "only" / "sft0-sids0-cbA-focal2", 0, 0, "cbA")
    _model(tmp_path / "only" / "sft0-sids0-cbA-mile1", 0, 0, "cbA")
    with pytest.raises(InputError, match="2 models .* other objectives"):
        find_model(tmp_path / "only", 0, "item_sids_rw")
