"""SASRec (Kang & McAuley 2018), small and in plain torch: the ID-based baseline of Table 2.

Why each choice, so figures stand next to the generative model's:
- Data: the generative model's own leave-one-out windows (`baselines.sequences`), one
  (history → next item) example each, as RecBole trains SASRec; history capped at the same
  `history_max_items`, left-padded so the newest item always sits at the last position.
- Model: item embeddings + learned positions, pre-norm causal self-attention blocks
  (`nn.TransformerEncoderLayer`), output scores = last hidden state · item embeddings (shared).
  Padding keys are masked; each position may always attend to itself, so an all-padding prefix
  never yields NaN, and no position sees a later one.
- Loss: full softmax cross-entropy over every catalog item (a few thousand here), not the
  original paper's one sampled negative: it is the stronger and the now usual variant.
- Ranking: every catalog item is scored; the target's 1-based rank breaks ties by catalog row
  (a stable argsort of −scores). Items already in the history are NOT removed, as the SID
  evaluation (`decode.ranking`) and the popularity baseline do not remove them.
- Budget and selection: training stops at `max_epochs`, after `max_seconds` of wall time, or
  after `patience` validations without a better validation Recall@10; the returned model is the
  checkpoint with the best validation Recall@10, NDCG@10 breaking ties (Recall@10 saturates on
  easy data while the top of the list still improves). The test split is never looked at.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hourglass.baselines.sequences import PAD, EncodedWindows
from hourglass.evaluation.metrics import ndcg_at, recall_at

SELECT_K = 10  # validation (Recall@10, NDCG@10) picks the checkpoint


@dataclass(frozen=True)
class SasRecConfig:
    """Model shape and training budget (defaults: SASRec's published shape, d=64, 2 blocks)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 2
    ff_mult: int = 4
    dropout: float = 0.2
    max_len: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 200
    max_seconds: float = 0.0  # 0 = no time limit
    patience: int = 5
    seed: int = 0
    threads: int = 0  # 0 = torch's default

    def __post_init__(self) -> None:
        for key in ("hidden", "layers", "heads", "ff_mult", "max_len", "batch_size",
                    "max_epochs", "patience"):
            if getattr(self, key) < 1:
                raise ValueError(f"SasRecConfig.{key} must be >= 1")
        if self.hidden % self.heads:
            raise ValueError(f"SasRecConfig.heads {self.heads} must divide hidden {self.hidden}")
        if not 0.0 <= self.dropout < 1.0 or self.lr <= 0 or self.max_seconds < 0:
            raise ValueError("SasRecConfig: dropout in [0, 1), lr > 0, max_seconds >= 0")


class SasRec(nn.Module):
    """Causal self-attention over item ids; scores every catalog item for the next position."""

    def __init__(self, n_items: int, cfg: SasRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=PAD)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.emb_norm = nn.LayerNorm(cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, cfg.ff_mult * cfg.hidden,
                                       cfg.dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
            for _ in range(cfg.layers))
        self.out_norm = nn.LayerNorm(cfg.hidden)
        for emb in (self.item_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    def attention_mask(self, seq: torch.Tensor) -> torch.Tensor:
        """[B·heads, T, T], True = may not attend: later positions and padding (self allowed)."""
        T = seq.shape[1]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool, device=seq.device))
        real_key = (seq != PAD)[:, None, :]
        diag = torch.eye(T, dtype=torch.bool, device=seq.device)
        allowed = causal & (real_key | diag)
        return (~allowed).repeat_interleave(self.cfg.heads, dim=0)

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, T] ids (0 = pad, newest last) → [B, T, d]; position max_len−1 is the newest."""
        length, max_len = seq.shape[1], self.cfg.max_len
        if length > max_len:
            raise ValueError(f"sequence length {length} > max_len {max_len}")
        pos = torch.arange(max_len - length, max_len, device=seq.device)
        x = self.dropout(self.emb_norm(self.item_emb(seq) + self.pos_emb(pos)[None]))
        mask = self.attention_mask(seq)
        for block in self.blocks:
            x = block(x, src_mask=mask)
        return self.out_norm(x)

    def position_scores(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, T, n_items]: the next-item scores after every position (row i ↔ input id i+1)."""
        return self.hidden_states(seq) @ self.item_emb.weight[1:].T

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, n_items]: next-item scores after the newest position."""
        return self.hidden_states(seq)[:, -1] @ self.item_emb.weight[1:].T


def full_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target row among all items; ties go to the lower row, as a stable
    argsort of −scores orders them."""
    target_score = scores.gather(1, targets[:, None])
    rows = torch.arange(scores.shape[1], device=scores.device)[None]
    ahead = (scores > target_score) | ((scores == target_score) & (rows < targets[:, None]))
    return ahead.sum(dim=1) + 1


