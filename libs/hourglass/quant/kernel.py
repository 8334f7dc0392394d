"""Greedy residual encoding (paper eq. 1–2) as one float32 GEMM per layer and row chunk.

For every layer `c_l = argmin_m ||r_l − C_{l,m}||²` and `r_{l+1} = r_l − C_{l,c_l}`. The
`||r||²` term does not change the argmin, so the distances are `||C||² − 2·r·Cᵀ`, computed in one
GEMM by appending a constant 1 to `r` and the row `||C||²` to `−2·Cᵀ`.

Why the kernel is *exact* and not merely close: a float32 GEMM rounds, so two codewords whose
distances differ by less than the rounding error could swap, and the swap would depend on the
BLAS, the CPU, the GPU and the batch boundaries. The kernel therefore bounds the rounding error of
every row (`tie_tolerance`), and for the rare rows whose best two GEMM distances are closer than
that bound it recomputes the candidates' distances in float64 from the differences and takes
the lowest index among the minima. The codes are thus identical to a naive float64 numpy
reference (ties to the lowest index) whatever the hardware, which is what makes "the same inputs
give the same codes" hold at table scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNIT_ROUNDOFF_F32 = 2.0**-24
# TF32 tensor cores keep 10 mantissa bits; the bound stays rigorous when torch allows them.
UNIT_ROUNDOFF_TF32 = 2.0**-10
TARGET_BLOCK_BYTES = 4 << 20  # distance block per chunk (measured best on 2 cores, D=128)


@dataclass(frozen=True)
class Encoded:
    """Codes `(n, L)` int32 and the residual norm after each layer `(n, L)` float32."""

    codes: np.ndarray
    residual_norms: np.ndarray


def as_codebooks(codebooks: np.ndarray) -> np.ndarray:
    """Validate and return `(L, M, D)` float32 C-contiguous codewords."""
    C = np.ascontiguousarray(codebooks, dtype=np.float32)
    if C.ndim != 3 or min(C.shape) < 1:
        raise ValueError(f"codebooks must have shape (L, M, D), got {C.shape}")
    if not np.isfinite(C).all():
        raise ValueError("codebooks contain NaN or inf")
    return C


def as_rows(X: np.ndarray, dim: int) -> np.ndarray:
    """Validate and return `(n, D)` float32 C-contiguous rows."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != dim:
        raise ValueError(f"expected rows of shape (n, {dim}), got {X.shape}")
    return X


