"""Rewriting strategies on hand-made cases with known answers, and properties on random codes."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass.config import ConfigError
from hourglass.rewrite.strategies import (
    capacity_definition,
    capacity_formula,
    collision_share,
    drop_layer,
    exchange,
    none,
    parse_strategy,
    removed_tokens,
    rewrite_sids,
    topk,
    topk_share,
    topshare,
)
from hourglass.rewrite.trie import SidTrie
from hourglass.sid_tokens import parse_token

# L=3, M=4. Layer-2 counts: code 1 → 4 items, 2 → 1, 3 → 1, 0 → 0; rank: 1, 2, 3, 0.
CODES = np.array([[0, 1, 2], [0, 1, 3], [1, 1, 2], [0, 2, 2], [0, 3, 2], [0, 1, 2]])
IDS = ["i0", "i1", "i2", "i3", "i4", "i5"]
POP = [1, 0, 0, 0, 0, 3]  # i5 is the most popular; i3/i4 tie and fall back to item_id


def _sids(strategy, keep=False):
    return rewrite_sids(CODES, IDS, strategy, codebook_size=4, popularity=POP,
                        keep_collisions=keep)


def test_none_suffixes_only_the_colliding_pair_by_popularity():
    assert _sids(none()) == [
        ["<a_0>", "<b_1>", "<c_2>", "<d_1>"], ["<a_0>", "<b_1>", "<c_3>"],
        ["<a_1>", "<b_1>", "<c_2>"], ["<a_0>", "<b_2>", "<c_2>"], ["<a_0>", "<b_3>", "<c_2>"],
        ["<a_0>", "<b_1>", "<c_2>", "<d_0>"],
    ]


def test_drop_layer_2_orders_suffixes_by_popularity_then_item_id():
    assert _sids(drop_layer(2)) == [
        ["<a_0>", "<c_2>", "<d_1>"], ["<a_0>", "<c_3>"], ["<a_1>", "<c_2>"],
        ["<a_0>", "<c_2>", "<d_2>"], ["<a_0>", "<c_2>", "<d_3>"], ["<a_0>", "<c_2>", "<d_0>"],
    ]
    assert _sids(drop_layer(3), keep=True)[1] == ["<a_0>", "<b_1>"]


def test_topk_removes_only_the_top_layer2_tokens():
    assert _sids(topk(1)) == [
        ["<a_0>", "<c_2>", "<d_1>"], ["<a_0>", "<c_3>"], ["<a_1>", "<c_2>"],
        ["<a_0>", "<b_2>", "<c_2>"], ["<a_0>", "<b_3>", "<c_2>"], ["<a_0>", "<c_2>", "<d_0>"],
    ]
    # K=2 also removes code 2 (tie 2 vs 3 → lower code), so i3 joins the i0/i5 collision.
    assert _sids(topk(2))[3] == ["<a_0>", "<c_2>", "<d_2>"]
    assert _sids(topk(2))[4] == ["<a_0>", "<b_3>", "<c_2>"]
    assert _sids(topk(0)) == _sids(none())
    assert _sids(topk(10)) == _sids(drop_layer(2))  # K ≥ M removes every code


def test_topshare_takes_the_smallest_covering_set():
    counts = (np.array([1, 2, 3]), np.array([4, 1, 1]))
    assert removed_tokens(topshare(0.5), *counts, 4).tolist() == [1]  # 4/6 ≥ 0.5
    assert removed_tokens(topshare(4 / 6), *counts, 4).tolist() == [1]  # exactly covered
    assert removed_tokens(topshare(0.7), *counts, 4).tolist() == [1, 2]
    assert removed_tokens(topshare(1.0), *counts, 4).tolist() == [1, 2, 3]  # never unused 0
    tenth = (np.arange(10), np.ones(10, dtype=int))
    assert len(removed_tokens(topshare(0.3), *tenth, 10)) == 3  # no float drift to 4
    assert _sids(topshare(0.5)) == _sids(topk(1))
    assert _sids(topshare(0.7)) == _sids(topk(2))


def test_capacity_by_definition_and_by_the_paper():
    M, L = 4, 3
    assert capacity_definition(none(), M, L) == capacity_formula(none(), M, L) == 64
    assert capacity_definition(drop_layer(2), M, L) == capacity_formula(drop_layer(2), M, L) == 16
    # topk(1): 3 kept codes × 16 full SIDs + 16 shortened ones; paper: 64 + 1·(4 − 16).
    assert capacity_definition(topk(1), M, L, 1) == 64
    assert capacity_formula(topk(1), M, L, 1) == 52
    assert capacity_definition(topk(2), M, L, 2) == 48
    assert capacity_formula(topk(2), M, L, 2) == 40
    assert capacity_definition(topk(4), M, L, 4) == capacity_formula(topk(4), M, L, 4) == 16
    assert capacity_formula(topk(400), 4096, 3, 400) == 4096**3 + 400 * (4096 - 4096**2)


def test_collision_share():
    assert collision_share(_sids(none(), keep=True)) == pytest.approx(2 / 6)
    assert collision_share(_sids(drop_layer(2), keep=True)) == pytest.approx(4 / 6)
    assert collision_share(_sids(drop_layer(2))) == 0.0
    assert collision_share([]) == 0.0


@pytest.mark.parametrize("spec", ["topk(-1)", "topk_-3", "topshare(0)", "topshare(1.5)",
                                  "topshare(-0.2)", "foo", "topk", "topk(1.5)", "drop_layer(0)",
                                  "none(2)", "", "topk(16", "exchange(1,1)", "exchange_2_2",
                                  "exchange(1)", "exchange", "exchange(0,2)", "exchange(1.5,2)",
                                  "topk(1,2)", "topk_share(0)", "topk_share(1.2)", "topk_share"])
def test_invalid_specs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="strategies"):
        parse_strategy(spec)


def test_layer_out_of_range_needs_the_layer_count():
    parse_strategy("drop_layer(4)")  # fine until the number of layers is known
    with pytest.raises(ConfigError, match="out of range"):
        parse_strategy("drop_layer(4)").validate(3)
    with pytest.raises(ConfigError, match="out of range"):
        topk(3).validate(1)
    with pytest.raises(ConfigError, match="out of range"):
        rewrite_sids(CODES, IDS, drop_layer(4), 4)


@pytest.mark.parametrize("spec,name", [("none", "none"), ("drop_layer(2)", "drop_layer_2"),
                                       ("topk(16)", "topk_16"), ("topk_16", "topk_16"),
                                       ("topshare(0.5)", "topshare_0.5"),
                                       ("topshare(1)", "topshare_1.0"),
                                       ("exchange(1,2)", "exchange_1_2"),
                                       ("exchange( 2 , 3 )", "exchange_2_3"),
                                       ("topk_share(0.049)", "topk_share_0.049"),
                                       ("topk_share_0.5", "topk_share_0.5")])
def test_names_round_trip(spec, name):
    assert parse_strategy(spec).name == name
    assert parse_strategy(name) == parse_strategy(spec)


def _permuted(row, order):
    """Plain-Python reference of an exchange: the tagged tokens of `row` in `order`."""
    letters = "abcdefgh"
    return [f"<{letters[j]}_{row[j]}>" for j in order]


def test_exchange_reorders_tokens_and_keeps_their_layer_tags():
    sids = _sids(exchange(1, 2), keep=True)
    assert sids[0] == ["<b_1>", "<a_0>", "<c_2>"]  # the example: <b_c2> <a_c1> <c_c3>
    for row, sid in zip(CODES.tolist(), sids, strict=True):
        assert sid == _permuted(row, [1, 0, 2])
    assert _sids(exchange(1, 3), keep=True)[1] == _permuted(CODES[1].tolist(), [2, 1, 0])
    # a permutation adds and removes no collision: the same items share a SID as under none
    assert collision_share(sids) == collision_share(_sids(none(), keep=True))
    # suffixes go after the exchanged tokens, in the order none gives them
    assert _sids(exchange(1, 2))[5] == ["<b_1>", "<a_0>", "<c_2>", "<d_0>"]
    assert [s[3:] for s in _sids(exchange(2, 3))] == [s[3:] for s in _sids(none())]
    assert exchange(1, 2) == exchange(1, 2) and exchange(1, 2).params == {"i": 1, "j": 2}


def test_exchange_layer_beyond_the_sid_names_the_key():
    parse_strategy("exchange(1,4)")  # fine until the number of layers is known
    with pytest.raises(ConfigError, match="strategies.*layer 4 out of range"):
        parse_strategy("exchange(1,4)").validate(3)
    with pytest.raises(ConfigError, match="strategies.*exchange"):
        rewrite_sids(CODES, IDS, exchange(3, 4), 4)


def test_topk_share_turns_shares_of_m_into_k():
    # the paper's grid: K = 20/200/400/600 of M = 4096
    for share, k in ((0.005, 20), (0.049, 201), (0.098, 401), (0.146, 598)):
        assert topk_share(share).top_k(4096) == k
    assert topk_share(0.005).top_k(64) == 1  # never 0: that would be `none`
    assert topk_share(0.146).top_k(64) == 9
    counts = (np.array([1, 2, 3]), np.array([4, 1, 1]))
    assert removed_tokens(topk_share(0.5), *counts, 4).tolist() == [1, 2]  # K = 2 of M = 4
    assert _sids(topk_share(0.25)) == _sids(topk(1))
    assert _sids(topk_share(1.0)) == _sids(topk(4))


# ---- properties over random inputs ------------------------------------------------------

def _reference_removed(kind: str, param, layer2: np.ndarray, M: int) -> set[int]:
    """Independent top-token selection: sort (−count, code) over all M codes."""
    counts = Counter(int(c) for c in layer2)
    ranked = sorted(range(M), key=lambda c: (-counts.get(c, 0), c))
    if kind == "topk":
        return set(ranked[:param])
    need, total, chosen = Fraction(repr(float(param))) * len(layer2), 0, set()
    for c in ranked:
        if total >= need:
            break
        total += counts.get(c, 0)
        chosen.add(c)
    return chosen


_strategy = st.one_of(
    st.just(none()), st.integers(1, 4).map(drop_layer), st.integers(0, 6).map(topk),
    st.sampled_from([0.1, 0.25, 0.5, 0.8, 1.0]).map(topshare),
    st.sampled_from([0.1, 0.3, 1.0]).map(topk_share),
    st.sampled_from([(1, 2), (2, 1), (1, 3), (2, 3), (3, 4)]).map(lambda p: exchange(*p)),
)


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 60), L=st.integers(2, 4),
       M=st.integers(2, 5), strategy=_strategy, keep=st.booleans())
def test_properties_on_random_codes(seed, n, L, M, strategy, keep):
    if strategy.kind == "drop_layer" and int(strategy.param) > L:
        strategy = drop_layer(L)
    if strategy.kind == "exchange" and max(strategy.layers) > L:
        strategy = exchange(1, L)
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, M, size=(n, L))
    ids = [f"item{i}" for i in rng.permutation(n)]
    pop = rng.integers(0, 3, size=n).tolist()
    sids = rewrite_sids(codes, ids, strategy, M, popularity=pop, keep_collisions=keep)
    assert len(sids) == n and all(sids)  # exactly one non-empty SID per item
    suffix_layer = L + 1
    if strategy.kind == "topk" or strategy.kind == "topshare":
        gone = _reference_removed(strategy.kind, strategy.param, codes[:, 1], M)
    if strategy.kind == "topk_share":
        gone = _reference_removed("topk", max(1, round(strategy.param * M)), codes[:, 1], M)
    order = list(range(L))
    if strategy.kind == "exchange":
        i, j = strategy.layers
        order[i - 1], order[j - 1] = order[j - 1], order[i - 1]
    for row, sid in zip(codes, sids, strict=True):
        layers = [parse_token(t)[0] for t in sid]
        if strategy.kind != "exchange":
            assert layers == sorted(layers)  # tokens stay in layer order
        base = [t for t in sid if parse_token(t)[0] != suffix_layer]
        expected = [(j + 1, int(row[j])) for j in order]
        if strategy.kind == "drop_layer":
            del expected[int(strategy.param) - 1]
        elif strategy.kind not in ("none", "exchange") and int(row[1]) in gone:
            del expected[1]
        assert [parse_token(t) for t in base] == expected
        if not (strategy.kind == "drop_layer" and strategy.param == 1):
            assert sid[0] == base[0] == "<{}_{}>".format("abcd"[order[0]], row[order[0]])
    if keep:
        assert all(parse_token(t)[0] != suffix_layer for s in sids for t in s)
    else:
        assert len({tuple(s) for s in sids}) == n  # unique after suffixing
        trie = SidTrie.build(sids)
        assert len(trie) == n and {tuple(s) for s in trie} == {tuple(s) for s in sids}
