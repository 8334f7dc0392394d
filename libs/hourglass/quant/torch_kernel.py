"""The greedy kernel of `kernel.py` in torch, for executors (or drivers) with a GPU.

Same algorithm, same error bound, same float64 refinement of ambiguous rows on the host, so the
codes equal the numpy path's exactly; only the GEMM and the top-2 selection run on the device.
Tested against numpy with torch on the CPU.
"""

from __future__ import annotations

import numpy as np

from hourglass.quant.kernel import (
    UNIT_ROUNDOFF_F32,
    UNIT_ROUNDOFF_TF32,
    Encoded,
    GreedyEncoder,
    _refine,
    as_rows,
    tie_tolerance,
)


def resolve_device(device: str) -> str:
    """`auto` → `cuda` when torch sees a GPU, else `cpu`; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class TorchGreedyEncoder:
    """Greedy residual encoder whose GEMMs run on a torch device."""

    def __init__(self, codebooks: np.ndarray, device: str = "cpu", chunk_rows: int = 65536):
        import torch

        self._host = GreedyEncoder(codebooks)  # shared operands and float64 refinement
        self.device = torch.device(resolve_device(device))
        self.dim, self.num_layers = self._host.dim, self._host.num_layers
        self.chunk_rows = chunk_rows
        self.layers = [(torch.from_numpy(op.augmented).to(self.device),
                        torch.from_numpy(op.c_norms).to(self.device),
                        torch.from_numpy(op.keep).to(self.device), op)
                       for op in self._host.layers]
        self.codebooks = torch.from_numpy(self._host.codebooks).to(self.device)
        self.refined_rows = 0

    def _unit_roundoff(self) -> float:
        import torch

        tf32 = self.device.type == "cuda" and (
            torch.backends.cuda.matmul.allow_tf32
            or torch.get_float32_matmul_precision() != "highest"
        )
        return UNIT_ROUNDOFF_TF32 if tf32 else UNIT_ROUNDOFF_F32

    def encode(self, X: np.ndarray) -> Encoded:
        """Codes and residual norms, identical to `GreedyEncoder.encode`."""
        import torch

        X = as_rows(X, self.dim)
        n, L = len(X), self.num_layers
        codes = np.empty((n, L), dtype=np.int32)
        norms = np.empty((n, L), dtype=np.float32)
        u = self._unit_roundoff()
        with torch.inference_mode():
            for start in range(0, n, self.chunk_rows):
                stop = min(start + self.chunk_rows, n)
                c, r = self._encode_chunk(torch.from_numpy(X[start:stop]).to(self.device), u)
                codes[start:stop], norms[start:stop] = c, r
        return Encoded(codes, norms)

    def _encode_chunk(self, X, u: float) -> tuple[np.ndarray, np.ndarray]:
        import torch

        n = X.shape[0]
        buf = torch.ones((n, self.dim + 1), dtype=torch.float32, device=self.device)
        buf[:, : self.dim] = X
        R = buf[:, : self.dim]
        r_norm = torch.linalg.vector_norm(R, dim=1)
        codes, norms = [], []
        for layer, (aug, c_norms, keep, op) in enumerate(self.layers):
            d = buf @ aug
            if d.shape[1] > 1:
                top = torch.topk(d, 2, dim=1, largest=False, sorted=True)
                best, dmin = top.indices[:, 0], top.values[:, 0]
                gap = top.values[:, 1] - dmin
            else:
                best = torch.zeros(n, dtype=torch.int64, device=self.device)
                dmin, gap = d[:, 0], torch.full((n,), float("inf"), device=self.device)
            tol = tie_tolerance(r_norm.double(), dmin.double(), c_norms[best],
                                float(op.c_norms.max()), self.dim, u)
            ambiguous = torch.nonzero(gap.double() <= tol).flatten()
            if len(ambiguous):
                exact = _refine(R[ambiguous].double().cpu().numpy(), op.c64,
                                d[ambiguous].cpu().numpy(), dmin[ambiguous].cpu().numpy(),
                                tol[ambiguous].cpu().numpy())
                best[ambiguous] = torch.from_numpy(exact).to(self.device)
                self.refined_rows += len(ambiguous)
            code = keep[best]
            R -= self.codebooks[layer][code]
            r_norm = torch.linalg.vector_norm(R, dim=1)
            codes.append(code.to(torch.int32))
            norms.append(r_norm)
        return (torch.stack(codes, 1).cpu().numpy(), torch.stack(norms, 1).cpu().numpy())


def encode_greedy_torch(X: np.ndarray, codebooks: np.ndarray, device: str = "cpu") -> Encoded:
    """One-shot torch greedy encoding on `device` (`cpu`, `cuda`, `cuda:1`, `auto`)."""
    return TorchGreedyEncoder(codebooks, device).encode(X)
