"""SidTrie against a plain set-of-tuples reference: accepts exactly the given SIDs, no more."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass.rewrite.trie import FORMAT_VERSION, SidTrie

SIDS = [
    ["<a_1>", "<b_2>", "<c_5>"],
    ["<a_1>", "<c_5>"],  # a shortened SID next to a full one
    ["<a_1>", "<c_5>", "<d_0>"],  # and a suffixed one extending it
    ["<a_1>", "<b_2>", "<c_5>"],  # duplicate
    ["<a_2>", "<b_1>"],
    ["<a_10>"],
]


def _reference_next(sids: set[tuple[str, ...]], prefix: tuple[str, ...]) -> list[str]:
    n = len(prefix)
    return sorted({s[n] for s in sids if len(s) > n and s[:n] == prefix})


def test_hand_made_trie():
    t = SidTrie.build(SIDS)
    assert len(t) == 5
    assert t.max_depth == 3
    assert t.vocab == ["<a_10>", "<a_1>", "<a_2>", "<b_1>", "<b_2>", "<c_5>", "<d_0>"]
    assert t.allowed_next([]) == ["<a_10>", "<a_1>", "<a_2>"]
    assert t.allowed_next(["<a_1>"]) == ["<b_2>", "<c_5>"]
    assert t.allowed_next(["<a_1>", "<c_5>"]) == ["<d_0>"]
    assert t.is_complete(["<a_1>", "<c_5>"]) and ["<a_1>", "<c_5>"] in t
    assert not t.is_complete(["<a_1>", "<b_2>"]) and ["<a_1>", "<b_2>"] not in t
    assert not t.is_complete([])
    assert t.allowed_next(["<a_1>", "<b_2>", "<c_5>"]) == []  # complete leaf
    assert t.allowed_next(["<a_3>"]) == [] and t.allowed_next(["<b_2>"]) == []
    assert ("<a_10>",) in t and "<a_10>" not in t


def test_integer_fast_path_matches_string_api():
    t = SidTrie.build(SIDS)
    a1 = t.child(t.root, t.token_id("<a_1>"))
    assert a1 == t.walk(["<a_1>"]) and a1 > 0
    assert [t.vocab[i] for i in t.children(a1)] == ["<b_2>", "<c_5>"]
    c5 = t.child(a1, t.token_id("<c_5>"))
    assert t.is_terminal(c5) and not t.is_terminal(a1) and not t.is_terminal(-1)
    assert t.child(a1, t.token_id("<d_0>")) == -1
    assert t.token_id("<z_1>") == -1
    nodes = np.array([t.root, a1, a1, c5, -1, a1])
    toks = np.array([t.token_id(x) for x in ["<a_2>", "<c_5>", "<a_2>", "<d_0>", "<a_1>", "<b_2>"]])
    expected = [t.child(n, k) if n >= 0 else -1 for n, k in zip(nodes, toks, strict=True)]
    assert t.step(nodes, toks).tolist() == expected
    assert expected[0] > 0 and expected[2] == -1


def test_save_load_round_trip(tmp_path):
    t = SidTrie.build(SIDS, meta={"strategy": "topk_2", "item_sids_version": 3})
    path = str(tmp_path / "sub" / "trie.npz")
    t.save(path)
    u = SidTrie.load(path)
    assert list(u) == list(t) and u.vocab == t.vocab and len(u) == len(t)
    assert u.meta == {"strategy": "topk_2", "item_sids_version": 3}
    assert np.array_equal(u.terminal, t.terminal) and u.max_depth == t.max_depth


def test_pickle_round_trip():
    import pickle

    t = SidTrie.build(SIDS, meta={"strategy": "none"})
    u = pickle.loads(pickle.dumps(t))
    assert list(u) == list(t) and u.meta == t.meta and u.allowed_next(["<a_1>"]) == ["<b_2>",
                                                                                      "<c_5>"]


def test_load_refuses_other_versions(tmp_path):
    path = tmp_path / "bad.npz"
    header = json.dumps({"format": "hourglass-sid-trie", "format_version": FORMAT_VERSION + 1})
    np.savez(path, header=np.array(header))
    with pytest.raises(ValueError, match="format_version|v1"):
        SidTrie.load(str(path))


def test_empty_sid_is_rejected_and_empty_trie_is_empty():
    with pytest.raises(ValueError):
        SidTrie.build([["<a_1>"], []])
    t = SidTrie.build([])
    assert len(t) == 0 and t.allowed_next([]) == [] and list(t) == [] and ["<a_1>"] not in t


_token = st.builds(lambda layer, code: f"<{layer}_{code}>", st.sampled_from("abcd"),
                   st.integers(0, 4))
_sid = st.lists(_token, min_size=1, max_size=4).map(tuple)


@settings(max_examples=150, deadline=None)
@given(st.lists(_sid, max_size=40), st.lists(_sid, max_size=20))
def test_trie_accepts_exactly_the_sids(sids, probes):
    ref = set(sids)
    t = SidTrie.build(sids)
    assert len(t) == len(ref)
    assert {tuple(s) for s in t} == ref
    assert t.max_depth == max((len(s) for s in ref), default=0)
    for s in ref:
        assert list(s) in t
        for n in range(len(s) + 1):
            assert t.allowed_next(s[:n]) == _reference_next(ref, s[:n])
            assert t.is_complete(s[:n]) == (s[:n] in ref)
    for p in probes:
        assert (p in t) == (p in ref)
        assert t.allowed_next(p) == _reference_next(ref, p)


def test_build_streams_chunks_like_one_pass(rng, monkeypatch):
    import hourglass.rewrite.trie as trie_mod

    codes = rng.integers(0, 6, size=(3000, 3))
    lengths = rng.integers(1, 4, size=3000)
    sids = [[f"<{'abc'[j]}_{c}>" for j, c in enumerate(row[:n])] for row, n in zip(codes, lengths,
                                                                                  strict=True)]
    whole = SidTrie.build(sids)
    monkeypatch.setattr(trie_mod, "_CHUNK", 7)
    monkeypatch.setattr(trie_mod, "_ROWS", 50)  # sorted rows streamed in steps
    monkeypatch.setattr(trie_mod, "_BLOCK", 64)  # stored and checked in blocks
    chunked = SidTrie.build(iter(sids))
    assert list(whole) == list(chunked)
    assert np.array_equal(whole.offsets, chunked.offsets)
    assert {tuple(s) for s in whole} == {tuple(s) for s in sids}


def test_arrow_batches_build_the_same_trie_as_token_lists(rng):
    """`add_arrow` (what build_tries streams from Spark) against `add` on the same SIDs:
    several chunks, a sliced array, mixed with one-by-one additions; identical arrays."""
    import pyarrow as pa

    from hourglass.rewrite.trie import SidTrieBuilder

    codes = rng.integers(0, 9, size=(2000, 4))
    lengths = rng.integers(1, 5, size=2000)
    sids = [[f"<{'abcd'[j]}_{c}>" for j, c in enumerate(row[:n])] for row, n in zip(codes, lengths,
                                                                                   strict=True)]
    whole = SidTrie.build(sids)
    chunked = pa.chunked_array([pa.array(sids[:700]), pa.array(sids[700:1500])])
    sliced = pa.array(sids[1200:]).slice(300)  # offsets that do not start at 0
    built = (SidTrieBuilder().extend(sids[:10]).add_arrow(chunked).add_arrow(sliced)).build()
    assert built.vocab == whole.vocab and len(built) == len(whole)
    for a, b in ((built.offsets, whole.offsets), (built.edge_tokens, whole.edge_tokens),
                 (built.terminal, whole.terminal)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must not be null"):
        SidTrieBuilder().add_arrow(pa.array([["<a_1>"], None]))


def _spark_order(sids):
    """The order build_tries asks Spark for: tokens joined by a separator below every token
    character (compared as UTF-8 bytes, as Spark compares strings)."""
    from hourglass.spark.rewrite.tries import SORT_SEPARATOR

    return sorted(sids, key=lambda s: SORT_SEPARATOR.join(s).encode())


def _assert_same_trie(a: SidTrie, b: SidTrie) -> None:
    assert a.vocab == b.vocab and len(a) == len(b)
    for x, y in ((a.offsets, b.offsets), (a.edge_tokens, b.edge_tokens),
                 (a.terminal, b.terminal)):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=150, deadline=None)
@given(st.lists(_sid, max_size=40), st.lists(st.integers(0, 40), max_size=6),
       st.sampled_from([1, 2, 1 << 24]))
def test_sorted_builder_equals_build_in_any_chunking(sids, cuts, block):
    """SIDs in Spark's sort order, appended in arbitrary chunks (widths differ, duplicates
    straddle chunk ends), give the very arrays `SidTrie.build` gives for them in any order."""
    import pyarrow as pa

    import hourglass.rewrite.trie as trie_mod
    from hourglass.rewrite.trie import SortedSidTrieBuilder

    ordered = [list(s) for s in _spark_order(sids)]
    bounds = sorted({0, len(ordered), *[min(c, len(ordered)) for c in cuts]})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trie_mod, "_BLOCK", block)
        mp.setattr(trie_mod, "_APPEND_ROWS", 1)  # each chunk its own append: carry-over tested
        builder = SortedSidTrieBuilder()
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            builder.add_arrow(pa.array(ordered[a:b], pa.list_(pa.string())))
        built = builder.build()
    _assert_same_trie(built, SidTrie.build(list(reversed(sids))))
    assert {tuple(s) for s in built} == set(sids)


@pytest.mark.parametrize("sids", [
    [["<a_1>", "<b_2>"], ["<a_1>"]],  # a SID after its own extension
    [["<a_1>"], ["<a_2>"], ["<a_1>"]],  # a prefix that comes back
    [["<a_1>", "<b_2>"], ["<a_1>", "<b_3>"], ["<a_1>", "<b_2>"]],  # a duplicate, not adjacent
    [["<a_2>"], ["<a_1>"]],  # descending
])
def test_sorted_builder_refuses_input_out_of_order(sids):
    """Out-of-order SIDs raise instead of giving a trie that loses SIDs or repeats edges."""
    import pyarrow as pa

    from hourglass.rewrite.trie import SortedSidTrieBuilder

    with pytest.raises(ValueError, match="lexicographic order"):
        SortedSidTrieBuilder().add_arrow(pa.array(sids)).build()
