from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass.sft.examples import SftExample, split_of, user_examples
from hourglass.sft.format import SEP, frame_example, frame_prompt, join_history

SIDS = {"i1": ["<a_1>", "<b_1>"], "i2": ["<a_2>", "<b_1>"], "i3": ["<a_3>"],
        "i4": ["<a_1>", "<b_4>"]}


def test_leave_one_out_by_hand():
    # ts order: i2 (1), i3 (2), i1 (3), i4 (5); the input order must not matter
    events = [(3, "i1"), (1, "i2"), (5, "i4"), (2, "i3")]
    got = user_examples("u1", events, SIDS, history_max_items=2)
    assert got == [
        SftExample("u1", "train", ("i2",), "i3", ("<a_2>", "<b_1>"), ("<a_3>",)),
        SftExample("u1", "valid", ("i2", "i3"), "i1", ("<a_2>", "<b_1>", SEP, "<a_3>"),
                   ("<a_1>", "<b_1>")),
        SftExample("u1", "test", ("i3", "i1"), "i4", ("<a_3>", SEP, "<a_1>", "<b_1>"),
                   ("<a_1>", "<b_4>")),
    ]


def test_ties_in_ts_break_by_item_id_and_short_users_yield_nothing():
    got = user_examples("u", [(7, "i3"), (7, "i1"), (7, "i2")], SIDS, history_max_items=5)
    assert [(e.split, e.history, e.target_item_id) for e in got] == [
        ("valid", ("i1",), "i2"), ("test", ("i1", "i2"), "i3")]
    assert user_examples("u", [(1, "i1"), (2, "i2")], SIDS, 5) == []
    assert user_examples("u", [(1, "i1"), (2, "i2"), (3, "i3")], SIDS, 5, min_interactions=4) == []
    with pytest.raises(ValueError):
        user_examples("u", [], SIDS, 5, min_interactions=2)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), cap=st.integers(1, 8), min_n=st.integers(3, 6))
def test_windows_properties(n, cap, min_n):
    items = [f"x{i}" for i in range(n)]
    sids = {x: [f"<a_{i}>"] for i, x in enumerate(items)}
    got = user_examples("u", [(i, x) for i, x in enumerate(items)], sids, cap, min_n)
    if n < min_n:
        assert got == []
        return
    assert len(got) == n - 1
    assert [e.split for e in got] == ["train"] * (n - 3) + ["valid", "test"]
    for t, e in enumerate(got, start=1):
        assert e.target_item_id == items[t]
        assert e.history == tuple(items[max(0, t - cap):t])  # the newest <= cap items
        assert list(e.prompt_tokens) == join_history([sids[h] for h in e.history])
    assert split_of(n - 1, n) == "test" and split_of(n - 2, n) == "valid"


def test_train_stride_keeps_every_stride_th_window_back_from_the_last_by_hand():
    items = [f"x{i}" for i in range(9)]  # train targets x1..x6, valid x7, test x8
    sids = {x: [f"<a_{i}>"] for i, x in enumerate(items)}
    got = user_examples("u", list(enumerate(items)), sids, history_max_items=3, train_stride=3)
    assert [(e.split, e.history, e.target_item_id) for e in got] == [
        ("train", ("x0", "x1", "x2"), "x3"), ("train", ("x3", "x4", "x5"), "x6"),
        ("valid", ("x4", "x5", "x6"), "x7"), ("test", ("x5", "x6", "x7"), "x8")]
    with pytest.raises(ValueError, match="train_stride"):
        user_examples("u", list(enumerate(items)), sids, history_max_items=3, train_stride=4)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 40), cap=st.integers(1, 8), data=st.data())
