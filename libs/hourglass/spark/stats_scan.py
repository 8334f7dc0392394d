"""The statistics of fixed-length SIDs in two scans and one shuffle of numpy blocks (exact).

Why: the row plan of `spark_stats` explodes, caches and re-aggregates every row once per
statistic and took 20-25x a plain per-layer `groupBy().count()`. Here each partition reduces its
own rows with numpy and only blocks of arrays cross the shuffle:

scan 1 (one Spark job), per partition: row and invalid counts; per (layer, token) the count and
the sums of the norm after and entering the layer; per layer the count, min and max of the
residual norm and a histogram of its float64 bit pattern >> `KEY_SHIFT` (for x ≥ 0 the bit
pattern orders like the value, so these buckets are ordered value ranges whatever the range);
the partition's distinct packed SIDs with item counts, split into R ranges of the layer-1 code
(a range holds whole prefix subtrees); the 64-bit hashes of its item ids, split into R hash
ranges. Blocks are grouped by (kind, range) and each group merged in one Python call
(`applyInArrow`): partials summed, a SID range's subtrees turned into fan-out and collision
histograms, a hash range checked for repeats.
The map side also keeps the valid rows' codes and norms in compact chunks (`cols`: 2-byte codes
when M ≤ 2^16, norms as stored), persisted with the blocks. scan 2 reads only those chunks: the
equal-width norm histograms over [min, max], the flow edges among the drawn tokens, and the bit
buckets holding each wanted norm rank resolved by `REFINE_BITS` more bits (or to the values,
when the bucket is small); further passes over the chunks only while a bucket is still too
large. The SID table itself is read once.

A repeated id hash stops here: the caller runs the row plan, which quarantines duplicates (hash
collisions included, as it compares the ids themselves).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hourglass.stats.paths import CollisionStats, DepthStats, collision_stats, depth_stats
from hourglass.stats.quantiles import (
    FINE_BINS,
    NORM_QUANTILES,
    bucket_index,
    coarse_histogram,
    linear_quantiles,
    locate_rank,
    needed_ranks,
)
from hourglass.stats.schema import OTHER_TOKEN
from hourglass.stats.summary import AGG_COLUMNS, NormStats, flow_node_count, top_tokens

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from hourglass.spark.parquet_scan import FilePlan

KEY_SHIFT = 44  # scan 1 keeps sign, exponent and 8 mantissa bits: < 2^19 buckets, a bincount
REFINE_BITS = 20
COLLECT_LIMIT = 200_000  # a rank's bucket at most this large is resolved to its values
BLOCK_SCHEMA = "kind STRING, part INT, block BINARY"
Block = dict[str, np.ndarray]


def pack(block: Block) -> bytes:
    """Named arrays as one bytes value: a JSON header (name, dtype, shape), then the raw data."""
    arrays = {k: np.ascontiguousarray(v) for k, v in block.items()}
    head = json.dumps([(k, a.dtype.str, a.shape) for k, a in arrays.items()]).encode()
    return b"".join([len(head).to_bytes(4, "little"), head,
                     *[memoryview(a).cast("B") for a in arrays.values() if a.size]])


def unpack(blob: bytes) -> Block:
    """`pack`'s arrays, read-only views of `blob`."""
    size = int.from_bytes(blob[:4], "little")
    at, out = 4 + size, {}
    for name, dtype, shape in json.loads(blob[4:at]):
        dt = np.dtype(dtype)
        count = int(np.prod(shape))
        out[name] = np.frombuffer(blob, dt, count, at).reshape(shape)
        at += count * dt.itemsize
    return out


def merge_blocks(blocks: list[Block]) -> Block:
    """Merge partials by their names' prefix: sum_, min_, max_ elementwise; keys_X with counts_X
    as sparse histograms; first_ from the first block."""
    out: Block = {}
    for name in sorted({n for b in blocks for n in b}):
        vals = [b[name] for b in blocks if name in b]
        op = name.split("_", 1)[0]
        if op == "sum":
            out[name] = np.sum(vals, axis=0)
        elif op == "min":
            out[name] = np.min(vals, axis=0)
        elif op == "max":
            out[name] = np.max(vals, axis=0)
        elif op == "first":
            out[name] = vals[0]
        elif op == "keys":
            counts = np.concatenate([b["counts" + name[4:]] for b in blocks if name in b])
            keys, inv = np.unique(np.concatenate(vals), return_inverse=True)
            out[name] = keys
            out["counts" + name[4:]] = np.bincount(inv, weights=counts,
                                                   minlength=keys.size).astype(np.int64)
        elif op != "counts":
            raise ValueError(f"block array {name!r} has no merge rule")
    return out


