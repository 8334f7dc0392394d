"""The greedy kernel against a naive float64 numpy reference; torch and beam variants."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.quant.beam import encode_beam
from hourglass.quant.kernel import GreedyEncoder, encode_greedy, reconstruct
from hourglass.quant.torch_kernel import encode_greedy_torch


def naive_encode(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paper eq. 1–2 literally: float64 distances from differences, first minimum wins."""
    R = X.astype(np.float32).copy()
    codes, norms = [], []
    for layer in range(C.shape[0]):
        diff = R.astype(np.float64)[:, None, :] - C[layer].astype(np.float64)[None]
        c = np.argmin((diff * diff).sum(axis=2), axis=1)
        R = R - C[layer][c]
        codes.append(c)
        norms.append(np.sqrt((R.astype(np.float64) ** 2).sum(axis=1)))
    return np.stack(codes, 1), np.stack(norms, 1)


def layered(rng, L: int, M: int, D: int) -> np.ndarray:
    """Codebooks whose scale shrinks per layer, like trained residual codebooks."""
    scale = 0.5 ** np.arange(L)[:, None, None]
    return (rng.standard_normal((L, M, D)) * scale).astype(np.float32)


@pytest.mark.parametrize(("n", "L", "M", "D", "chunk"), [
    (3000, 3, 64, 32, None), (1000, 2, 7, 5, 33), (2000, 4, 256, 16, 512), (1, 3, 8, 4, None),
])
def test_codes_equal_naive_reference(rng, n, L, M, D, chunk):
    X = rng.standard_normal((n, D)).astype(np.float32)
    C = layered(rng, L, M, D)
    ref_codes, ref_norms = naive_encode(X, C)
    out = encode_greedy(X, C, chunk_rows=chunk)
    assert out.codes.dtype == np.int32 and out.codes.shape == (n, L)
    np.testing.assert_array_equal(out.codes, ref_codes)
    np.testing.assert_allclose(out.residual_norms, ref_norms, rtol=1e-5, atol=1e-6)


def test_duplicate_codewords_never_win_over_the_first_copy(rng):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    C = layered(rng, 3, 16, 8)
    C[:, 9] = C[:, 4]  # exact duplicates: index 4 must always win over 9 and 13
    C[:, 13] = C[:, 4]
    out = encode_greedy(X, C)
    np.testing.assert_array_equal(out.codes, naive_encode(X, C)[0])
    assert not np.isin(out.codes, [9, 13]).any() and (out.codes == 4).any()


def test_exact_ties_between_distinct_codewords_go_to_lowest_index(rng):
    # Lattice codewords and points on cell edges and centres: distances tie exactly.
    grid = np.array([[x, y] for x in (0, 2, 4) for y in (0, 2, 4)], dtype=np.float32)
    C = np.stack([grid[rng.permutation(9)], grid[rng.permutation(9)] / 4]).astype(np.float32)
    X = rng.integers(0, 5, size=(400, 2)).astype(np.float32)
    enc = GreedyEncoder(C)
    np.testing.assert_array_equal(enc.encode(X).codes, naive_encode(X, C)[0])
    assert enc.refined_rows > 0  # the ties went through the float64 refinement


def test_hand_computed_tie():
    # x = (1, 1) is at distance 1 from both (0, 1) and (1, 0): index 0 wins, residual (1, 0).
    C = np.array([[[0.0, 1.0], [1.0, 0.0], [5.0, 5.0]]], dtype=np.float32)
    out = encode_greedy(np.array([[1.0, 1.0]], dtype=np.float32), C)
    assert out.codes.tolist() == [[0]]
    assert out.residual_norms.tolist() == [[1.0]]


