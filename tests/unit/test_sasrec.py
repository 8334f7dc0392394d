"""SASRec baseline: causal, on the SID model's split, ranks as numpy would, and it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hourglass.baselines.sasrec import SasRec, SasRecConfig, full_ranks, rank_windows, train_sasrec
from hourglass.baselines.sequences import ItemIndex, encode_windows, loo_windows
from hourglass.evaluation.metrics import ndcg_at, recall_at
from hourglass.sft.examples import user_examples


def test_position_scores_are_causal():
    torch.manual_seed(0)
    model = SasRec(30, SasRecConfig(hidden=16, layers=2, heads=2, max_len=8)).eval()
    seq = torch.tensor([[0, 0, 3, 7, 12, 5, 9, 21]])
    later = seq.clone()
    later[0, 5:] = torch.tensor([28, 1, 2])
    with torch.no_grad():
        a, b = model.position_scores(seq), model.position_scores(later)
    torch.testing.assert_close(a[0, :5], b[0, :5], rtol=0, atol=0)
    assert not torch.allclose(a[0, 5:], b[0, 5:])  # the changed positions do see their input
    assert torch.isfinite(a).all()  # padding-only prefixes attend to themselves, no NaN


def test_windows_match_the_sft_definition():
    events = {"u1": [(5, "c"), (1, "a"), (3, "b"), (9, "e"), (7, "d")],
              "u2": [(2, "x"), (1, "y")],  # too short: no windows
              "u3": [(4, "q"), (4, "p"), (6, "r")]}  # tie on ts: item_id orders
    got = loo_windows(events, history_max_items=2)
    assert got == [
        ("u1", "train", ("a",), "b"), ("u1", "train", ("a", "b"), "c"),
        ("u1", "valid", ("b", "c"), "d"), ("u1", "test", ("c", "d"), "e"),
        ("u3", "valid", ("p",), "q"), ("u3", "test", ("p", "q"), "r"),
    ]
    sids = {i: (f"<a_{i}>",) for i in "abcdepqrxy"}
    reference = [(e.user_id, e.split, e.history, e.target_item_id)
                 for u in sorted(events) for e in user_examples(u, events[u], sids, 2)]
    assert got == reference


def test_encoding_left_pads_and_keeps_the_newest():
    windows = [("u", "train", ("a",), "b"), ("u", "train", ("a", "b", "c"), "d"),
               ("u", "test", ("b",), "c")]
    enc = encode_windows(windows, ItemIndex.of("abcd"), max_len=2, split="train")
    np.testing.assert_array_equal(enc.history, [[0, 1], [2, 3]])  # ids = catalog row + 1
    np.testing.assert_array_equal(enc.target, [1, 3])
    with pytest.raises(KeyError):
        encode_windows([("u", "train", ("z",), "a")], ItemIndex.of("ab"), 2, "train")


def test_ranks_equal_a_stable_numpy_argsort():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 6, size=(40, 25)).astype(np.float32)  # many ties on purpose
    targets = rng.integers(0, 25, size=40)
    order = np.argsort(-scores, axis=1, kind="stable")
    expected = np.array([int(np.where(order[u] == targets[u])[0][0]) + 1 for u in range(40)])
    got = full_ranks(torch.from_numpy(scores), torch.from_numpy(targets)).numpy()
    np.testing.assert_array_equal(got, expected)


def _pattern_windows(n_users: int, seed: int, n_items: int = 40, length: int = 7):
    """Every user walks the cycle next = (3·prev + 1) mod n_items from a random start."""
    rng = np.random.default_rng(seed)
    seqs = {}
    for u in range(n_users):
        item = int(rng.integers(n_items))
        seq = []
        for t in range(length):
            seq.append((t, f"i{item:02d}"))
            item = (3 * item + 1) % n_items
        seqs[f"s{seed}u{u}"] = seq
    return loo_windows(seqs, history_max_items=5)


def test_learns_a_deterministic_pattern_on_held_out_users():
    index = ItemIndex.of(f"i{i:02d}" for i in range(40))
    fit, held_out = _pattern_windows(120, seed=0), _pattern_windows(60, seed=1)
    cfg = SasRecConfig(hidden=32, layers=1, heads=2, dropout=0.0, max_len=5, lr=5e-3,
                       batch_size=64, max_epochs=40, patience=3, seed=7, threads=1)
    res = train_sasrec(encode_windows(fit, index, 5, "train"),
                       encode_windows(fit, index, 5, "valid"), len(index), cfg)
    test = encode_windows(held_out, index, 5, "test")
    assert recall_at(rank_windows(res.model, test), 1) >= 0.95
    # the returned checkpoint is the best validated one, and it scores what was recorded
    best = max((h["valid_recall@10"], h["valid_ndcg@10"]) for h in res.history)
    assert (res.best_valid_recall, res.best_valid_ndcg) == best
    ranks = rank_windows(res.model, encode_windows(fit, index, 5, "valid"))
    assert (recall_at(ranks, 10), ndcg_at(ranks, 10)) == best


def test_untrained_model_does_not_pass_the_pattern_bar():
    index = ItemIndex.of(f"i{i:02d}" for i in range(40))
    torch.manual_seed(0)
    model = SasRec(len(index), SasRecConfig(hidden=32, layers=1, heads=2, max_len=5))
    test = encode_windows(_pattern_windows(60, seed=1), index, 5, "test")
    assert recall_at(rank_windows(model, test), 1) < 0.2