def test_train_stride_windows_cover_every_train_item(n, cap, data):
    stride = data.draw(st.integers(1, cap))
    items = [f"x{i}" for i in range(n)]
    sids = {x: [f"<a_{i}>"] for i, x in enumerate(items)}
    every = user_examples("u", list(enumerate(items)), sids, cap)
    got = user_examples("u", list(enumerate(items)), sids, cap, train_stride=stride)
    assert [e for e in every if e.split != "train"] == [e for e in got if e.split != "train"]
    train = [e for e in got if e.split == "train"]
    assert set(train) <= set(every)
    assert len(train) == ((n - 4) // stride + 1 if n >= 4 else 0)
    # positions a loss on every history item teaches: all but each window's first item
    taught = [items.index(x) for e in train for x in (*e.history[1:], e.target_item_id)]
    assert set(taught) == set(range(1, n - 2))
    if stride == cap:
        assert sorted(taught) == list(range(1, n - 2))  # each exactly once


def test_frame_example_masks_prompt_and_truncates_at_item_boundary():
    bos, sep, eos = 2, 4, 3
    prompt = [10, 11, sep, 12, 13, sep, 14]  # three items: (10 11) (12 13) (14)
    x, y = frame_example(prompt, [20, 21], bos, sep, eos)
    assert x == [bos, *prompt, sep, 20, 21, eos]
    assert y == [-100] * 9 + [20, 21, eos]
    # 11 tokens: 3 target+eos leave 8 for <s> prompt <sep>, so at most 6 prompt tokens;
    # cutting at 6 would start inside item (10 11): keep items (12 13) (14) only
    x, y = frame_example(prompt, [20, 21], bos, sep, eos, max_len=11)
    assert x == [bos, 12, 13, sep, 14, sep, 20, 21, eos]
    assert y[-3:] == [20, 21, eos] and all(v == -100 for v in y[:-3])
    assert frame_prompt(prompt, bos, sep, max_prompt_len=4) == [bos, 14, sep]
    with pytest.raises(ValueError):
        frame_example(prompt, [20, 21], bos, sep, eos, max_len=4)


def test_history_labels_teach_every_item_after_the_first():
    bos, sep, eos = 2, 4, 3
    prompt = [10, 11, sep, 12, 13, sep, 14]  # three items: (10 11) (12 13) (14)
    x, y = frame_example(prompt, [20, 21], bos, sep, eos, label_history=True)
    assert x == [bos, *prompt, sep, 20, 21, eos]
    # <s> 10 11 <sep> | 12 13 <sep> 14 <sep> | 20 21 </s>
    assert y == [-100, -100, -100, -100, 12, 13, -100, 14, -100, 20, 21, eos]
    # truncated to (12 13) (14): 12 13 is now the first item and carries no loss
    x, y = frame_example(prompt, [20, 21], bos, sep, eos, max_len=11, label_history=True)
    assert x == [bos, 12, 13, sep, 14, sep, 20, 21, eos]
    assert y == [-100, -100, -100, -100, 14, -100, 20, 21, eos]
    # one item of history: only the target
    _, y = frame_example([10, 11], [20], bos, sep, eos, label_history=True)
    assert y == [-100] * 4 + [20, eos]


def test_given_prefix_moves_the_first_target_tokens_out_of_the_loss():
    bos, sep, eos = 2, 4, 3
    prompt = [10, 11, sep, 12, 13]
    x, y = frame_example(prompt, [20, 21, 22], bos, sep, eos, given_prefix=1)
    assert x == [bos, *prompt, sep, 20, 21, 22, eos]  # the input is unchanged
    assert y == [-100] * 8 + [21, 22, eos]
    _, y = frame_example(prompt, [20, 21, 22], bos, sep, eos, label_history=True,
                         given_prefix=2)
    assert y == [-100, -100, -100, -100, 12, 13, -100, -100, -100, 22, eos]
    with pytest.raises(ValueError, match="leaves no target token"):
        frame_example(prompt, [20], bos, sep, eos, given_prefix=1)


def test_a_query_opens_the_prompt_and_the_history_gives_way_to_it():
    bos, sep, eos, qend = 2, 4, 3, 5
    prompt = [10, 11, sep, 12, 13, sep, 14]
    query = [30, 31, qend]
    x, y = frame_example(prompt, [20, 21], bos, sep, eos, query=query)
    assert x == [bos, 30, 31, qend, *prompt, sep, 20, 21, eos]
    assert y == [-100] * 12 + [20, 21, eos]
    # 14 tokens: 3 for the target leave 11 = <s> + query 3 + <sep> + 6 history tokens; cutting
    # at 6 would start inside item (10 11), so items (12 13) (14) stay and the query is whole
    x, _ = frame_example(prompt, [20, 21], bos, sep, eos, max_len=14, query=query)
    assert x == [bos, 30, 31, qend, 12, 13, sep, 14, sep, 20, 21, eos]
    # no history (prompt mode `query`): <s> query <sep> target
    x, y = frame_example([], [20, 21], bos, sep, eos, query=query)
    assert x == [bos, 30, 31, qend, sep, 20, 21, eos] and y == [-100] * 5 + [20, 21, eos]
    with pytest.raises(ValueError, match="no room for a query"):
        frame_prompt(prompt, bos, sep, max_prompt_len=4, query=query)


def test_history_labels_skip_the_query():
    bos, sep, eos, qend = 2, 4, 3, 5
    prompt = [10, 11, sep, 12, 13]
    # the query word 4 would be a <sep> were the query not skipped: it never is one, but the
    # labels must not count query positions as items either way
    _, y = frame_example(prompt, [20, 21], bos, sep, eos, label_history=True,
                         query=[30, sep, qend])
    assert y == [-100, -100, -100, -100, -100, -100, -100, 12, 13, -100, 20, 21, eos]
    _, plain = frame_example(prompt, [20, 21], bos, sep, eos, label_history=True)
    assert y[3:] == plain
