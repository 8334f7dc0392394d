"""Focal and MiLe token losses against hand-computed values on a 3-token vocabulary, the causal
shift and ignored positions, Hugging Face's own loss for `ce`, and the config keys."""

from __future__ import annotations

import math

import pytest
import torch

from hourglass.config import ConfigError
from hourglass.train.config import TrainConfig
from hourglass.train.losses import batch_loss, shift_labelled, token_loss, token_weights

# Three predictions over a 3-token vocabulary (logits = log p, so softmax gives p back) and the
# token each should have predicted: p_t = 0.7, 0.25, 1/3.
PROBS = [[0.7, 0.2, 0.1], [0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]
TARGETS = [0, 1, 2]
# -log p_t: -ln 0.7, ln 4, ln 3
CE = [0.35667494393873245, 1.3862943611198906, 1.0986122886681098]
# focal γ = 2: (1 - p_t)^2 = 0.3^2, 0.75^2, (2/3)^2; mean of weight·CE
FOCAL2_W = [0.09, 0.5625, 0.4444444444444444]
FOCAL2_MEAN = 0.43338781712712066
# entropies: 0.7 ln(1/0.7) + 0.2 ln 5 + 0.1 ln 10, 0.5 ln 2 + 0.5 ln 4, ln 3
ENTROPY = [0.8018185525433372, 1.0397207708399179, 1.0986122886681098]
# MiLe γ = 1: 1 + H; loss Σ w·CE / Σ w
MILE1_W = [1.8018185525433372, 2.039720770839918, 2.0986122886681096]
MILE1_LOSS = 0.9723452465174899
# MiLe γ = 2: (1 + H)^2
MILE2_W = [3.2465500962893667, 4.160460822995789, 4.404173538148801]
MILE2_LOSS = 0.9960106596422226


def _toy() -> tuple[torch.Tensor, torch.Tensor]:
    """One sequence of 4 positions: positions 0..2 predict labels 1..3; position 3 predicts
    nothing (its logits favour a wrong token, to show they are not used), label 0 is never a
    target (a causal LM has no prediction for the first token)."""
    logits = torch.tensor([[*[[math.log(p) for p in row] for row in PROBS], [9.0, -9.0, -9.0]]],
                          dtype=torch.float64)
    labels = torch.tensor([[1, *TARGETS]])
    return logits, labels


def test_toy_cross_entropy_is_the_hand_computed_value():
    loss, n = token_loss(*_toy(), "ce")
    assert n == 3
    assert loss.item() == pytest.approx(sum(CE) / 3, rel=1e-12)


@pytest.mark.parametrize("kind,gamma,weights,loss", [
    ("focal", 2.0, FOCAL2_W, FOCAL2_MEAN),
    ("mile", 1.0, MILE1_W, MILE1_LOSS),
    ("mile", 2.0, MILE2_W, MILE2_LOSS),
])
def test_toy_weights_and_loss_are_the_hand_computed_values(kind, gamma, weights, loss):
    logits, labels = _toy()
    flat, targets = shift_labelled(logits, labels)
    assert targets.tolist() == TARGETS
    got = token_weights(flat, targets, kind, gamma)
    assert got.tolist() == pytest.approx(weights, rel=1e-6)
    assert token_loss(logits, labels, kind, gamma)[0].item() == pytest.approx(loss, rel=1e-6)


def test_mile_weights_are_one_plus_entropy_to_the_gamma():
    logits, labels = _toy()
    got = token_weights(*shift_labelled(logits, labels), "mile", 0.5)
    assert got.tolist() == pytest.approx([(1 + h) ** 0.5 for h in ENTROPY], rel=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11, requires_grad=True)
    labels = torch.randint(0, 11, (3, 7))
    labels[0, :4] = labels[2, 5:] = -100
    focal, n = token_loss(logits, labels, "focal", 0.0)
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11),
                                           labels[:, 1:].reshape(-1))
    assert n == int((labels[:, 1:] != -100).sum())
    torch.testing.assert_close(focal, ce)
    (g_focal,) = torch.autograd.grad(focal, logits)
    (g_ce,) = torch.autograd.grad(ce, logits)
    torch.testing.assert_close(g_focal, g_ce)


