"""The rewrite_sids stage on small Delta tables, checked against the numpy reference rewrite."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hourglass.config import ConfigError
from hourglass.rewrite.export import load_sid_index
from hourglass.rewrite.strategies import collision_share, parse_strategy, rewrite_sids
from hourglass.stages.rewrite_sids import RewriteSidsConfig, run

pytestmark = pytest.mark.spark

N, L, M = 240, 3, 8
STRATEGIES = ["none", "drop_layer(2)", "topk(2)", "topshare(0.5)", "exchange(1,2)",
              "topk_share(0.25)"]
SIDS_SCHEMA = "item_id STRING, codes ARRAY<INT>, residual_norms ARRAY<FLOAT>, codebook_id STRING"
BAD_ROWS = [("short", [1, 2], [1.0, 0.5], "cb"), ("  ", [1, 2, 3], None, "cb"),
            ("big", [1, 8, 2], None, "cb"), ("nocodes", None, None, "cb"),
            ("dup", [1, 2, 3], None, "cb"), ("dup", [1, 2, 4], None, "cb")]


def _inputs(seed: int = 7):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, M, size=(N, L))
    codes[:, 1] = np.minimum(rng.geometric(0.35, N) - 1, M - 1)  # a skewed middle layer
    ids = [f"it{i:03d}" for i in rng.permutation(N)]
    pop = rng.integers(0, 4, size=N)  # many ties: item_id must break them
    return codes, ids, pop


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rewrite") / "tables")
    codes, ids, pop = _inputs()
    rows = [(ids[i], [int(c) for c in codes[i]], [1.0, 0.4, 0.1], "cb") for i in range(N)]
    exact_copy = [rows[0]]  # same codes and codebook: one copy kept, the other quarantined
    spark.createDataFrame(rows + BAD_ROWS + exact_copy, SIDS_SCHEMA).write.format("delta").save(
        f"{root}/item_sids")
    events = [(f"u{j}", ids[i], j) for i in range(N) for j in range(int(pop[i]))]
    spark.createDataFrame(events, "user_id STRING, item_id STRING, ts LONG").write.format(
        "delta").save(f"{root}/interactions")
    cfg = RewriteSidsConfig.from_dict({"output_root": root, "strategies": STRATEGIES,
                                       "codebook_size": M, "num_layers": L})
    return root, cfg, run(spark, cfg), (codes, ids, pop)


def _table(spark, root, name):
    return spark.read.format("delta").load(f"{root}/{name}")


def test_rows_equal_the_numpy_reference(spark, first_run):
    from pyspark.testing import assertDataFrameEqual

    root, cfg, result, (codes, ids, pop) = first_run
    expected = []
    for spec in STRATEGIES:
        s = parse_strategy(spec)
        ref = rewrite_sids(codes, ids, s, M, popularity=pop)
        expected += [(ids[i], ref[i], s.name, "cb") for i in range(N)]
    got = _table(spark, root, "item_sids_rw")
    assertDataFrameEqual(got, spark.createDataFrame(expected, got.schema))
    assert (result.items_in, result.items_valid, result.items_quarantined) == (N + 7, N, 7)
    assert (result.num_layers, result.codebook_size) == (L, M)


def test_quarantine_reasons(spark, first_run):
    root, ids = first_run[0], first_run[3][1]
    q = sorted((r["item_id"], r["reason"]) for r in _table(spark, root, "quarantine").collect())
    assert q == sorted([("short", "codes of length 2, expected 3"), ("", "missing item_id"),
                        ("big", "null or out-of-range code (valid: 0..7)"),
                        ("nocodes", "missing codes"), ("dup", "conflicting duplicate item_id"),
                        ("dup", "conflicting duplicate item_id"),
                        (ids[0], "exact duplicate of an earlier row")])


def test_summary_matches_reference_figures(spark, first_run):
    root, _, result, (codes, ids, pop) = first_run
    summary = {(r["strategy"], r["metric"]): r["value"]
               for r in _table(spark, root, "rewrite_summary").collect()}
    for spec in STRATEGIES:
        s = parse_strategy(spec)
        kept = rewrite_sids(codes, ids, s, M, keep_collisions=True)
        final = rewrite_sids(codes, ids, s, M, popularity=pop)
        lengths = np.array([len(x) for x in final])
        assert summary[(s.name, "n_items")] == N
        assert summary[(s.name, "distinct_sids")] == N
        assert summary[(s.name, "distinct_sids_before_suffix")] == len({tuple(x) for x in kept})
        assert summary[(s.name, "collision_share_before")] == pytest.approx(collision_share(kept))
        assert summary[(s.name, "collision_share_after")] == 0.0
        assert summary[(s.name, "mean_length")] == pytest.approx(lengths.mean())
        for n in set(lengths.tolist()):
            assert summary[(s.name, f"length_share_{n}")] == pytest.approx(np.mean(lengths == n))
    assert summary[("none", "capacity_definition")] == summary[("none", "capacity_formula")] == 512
    assert summary[("drop_layer_2", "capacity_definition")] == 64
    assert summary[("topk_2", "capacity_definition")] == 6 * 64 + 64  # 2 of 8 codes removed
    assert summary[("topk_2", "capacity_formula")] == 512 + 2 * (8 - 64)
    # the skew puts ≥ half of the items on the top two layer-2 codes, so topshare(0.5) ≤ 2 codes
    assert 1 <= summary[("topshare_0.5", "removed_tokens")] <= 2


def test_trie_accepts_exactly_the_table_sids(spark, first_run):
    root, _, result, _ = first_run
    rows = _table(spark, root, "item_sids_rw").collect()
    for name, path in result.index_paths.items():
        trie, vocab, manifest = load_sid_index(path)
        table_sids = {tuple(r["tokens"]) for r in rows if r["strategy"] == name}
        assert {tuple(s) for s in trie} == table_sids and len(trie) == len(table_sids)
        assert vocab == sorted({t for s in table_sids for t in s})
        assert manifest["strategy"] == name and manifest["source_codebook_id"] == "cb"
        assert manifest["item_sids"]["version"] == 0
        assert path.endswith(f"/sid_index/{name}")


def test_trie_export_sorts_on_executors_into_the_same_trie(spark, first_run):
    """The export's Spark sort, over several shuffle partitions with every SID twice (adjacent
    duplicates that may straddle partitions) and two strategies, gives the very arrays the
    in-memory build gives for the table's SIDs."""
    from hourglass.rewrite.trie import SidTrie
    from hourglass.spark.rewrite import tries as rw
    from hourglass.spark.session import scoped_conf

    root = first_run[0]
    table = _table(spark, root, "item_sids_rw")
    rows = table.collect()
    names = ["none", "topk_2"]
    with scoped_conf(spark, "spark.sql.adaptive.enabled", "false"), \
            scoped_conf(spark, "spark.sql.shuffle.partitions", "7"):
        twice = table.unionByName(table).repartition(5)
        tries = rw.build_tries(twice, names)
    for name in names:
        expected = SidTrie.build([list(r["tokens"]) for r in rows if r["strategy"] == name])
        got = tries[name]
        assert got.vocab == expected.vocab and len(got) == len(expected) > 0
        for a, b in ((got.offsets, expected.offsets), (got.edge_tokens, expected.edge_tokens),
                     (got.terminal, expected.terminal)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tokens", [[], None, ["<a_1>", None], ["<a_1>", "<b\x01_2>"],
                                    ["<a_1>\x00"]], ids=["empty", "null", "null_token",
                                                         "separator", "nul"])
