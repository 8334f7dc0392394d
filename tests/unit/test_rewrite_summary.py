"""rewrite_summary's figures from counts, by hand (the Spark side only counts)."""

from __future__ import annotations

import pytest

from hourglass.rewrite.strategies import parse_strategy
from hourglass.rewrite.summary import length_shares, strategy_metrics


def test_topk_metrics_by_hand():
    agg = {"n_items": 8.0, "distinct_sids": 7.0, "distinct_sids_before_suffix": 6.0,
           "collided_before": 4.0, "collided_after": 0.0, "shortened_items": 2.0,
           "mean_length": 2.75, "length_2": 2.0, "length_3": 6.0}
    got = strategy_metrics(parse_strategy("topk(1)"), agg, removed=1, num_layers=3,
                           codebook_size=4)
    assert got["collision_share_before"] == pytest.approx(0.5)
    assert got["collision_share_after"] == 0.0
    assert got["shortened_item_share"] == pytest.approx(0.25)
    assert got["capacity_formula"] == 4**3 + 1 * (4 - 16)  # M^L + K(M^(L-2) - M^(L-1))
    assert got["capacity_definition"] == (4 - 1) * 16 + 16  # kept codes' SIDs + one short space
    assert got["length_share_2"] == pytest.approx(0.25) and got["length_share_3"] == 0.75
    assert list(got)[:3] == ["capacity_definition", "capacity_formula", "distinct_sids"]


def test_an_empty_strategy_divides_by_nothing():
    got = strategy_metrics(parse_strategy("none"), {}, removed=0, num_layers=2, codebook_size=3)
    assert got["n_items"] == 0.0 and got["collision_share_before"] == 0.0
    assert length_shares({}) == {}
