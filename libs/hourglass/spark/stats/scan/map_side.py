"""The map side of both scans: numpy over one partition's rows, blocks out (see the package).

Scan 1 (`scan1_partition`) reduces a partition's rows to partial counts, sums and bit
histograms, its distinct packed SIDs and its id hashes, each split into ranges for the reduce
side, and (with `keep_cols`) keeps the valid rows' codes and norms in compact `cols` chunks.
Scan 2 (`scan2_partition`) reads only those chunks. What these return runs on the executors,
which import this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from hourglass.spark.stats.scan.codec import Block, block_batch, pack, sparse_counts, unpack
from hourglass.stats.quantiles import FINE_BINS, bucket_index

if TYPE_CHECKING:
    import pyarrow as pa

KEY_SHIFT = 44  # scan 1 keeps sign, exponent and 8 mantissa bits: < 2^19 buckets, a bincount


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
        u, n = sparse_counts(np.concatenate(sids)) if sids else (np.zeros(0, np.int64),) * 2
        top = M ** (L - 1)
        starts = np.array([-(-r * M // R) * top for r in range(R)], np.int64)
        for r, a, z in _ranges(u, starts):
            out.append(("sid", r, pack({"sid": u[a:z], "n": n[a:z].astype(np.int32)})))
        h = np.sort(np.concatenate(hashes).view(np.uint64))
        hstarts = np.array([(r << 64) // R for r in range(R)], np.uint64)
        for r, a, z in _ranges(h, hstarts):
            out.append(("hash", r, pack({"h": h[a:z]})))
        yield block_batch(out)

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
    return block_batch([("cols", part, pack({"codes": np.concatenate([c for c, _ in stash], axis=1),
                                        "norms": np.concatenate([x for _, x in stash], axis=1)}))])


def _split_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    edges = [n * r // parts for r in range(parts + 1)]
    return [(a, z) for a, z in zip(edges[:-1], edges[1:], strict=True) if z > a]


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
            block[f"keys_req{i}"], block[f"counts_req{i}"] = sparse_counts(np.concatenate(keys))
        ctx = TaskContext.get()
        yield block_batch([("scan2", (ctx.partitionId() if ctx else 0) % 64, pack(block))])

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
