"""The paper study's pure parts: its arms, the cell cache, the tables and the shape criterion."""

from __future__ import annotations

import json

import pytest

from hourglass.study import arms as A
from hourglass.study.cache import CellCache, fingerprint
from hourglass.study.shapes import choose, neck
from hourglass.study.tables import invalid_table, table1, table2


def test_the_paper_grid_as_shares_gives_back_its_k_at_4096():
    assert [A.Arm("x", f"topk_share({s})").label(4096) for s in A.K_SHARES] == [
        f"Remove layer-2 top@{k} (share {s:g} of M=4096)"
        for k, s in zip(A.PAPER_K, A.K_SHARES, strict=True)]
    assert "top@6 " in A.Arm("x", "topk_share(0.0977)").label(64)


def test_arms_cover_both_tables_once_and_label_the_diagnostic():
    names = [a.name for a in A.all_arms()]
    assert len(names) == len(set(names)) == 10 and names[0] == "base"
    assert A.EXCHANGE_GIVEN.diagnostic and A.EXCHANGE_GIVEN.eval_label == "exchange_1_2+given_1"
    assert not any(a.diagnostic for a in A.table2_arms())
    assert A.strategies(A.all_arms())[:3] == ["none", "exchange(1,2)", "drop_layer(2)"]


def test_cache_computes_once_per_arguments(tmp_path):
    cache, calls = CellCache(tmp_path), []

    def work():
        calls.append(1)
        return {"rows": [["a", "all", "recall", 10, 0.5]]}

    first, cached = cache.compute(work, "cell", seed=1, steps=20)
    assert not cached and first["rows"] == [["a", "all", "recall", 10, 0.5]]
    again, cached = cache.compute(work, "cell", seed=1, steps=20)
    assert cached and again == first and len(calls) == 1
    _, cached = cache.compute(work, "cell", seed=1, steps=21)  # other arguments, other cell
    assert not cached and len(calls) == 2
    assert fingerprint(a=1, b=2) == fingerprint(b=2, a=1) != fingerprint(a=1, b=3)
    stored = json.loads(cache.path("cell", seed=1, steps=20).read_text())
    assert stored["args"] == {"seed": 1, "steps": 20}


AGG = {
    ("base", "all", "users", 0): (100.0, 0.0, 3), ("base", "all", "recall", 10): (0.2, 0.01, 3),
    ("base", "head", "users", 0): (60.0, 0.0, 3), ("base", "head", "recall", 10): (0.3, 0.0, 3),
    ("base", "tail", "users", 0): (40.0, 0.0, 3), ("base", "tail", "recall", 10): (0.05, 0.0, 3),
    ("drop_layer_2", "all", "users", 0): (100.0, 0.0, 3),
    ("drop_layer_2", "all", "recall", 10): (0.25, 0.02, 3),
    ("drop_layer_2", "all", "invalid_ratio", 10): (0.125, 0.0, 1),
    ("sasrec", "all", "users", 0): (100.0, 0.0, 3), ("sasrec", "all", "recall", 10): (0.3, 0.0, 3),
}


def test_tables_render_mean_std_head_tail_and_the_best_in_bold():
    t1 = table1(AGG, [A.BASE], [("sasrec", "SASRec")], 64, recall_ks=(10,), ndcg_ks=())
    lines = t1.splitlines()
    assert lines[0] == "| Method | users | seeds | Recall@10 |"
    assert lines[2:] == ["| Base (none) | 100 | 3 | 0.2000 ± 0.0100 |",
                         "|   *Head token* | 60 | 3 | 0.3000 ± 0.0000 |",
                         "|   *Tail token* | 40 | 3 | 0.0500 ± 0.0000 |",
                         "| SASRec | 100 | 3 | 0.3000 ± 0.0000 |"]
    t2 = table2(AGG, [A.BASE, A.FOCAL, A.DROP], [], 64, recall_ks=(10,), ndcg_ks=())
    assert "| Remove layer 2 | 100 | 3 | **0.2500 ± 0.0200** |" in t2
    assert "Focal" not in t2  # no cells, no row
    assert invalid_table(AGG, [A.BASE, A.DROP], 64, ks=(10,)).splitlines()[2] == \
        "| Remove layer 2 | 0.1250 |"  # one seed: no spread to show


def test_the_neck_is_layer_2_above_its_neighbours():
    layers = {1: {"gini": 0.2}, 2: {"gini": 0.7}, 3: {"gini": 0.4}}
    assert neck(layers) == pytest.approx(0.3)
    funnel = {1: {"gini": 0.3}, 2: {"gini": 0.78}, 3: {"gini": 0.83}}
    assert neck(funnel) == pytest.approx(-0.05)  # layer 3 more concentrated: no neck
    shapes = {64: {"neck": 0.1}, 128: {"neck": 0.3}, 256: {"neck": 0.3}}
    assert choose(shapes) == 128  # ties go to the smaller M
