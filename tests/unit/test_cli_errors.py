"""What a person sees when a job fails for an expected reason, and what --help tells them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hourglass.cli import JOBS, expected_errors, split_debug
from hourglass.config import ConfigError, key_docs
from hourglass.errors import CONFIG_ERROR, INPUT_ERROR, TableNotFoundError
from hourglass.quant.artifact import ArtifactError, build_artifact, load_artifact, save_artifact
from hourglass.train.runs import ModelMismatchError


@pytest.mark.parametrize("name", sorted(JOBS))
def test_help_documents_every_key_with_type_default_and_meaning(name):
    cls = JOBS[name].config_class()
    docs = key_docs(cls)
    text = " ".join(cls.arg_parser(JOBS[name].script).format_help().split())
    for f in dataclasses.fields(cls):
        assert len(docs.get(f.name, "")) > 10, f"{cls.__name__}.{f.name} has no meaning"
        assert f"--{f.name} " in text
        assert " ".join(docs[f.name].split()) in text
    assert "--debug" in text and "(default: " in text


def test_validation_runs_at_construction_so_replace_cannot_build_an_invalid_config():
    from hourglass.stages.evaluate import EvaluateConfig

    cfg = EvaluateConfig.from_dict({"output_root": "/t", "run_id": "r"})
    with pytest.raises(ConfigError, match="beam_size"):
        dataclasses.replace(cfg, beam_size=0)
    with pytest.raises(ConfigError, match="run_id"):
        EvaluateConfig(output_root="/t")


def test_expected_errors_are_one_line_with_their_exit_status(capsys):
    cases = [(ConfigError("config key 'k': must be >= 1"), CONFIG_ERROR),
             (TableNotFoundError("Delta table not found: /t/items; run ingest"), INPUT_ERROR),
             (ModelMismatchError("trained on version 3"), INPUT_ERROR)]
    for exc, status in cases:
        with pytest.raises(SystemExit) as stop, expected_errors("hourglass-x"):
            raise exc
        assert stop.value.code == status
        assert capsys.readouterr().err == f"hourglass-x: error: {exc}\n"
    with pytest.raises(ModelMismatchError), expected_errors("hourglass-x", debug=True):
        raise ModelMismatchError("shown with its traceback")
    with pytest.raises(KeyError), expected_errors("hourglass-x"):
        raise KeyError("a bug keeps its traceback")
    assert split_debug(["--debug", "--k", "1"]) == (["--k", "1"], True)


def test_a_missing_column_from_spark_is_an_input_error(capsys):
    from pyspark.errors import AnalysisException

    exc = AnalysisException(
        message="[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column `codes` cannot be resolved.",
        errorClass="UNRESOLVED_COLUMN.WITH_SUGGESTION")
    with pytest.raises(SystemExit) as stop, expected_errors("hourglass-x"):
        raise exc
    assert stop.value.code == INPUT_ERROR
    assert "`codes` cannot be resolved" in capsys.readouterr().err
    other = AnalysisException(message="[DIVIDE_BY_ZERO] x", errorClass="DIVIDE_BY_ZERO")
    with pytest.raises(AnalysisException), expected_errors("hourglass-x"):
        raise other


@pytest.mark.parametrize("damage", ["truncated", "not a zip", "missing"])
def test_a_damaged_arrays_file_is_the_artifacts_own_error(tmp_path, damage):
    C = np.random.default_rng(0).standard_normal((2, 4, 3)).astype(np.float32)
    path = Path(save_artifact(build_artifact(C, "rq_kmeans", 3, 1, 10, [0.5, 0.2]),
                              str(tmp_path)))
    arrays = path / "arrays.npz"
    if damage == "truncated":
        arrays.write_bytes(arrays.read_bytes()[:-40])
    elif damage == "not a zip":
        arrays.write_bytes(b"PK\x03\x04 overwritten")
    else:
        arrays.unlink()
    with pytest.raises(ArtifactError, match="re-run train_codebooks") as err:
        load_artifact(str(path))
    assert err.value.exit_status == INPUT_ERROR


def test_sft_train_without_its_input_tables_is_an_input_error(tmp_path, capsys):
    """The fine-tune reads Delta with `deltalake`, not Spark: a missing table is still exit 3."""
    from hourglass.train.config import TrainConfig
    from hourglass.train.runs import plan_run

    cfg = TrainConfig.from_dict({"output_root": str(tmp_path / "empty"), "strategy": "none"})
    with pytest.raises(SystemExit) as stop, expected_errors("hourglass-sft-train"):
        plan_run(cfg)
    assert stop.value.code == INPUT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("hourglass-sft-train: error: Delta table not found: ")
    assert "sft_examples" in err and len(err.splitlines()) == 1
