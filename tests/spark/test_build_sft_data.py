"""build_sft_data on random sequences with every kind of bad row: the examples equal the
plain-Python `user_examples` reference for each strategy and stride, every refused interaction
is quarantined once with its reason, and the counts reconcile by hand."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from hourglass.sft.examples import user_examples
from hourglass.spark.tables import read_table, table_exists, write_table
from hourglass.stages import build_sft_data

pytestmark = pytest.mark.spark
N_ITEMS, N_USERS, HISTORY = 40, 60, 5


def tokens(strategy: str, i: int) -> list[str]:
    return [f"<a_{i // 8}>", f"<b_{i % 8}>"] if strategy == "none" else [f"<a_{i // 8}>"]


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    rng = np.random.default_rng(11)
    rows = []
    for u in range(N_USERS):  # 1-12 events; ties in ts on purpose (broken by item_id)
        for _ in range(int(rng.integers(1, 13))):
            rows.append((f"u{u}", f"i{int(rng.integers(N_ITEMS))}", int(rng.integers(0, 30))))
    bad = [(None, "i1", 5), (None, "i2", None), ("u0", "i3", None), ("u1", "gone", 7),
           ("u2", "i39", 8), ("only-bad", "gone", 1)]
    rows += bad
    root = str(tmp_path_factory.mktemp("sft") / "tables")
    sids = [(f"i{i}", tokens(s, i), s, "cb") for s in ("none", "drop_layer_2")
            for i in range(N_ITEMS - 1)]  # i39 has no SID; drop_layer_2 gives "i5" none too
    sids = [r for r in sids if not (r[2] == "drop_layer_2" and r[0] == "i5")]
    sids.append(("i5", [], "drop_layer_2", "cb"))  # an empty SID is no SID
    write_table(spark.createDataFrame(rows, "user_id string, item_id string, ts long"),
                f"{root}/interactions", {"job": "test"})
    write_table(spark.createDataFrame(sids, "item_id string, tokens array<string>, "
                                      "strategy string, source_codebook_id string"),
                f"{root}/item_sids_rw", {"job": "test"})
    return {"root": root, "rows": rows}


def reference(rows, strategy: str, stride: int):
    """(examples, quarantine reason counts, users kept, history_only) by plain Python."""
    sid_of = {f"i{i}": tokens(strategy, i) for i in range(N_ITEMS - 1)}
    if strategy == "drop_layer_2":
        del sid_of["i5"]
    reasons: collections.Counter = collections.Counter()
    by_user: dict[str, list] = collections.defaultdict(list)
    for user, item, ts in rows:
        if user is None:
            reasons["missing user_id"] += 1
        elif ts is None:
            reasons["missing ts"] += 1
        elif item not in sid_of:
            reasons[f"item has no SID for strategy '{strategy}'"] += 1
        else:
            by_user[user].append((ts, item))
    examples, kept = [], 0
    for user, events in by_user.items():
        if len(events) < 3:
            reasons[f"user has {len(events)} usable interactions, fewer than 3"] += len(events)
            continue
        kept += 1
        examples += [(e.user_id, e.split, e.history, e.target_item_id, e.prompt_tokens,
                      e.target_tokens) for e in user_examples(user, events, sid_of, HISTORY,
                                                              train_stride=stride)]
    return sorted(examples), dict(reasons), kept


@pytest.mark.parametrize("stride", [1, 3])
def test_examples_quarantine_and_counts_equal_the_reference(spark, world, stride):
    root = world["root"]
    res = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": root, "strategies": ["none", "drop_layer(2)"],
        "history_max_items": HISTORY, "train_stride": stride}))
    table = read_table(spark, f"{root}/sft_examples", res.output_version).df
    quarantine = read_table(spark, f"{root}/quarantine").df
    users = {u for u, _, _ in world["rows"] if u is not None}
    for strategy in ("none", "drop_layer_2"):
        want, reasons, kept = reference(world["rows"], strategy, stride)
        got = sorted((r.user_id, r.split, tuple(r.history), r.target_item_id,
                      tuple(r.prompt_tokens), tuple(r.target_tokens))
                     for r in table.where(f"strategy = '{strategy}'").collect())
        assert got == want
        c = next(s for s in res.strategies if s.strategy == strategy)
        assert c.quarantine_reasons == reasons
        q = quarantine.where(f"stage = 'build_sft_data_{strategy}'")
        assert q.count() == sum(reasons.values())
        assert q.where("payload is null or reason is null").count() == 0
        assert (c.users_in, c.users_kept, c.users_too_short) == (len(users), kept,
                                                                 len(users) - kept)
        split = collections.Counter(w[1] for w in want)
        assert (c.train, c.valid, c.test) == (split["train"], split["valid"], split["test"])
        train_positions = sum(max(0, len(v) - 3) for v in _usable(world["rows"], strategy))
        assert c.history_only == train_positions - split["train"]
        assert c.interactions_in == len(world["rows"])  # and check() reconciled the rest


def _usable(rows, strategy: str) -> list[list]:
    """Usable events per kept user (the reference's view), for the history-only count."""
    bad_items = {"gone", "i39"} | ({"i5"} if strategy == "drop_layer_2" else set())
    by_user: dict[str, list] = collections.defaultdict(list)
    for user, item, ts in rows:
        if user is not None and ts is not None and item not in bad_items:
            by_user[user].append(item)
    return [v for v in by_user.values() if len(v) >= 3]


def test_duplicate_sids_are_refused_before_anything_is_written(spark, world, table_root):
    write_table(read_table(spark, f"{world['root']}/interactions").df,
                f"{table_root}/interactions", {"job": "test"})
    dup = spark.createDataFrame([("i1", ["<a_0>"], "none", "cb"), ("i1", ["<a_1>"], "none", "cb")],
                                "item_id string, tokens array<string>, strategy string, "
                                "source_codebook_id string")
    write_table(dup, f"{table_root}/item_sids_rw", {"job": "test"})
    with pytest.raises(ValueError, match="several rows per item for strategy 'none'"):
        build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict(
            {"output_root": table_root, "strategies": ["none"]}))
    assert not table_exists(spark, f"{table_root}/sft_examples")


