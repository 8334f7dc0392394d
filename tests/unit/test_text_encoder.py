"""The encoder against sentence-transformers' own pipeline for the same model (an independent
implementation of tokenise → mean-pool → normalise)."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.embed.encoder import TextEncoder, default_model_dir

TEXTS = ["Swingline stapler, 20 sheets", "Blue ballpoint pens (12 pack)", "a", "Desk organizer"]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(max_length=128, batch_size=3, threads=1)


def test_unit_norm_and_shape(encoder):
    out = encoder.encode(TEXTS)
    assert out.shape == (4, 384) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_matches_sentence_transformers(encoder):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(default_model_dir(), device="cpu").encode(
        TEXTS, normalize_embeddings=True)
    np.testing.assert_allclose(encoder.encode(TEXTS), ref, atol=2e-4)


def test_batching_does_not_change_results(encoder):
    one = np.vstack([encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(encoder.encode(TEXTS), one, atol=1e-5)
    # related texts are closer than unrelated ones
    e = encoder.encode(["black ink pen", "blue ink pen", "paper shredder"])
    assert e[0] @ e[1] > e[0] @ e[2]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> str:
    from hourglass.embed.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "minilm"
    export_onnx(str(out))
    return str(out)


@pytest.mark.slow
def test_onnx_backend_matches_torch(encoder, onnx_dir):
    """The ONNX export run by ONNX Runtime (what torch-free executors use) embeds like torch."""
    onnx = TextEncoder(onnx_dir, max_length=128, batch_size=3, threads=1, backend="onnx")
    assert onnx.dim == 384
    texts = [*TEXTS, "ergonomic mesh office chair with lumbar support " * 8]
    np.testing.assert_allclose(onnx.encode(texts), encoder.encode(texts), atol=1e-5)


def test_onnx_backend_needs_an_export(tmp_path):
    import shutil

    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy2(f"{default_model_dir()}/{f}", tmp_path)
    with pytest.raises(FileNotFoundError, match="onnx_export"):
        TextEncoder(str(tmp_path), backend="onnx")
    with pytest.raises(ValueError, match="backend"):
        TextEncoder(backend="tensorflow")
