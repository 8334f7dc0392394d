"""The driver of the two scans: scan 1, scan 2 and its refinement passes, the frames out.

Scan 1 is one Spark job over every row (`first_scan`); what it found decides whether the plan
goes on (a repeated id hash sends the caller to the row plan). Scan 2 (`second_scan`) reads
the kept `cols` chunks as often as a wanted norm rank's bucket is still too large to collect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hourglass.spark.stats.io import StatsFrames
from hourglass.spark.stats.scan.codec import BLOCK_SCHEMA, Block, merge_blocks
from hourglass.spark.stats.scan.frames import drawn_tokens, flow_frame, token_frame
from hourglass.spark.stats.scan.map_side import (
    KEY_SHIFT,
    cols_partition,
    scan1_partition,
    scan2_partition,
)
from hourglass.spark.stats.scan.reduce_side import reduce_blocks
from hourglass.stats.paths import CollisionStats, DepthStats, collision_stats, depth_stats
from hourglass.stats.quantiles import (
    FINE_BINS,
    NORM_QUANTILES,
    coarse_histogram,
    linear_quantiles,
    locate_rank,
    needed_ranks,
)
from hourglass.stats.summary import NormStats, RunInfo, layer_stats_frame, summary_frame

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from hourglass.spark.parquet_scan import FilePlan

REFINE_BITS = 20
COLLECT_LIMIT = 200_000  # a rank's bucket at most this large is resolved to its values


@dataclass
class FirstScan:
    """What scan 1 found: counts, whether ids repeat, everything but flow and norm ranks, and
    the persisted blocks whose `cols` chunks scan 2 reads (`release()` when done)."""

    rows_in: int
    invalid: int
    repeated_hashes: int
    codebooks: int
    agg: pd.DataFrame
    depths: list[DepthStats]
    collisions: CollisionStats
    meta: Block
    # fn over the valid rows' `cols` chunks → its output frame, as often as scan 2 needs it
    over_columns: Callable[[Callable[[Iterator], Iterator]], DataFrame]
    blocks: DataFrame | None  # persisted, when scan 1 kept the chunks

    def release(self) -> None:
        if self.blocks is not None:
            self.blocks.unpersist()


def scan_input(framed: DataFrame, id_col: str) -> DataFrame:
    """(ok, has_id, h, cb, codes, norms) of a `fixed_frame`: validity, the id's and the
    codebook id's hashes, and the arrays as stored."""
    from pyspark.sql import functions as F

    return framed.select(
        F.col("_reason").isNull().alias("ok"), F.col("item_id").isNotNull().alias("has_id"),
        F.coalesce(F.xxhash64("item_id"), F.lit(0)).alias("h"),
        F.when(F.col(id_col).isNotNull(), F.xxhash64(id_col)).alias("cb"),
        F.col("codes"), F.col("residual_norms").alias("norms"))


def first_scan(framed: DataFrame, L: int, M: int, ranges: int, id_col: str,
               files: FilePlan | None = None) -> FirstScan:
    """Scan 1 over a `fixed_frame` (every row, valid or not); its blocks, with the valid rows'
    columns, stay persisted. With `files` (a `parquet_scan.plan_files` plan without a reason)
    the rows come straight from those files instead of through Spark and nothing is
    persisted: scan 2 reads the files again."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import FloatType

    from hourglass.spark.parquet_scan import COLUMNS, arrow_schema, file_blocks
    from hourglass.spark.session import persist_catalog

    norm_type = framed.schema["residual_norms"].dataType.elementType
    dtypes = (np.uint16 if M <= 1 << 16 else np.int32,
              np.float32 if isinstance(norm_type, FloatType) else np.float64)
    if files is not None and files.reason is None:
        # nothing persisted: scan 2 reads the files again (cheaper than caching the columns)
        spark, kept = framed.sparkSession, None
        found = file_blocks(spark, files, arrow_schema(framed, (*COLUMNS, id_col)), L, M, id_col,
                            scan1_partition(L, M, ranges, *dtypes, keep_cols=False), BLOCK_SCHEMA)

        def columns(fn: Callable[[Iterator], Iterator]) -> DataFrame:  # one Python pass
            return file_blocks(spark, files, arrow_schema(framed, COLUMNS), L, M, id_col,
                               lambda rows: fn(cols_partition(L, *dtypes)(rows)), BLOCK_SCHEMA,
                               hash_ids=False)
    else:
        kept = (scan_input(framed, id_col)
                .mapInArrow(scan1_partition(L, M, ranges, *dtypes), BLOCK_SCHEMA)
                .transform(persist_catalog))
        found = kept.where(F.col("kind") != "cols")

        def columns(fn: Callable[[Iterator], Iterator]) -> DataFrame:
            return kept.where(F.col("kind") == "cols").mapInArrow(fn, BLOCK_SCHEMA)
    try:
        merged = reduce_blocks(found, M, L)
    except BaseException:
        if kept is not None:
            kept.unpersist()
        raise
    if "meta" not in merged:  # an empty table
        meta: Block = {"sum_rows": np.array([0]), "sum_invalid": np.array([0]),
                       "keys_book": np.zeros(0, np.int64)}
    else:
        meta = merge_blocks(merged["meta"])
    rows_in, invalid = int(meta["sum_rows"][0]), int(meta["sum_invalid"][0])
    repeated = sum(int(b["sum_repeated"][0]) for b in merged.get("hash", []))
    tok = sorted(merged.get("tok", []), key=lambda b: int(b["first_offset"][0]))
    flat = {k: (np.concatenate([b[k] for b in tok]) if tok else np.zeros(0))
            for k in ("sum_count", "sum_norm", "sum_input")}
    agg = token_frame(flat["sum_count"], flat["sum_norm"], flat["sum_input"], M)
    tree = merge_blocks(merged["sid"]) if merged.get("sid") else {}
    n_items = rows_in - invalid
    fanouts = {d: dict(zip(tree.get(f"keys_fan{d}", []), tree.get(f"counts_fan{d}", []),
                           strict=True)) for d in range(2, L + 1)}
    fanouts[1] = {int(tree["sum_roots"][0]): 1} if tree else {}
    depths = [depth_stats(d, M, items_at_depth=n_items, sids_ending=n_items if d == L else 0,
                          fanout_dist=fanouts[d]) for d in range(1, L + 1)] if n_items else []
    sizes = dict(zip(tree.get("keys_size", []), tree.get("counts_size", []), strict=True))
    return FirstScan(rows_in, invalid, repeated, int(meta["keys_book"].size), agg, depths,
                     collision_stats({int(k): int(v) for k, v in sizes.items()}), meta, columns,
                     kept)


@dataclass
class RankTarget:
    """One wanted order statistic: its layer, its bucket (bits >> shift == prefix) and its rank
    among that bucket's values."""

    layer: int
    rank: int
    shift: int
    prefix: int
    within: int
    size: int

    def request(self) -> tuple[int, int, int, int]:
        """(layer, shift, prefix, next shift): values when small, else REFINE_BITS more bits."""
        nxt = 0 if self.size <= COLLECT_LIMIT else max(self.shift - REFINE_BITS, 0)
        return self.layer, self.shift, self.prefix, nxt