def test_near_ties_below_float32_resolution_are_exact(rng):
    # Codewords differing in the last float32 bits: GEMM distances cannot separate them.
    base = rng.standard_normal((1, 64, 32)).astype(np.float32) * 100
    C = np.concatenate([base, np.nextafter(base, np.float32(np.inf))], axis=1)
    X = (base[0, rng.integers(0, 64, 400)] + rng.standard_normal((400, 32)) * 1e-3)
    X = X.astype(np.float32)
    np.testing.assert_array_equal(encode_greedy(X, C).codes, naive_encode(X, C)[0])


def test_distortion_falls_layer_by_layer(rng):
    X = rng.standard_normal((2000, 16)).astype(np.float32)
    out = encode_greedy(X, layered(rng, 4, 32, 16))
    assert (np.diff(out.residual_norms.mean(axis=0)) < 0).all()


def test_reconstruction_matches_last_residual(rng):
    X = rng.standard_normal((300, 12)).astype(np.float32)
    C = layered(rng, 3, 16, 12)
    out = encode_greedy(X, C)
    err = np.linalg.norm(X - reconstruct(out.codes, C), axis=1)
    np.testing.assert_allclose(err, out.residual_norms[:, -1], rtol=1e-4, atol=1e-5)


def test_torch_cpu_equals_numpy(rng):
    X = rng.standard_normal((2500, 24)).astype(np.float32)
    C = layered(rng, 3, 128, 24)
    C[:, 100] = C[:, 3]  # ties must resolve identically on both paths
    a, b = encode_greedy(X, C), encode_greedy_torch(X, C, device="cpu")
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.residual_norms, b.residual_norms, rtol=1e-5, atol=1e-6)


def test_rejects_bad_shapes(rng):
    C = layered(rng, 2, 4, 3)
    with pytest.raises(ValueError, match="shape"):
        encode_greedy(np.zeros((2, 4), np.float32), C)
    with pytest.raises(ValueError, match="NaN"):
        encode_greedy(np.zeros((2, 3), np.float32), C * np.nan)


def test_beam_of_one_is_greedy_and_wider_beams_lower_distortion(rng):
    X = rng.standard_normal((1500, 16)).astype(np.float32)
    C = layered(rng, 3, 32, 16)
    greedy = encode_greedy(X, C)
    np.testing.assert_array_equal(encode_beam(X, C, 1).codes, greedy.codes)
    wide = encode_beam(X, C, 8)
    final = wide.residual_norms[:, -1]
    np.testing.assert_allclose(np.linalg.norm(X - reconstruct(wide.codes, C), axis=1), final,
                               rtol=1e-4, atol=1e-5)
    assert np.mean(final**2) < 0.97 * np.mean(greedy.residual_norms[:, -1] ** 2)


def test_beam_agrees_with_faiss_residual_quantizer(rng):
    import faiss

    L, M, D = 3, 16, 16
    X = rng.standard_normal((2000, D)).astype(np.float32)
    C = layered(rng, L, M, D)
    rq = faiss.ResidualQuantizer(D, L, 4)
    faiss.copy_array_to_vector(C.ravel(), rq.codebooks)
    rq.is_trained = True
    for beam in (1, 4):
        rq.max_beam_size = beam
        ref = faiss.unpack_bitstrings(rq.compute_codes(X), L, 4)
        ours = encode_beam(X, C, beam).codes
        assert (ours == ref).all(axis=1).mean() > 0.995


def test_tolerance_scales_with_the_row_not_the_largest_codeword(rng):
    # Residuals of norm ~1e-3 next to a codeword of norm 1e3: a layer-wide bound would send
    # every row to the float64 refinement; the per-row bound keeps refinement to real ties.
    C = (rng.standard_normal((1, 256, 32)) * 1e-3).astype(np.float32)
    C[0, 7] = 1e3
    X = (rng.standard_normal((2000, 32)) * 1e-3).astype(np.float32)
    enc = GreedyEncoder(C)
    np.testing.assert_array_equal(enc.encode(X).codes, naive_encode(X, C)[0])
    assert enc.refined_rows < 0.02 * len(X)