def test_ignored_positions_and_padding_rows_do_not_count():
    logits, labels = _toy()
    pad = torch.zeros_like(logits)  # a second row labelled nowhere but its first position
    batch = torch.cat([logits, pad]), torch.cat([labels, torch.tensor([[2, -100, -100, -100]])])
    for kind, gamma, want in (("ce", 0.0, sum(CE) / 3), ("focal", 2.0, FOCAL2_MEAN),
                              ("mile", 1.0, MILE1_LOSS)):
        loss, n = token_loss(*batch, kind, gamma)
        assert n == 3 and loss.item() == pytest.approx(want, rel=1e-6)
    masked = labels.clone()
    masked[0, 2] = -100  # drop the middle target: the other two remain
    loss, n = token_loss(logits, masked, "focal", 2.0)
    assert n == 2
    assert loss.item() == pytest.approx((FOCAL2_W[0] * CE[0] + FOCAL2_W[2] * CE[2]) / 2)


def test_no_labelled_token_gives_zero_with_a_graph():
    logits = torch.randn(1, 3, 5, requires_grad=True)
    loss, n = token_loss(logits, torch.full((1, 3), -100), "mile", 1.0)
    assert n == 0 and loss.item() == 0.0 and loss.requires_grad


def test_focal_weight_has_a_graph_and_mile_weight_does_not():
    logits = torch.randn(4, 6, requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3])
    assert token_weights(logits, targets, "focal", 2.0).requires_grad
    assert not token_weights(logits, targets, "mile", 1.0).requires_grad


def test_focal_gradient_is_finite_at_certainty():
    logits = torch.tensor([[[0.0, 0.0], [200.0, -200.0]]], requires_grad=True)
    loss, _ = token_loss(logits, torch.tensor([[0, 0]]), "focal", 0.5)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all()


def _tiny_lm():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=13, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16)).eval()


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[1, 4, 5, 6, 7, 2], [1, 8, 9, 2, 0, 0]])
    labels = torch.tensor([[-100, -100, -100, 6, 7, 2], [-100, -100, 9, 2, -100, -100]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}


def test_batch_loss_is_the_model_loss_for_ce_and_the_token_loss_otherwise():
    model, batch = _tiny_lm(), _batch()
    with torch.no_grad():
        hf = model(**batch)
        assert batch_loss(model, batch, "ce", 0.0).item() == hf.loss.item()  # the same call
        # and the pure function agrees with the model's own cross-entropy
        torch.testing.assert_close(token_loss(hf.logits, batch["labels"], "ce")[0], hf.loss)
        for kind, gamma in (("focal", 2.0), ("mile", 1.0)):
            got = batch_loss(model, batch, kind, gamma)
            want, n = token_loss(hf.logits, batch["labels"], kind, gamma)
            assert n == 5
            torch.testing.assert_close(got, want)
        # every focal weight is < 1 (an untrained model's MiLe weights are nearly equal, so
        # MiLe stays near CE here; the toy tests tell them apart)
        assert batch_loss(model, batch, "focal", 2.0).item() < 0.99 * hf.loss.item()


@pytest.mark.parametrize("keys,key", [
    ({"loss": "dice"}, "loss"),
    ({"loss": "focal", "focal_gamma": -1.0}, "focal_gamma"),
    ({"loss": "mile", "mile_gamma": -0.5}, "mile_gamma"),
    ({"mile_gamma": float("nan")}, "mile_gamma"),
    ({"focal_gamma": float("inf")}, "focal_gamma"),
])
def test_invalid_loss_keys_are_named(tmp_path, keys, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        TrainConfig.from_dict({"output_root": str(tmp_path), **keys})


def test_loss_gamma_follows_the_loss(tmp_path):
    base = {"output_root": str(tmp_path), "focal_gamma": 3.0, "mile_gamma": 0.5}
    assert TrainConfig.from_dict(base).loss == "ce"
    assert TrainConfig.from_dict(base).loss_gamma == 0.0
    assert TrainConfig.from_dict({**base, "loss": "focal"}).loss_gamma == 3.0
    assert TrainConfig.from_dict({**base, "loss": "mile"}).loss_gamma == 0.5
    assert TrainConfig.from_dict({"output_root": str(tmp_path)}).focal_gamma == 2.0
    assert TrainConfig.from_dict({"output_root": str(tmp_path)}).mile_gamma == 1.0
