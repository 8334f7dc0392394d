"""Rank shards read through the Delta log (tables written with `deltalake`, no JVM)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from hourglass.train.data import (
    FileSlice,
    batch_indices,
    read_shard,
    read_strategy_columns,
    shard_plan,
)


def _rows(strategy: str, lo: int, hi: int) -> pa.Table:
    ids = [f"u{i}" for i in range(lo, hi)]
    return pa.table({
        "user_id": ids, "split": ["train" if i % 3 else "valid" for i in range(lo, hi)],
        "history": [[f"i{i}"] for i in range(lo, hi)],
        "target_item_id": [f"t{i}" for i in range(lo, hi)],
        "prompt_tokens": [["<a_1>"] for _ in ids], "target_tokens": [["<a_2>"] for _ in ids],
        "strategy": [strategy] * len(ids),
    })


@pytest.fixture
def sft_table(tmp_path):
    """`none` spread over 4 files of unequal size, plus another strategy and a stale file."""
    uri = str(tmp_path / "sft_examples")
    write_deltalake(uri, _rows("none", 0, 7), partition_by=["strategy"])
    write_deltalake(uri, _rows("topk_2", 0, 5), partition_by=["strategy"], mode="append")
    for lo, hi in ((7, 8), (8, 20), (20, 23)):
        write_deltalake(uri, _rows("none", lo, hi), partition_by=["strategy"], mode="append")
    # a parquet file the log does not list (an aborted write): must never be read
    pq.write_table(_rows("none", 100, 150).drop(["strategy"]),
                   f"{uri}/strategy=none/part-zzz-orphan.parquet")
    return uri


def test_shard_plan_by_hand():
    files = [("a", 3), ("b", 0), ("c", 5)]
    assert shard_plan(files, 0, 2) == [FileSlice("a", 0, 3), FileSlice("c", 0, 1)]
    assert shard_plan(files, 1, 2) == [FileSlice("c", 1, 5)]
    assert shard_plan(files, 2, 3) == [FileSlice("c", 2, 5)]  # global rows 5..8 = c[2:5]
    with pytest.raises(ValueError):
        shard_plan(files, 2, 2)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_disjoint_balanced_and_cover_the_strategy(sft_table, world):
    shards = [read_shard(sft_table, "none", r, world) for r in range(world)]
    keys = [k for s in shards for k in zip(s.columns["user_id"], s.columns["target_item_id"],
                                           strict=True)]
    assert len(keys) == len(set(keys)) == 23  # disjoint, orphan file and other strategy unseen
    assert set(keys) == {(f"u{i}", f"t{i}") for i in range(23)}
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    assert all(s.total_rows == 23 and s.version == 4 for s in shards)
    train = shards[0].where_split("train")
    assert all(s == "train" for s in train["split"]) and len(train["user_id"]) > 0


def test_pinned_version_and_unpartitioned_table(sft_table, tmp_path):
    old = read_shard(sft_table, "none", 0, 1, version=0)
    assert old.version == 0 and len(old) == 7
    version, cols = read_strategy_columns(sft_table, "topk_2", ["user_id"])
    assert version == DeltaTable(sft_table).version() and sorted(cols["user_id"]) == [
        f"u{i}" for i in range(5)]
    flat = str(tmp_path / "flat")
    write_deltalake(flat, pa.concat_tables([_rows("none", 0, 4), _rows("x", 0, 3)]))
    write_deltalake(flat, _rows("none", 4, 9), mode="append")
    both = [read_shard(flat, "none", r, 2) for r in range(2)]
    assert sorted(u for s in both for u in s.columns["user_id"]) == sorted(
        f"u{i}" for i in range(9))


def test_batch_indices_are_seeded_epochs():
    n, bs = 10, 4
    stream = np.concatenate([batch_indices(n, bs, 7, m) for m in range(5)])  # 20 = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:]) == list(range(10))
    assert not np.array_equal(stream[:10], stream[10:])  # reshuffled each epoch
    assert np.array_equal(batch_indices(n, bs, 7, 3), stream[12:16])  # pure: resumable
    assert not np.array_equal(batch_indices(n, bs, 8, 0), stream[:4])
    with pytest.raises(ValueError):
        batch_indices(0, bs, 7, 0)