def second_scan(first: FirstScan, L: int, M: int, flow_top: int, run_id: str,
                max_passes: int = 6) -> tuple[dict[int, NormStats], pd.DataFrame]:
    """Scan 2 and any refinement pass: per-layer norm statistics and the flow edges."""
    meta = first.meta
    n = first.rows_in - first.invalid
    if not n:
        return {}, flow_frame({}, {}, L, run_id)
    lo, hi = meta["min_norm"], meta["max_norm"]
    targets = []
    for g in range(1, L + 1):
        keys, counts = meta[f"keys_bits{g}"], meta[f"counts_bits{g}"]
        for rank in needed_ranks(n, NORM_QUANTILES):
            pos, within = locate_rank(counts, rank)
            targets.append(RankTarget(g, rank, KEY_SHIFT, int(keys[pos]), within,
                                      int(counts[pos])))
    drawn = drawn_tokens(first.agg, L, flow_top)
    order: dict[tuple[int, int], float] = {}
    block: Block = {}
    for i in range(max_passes):
        requests = sorted({t.request() for t in targets})
        fn = scan2_partition(L, M, lo, hi, drawn if i == 0 else None, requests)
        merged = reduce_blocks(first.over_columns(fn), M, L).get("scan2")
        got = merge_blocks(merged) if merged else {}
        if i == 0:
            block = got
        pending = []
        for t in targets:
            r = requests.index(t.request())
            keys, counts = got[f"keys_req{r}"], got[f"counts_req{r}"]
            pos, within = locate_rank(counts, t.within)
            nxt = t.request()[3]
            if nxt == 0:
                order[(t.layer, t.rank)] = float(np.array([keys[pos]], np.int64).view(
                    np.float64)[0])
            else:
                pending.append(RankTarget(t.layer, t.rank, nxt, int(keys[pos]), within,
                                          int(counts[pos])))
        targets = pending
        if not targets:
            break
    else:
        raise RuntimeError(f"norm ranks did not resolve in {max_passes} passes: {targets}")
    norms = {}
    for g in range(1, L + 1):
        fine = block[f"sum_fine{g}"]
        rows_g = first.agg[first.agg["layer"] == g]
        qs = linear_quantiles(n, NORM_QUANTILES, {r: order[(g, r)]
                                                  for r in needed_ranks(n, NORM_QUANTILES)})
        norms[g] = NormStats(mean=float(rows_g["norm_sum"].sum()) / n, min=float(lo[g - 1]),
                             max=float(hi[g - 1]), quantiles=qs,
                             hist=coarse_histogram({b: int(c) for b, c in enumerate(fine) if c},
                                                   FINE_BINS))
    flows = {g: block[f"sum_flow{g}"] for g in range(1, L)}
    return norms, flow_frame(flows, drawn, L, run_id)


def compute_scanned(first: FirstScan, info: RunInfo, head_share: float = 0.5,
                    flow_top: int = 20) -> StatsFrames:
    """Every statistic of one fixed-length run from scan 1 (`first_scan`) and its scan 2."""
    norms, flow = second_scan(first, info.num_layers, info.M, flow_top, info.run_id)
    summary = summary_frame(info, first.agg, first.depths, first.collisions, norms, head_share,
                            flow_top)
    return StatsFrames(
        layer_stats=layer_stats_frame(info.run_id, first.agg, head_share), summary=summary,
        flow=flow, n_items=first.collisions.n_items,
    )
