"""Stage `train_codebooks`: a seeded sample of `item_embeddings` → codebook artifact on the driver.

The sample is chosen by a hash of (item_id, seed), so it is the same whatever the partitioning
or file layout, and training is seeded, so the same table gives the same `codebook_id`. The
artifact goes to `<codebooks_root>/<codebook_id>/` and `<codebooks_root>/LATEST` names it, which
is how `encode_items` (and the pipeline) find it without passing ids around.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

import numpy as np

from hourglass.config import StageConfig, require
from hourglass.logs import log
from hourglass.quant.artifact import (
    METHODS,
    build_artifact,
    mlp_arrays,
    save_artifact,
    write_latest,
)
from hourglass.spark.encode import table_dim
from hourglass.spark.sample import sample_embeddings
from hourglass.spark.tables import lineage, read_table
from hourglass.table_refs import table_ref

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclasses.dataclass
class TrainCodebooksConfig(StageConfig):
    """Train L codebooks of M codewords on a sample of item embeddings (driver-side).

    Keys:
        embeddings_table: input table of item embeddings
        codebooks_root: folder of codebook artifacts (and LATEST); empty: <output_root>/codebooks
        method: rq_kmeans (faiss), rq_balanced (capacity-balanced layers) or rq_vae (torch)
        num_layers: L, the codebook layers (SID length)
        codebook_size: M, the codewords per layer
        sample_size: embeddings sampled (by a seeded hash of item_id) to train on
        kmeans_iters: k-means iterations per layer
        seed: seed of the sample and of training (same table, same codebook_id)
        balanced_layers: 1-based layers trained with capacity-balanced assignment (rq_balanced)
        balance_slack: capacity per codeword as a multiple of n/M (>= 1.0)
        balance_iters: balanced-assignment iterations per layer
        rqvae_latent_dim: latent dimension of the RQ-VAE (rq_vae)
        rqvae_hidden_dims: hidden layer sizes of the RQ-VAE encoder and decoder
        rqvae_epochs: RQ-VAE training epochs
        rqvae_batch_size: RQ-VAE training batch size
        rqvae_lr: RQ-VAE learning rate
        rqvae_beta: weight of the RQ-VAE commitment loss
        device: where rq_vae trains: auto, cpu or cuda[:n]
        cpu_threads: torch threads for rq_vae on CPU; 0: torch's default
    """

    embeddings_table: str = "item_embeddings"
    codebooks_root: str = ""  # empty: <output_root>/codebooks
    method: str = "rq_kmeans"  # rq_kmeans | rq_balanced | rq_vae
    num_layers: int = 3
    codebook_size: int = 128
    sample_size: int = 200_000
    kmeans_iters: int = 20
    seed: int = 42
    balanced_layers: list[int] = dataclasses.field(default_factory=lambda: [2])
    balance_slack: float = 1.0
    balance_iters: int = 10
    rqvae_latent_dim: int = 32
    rqvae_hidden_dims: list[int] = dataclasses.field(default_factory=lambda: [256, 128])
    rqvae_epochs: int = 50
    rqvae_batch_size: int = 512
    rqvae_lr: float = 1e-3
    rqvae_beta: float = 0.25
    device: str = "auto"  # rq_vae training: auto | cpu | cuda
    cpu_threads: int = 0  # torch threads for rq_vae on CPU; 0 keeps torch's default

    def validate(self) -> None:
        require(self.method in METHODS, "method", f"must be one of {', '.join(METHODS)}")
        require(1 <= self.num_layers <= 25, "num_layers", "must be in 1..25")
        require(self.codebook_size >= 2, "codebook_size", "must be >= 2")
        require(self.sample_size >= self.codebook_size, "sample_size",
                "must be >= codebook_size (k-means needs a point per codeword)")
        require(self.kmeans_iters >= 1, "kmeans_iters", "must be >= 1")
        require(all(1 <= x <= self.num_layers for x in self.balanced_layers),
                "balanced_layers", f"layers are 1-based and <= num_layers ({self.num_layers})")
        require(self.balance_slack >= 1.0, "balance_slack", "must be >= 1.0 (capacity ≥ n/M)")
        require(self.balance_iters >= 1, "balance_iters", "must be >= 1")
        require(self.rqvae_latent_dim >= 1, "rqvae_latent_dim", "must be >= 1")
        require(all(h >= 1 for h in self.rqvae_hidden_dims), "rqvae_hidden_dims",
                "sizes must be >= 1")
        require(self.rqvae_epochs >= 1, "rqvae_epochs", "must be >= 1")
        require(self.rqvae_batch_size >= 1, "rqvae_batch_size", "must be >= 1")
        require(self.rqvae_lr > 0, "rqvae_lr", "must be > 0")
        require(self.rqvae_beta >= 0, "rqvae_beta", "must be >= 0")
        require(self.device == "auto" or self.device.startswith(("cpu", "cuda")), "device",
                "must be auto, cpu or cuda[:n]")
        require(self.cpu_threads >= 0, "cpu_threads", "must be >= 0")
        require(bool(self.codebooks_root or self.output_root), "codebooks_root",
                "is required when output_root is empty (catalog tables)")

    def codebooks_dir(self) -> str:
        return self.codebooks_root or table_ref(self.output_root, "codebooks")


@dataclasses.dataclass(frozen=True)
class TrainCodebooksResult:
    """What was trained, where it lives, and its quality on the sample."""

    codebook_id: str
    path: str
    method: str
    num_layers: int
    codebook_size: int
    dim: int
    rows_in_table: int
    sample_rows: int
    distortion: list[float]
    reconstruction_mse: float | None
    train_seconds: float


def _train(cfg: TrainCodebooksConfig, X: np.ndarray):
    """Dispatch to the quantizer; returns codebooks, distortion, extra arrays, extra manifest."""
    from hourglass.quant.kmeans import train_residual_kmeans

    L, M = cfg.num_layers, cfg.codebook_size
    if cfg.method == "rq_vae":
        from hourglass.quant.rqvae import RQVAEParams, train_rqvae

        params = RQVAEParams(
            latent_dim=cfg.rqvae_latent_dim, hidden_dims=tuple(cfg.rqvae_hidden_dims),
            epochs=cfg.rqvae_epochs, batch_size=cfg.rqvae_batch_size, lr=cfg.rqvae_lr,
            beta=cfg.rqvae_beta, kmeans_iters=cfg.kmeans_iters, device=cfg.device,
            cpu_threads=cfg.cpu_threads,
        )
        fit = train_rqvae(X, L, M, cfg.seed, params)
        arrays = mlp_arrays(fit.encoder_layers, fit.decoder_layers)
        extra = {"params": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in dataclasses.asdict(params).items()
                            if k not in ("device", "cpu_threads")},
                 "reconstruction_mse": fit.reconstruction_mse,
                 "dead_code_resets": fit.dead_code_resets}
        return fit.codebooks, fit.distortion, arrays, extra
    trainer = None
    extra: dict = {"params": {"kmeans_iters": cfg.kmeans_iters}}
    if cfg.method == "rq_balanced":
        from hourglass.quant.balanced import balanced_trainer

        trainer = balanced_trainer(tuple(cfg.balanced_layers), cfg.balance_slack,
                                   cfg.balance_iters)
        extra["params"].update(balanced_layers=list(cfg.balanced_layers),
                               balance_slack=cfg.balance_slack, balance_iters=cfg.balance_iters)
    fit = train_residual_kmeans(X, L, M, cfg.kmeans_iters, cfg.seed, layer_trainer=trainer)
    extra.update(reseeded=fit.reseeded, empty_codewords=fit.empty)
    return fit.codebooks, fit.distortion, {}, extra


def run(spark: SparkSession, cfg: TrainCodebooksConfig) -> TrainCodebooksResult:
    """Sample, train, write the artifact and the LATEST pointer."""
    src = read_table(spark, cfg.ref(cfg.embeddings_table))
    dim = table_dim(src.df)
    if dim is None:
        raise ValueError(f"{src.ref} has no embeddings to train on")
    X = sample_embeddings(src.df, dim, cfg.sample_size, cfg.seed)
    if len(X) < cfg.codebook_size:
        raise ValueError(f"{len(X)} valid sample rows < codebook_size {cfg.codebook_size}: "
                         "lower codebook_size or add data")
    started = time.perf_counter()
    codebooks, distortion, arrays, extra = _train(cfg, X)
    seconds = time.perf_counter() - started
    art = build_artifact(codebooks, cfg.method, dim, cfg.seed, len(X), distortion,
                         extra_arrays=arrays, extra=extra,
                         lineage=lineage("train_codebooks", cfg.config_hash(),
                                         {src.ref: src.version}))
    root = cfg.codebooks_dir()
    path = save_artifact(art, root)
    write_latest(root, art.codebook_id)
    result = TrainCodebooksResult(
        codebook_id=art.codebook_id, path=path, method=cfg.method, num_layers=cfg.num_layers,
        codebook_size=cfg.codebook_size, dim=dim, rows_in_table=src.df.count(),
        sample_rows=len(X), distortion=distortion,
        reconstruction_mse=extra.get("reconstruction_mse"), train_seconds=round(seconds, 3),
    )
    log.info("train_codebooks: %s", result)
    return result
