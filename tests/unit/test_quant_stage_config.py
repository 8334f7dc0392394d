"""Configs of train_codebooks and encode_items: defaults, key-naming errors, job exit code."""

from __future__ import annotations

import pytest

from hourglass.config import ConfigError
from hourglass.stages.common import main_for
from hourglass.stages.encode_items import EncodeItemsConfig
from hourglass.stages.train_codebooks import TrainCodebooksConfig


def test_defaults_suit_the_demo_and_sections_are_stage_names():
    cfg = TrainCodebooksConfig.from_dict({"output_root": "out"})
    assert (cfg.method, cfg.num_layers, cfg.codebook_size) == ("rq_kmeans", 3, 128)
    assert cfg.codebooks_dir() == "out/codebooks"
    assert TrainCodebooksConfig.section() == "train_codebooks"
    assert EncodeItemsConfig.section() == "encode_items"


@pytest.mark.parametrize(("cls", "data", "key"), [
    (TrainCodebooksConfig, {"output_root": "o", "method": "pq"}, "method"),
    (TrainCodebooksConfig, {"output_root": "o", "codebook_size": 1}, "codebook_size"),
    (TrainCodebooksConfig, {"output_root": "o", "sample_size": 10}, "sample_size"),
    (TrainCodebooksConfig, {"output_root": "o", "balanced_layers": [4]}, "balanced_layers"),
    (TrainCodebooksConfig, {"output_root": "o", "balance_slack": 0.5}, "balance_slack"),
    (TrainCodebooksConfig, {}, "codebooks_root"),
    (EncodeItemsConfig, {"output_root": "o", "device": "tpu"}, "device"),
    (EncodeItemsConfig, {}, "codebook_path"),
    (EncodeItemsConfig, {"output_root": "o", "chunk_rows": -1}, "chunk_rows"),
])
def test_invalid_values_name_the_key(cls, data, key):
    with pytest.raises(ConfigError, match=key):
        cls.from_dict(data)


def test_job_exits_2_on_unknown_flag_before_spark_starts(capsys):
    def never(spark, cfg):
        raise AssertionError("must not run")

    with pytest.raises(SystemExit) as exc:
        main_for(EncodeItemsConfig, never, "t", argv=["--output_root", "o", "--codebok_path", "x"])
    assert exc.value.code == 2
    assert "codebok_path" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["rq_kmeans", "rq_balanced", "rq_vae"])
def test_each_method_trains_an_artifact_that_encodes(method):

    from hourglass.quant.artifact import ArtifactEncoder, build_artifact
    from hourglass.quant.synthetic import synthetic_block
    from hourglass.stages.train_codebooks import _train

    X = synthetic_block(0, 600, 600, 12, 10, 1.0, 0.3, seed=2)[1]
    cfg = TrainCodebooksConfig.from_dict({
        "output_root": "o", "method": method, "codebook_size": 8, "sample_size": 600,
        "kmeans_iters": 3, "balance_iters": 2, "rqvae_epochs": 2, "rqvae_latent_dim": 4,
        "rqvae_hidden_dims": [16], "device": "cpu", "cpu_threads": 1})
    books, distortion, arrays, extra = _train(cfg, X)
    art = build_artifact(books, method, 12, cfg.seed, len(X), distortion, arrays, extra)
    assert art.codebooks.shape == (3, 8, 4 if method == "rq_vae" else 12)
    assert len(art.encoder_layers) == (2 if method == "rq_vae" else 0)
    codes = ArtifactEncoder(art).encode(X).codes
    assert codes.shape == (600, 3) and codes.max() < 8