def _query_of(user, item, ts) -> str | None:
    """Every fifth time has no query (a purchase nobody searched for)."""
    return None if ts is not None and ts % 5 == 0 else f"query {item} {ts}"


@pytest.fixture(scope="module")
def search_world(spark, world, tmp_path_factory):
    """The same interactions with a `query` column, and an `sft_examples` table written before
    the table had `query` and `prompt_mode` (a strategy slice of the old seven columns)."""
    root = str(tmp_path_factory.mktemp("sft_search") / "tables")
    rows = [(u, i, t, _query_of(u, i, t)) for u, i, t in world["rows"]]
    write_table(spark.createDataFrame(rows, "user_id string, item_id string, ts long, "
                                      "query string"), f"{root}/interactions", {"job": "test"})
    write_table(read_table(spark, f"{world['root']}/item_sids_rw").df,
                f"{root}/item_sids_rw", {"job": "test"})
    old = spark.createDataFrame(
        [("u0", "test", ["i1"], "i2", ["<a_0>"], ["<a_0>"], "old")],
        "user_id string, split string, history array<string>, target_item_id string, "
        "prompt_tokens array<string>, target_tokens array<string>, strategy string")
    write_table(old, f"{root}/sft_examples", {"job": "test"}, partition_by=["strategy"])
    return {"root": root, "rows": rows}


@pytest.mark.parametrize("mode", ["query_history", "query"])
def test_query_modes_take_the_target_interactions_query(spark, search_world, mode):
    root = search_world["root"]
    res = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": root, "strategies": ["none"], "history_max_items": HISTORY,
        "prompt_mode": mode}))
    # refused for want of a query: what no earlier reason (user, ts, SID) refuses first
    def no_query(u, i, t, q) -> bool:
        return q is None and u is not None and t is not None and i not in ("gone", "i39")

    rows = search_world["rows"]
    want, reasons, _ = reference([(u, i, t) for u, i, t, q in rows if not no_query(u, i, t, q)],
                                 "none", 1)
    reasons[f"no query (prompt_mode {mode})"] = sum(no_query(*r) for r in rows)
    query_of = {(u, i, t): q for u, i, t, q in search_world["rows"]}
    table = read_table(spark, f"{root}/sft_examples", res.output_version).df
    got = table.where("strategy = 'none'").collect()
    assert {r.prompt_mode for r in got} == {mode}
    assert sorted((r.user_id, r.split, tuple(r.history), r.target_item_id,
                   tuple(r.target_tokens)) for r in got) == [
        (u, s, h, t, tt) for u, s, h, t, _p, tt in want]
    if mode == "query":
        assert all(list(r.prompt_tokens) == [] for r in got)
    else:
        assert sorted(tuple(r.prompt_tokens) for r in got) == sorted(w[4] for w in want)
    # each example's query is one its target interaction carries (ties in ts aside, exactly)
    by_target = collections.defaultdict(set)
    for (u, i, _t), q in query_of.items():
        if q is not None:
            by_target[(u, i)].add(q)
    assert all(r.query in by_target[(r.user_id, r.target_item_id)] for r in got)
    c = res.strategies[0]
    assert c.quarantine_reasons == reasons
    # the older slice is kept and reads as mode history (null)
    old = table.where("strategy = 'old'").collect()
    assert len(old) == 1 and old[0].prompt_mode is None and old[0].query is None


def test_history_mode_ignores_queries_and_query_modes_need_the_column(spark, world,
                                                                      search_world):
    from hourglass.errors import InputError

    res = build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
        "output_root": search_world["root"], "strategies": ["drop_layer(2)"],
        "history_max_items": HISTORY}))
    table = read_table(spark, f"{search_world['root']}/sft_examples", res.output_version).df
    rows = table.where("strategy = 'drop_layer_2'").collect()
    want, reasons, _ = reference(world["rows"], "drop_layer_2", 1)
    assert len(rows) == len(want) and res.strategies[0].quarantine_reasons == reasons
    assert {(r.prompt_mode, r.query) for r in rows} == {("history", None)}
    with pytest.raises(InputError, match="needs a `query` column"):
        build_sft_data.run(spark, build_sft_data.BuildSftDataConfig.from_dict({
            "output_root": world["root"], "strategies": ["none"], "prompt_mode": "query"}))
