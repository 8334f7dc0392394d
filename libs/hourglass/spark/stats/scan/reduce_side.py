"""The reduce side: each (kind, range) group of map-side blocks merged in one Python call.

A SID range holds whole prefix subtrees (ranges split the layer-1 code), so its fan-out and
collision histograms are complete and the driver only adds them up; a hash range holds every
copy of its hashes, so repeats are counted where they meet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from hourglass.spark.stats.scan.codec import (
    BLOCK_SCHEMA,
    Block,
    block_schema,
    merge_blocks,
    pack,
    sparse_counts,
    unpack,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame


def sid_tree(sid: np.ndarray, n: np.ndarray, M: int, L: int) -> Block:
    """Collision sizes and fan-outs of whole prefix subtrees: {children: parents} per depth."""
    u, inv = np.unique(sid, return_inverse=True)
    size = np.bincount(inv, weights=n, minlength=u.size).astype(np.int64)
    out: Block = {}
    out["keys_size"], out["counts_size"] = sparse_counts(size)
    level = u
    for d in range(L, 1, -1):
        level, children = np.unique(level // M, return_counts=True)
        out[f"keys_fan{d}"], out[f"counts_fan{d}"] = sparse_counts(children)
    out["sum_roots"] = np.array([level.size])
    return out


def reduce_group(M: int, L: int) -> Callable[[pa.Table], pa.Table]:
    """The reduce side: one (kind, range) group's blocks → one merged block."""

    def run(table: pa.Table) -> pa.Table:
        import pyarrow as pa

        kind, part = table.column("kind")[0].as_py(), table.column("part")[0].as_py()
        blocks = [unpack(b) for b in table.column("block").to_pylist()]
        if kind == "sid":
            block = sid_tree(np.concatenate([b["sid"] for b in blocks]),
                             np.concatenate([b["n"] for b in blocks]), M, L)
        elif kind == "hash":
            h = np.sort(np.concatenate([b["h"] for b in blocks]), kind="stable")
            block = {"sum_repeated": np.array([int(np.count_nonzero(h[1:] == h[:-1]))])}
        else:
            block = merge_blocks(blocks)
        return pa.Table.from_pydict({"kind": [kind], "part": [part], "block": [pack(block)]},
                                    schema=block_schema())

    return run


def reduce_blocks(blocks: DataFrame, M: int, L: int) -> dict[str, list[Block]]:
    """Merge each (kind, range) group of map-side blocks, collect: {kind: merged blocks}."""
    merged = (blocks.groupBy("kind", "part").applyInArrow(reduce_group(M, L), BLOCK_SCHEMA)
              .collect())
    out: dict[str, list[Block]] = {}
    for r in sorted(merged, key=lambda r: (r["kind"], r["part"])):
        out.setdefault(r["kind"], []).append(unpack(r["block"]))
    return out
