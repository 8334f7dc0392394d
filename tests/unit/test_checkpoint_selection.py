"""`Best`: which step's weights checkpoint selection keeps, when it stops, what survives a
restart."""

from __future__ import annotations

import numpy as np
import pytest

from hourglass.config import ConfigError
from hourglass.train.config import TrainConfig
from hourglass.train.layout import BEST_FILE
from hourglass.train.selection import Best, probe_rows


def test_best_keeps_the_first_top_step_and_stops_after_patience(tmp_path):
    import torch

    model = torch.nn.Linear(2, 1)
    best = Best()
    stops = []
    for step, recall in ((10, 0.1), (20, 0.3), (30, 0.3), (40, 0.2), (50, 0.25)):
        with torch.no_grad():
            model.weight.fill_(float(step))
        stops.append(best.offer(step, recall, model, tmp_path, rank=0, patience=3))
    assert stops == [False, False, False, False, True]
    assert (best.step, best.recall) == (20, 0.3)
    assert float(best.state["weight"][0, 0]) == 20.0  # a copy, not the live tensor
    again = Best.load(tmp_path)
    assert (again.step, again.recall, again.stale) == (20, 0.3, 0)
    assert torch.equal(again.state["weight"], best.state["weight"])


def test_without_patience_it_never_stops_and_other_ranks_write_nothing(tmp_path):
    import torch

    best = Best()
    model = torch.nn.Linear(2, 1)
    assert not any(best.offer(s, 0.5, model, tmp_path, rank=1, patience=0) for s in range(5))
    assert best.step == 0 and not (tmp_path / BEST_FILE).exists()
    assert Best.load(tmp_path).step is None


@pytest.mark.parametrize("keys,bad", [
    ({"select_by": "loss"}, "select_by"),
    ({"select_by": "valid_recall"}, "eval_every"),
    ({"select_by": "valid_recall", "eval_every": 10, "recall_k": 10, "recall_beam": 5},
     "recall_beam"),
    ({"patience": 2}, "patience"),
])
def test_selection_keys_are_checked(tmp_path, keys, bad):
    with pytest.raises(ConfigError, match=bad):
        TrainConfig.from_dict({"output_root": str(tmp_path), **keys})


def test_probe_samples_the_same_users_whatever_the_row_order():
    rng = np.random.default_rng(5)
    users = [f"u{i:03d}" for i in range(200)]
    rows = {"user_id": users, "target_item_id": [f"t{u}" for u in users]}
    picked = probe_rows(rows, 30)
    assert len(picked["user_id"]) == 30 and len(set(picked["user_id"])) == 30
    assert [f"t{u}" for u in picked["user_id"]] == picked["target_item_id"]  # rows stay whole
    for _ in range(3):
        perm = rng.permutation(200)
        shuffled = {k: [v[i] for i in perm] for k, v in rows.items()}
        assert set(probe_rows(shuffled, 30)["user_id"]) == set(picked["user_id"])
    assert set(probe_rows(rows, 500)["user_id"]) == set(users)  # fewer rows than asked: all