def _sparse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.unique(keys, return_counts=True)


def norm_bits(x: np.ndarray) -> np.ndarray:
    """float64 bit patterns of x ≥ 0 as int64, ordered like x (−0.0 folded into +0.0)."""
    return (np.asarray(x, dtype=np.float64) + 0.0).view(np.int64)


def _ranges(sorted_keys: np.ndarray, starts: np.ndarray) -> list[tuple[int, int, int]]:
    """(range, begin, end) of each non-empty range of sorted keys; `starts` the ranges' first
    keys."""
    cut = [*np.searchsorted(sorted_keys, starts).tolist(), sorted_keys.size]
    return [(r, a, b) for r, (a, b) in enumerate(zip(cut[:-1], cut[1:], strict=True)) if b > a]


def _valid_matrix(batch: pa.RecordBatch, name: str, L: int) -> np.ndarray:
    """(L, rows) of a list column whose rows all hold L non-null values (the valid rows)."""
    values = batch.column(name).flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values.reshape(-1, L).T)


def scan1_partition(L: int, M: int, R: int, code_dtype, norm_dtype,
                    chunk_rows: int = 1 << 20, keep_cols: bool = True
                    ) -> Callable[[Iterator], Iterator]:
    """The map side of scan 1: rows (ok, has_id, h, cb, codes, norms) → blocks, and (with
    `keep_cols`) the valid rows' codes and norms packed in chunks (`cols`) for scan 2."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = invalid = 0
        flat = L * M
        count, nsum, insum = np.zeros(flat, np.int64), np.zeros(flat), np.zeros(flat)
        lo, hi = np.full(L, np.inf), np.full(L, -np.inf)
        bits: list[list[np.ndarray]] = [[] for _ in range(L)]  # binned once, at the end
        hashes, sids, books = [], [], set()
        chunks = _Chunks(code_dtype, norm_dtype, chunk_rows)
        offsets = np.arange(L, dtype=np.int64)[:, None] * M
        for b in batches:
            ok = b.column("ok").to_numpy(zero_copy_only=False)
            has = b.column("has_id").to_numpy(zero_copy_only=False)
            rows += b.num_rows
            invalid += int(b.num_rows - ok.sum())
            hashes.append(b.column("h").to_numpy(zero_copy_only=False)[has])
            books.update(pc.unique(b.column("cb")).drop_null().to_pylist())
            if not ok.all():
                b = b.filter(pa.array(ok))
            if not b.num_rows:
                continue
            codes = _valid_matrix(b, "codes", L).astype(np.int64)
            raw = _valid_matrix(b, "norms", L)
            norms = raw.astype(np.float64)
            idx = (codes + offsets).ravel()
            count += np.bincount(idx, minlength=flat)
            nsum += np.bincount(idx, weights=norms.ravel(), minlength=flat)
            insum[M:] += np.bincount(idx[codes.shape[1]:] - M, weights=norms[:-1].ravel(),
                                     minlength=flat - M)
            for g in range(L):
                bits[g].append((norm_bits(norms[g]) >> KEY_SHIFT).astype(np.int32))
            sid = codes[0]
            for g in range(1, L):
                sid = sid * M + codes[g]
            sids.append(sid)
            lo = np.minimum(lo, raw.min(axis=1).astype(np.float64))
            hi = np.maximum(hi, raw.max(axis=1).astype(np.float64))
            if keep_cols:
                yield from chunks.add(codes, raw)
        yield from chunks.rest()
        if not rows:
            return
        out: list[tuple[str, int, bytes]] = []
        meta: Block = {"sum_rows": np.array([rows]), "sum_invalid": np.array([invalid]),
                       "min_norm": lo, "max_norm": hi,
                       "keys_book": np.array(sorted(books), np.int64)}
        meta["counts_book"] = np.ones(meta["keys_book"].size, np.int64)
        for g in range(L):
            hist = np.bincount(np.concatenate(bits[g])) if bits[g] else np.zeros(0, np.int64)
            keys = np.flatnonzero(hist)
            meta[f"keys_bits{g + 1}"], meta[f"counts_bits{g + 1}"] = keys, hist[keys]
        out.append(("meta", 0, pack(meta)))
        for r, (a, z) in enumerate(_split_bounds(flat, R)):
            out.append(("tok", r, pack({"first_offset": np.array([a]), "sum_count": count[a:z],
                                        "sum_norm": nsum[a:z], "sum_input": insum[a:z]})))
        u, n = _sparse(np.concatenate(sids)) if sids else (np.zeros(0, np.int64),) * 2
        top = M ** (L - 1)
        starts = np.array([-(-r * M // R) * top for r in range(R)], np.int64)
        for r, a, z in _ranges(u, starts):
            out.append(("sid", r, pack({"sid": u[a:z], "n": n[a:z].astype(np.int32)})))
        h = np.sort(np.concatenate(hashes).view(np.uint64))
        hstarts = np.array([(r << 64) // R for r in range(R)], np.uint64)
        for r, a, z in _ranges(h, hstarts):
            out.append(("hash", r, pack({"h": h[a:z]})))
        yield _batch(out)

    return run


def cols_partition(L: int, code_dtype, norm_dtype,
                   chunk_rows: int = 1 << 20) -> Callable[[Iterator], Iterator]:
    """Rows (ok, codes, norms, ...) → the valid rows' codes and norms in `cols` chunks: what
    scan 2 reads, when scan 1 did not keep them (rows read from the files again instead)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        chunks = _Chunks(code_dtype, norm_dtype, chunk_rows)
        for b in batches:
            ok = b.column("ok").to_numpy(zero_copy_only=False)
            if not ok.all():
                b = b.filter(pa.array(ok))
            if b.num_rows:
                yield from chunks.add(_valid_matrix(b, "codes", L), _valid_matrix(b, "norms", L))
        yield from chunks.rest()

    return run