def row_norms(R: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, float32."""
    return np.sqrt(np.einsum("ij,ij->i", R, R))


def default_chunk_rows(M: int) -> int:
    """Rows per GEMM: big enough to amortise the BLAS call (and thread wake-up) overhead, small
    enough that the distance block stays a few MB, so worker memory is bounded by it."""
    return int(np.clip(TARGET_BLOCK_BYTES // (4 * M), 512, 4096))


def _error_bound(r_norm, c_norm, dim: int, u: float):
    """Upper bound on |GEMM distance − exact distance| for a row and a codeword of these norms.

    The augmented dot product has K = D+1 terms; any summation order (blocked, FMA, parallel)
    errs by at most γ_K·Σ|x_i·y_i| ≤ γ_K·(2‖r‖‖c‖ + ‖c‖²), plus u·‖c‖² for rounding ‖c‖² to
    float32. Works on numpy arrays and torch tensors alike.
    """
    k = dim + 1
    gamma = k * u / (1.0 - k * u)
    return gamma * (2.0 * r_norm * c_norm + c_norm * c_norm) + u * c_norm * c_norm


def tie_tolerance(r_norm, dmin, best_norm, c_max: float, dim: int, u: float):
    """How close to the GEMM minimum another codeword must be to possibly tie or beat it.

    Any codeword m at least as close as the chosen one has ‖c_m‖ ≤ ‖r‖ + ‖r − c_best‖, and
    ‖r − c_best‖² ≤ d̃_min + E_best + ‖r‖², so its GEMM distance is at most d̃_min + E_best + E_m
    with E_m bounded at that norm. Bounding by the row's own scale (not the largest codeword of
    the layer) keeps the tolerance tight when residuals are tiny next to some codewords. A 2x
    margin covers subnormals and the rounding of the bound itself.
    """
    e_best = _error_bound(r_norm, best_norm, dim, u)
    rho2 = dmin + e_best + r_norm * r_norm
    rho = rho2.clip(min=0) ** 0.5
    c_bound = (r_norm + rho).clip(max=c_max)
    return 2.0 * (e_best + _error_bound(r_norm, c_bound, dim, u))


def _refine(R64: np.ndarray, C64: np.ndarray, d: np.ndarray, dmin: np.ndarray,
            tol: np.ndarray) -> np.ndarray:
    """Exact codes for ambiguous rows: float64 distances of every candidate within `tol`."""
    out = np.empty(len(R64), dtype=np.int64)
    for i in range(len(R64)):
        cands = np.flatnonzero(d[i] <= dmin[i] + tol[i])
        diff = R64[i][None, :] - C64[cands]
        out[i] = cands[np.argmin((diff * diff).sum(axis=1))]
    return out


@dataclass(frozen=True)
class LayerOperands:
    """One layer's GEMM operands over its distinct codewords (duplicates can never win: the
    first copy has the same distance and a lower index); `keep` maps back to codebook indices."""

    keep: np.ndarray  # (M',) ascending codebook indices of the distinct codewords
    augmented: np.ndarray  # (D+1, M') float32: rows −2·Cᵀ then ‖C‖²
    c_norms: np.ndarray  # (M',) float64
    c64: np.ndarray  # (M', D) float64, for the exact refinement

    @classmethod
    def build(cls, C: np.ndarray) -> LayerOperands:
        _, first = np.unique(C, axis=0, return_index=True)
        keep = np.sort(first)
        c64 = C[keep].astype(np.float64)
        norms2 = (c64 * c64).sum(axis=1)
        aug = np.concatenate([-2.0 * C[keep].T, norms2[None, :].astype(np.float32)], axis=0)
        return cls(keep, np.ascontiguousarray(aug, dtype=np.float32), np.sqrt(norms2), c64)


class GreedyEncoder:
    """Greedy residual encoder for one codebook set; build once per worker, call per batch."""

    def __init__(self, codebooks: np.ndarray, chunk_rows: int | None = None):
        self.codebooks = as_codebooks(codebooks)
        L, M, D = self.codebooks.shape
        self.num_layers, self.size, self.dim = L, M, D
        self.chunk_rows = chunk_rows or default_chunk_rows(M)
        self.layers = [LayerOperands.build(self.codebooks[i]) for i in range(L)]
        self.refined_rows = 0  # ambiguous rows resolved in float64 (diagnostic)

    def encode(self, X: np.ndarray) -> Encoded:
        """Codes and residual norms of `(n, D)` rows; exact, ties to the lowest index."""
        X = as_rows(X, self.dim)
        n, L = len(X), self.num_layers
        codes = np.empty((n, L), dtype=np.int32)
        norms = np.empty((n, L), dtype=np.float32)
        rows = min(self.chunk_rows, max(n, 1))
        buf = np.ones((rows, self.dim + 1), dtype=np.float32)
        dist = np.empty((rows, self.size), dtype=np.float32)
        for start in range(0, n, self.chunk_rows):
            stop = min(start + self.chunk_rows, n)
            self._encode_chunk(X[start:stop], buf[: stop - start], dist[: stop - start],
                               codes[start:stop], norms[start:stop])
        return Encoded(codes, norms)

    def _encode_chunk(self, X: np.ndarray, buf: np.ndarray, dist: np.ndarray,
                      codes: np.ndarray, norms: np.ndarray) -> None:
        rows = np.arange(len(X))
        R = buf[:, : self.dim]
        R[...] = X  # buf[:, D] stays 1: the column that adds ‖C‖²
        r_norm = row_norms(X)
        for layer, op in enumerate(self.layers):
            d = dist[:, : len(op.keep)]
            np.matmul(buf, op.augmented, out=d)
            best = d.argmin(axis=1)
            dmin = d[rows, best]
            d[rows, best] = np.inf
            second = d.min(axis=1)
            d[rows, best] = dmin
            tol = tie_tolerance(r_norm.astype(np.float64), dmin.astype(np.float64),
                                op.c_norms[best], float(op.c_norms.max()), self.dim,
                                UNIT_ROUNDOFF_F32)
            ambiguous = np.flatnonzero(second - dmin <= tol)
            if len(ambiguous):
                best[ambiguous] = _refine(R[ambiguous].astype(np.float64), op.c64,
                                          d[ambiguous], dmin[ambiguous], tol[ambiguous])
                self.refined_rows += len(ambiguous)
            code = op.keep[best]
            R -= self.codebooks[layer][code]
            codes[:, layer] = code
            r_norm = row_norms(R)
            norms[:, layer] = r_norm


def encode_greedy(X: np.ndarray, codebooks: np.ndarray, chunk_rows: int | None = None) -> Encoded:
    """One-shot greedy encoding (see `GreedyEncoder` to reuse the prepared codebooks)."""
    return GreedyEncoder(codebooks, chunk_rows).encode(X)


def reconstruct(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Paper eq. 3: x̂ = Σ_l C_{l, c_l}, float32 `(n, D)`."""
    C = as_codebooks(codebooks)
    out = np.zeros((len(codes), C.shape[2]), dtype=np.float32)
    for layer in range(C.shape[0]):
        out += C[layer][codes[:, layer]]
    return out