def test_trie_export_refuses_sids_the_join_cannot_carry(spark, tokens):
    """A token holding the sort separator would be split into two nodes (another SID) and an
    empty or null SID would become one empty token: each fails the export with the item named,
    while the same table without that row builds (so the guard is what refuses)."""
    from hourglass.spark.rewrite import tries as rw

    schema = "item_id STRING, tokens ARRAY<STRING>, strategy STRING"
    good = [("a", ["<a_1>", "<b_2>"], "none"), ("b", ["<a_1>"], "none")]
    assert len(rw.build_tries(spark.createDataFrame(good, schema), ["none"])["none"]) > 0
    with pytest.raises(Exception, match="cannot build the trie of strategy none: item bad"):
        rw.build_tries(spark.createDataFrame([*good, ("bad", tokens, "none")], schema), ["none"])


def test_collision_key_is_the_token_list_and_ranks_as_the_string_key(spark):
    """`base_key` groups exactly as the token lists do (one key per distinct list, for every
    strategy), and the window keyed by it gives the same rows as the joined-token key it falls
    back to when (M+1)^L does not fit a long (forced here with a huge M)."""
    from hourglass.rewrite.strategies import removed_tokens
    from hourglass.spark.rewrite import columns as rw

    codes, ids, pop = _inputs(seed=11)
    rows = [(ids[i], [int(c) for c in codes[i]], "cb", int(pop[i])) for i in range(N)]
    good = spark.createDataFrame(
        rows, "item_id STRING, codes ARRAY<INT>, codebook_id STRING, _popularity BIGINT")
    layer2, counts = np.unique(codes[:, 1], return_counts=True)
    assert rw.base_key(parse_strategy("none"), np.array([]), L, 2 ** 40) is None
    for spec in STRATEGIES:
        s = parse_strategy(spec)
        removed = removed_tokens(s, layer2, counts, M)
        pairs = {(r["k"], tuple(r["t"])) for r in good.select(
            rw.base_key(s, removed, L, M).alias("k"),
            rw.base_tokens(s, removed, L).alias("t")).collect()}
        assert len({k for k, _ in pairs}) == len({t for _, t in pairs}) == len(pairs), spec
        by_key, by_string = (
            sorted(tuple(r) for r in rw.rewrite_frame(good, s, removed, L, True, m).collect())
            for m in (M, 2 ** 40))
        assert by_key == by_string and len(by_key) == N, spec