class _Chunks:
    """Valid rows' (L, n) codes and norms gathered into `cols` blocks of about `chunk_rows`."""

    def __init__(self, code_dtype, norm_dtype, chunk_rows: int):
        self.dtypes, self.chunk_rows = (code_dtype, norm_dtype), chunk_rows
        self.stash: list[tuple[np.ndarray, np.ndarray]] = []
        self.stashed = self.chunk = 0

    def add(self, codes: np.ndarray, norms: np.ndarray) -> list[pa.RecordBatch]:
        """Stash the rows now; the block they complete, if any."""
        self.stash.append((codes.astype(self.dtypes[0]),
                           norms.astype(self.dtypes[1], copy=False)))
        self.stashed += codes.shape[1]
        return self.rest() if self.stashed >= self.chunk_rows else []

    def rest(self) -> list[pa.RecordBatch]:
        """The stashed rows as a block (none when empty)."""
        if not self.stash:
            return []
        block = _cols_block(self.stash, self.chunk)
        self.stash, self.stashed, self.chunk = [], 0, self.chunk + 1
        return [block]


def _cols_block(stash: list[tuple[np.ndarray, np.ndarray]], chunk: int) -> pa.RecordBatch:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    part = (ctx.partitionId() if ctx else 0) * 4096 + chunk
    return _batch([("cols", part, pack({"codes": np.concatenate([c for c, _ in stash], axis=1),
                                        "norms": np.concatenate([x for _, x in stash], axis=1)}))])


def _batch(rows: list[tuple[str, int, bytes]]) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({"kind": [k for k, _, _ in rows],
                                       "part": [p for _, p, _ in rows],
                                       "block": [x for _, _, x in rows]}, schema=_block_schema())


def _block_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("kind", pa.string()), ("part", pa.int32()), ("block", pa.binary())])


