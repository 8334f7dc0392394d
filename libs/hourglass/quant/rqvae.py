"""`rq_vae`: the TIGER-style residual-quantized autoencoder (Rajput et al. 2024) in torch.

Encoder MLP → latent z → L residual codebooks → Σ codewords → decoder MLP → x̂. Loss:
‖x − x̂‖² + Σ_l (‖sg[r_l] − e_l‖² + β‖r_l − sg[e_l]‖²), straight-through gradients to the
encoder. Each codebook starts from residual k-means on the encoded sample (random init collapses
to a few codes), and codes unused for a whole epoch are reset to random current residuals
(dead-code reset), both standard fixes for codebook collapse. It trains on a GPU when one is
present (`device="auto"`), else on the CPU. The exported artifact quantizes the encoder's output
with the same exact greedy kernel as `rq_kmeans`, so encoding needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hourglass.quant.artifact import mlp_forward
from hourglass.quant.kernel import GreedyEncoder, reconstruct
from hourglass.quant.kmeans import train_residual_kmeans


@dataclass(frozen=True)
class RQVAEParams:
    """Architecture and optimisation settings (TIGER: 512-256-128 → 32, β = 0.25)."""

    latent_dim: int = 32
    hidden_dims: tuple[int, ...] = (256, 128)
    epochs: int = 50
    batch_size: int = 512
    lr: float = 1e-3
    beta: float = 0.25
    kmeans_iters: int = 10
    device: str = "auto"
    cpu_threads: int = 0  # 0 keeps torch's default; small models train faster on 1 thread


@dataclass(frozen=True)
class RQVAEFit:
    """Exported weights and figures measured with the numpy export (what encoding will do)."""

    codebooks: np.ndarray
    encoder_layers: list[tuple[np.ndarray, np.ndarray]]
    decoder_layers: list[tuple[np.ndarray, np.ndarray]]
    distortion: list[float]  # mean ‖r_{l+1}‖² in latent space after each layer
    reconstruction_mse: float  # mean ‖x − x̂‖² over the sample
    dead_code_resets: list[int] = field(default_factory=list)
    device: str = "cpu"


def _mlp(sizes: list[int]):
    import torch.nn as nn

    mods: list = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def _export(seq) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch.nn as nn

    return [(m.weight.detach().cpu().numpy().astype(np.float32),
             m.bias.detach().cpu().numpy().astype(np.float32))
            for m in seq if isinstance(m, nn.Linear)]


def _quantize(z, books, beta: float):
    """Greedy residual quantization of a batch; returns z_q, codes (n, L) and the VQ loss."""
    import torch
    import torch.nn.functional as F

    r, z_q, codes, loss = z, torch.zeros_like(z), [], z.new_zeros(())
    for C in books:
        d = (C * C).sum(1)[None, :] - 2.0 * r.detach() @ C.detach().T
        idx = d.argmin(1)
        e = C[idx]
        loss = loss + F.mse_loss(e, r.detach()) + beta * F.mse_loss(r, e.detach())
        z_q = z_q + e
        r = r - e.detach()
        codes.append(idx)
    return z + (z_q - z).detach(), torch.stack(codes, 1), loss


def train_rqvae(X: np.ndarray, num_layers: int, size: int, seed: int,
                params: RQVAEParams | None = None) -> RQVAEFit:
    """Train on `(n, D)` rows; deterministic for a seed on a given device and thread count."""
    import torch

    p = params or RQVAEParams()
    threads = torch.get_num_threads()
    if p.cpu_threads:
        torch.set_num_threads(p.cpu_threads)
    try:
        return _train(X, num_layers, size, seed, p)
    finally:
        torch.set_num_threads(threads)


def _train(X: np.ndarray, num_layers: int, size: int, seed: int, p: RQVAEParams) -> RQVAEFit:
    import torch

    from hourglass.quant.torch_kernel import resolve_device

    device = torch.device(resolve_device(p.device))
    torch.manual_seed(seed)
    X = np.ascontiguousarray(X, dtype=np.float32)
    n, D = X.shape
    encoder = _mlp([D, *p.hidden_dims, p.latent_dim]).to(device)
    decoder = _mlp([p.latent_dim, *reversed(p.hidden_dims), D]).to(device)
    with torch.no_grad():  # k-means init of every codebook on the initial latents
        z0 = mlp_forward(X, _export(encoder))
    init = train_residual_kmeans(z0, num_layers, size, p.kmeans_iters, seed).codebooks
    books = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(c.copy()).to(device))
                                    for c in init])
    params_all = [*encoder.parameters(), *decoder.parameters(), *books.parameters()]
    opt = torch.optim.Adam(params_all, lr=p.lr)
    data = torch.from_numpy(X).to(device)
    gen = torch.Generator().manual_seed(seed)
    resets = [0] * num_layers
    for _ in range(p.epochs):
        used = torch.zeros((num_layers, size), dtype=torch.bool, device=device)
        for batch in torch.randperm(n, generator=gen).split(p.batch_size):
            x = data[batch.to(device)]
            z_q, codes, vq_loss = _quantize(encoder(x), books, p.beta)
            loss = torch.nn.functional.mse_loss(decoder(z_q), x) + vq_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            used[torch.arange(num_layers, device=device)[None, :].expand_as(codes), codes] = True
        _reset_dead(encoder, books, data, used, gen, resets)
    enc, dec = _export(encoder), _export(decoder)
    C = np.stack([b.detach().cpu().numpy() for b in books]).astype(np.float32)
    z = mlp_forward(X, enc)
    out = GreedyEncoder(C).encode(z)
    x_hat = mlp_forward(reconstruct(out.codes, C), dec)
    return RQVAEFit(
        codebooks=C, encoder_layers=enc, decoder_layers=dec,
        distortion=[float(np.mean(out.residual_norms[:, i].astype(np.float64) ** 2))
                    for i in range(num_layers)],
        reconstruction_mse=float(np.mean(((x_hat - X).astype(np.float64) ** 2).sum(1))),
        dead_code_resets=resets, device=str(device),
    )


def _reset_dead(encoder, books, data, used, gen, resets: list[int]) -> None:
    """Move codes unused this epoch onto random residuals of a fresh batch, layer by layer."""
    import torch

    with torch.no_grad():
        pick = torch.randperm(len(data), generator=gen)[:4096].to(data.device)
        r = encoder(data[pick])
        for layer, C in enumerate(books):
            dead = torch.nonzero(~used[layer]).flatten()
            d = (C * C).sum(1)[None, :] - 2.0 * r @ C.T
            if len(dead):
                src = torch.randint(len(r), (len(dead),), generator=gen).to(data.device)
                C[dead] = r[src]
                resets[layer] += len(dead)
            r = r - C[d.argmin(1)]