@pytest.mark.parametrize("partitions", [None, 7])
def test_summary_aggregates_equal_plain_python_counts(spark, rng, partitions):
    """Every count of `summary_aggregates` against a Counter over the same rows: kept
    collisions, suffixed SIDs sharing a base, shortened SIDs, two strategies in one table;
    with the shuffle left to adaptive execution and with a set number of partitions."""
    from collections import Counter

    from hourglass.spark.rewrite.summary import summary_aggregates

    rows = []
    for i in range(600):
        strategy = "topk_2" if i % 3 else "none"
        sid = [f"<a_{rng.integers(0, 3)}>"]
        if strategy == "none" or rng.random() < 0.6:
            sid.append(f"<b_{rng.integers(0, 2)}>")
        sid.append(f"<c_{rng.integers(0, 3)}>")
        if rng.random() < 0.5:
            sid.append(f"<d_{rng.integers(0, 3)}>")  # suffixes that may collide again
        rows.append((f"it{i}", sid, strategy))
    table = spark.createDataFrame(rows, "item_id STRING, tokens ARRAY<STRING>, strategy STRING")
    got = summary_aggregates(table.repartition(3), L, partitions)
    for name in ("none", "topk_2"):
        sids = [tuple(t) for _, t, s in rows if s == name]
        bases = [tuple(x for x in t if not x.startswith("<d_")) for t in sids]
        per_sid, per_base = Counter(sids), Counter(bases)
        expected = {
            "n_items": len(sids), "mean_length": np.mean([len(t) for t in sids]),
            "distinct_sids": len(per_sid), "distinct_sids_before_suffix": len(per_base),
            "collided_after": sum(c for c in per_sid.values() if c > 1),
            "collided_before": sum(c for c in per_base.values() if c > 1),
            "shortened_items": sum(len(b) < L for b in bases),
            **{f"length_{n}": c for n, c in Counter(len(t) for t in sids).items()},
        }
        assert got[name] == pytest.approx(expected)
        assert 0 < expected["collided_after"] < expected["collided_before"] <= len(sids)


def test_summary_partitions_hold_a_million_rows_each_and_every_core_works():
    from hourglass.spark.rewrite.summary import SUMMARY_ROWS_PER_TASK, summary_partitions

    per_task = SUMMARY_ROWS_PER_TASK
    assert summary_partitions(100 * per_task, 2) == 100
    assert summary_partitions(3 * per_task + 1, 2) == 4  # rounded up
    assert summary_partitions(3 * per_task, 2) == 3
    assert summary_partitions(per_task // 2, 2) == 2
    assert summary_partitions(0, 16) == 16


def test_rerun_replaces_only_its_strategy(spark, first_run):
    root, _, _, (codes, ids, pop) = first_run
    before = {r["strategy"]: r["count"]
              for r in _table(spark, root, "item_sids_rw").groupBy("strategy").count().collect()}
    cfg = RewriteSidsConfig.from_dict({"output_root": root, "strategies": ["topk(2)"],
                                       "codebook_size": M, "resolve_collisions": False})
    result = run(spark, cfg)
    rw = _table(spark, root, "item_sids_rw")
    after = {r["strategy"]: r["count"] for r in rw.groupBy("strategy").count().collect()}
    assert after == before  # no duplicates, other strategies untouched
    kept = rewrite_sids(codes, ids, parse_strategy("topk(2)"), M, keep_collisions=True)
    got = {r["item_id"]: list(r["tokens"]) for r in rw.where("strategy = 'topk_2'").collect()}
    assert got == {ids[i]: kept[i] for i in range(N)}
    none_ref = rewrite_sids(codes, ids, parse_strategy("none"), M, popularity=pop)
    got_none = {r["item_id"]: list(r["tokens"]) for r in rw.where("strategy = 'none'").collect()}
    assert got_none == {ids[i]: none_ref[i] for i in range(N)}
    summary = _table(spark, root, "rewrite_summary")
    assert summary.where("strategy = 'topk_2' AND metric = 'n_items'").count() == 1
    share = summary.where("strategy = 'topk_2' AND metric = 'collision_share_after'").first()
    assert share["value"] == pytest.approx(collision_share(kept)) and share["value"] > 0
    assert _table(spark, root, "quarantine").count() == 7  # replaced, not appended
    assert result.outcomes[0].trie_sids == len({tuple(s) for s in kept})
    lineage = json.loads(spark.sql(f"DESCRIBE HISTORY delta.`{root}/item_sids_rw`")
                         .orderBy("version", ascending=False).first()["userMetadata"])
    assert lineage["strategies"] == ["topk_2"] and lineage["source_codebook_id"] == "cb"


def test_layer_out_of_range_fails_before_writing(spark, table_root):
    rows = [("a", [1, 2, 3], None, "cb"), ("b", [1, 2, 0], None, "cb")]
    spark.createDataFrame(rows, SIDS_SCHEMA).write.format("delta").save(f"{table_root}/item_sids")
    cfg = RewriteSidsConfig.from_dict({"output_root": table_root, "popularity_table": "",
                                       "strategies": ["none", "drop_layer(4)"]})
    with pytest.raises(ConfigError, match="out of range"):
        run(spark, cfg)
    from hourglass.spark.tables import table_exists

    for name in ("item_sids_rw", "rewrite_summary", "quarantine"):
        assert not table_exists(spark, f"{table_root}/{name}")