def _split_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    edges = [n * r // parts for r in range(parts + 1)]
    return [(a, z) for a, z in zip(edges[:-1], edges[1:], strict=True) if z > a]


def sid_tree(sid: np.ndarray, n: np.ndarray, M: int, L: int) -> Block:
    """Collision sizes and fan-outs of whole prefix subtrees: {children: parents} per depth."""
    u, inv = np.unique(sid, return_inverse=True)
    size = np.bincount(inv, weights=n, minlength=u.size).astype(np.int64)
    out: Block = {}
    out["keys_size"], out["counts_size"] = _sparse(size)
    level = u
    for d in range(L, 1, -1):
        level, children = np.unique(level // M, return_counts=True)
        out[f"keys_fan{d}"], out[f"counts_fan{d}"] = _sparse(children)
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
                                    schema=_block_schema())

    return run


def reduce_blocks(blocks: DataFrame, M: int, L: int) -> dict[str, list[Block]]:
    """Merge each (kind, range) group of map-side blocks, collect: {kind: merged blocks}."""
    merged = (blocks.groupBy("kind", "part").applyInArrow(reduce_group(M, L), BLOCK_SCHEMA)
              .collect())
    out: dict[str, list[Block]] = {}
    for r in sorted(merged, key=lambda r: (r["kind"], r["part"])):
        out.setdefault(r["kind"], []).append(unpack(r["block"]))
    return out


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


def token_frame(count: np.ndarray, nsum: np.ndarray, insum: np.ndarray, M: int) -> pd.DataFrame:
    """The used (layer, token) rows of dense partials, as `spark_stats.token_aggregates`."""
    used = np.flatnonzero(count)
    agg = pd.DataFrame({"layer": used // M + 1, "token": used % M, "count": count[used],
                        "norm_sum": nsum[used], "input_norm_sum": insum[used]})
    agg.loc[agg["layer"] == 1, "input_norm_sum"] = np.nan  # nothing enters layer 1
    return agg[list(AGG_COLUMNS)].reset_index(drop=True)


def drawn_tokens(agg: pd.DataFrame, L: int, flow_top: int) -> dict[int, list[int]]:
    """The tokens the flow figure draws per layer (the summary's `flow_nodes` most frequent)."""
    out = {}
    for layer in range(1, L + 1):
        used = int((agg["layer"] == layer).sum())
        out[layer] = [int(t) for t in top_tokens(agg, layer, flow_node_count(used, flow_top))]
    return out


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


def scan2_partition(L: int, M: int, lo: np.ndarray, hi: np.ndarray,
                    drawn: dict[int, list[int]] | None,
                    requests: list[tuple[int, int, int, int]]) -> Callable[[Iterator], Iterator]:
    """The map side of scan 2 (flow and fine histograms when `drawn` is given) and of any
    further refinement pass, over scan 1's `cols` chunks → one block per partition."""
    nodes = {}
    if drawn is not None:
        for layer in range(1, L + 1):
            keep = drawn.get(layer, [])
            node = np.full(M, len(keep), np.int64)
            node[np.asarray(keep, np.int64)] = np.arange(len(keep))
            nodes[layer] = node

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        block: Block = {}
        found: list[list[np.ndarray]] = [[] for _ in requests]
        seen = 0
        for b in batches:
            for blob in b.column("block").to_pylist():
                chunk = unpack(blob)
                codes, norms = chunk["codes"], chunk["norms"].astype(np.float64)
                seen += codes.shape[1]
                if drawn is not None:
                    _fine_and_flow(block, codes, norms, L, lo, hi, drawn, nodes)
                for i, (layer, shift, prefix, nxt) in enumerate(requests):
                    x = norm_bits(norms[layer - 1])
                    found[i].append(x[(x >> shift) == prefix] >> nxt)
        if not seen:
            return
        for i, keys in enumerate(found):
            block[f"keys_req{i}"], block[f"counts_req{i}"] = _sparse(np.concatenate(keys))
        ctx = TaskContext.get()
        yield _batch([("scan2", (ctx.partitionId() if ctx else 0) % 64, pack(block))])

    return run


def _fine_and_flow(block: Block, codes: np.ndarray, norms: np.ndarray, L: int, lo: np.ndarray,
                   hi: np.ndarray, drawn: dict[int, list[int]], nodes: dict) -> None:
    """Add one chunk's equal-width norm histograms and drawn-node pair counts to `block`."""
    for g in range(L):
        fine = np.bincount(bucket_index(norms[g], lo[g], hi[g]), minlength=FINE_BINS)
        block[f"sum_fine{g + 1}"] = block.get(f"sum_fine{g + 1}", 0) + fine
    for g in range(1, L):
        width = len(drawn.get(g + 1, [])) + 1
        pair = nodes[g][codes[g - 1]] * width + nodes[g + 1][codes[g]]
        size = (len(drawn.get(g, [])) + 1) * width
        block[f"sum_flow{g}"] = block.get(f"sum_flow{g}", 0) + np.bincount(pair, minlength=size)


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


def flow_frame(flows: dict[int, np.ndarray], drawn: dict[int, list[int]], L: int,
               run_id: str) -> pd.DataFrame:
    """`sid_flow` rows from the dense node-pair counts of consecutive layers."""
    rows = []
    for g, counts in flows.items():
        src = [*drawn.get(g, []), OTHER_TOKEN]
        dst = [*drawn.get(g + 1, []), OTHER_TOKEN]
        for idx in np.flatnonzero(counts):
            s, t = divmod(int(idx), len(dst))
            rows.append((run_id, g, src[s], g + 1, dst[t], int(counts[idx])))
    out = pd.DataFrame(rows, columns=["run_id", "src_layer", "src_token", "dst_layer",
                                      "dst_token", "count"])
    return out.sort_values(["src_layer", "src_token", "dst_layer", "dst_token"],
                           ignore_index=True)