@torch.no_grad()
def rank_windows(model: SasRec, data: EncodedWindows, batch_size: int = 1024) -> np.ndarray:
    """The 1-based rank of every window's target under `model` (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    out = []
    for lo in range(0, len(data), batch_size):
        seq = torch.from_numpy(data.history[lo:lo + batch_size])
        out.append(full_ranks(model(seq), torch.from_numpy(data.target[lo:lo + batch_size])))
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


@dataclass
class SasRecResult:
    """The best checkpoint (by validation Recall@10) and the run's record."""

    model: SasRec
    best_epoch: float
    best_valid_recall: float
    best_valid_ndcg: float
    stop_reason: str
    seconds: float
    steps: int
    history: list[dict] = field(default_factory=list)


def train_sasrec(train: EncodedWindows, valid: EncodedWindows, n_items: int, cfg: SasRecConfig,
                 log: logging.Logger | None = None) -> SasRecResult:
    """Full-softmax training with validation every epoch (and when the time budget ends)."""
    if not len(train) or not len(valid):
        raise ValueError("train_sasrec needs train and valid windows")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SasRec(n_items, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    hist_t, target_t = torch.from_numpy(train.history), torch.from_numpy(train.target)
    best = ((-1.0, -1.0), 0.0, copy.deepcopy(model.state_dict()))
    history: list[dict] = []
    t0, steps, stale, reason = time.perf_counter(), 0, 0, "max_epochs"
    n_batches = -(-len(train) // cfg.batch_size)
    for epoch in range(cfg.max_epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(train)))
        total, out_of_time = 0.0, False
        for b in range(n_batches):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            loss = loss_fn(model(hist_t[idx]), target_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
            if cfg.max_seconds and time.perf_counter() - t0 >= cfg.max_seconds:
                out_of_time = True
                break
        ranks = rank_windows(model, valid)
        key = (recall_at(ranks, SELECT_K), ndcg_at(ranks, SELECT_K))
        point = round(epoch + (b + 1) / n_batches, 3)
        history.append({"epoch": point, "train_loss": total / (b + 1),
                        "valid_recall@10": key[0], "valid_ndcg@10": key[1],
                        "seconds": round(time.perf_counter() - t0, 2)})
        if log is not None:
            log.info("sasrec epoch %.2f: loss %.4f, valid Recall@10 %.4f, NDCG@10 %.4f", point,
                     total / (b + 1), *key)
        if key > best[0]:
            best, stale = (key, point, copy.deepcopy(model.state_dict())), 0
        else:
            stale += 1
        if out_of_time:
            reason = "max_seconds"
            break
        if stale >= cfg.patience:
            reason = "patience"
            break
    model.load_state_dict(best[2])
    model.eval()
    return SasRecResult(model=model, best_epoch=best[1], best_valid_recall=best[0][0],
                        best_valid_ndcg=best[0][1],
                        stop_reason=reason, seconds=round(time.perf_counter() - t0, 2),
                        steps=steps, history=history)
