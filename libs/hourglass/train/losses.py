"""Token losses of the fine-tune (`sft_train` `loss`): cross-entropy, focal, MiLe.

The paper's Table 2 compares them on the SID target tokens. Each is a per-token weight on the
cross-entropy of the labelled tokens (the target SID and `</s>`, plus the history items with
`loss_on: all_items`): whatever `labels` marks, so every `loss_on` mode gets the same loss.

- `ce`: weight 1, the mean cross-entropy (the model's own loss, paper eq. 4).
- `focal` (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017):
  FL_t = -(1 - p_t)^γ · log p_t, p_t the target token's probability; γ = 2 is the paper's
  choice. As in the paper the factor is part of the graph (gradients flow through it) and the
  loss is the plain mean over tokens, so it is smaller than CE by the weights.
- `mile` (Su et al., "MiLe Loss: a New Loss for Mitigating the Bias of Learning Difficulties in
  Generative Language Models", Findings of NAACL 2024, arXiv:2310.19531): the difficulty of a
  token is the entropy H_t = -Σ_v p_v log p_v of the predicted distribution over the whole
  vocabulary, and L_t = -(σ + H_t)^γ · log p_t with σ = 1 (a certain prediction keeps weight 1).
  The authors' code (github.com/suu990901/LLaMA-MiLe-Loss, `InfoEntropyLoss`) computes H_t on
  detached logits ("to stay stable") and divides by the batch mean of the weights, so the loss
  stays on the scale of CE; their released configs use γ = 1. We do the same per micro-batch:
  the loss is Σ w_t·CE_t / Σ w_t over the labelled tokens (their code also averages that factor
  over ranks; each rank's own factor differs from it only by batch noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

LOSSES = ("ce", "focal", "mile")
IGNORE_INDEX = -100  # label of a position without loss, as in Hugging Face models


def shift_labelled(logits: torch.Tensor, labels: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits [N, V], at least float32, targets [N]) of the N labelled positions, shifted as a
    Hugging Face causal LM does: the logits at position i predict the label at i + 1."""
    import torch

    logits = logits[:, :-1]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 → float32
    targets = labels[:, 1:].to(logits.device)
    keep = targets != IGNORE_INDEX
    return logits[keep], targets[keep]


def token_weights(logits: torch.Tensor, targets: torch.Tensor, kind: str,
                  gamma: float) -> torch.Tensor:
    """Each labelled token's weight on its cross-entropy (before MiLe's normalisation).

    `logits` [N, V] and `targets` [N] are already shifted (`shift_labelled`). Focal weights keep
    their graph; MiLe weights are detached, as in the authors' code.
    """
    import torch

    if kind == "ce":
        return torch.ones_like(targets, dtype=logits.dtype)
    logp = torch.log_softmax(logits, dim=-1)
    if kind == "focal":
        # 1 - p_t as -expm1(log p_t): exact near p_t = 1; clamped off 0 so that the gradient of
        # x^γ stays finite there (γ < 1) and γ = 0 gives exactly 1 with a zero gradient
        one_minus = -torch.expm1(logp.gather(-1, targets[:, None])[:, 0])
        return one_minus.clamp_min(torch.finfo(logp.dtype).tiny) ** gamma
    if kind == "mile":
        with torch.no_grad():
            entropy = torch.special.entr(logp.exp()).sum(dim=-1)
        return (1.0 + entropy) ** gamma
    raise ValueError(f"unknown loss {kind!r}; known: {LOSSES}")


def token_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ce",
               gamma: float = 0.0) -> tuple[torch.Tensor, int]:
    """(loss, labelled tokens) of a batch: the weighted cross-entropy of the labelled tokens,
    divided by their count (ce, focal) or by the sum of the weights (mile).

    `logits` [B, T, V] and `labels` [B, T] as the model sees them (unshifted, IGNORE_INDEX off
    the loss). Without a labelled token the loss is 0, still attached to the graph.
    """
    import torch

    flat, targets = shift_labelled(logits, labels)
    n = int(targets.numel())
    if n == 0:
        return logits.sum() * 0.0, 0
    ce = torch.nn.functional.cross_entropy(flat, targets, reduction="none")
    weights = token_weights(flat, targets, kind, gamma)
    norm = weights.sum() if kind == "mile" else n
    return (weights * ce).sum() / norm, n


def batch_loss(model: Any, batch: dict[str, Any], kind: str, gamma: float) -> torch.Tensor:
    """The training loss of one batch for `model` (a Hugging Face causal LM or the DeepSpeed
    engine around one). `ce` is the model's own loss, unchanged; the others come from the
    logits of a forward without labels, which skips the model's own loss."""
    if kind == "ce":
        return model(**batch).loss
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return token_loss(logits, batch["labels"], kind, gamma)[0]
