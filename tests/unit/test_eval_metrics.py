from __future__ import annotations

import math

import numpy as np
import pytest

from hourglass.decode.ranking import Catalog
from hourglass.evaluation.metrics import (
    metric_rows,
    ndcg_at,
    popularity_order,
    recall_at,
)
from hourglass.evaluation.table import invalid_table, results_table


def test_recall_and_ndcg_by_hand():
    ranks = [1, 3, 0, 6, 2]  # 0 = not retrieved
    assert recall_at(ranks, 1) == pytest.approx(1 / 5)
    assert recall_at(ranks, 3) == pytest.approx(3 / 5)
    assert recall_at(ranks, 5) == pytest.approx(3 / 5)
    assert recall_at(ranks, 10) == pytest.approx(4 / 5)
    # NDCG@5: gains 1/log2(2)=1, 1/log2(4)=0.5, 0, 0 (rank 6 > 5), 1/log2(3)
    assert ndcg_at(ranks, 5) == pytest.approx((1 + 0.5 + 1 / math.log2(3)) / 5)
    assert ndcg_at(ranks, 10) == pytest.approx((1 + 0.5 + 1 / math.log2(7) + 1 / math.log2(3)) / 5)
    assert math.isnan(recall_at([], 5))
    rows = metric_rows(ranks, (1, 10), (5,))
    assert rows == [("recall", 1, pytest.approx(0.2)), ("recall", 10, pytest.approx(0.8)),
                    ("ndcg", 5, pytest.approx(ndcg_at(ranks, 5)))]


def test_popularity_baseline_by_hand():
    counts = {"b": 5, "a": 5, "c": 9, "d": 1}
    assert popularity_order(counts) == ["c", "a", "b", "d"]  # ties by item_id


def test_catalog_orders_items_sharing_a_sid_by_popularity():
    cat = Catalog.build(["i1", "i2", "i3", "i4"],
                        [["<a_1>"], ["<a_1>"], ["<a_2>", "<c_1>"], ["<a_1>"]],
                        {"i2": 7, "i4": 7, "i1": 1})
    assert cat.sid_items[("<a_1>",)] == ["i2", "i4", "i1"]
    assert len(cat.trie) == 2 and cat.trie.is_complete(["<a_2>", "<c_1>"])


def test_ranker_expands_shared_sids_and_skips_unfinished(monkeypatch):
    from hourglass.decode.beam import BeamOutput
    from hourglass.decode.ranking import Ranker
    from hourglass.sft.tokenizer import build_sid_tokenizer

    cat = Catalog.build(["x", "y", "z"], [["<a_1>"], ["<a_1>"], ["<a_2>"]], {"y": 3, "x": 1})
    tok = build_sid_tokenizer(["<a_1>", "<a_2>"])
    a1, a2, eos = tok.convert_tokens_to_ids(["<a_1>", "<a_2>", "</s>"])

    class Emb:  # Ranker only reads the output size from the model here
        weight = np.zeros((len(tok), 1))

    class Model:
        def get_output_embeddings(self):
            return Emb()

    ranker = Ranker(Model(), tok, cat, beam=3, max_prompt_len=16)
    out = BeamOutput(tokens=np.array([[[a2, eos], [a1, eos], [a1, -1]]]),
                     scores=np.array([[-0.1, -0.5, -0.7]]),
                     finished=np.array([[True, True, False]]))
    monkeypatch.setattr(ranker, "decode", lambda prompts, constrained, given=None: out)
    res = ranker.rank([["<a_1>"]], ["x"], max_k=5)
    assert res.ranks.tolist() == [3]  # z, then y before x (popularity) behind <a_1>
    assert ranker.rank([["<a_1>"]], ["x"], max_k=2).ranks.tolist() == [0]
    shares = ranker.invalid_shares(out, [1, 2, 3])
    np.testing.assert_allclose(shares, [[0.0, 0.0, 1 / 3]])  # the unfinished one is invalid


def test_tables_show_every_strategy_and_subset():
    rows = [("r", "none", "all", "users", 0, 10.0), ("r", "none", "all", "recall", 1, 0.25),
            ("r", "none", "head", "users", 0, 4.0), ("r", "none", "head", "recall", 1, 0.5),
            ("r", "popularity", "all", "users", 0, 10.0),
            ("r", "popularity", "all", "recall", 1, 0.1),
            ("r", "none", "all", "invalid_ratio", 1, 0.125)]
    text = results_table(rows, ["none", "popularity"], recall_ks=(1,), ndcg_ks=(5,))
    lines = text.splitlines()
    assert lines[0].split() == ["Method", "users", "Recall@1", "NDCG@5"]
    assert lines[2].split() == ["none", "10", "0.2500", "—"]
    assert lines[3].split() == ["head", "token", "4", "0.5000", "—"]
    assert lines[4].split() == ["popularity", "10", "0.1000", "—"]
    inv = invalid_table(rows, ["none", "popularity"], ks=(1, 5)).splitlines()
    assert inv[2].split() == ["none", "0.1250", "—"] and len(inv) == 3
