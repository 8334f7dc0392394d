"""Codebook artifact: round trip, content hash, LATEST pointer, encoder-in-front (RQ-VAE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hourglass.quant.artifact import (
    ArtifactEncoder,
    ArtifactError,
    build_artifact,
    load_artifact,
    mlp_arrays,
    mlp_forward,
    resolve_artifact,
    save_artifact,
    write_latest,
)
from hourglass.quant.kernel import encode_greedy


def make(rng, method: str = "rq_kmeans", **kw):
    C = rng.standard_normal((3, 8, 6)).astype(np.float32)
    return build_artifact(C, method, dim=6, seed=1, sample_size=100,
                          distortion=[0.5, 0.25, 0.125], **kw)


def test_round_trip_gives_same_codes(rng, tmp_path):
    art = make(rng, lineage={"inputs": {"t": 3}})
    path = save_artifact(art, str(tmp_path))
    assert Path(path).name == art.codebook_id
    loaded = load_artifact(path)
    assert loaded.manifest == art.manifest
    assert {k: v.tolist() for k, v in loaded.arrays.items()} == {
        k: v.tolist() for k, v in art.arrays.items()}
    X = rng.standard_normal((200, 6)).astype(np.float32)
    a, b = ArtifactEncoder(art).encode(X), ArtifactEncoder(loaded).encode(X)
    np.testing.assert_array_equal(a.codes, b.codes)
    m = loaded.manifest
    assert (m["L"], m["M"], m["D"], m["method"], m["seed"], m["sample_size"]) == (
        3, 8, 6, "rq_kmeans", 1, 100)


def test_id_is_content_hash_not_provenance(rng):
    a = make(np.random.default_rng(0), lineage={"inputs": {"t": 1}})
    b = make(np.random.default_rng(0), lineage={"inputs": {"t": 2}})
    c = make(np.random.default_rng(1))
    assert a.codebook_id == b.codebook_id != c.codebook_id
    d = build_artifact(a.codebooks, "rq_kmeans", 6, 2, 100, [0.5, 0.25, 0.125])
    assert d.codebook_id != a.codebook_id  # the seed is part of the content


@pytest.mark.parametrize("tamper", ["array", "manifest"])
def test_load_refuses_tampered_artifact(rng, tmp_path, tamper):
    path = Path(save_artifact(make(rng), str(tmp_path)))
    if tamper == "array":
        with np.load(path / "arrays.npz") as z:
            arrays = {k: z[k] for k in z.files}
        arrays["codebooks"][0, 0, 0] += 1e-3
        np.savez(path / "arrays.npz", **arrays)
    else:
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["distortion"][0] = 0.1
        (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="hash"):
        load_artifact(str(path))


def test_latest_pointer_and_idempotent_save(rng, tmp_path):
    art = make(rng)
    root = str(tmp_path / "codebooks")
    assert save_artifact(art, root) == save_artifact(art, root)
    write_latest(root, art.codebook_id)
    assert resolve_artifact(root) == str(Path(root) / art.codebook_id)
    assert resolve_artifact(str(Path(root) / art.codebook_id)).endswith(art.codebook_id)
    with pytest.raises(ArtifactError):
        resolve_artifact(str(tmp_path / "nowhere"))
    with pytest.raises(ArtifactError):
        load_artifact(str(tmp_path / "nowhere"))


def test_encoder_runs_before_quantizing(rng, tmp_path):
    W1, b1 = rng.standard_normal((10, 6)).astype(np.float32), rng.standard_normal(10).astype(
        np.float32)
    W2, b2 = rng.standard_normal((4, 10)).astype(np.float32), np.zeros(4, np.float32)
    C = rng.standard_normal((2, 8, 4)).astype(np.float32)
    arrays = {"encoder.0.weight": W1, "encoder.0.bias": b1,
              "encoder.1.weight": W2, "encoder.1.bias": b2}
    art = build_artifact(C, "rq_vae", 6, 0, 50, [1.0, 0.5], extra_arrays=arrays)
    loaded = load_artifact(save_artifact(art, str(tmp_path)))
    X = rng.standard_normal((100, 6)).astype(np.float32)
    z = np.maximum(X @ W1.T + b1, 0) @ W2.T + b2  # independent forward pass
    np.testing.assert_allclose(mlp_forward(X, loaded.encoder_layers), z, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ArtifactEncoder(loaded).encode(X).codes,
                                  encode_greedy(z, C).codes)
    with pytest.raises(ValueError, match="shape"):
        ArtifactEncoder(loaded).encode(z)  # latent-sized input is the wrong D


def test_mlp_layers_survive_save_and_load(tmp_path, rng):
    """The array-name format is written and read in one module: layers come back in order."""
    def layer(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
        return (rng.standard_normal((n_out, n_in)).astype(np.float32),
                rng.standard_normal(n_out).astype(np.float32))

    enc, dec = [layer(5, 6), layer(4, 5)], [layer(6, 4)]
    C = rng.standard_normal((2, 8, 4)).astype(np.float32)
    art = build_artifact(C, "rq_vae", dim=6, seed=1, sample_size=50, distortion=[0.5, 0.2],
                         extra_arrays=mlp_arrays(enc, dec))
    loaded = load_artifact(save_artifact(art, str(tmp_path)))
    for got, want in ((loaded.encoder_layers, enc), (loaded.decoder_layers, dec)):
        assert len(got) == len(want)
        for (W, b), (W0, b0) in zip(got, want, strict=True):
            np.testing.assert_array_equal(W, W0)
            np.testing.assert_array_equal(b, b0)
