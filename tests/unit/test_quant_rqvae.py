"""RQ-VAE: reconstruction beats a random codebook of the same size by a clear margin."""

from __future__ import annotations

import numpy as np

from hourglass.quant.kernel import encode_greedy, reconstruct
from hourglass.quant.rqvae import RQVAEParams, train_rqvae
from hourglass.quant.synthetic import synthetic_block

PARAMS = RQVAEParams(latent_dim=8, hidden_dims=(64,), epochs=30, batch_size=256, lr=3e-3,
                     kmeans_iters=5, device="cpu", cpu_threads=1)


def random_codebook(rng, X: np.ndarray, L: int, M: int, from_data: bool) -> np.ndarray:
    """L×M random codewords in input space: layer 1 random data rows (or data-scaled Gaussians
    around the mean), each later layer Gaussian at half the previous scale."""
    first = (X[rng.choice(len(X), M, replace=False)] if from_data
             else X.mean(0) + rng.standard_normal((M, X.shape[1])) * X.std(0))
    rest = [rng.standard_normal((M, X.shape[1])) * X.std(0) * 0.5**i for i in range(1, L)]
    return np.stack([first, *rest]).astype(np.float32)


def mse(X: np.ndarray, C: np.ndarray) -> float:
    return float(np.mean(((reconstruct(encode_greedy(X, C).codes, C) - X) ** 2).sum(1)))


def test_reconstruction_beats_random_codebook():
    X = synthetic_block(0, 3000, 3000, 32, 40, 1.0, 0.5, seed=3)[1]
    L, M = 3, 16
    fit = train_rqvae(X, L, M, seed=0, params=PARAMS)
    assert fit.codebooks.shape == (L, M, 8)
    assert [W.shape for W, _ in fit.encoder_layers] == [(64, 32), (8, 64)]
    assert [W.shape for W, _ in fit.decoder_layers] == [(64, 8), (32, 64)]
    rng = np.random.default_rng(0)
    random_mse = min(mse(X, random_codebook(rng, X, L, M, from_data)) for from_data in (0, 1)
                     for _ in range(3))
    assert fit.reconstruction_mse < 0.5 * random_mse
    assert fit.distortion[0] > fit.distortion[1] > fit.distortion[2]
    assert len(fit.dead_code_resets) == L


def test_seeded_and_dead_codes_are_reset():
    # 4 tight clusters cannot keep 16 layer-1 codes busy: the unused ones must be reset.
    X = synthetic_block(0, 1000, 1000, 16, 4, 0.0, 0.01, seed=1)[1]
    params = RQVAEParams(latent_dim=4, hidden_dims=(16,), epochs=3, batch_size=200,
                         kmeans_iters=3, device="cpu", cpu_threads=1)
    a = train_rqvae(X, 2, 16, seed=5, params=params)
    b = train_rqvae(X, 2, 16, seed=5, params=params)
    np.testing.assert_array_equal(a.codebooks, b.codebooks)
    assert a.dead_code_resets[0] > 0
