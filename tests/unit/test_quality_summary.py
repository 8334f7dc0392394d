"""Baseline metric rows per head/tail subset, and Table 2 as mean ± std over seeds."""

from __future__ import annotations

import pytest

from hourglass.baselines.summary import aggregate, jsonable, mean_std_table, subset_rows


def test_subset_rows_split_by_the_targets_tag():
    rows = subset_rows("m", [1, 4, 0, 2], ["a", "b", "c", "d"], {"a": "head", "b": "tail",
                                                                 "d": "head"},
                       recall_ks=(1, 3), ndcg_ks=(3,))
    idx = {(sub, metric, k): v for _, sub, metric, k, v in rows}
    assert idx[("all", "users", 0)] == 4 and idx[("all", "recall", 3)] == 0.5
    assert idx[("head", "users", 0)] == 2 and idx[("head", "recall", 1)] == 0.5
    assert idx[("tail", "users", 0)] == 1 and idx[("tail", "recall", 3)] == 0.0
    assert idx[("head", "ndcg", 3)] == pytest.approx((1.0 + 1 / 1.584962500721156) / 2)


def test_aggregate_mean_and_sample_std_over_seeds():
    runs = [[("m", "all", "recall", 10, 0.1)], [("m", "all", "recall", 10, 0.3)]]
    agg = aggregate(runs)
    mean, std, n = agg[("m", "all", "recall", 10)]
    assert (mean, n) == (pytest.approx(0.2), 2) and std == pytest.approx(0.1414213562)
    assert aggregate(runs[:1])[("m", "all", "recall", 10)][1] == 0.0
    assert jsonable(agg)["m"]["all"]["recall@10"]["n"] == 2


def test_table_prints_mean_and_std_per_method():
    agg = aggregate([subset_rows("sasrec", [1, 2], ["a", "b"], {}, (1,), (5,))])
    text = mean_std_table(agg, ["sasrec", "absent"], (1,), (5,))
    assert "sasrec" in text and "0.5000±0.0000" in text and "absent" not in text
