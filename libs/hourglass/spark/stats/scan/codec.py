"""The rows the two scans exchange: named numpy arrays packed into one BINARY value per row.

A map task yields rows (kind, part, block); Spark groups them by (kind, part) for the reduce side.
A block travels as raw array bytes behind a JSON header, so neither side pickles and the
reduce side reads views of the bytes it was given. Partials merge by their names' prefix
(`merge_blocks`), so a new statistic needs no new merge code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

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


def sparse_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys, their counts): a sparse histogram, as `keys_X`/`counts_X`."""
    return np.unique(keys, return_counts=True)


def block_batch(rows: list[tuple[str, int, bytes]]) -> pa.RecordBatch:
    """(kind, part, block) rows as one Arrow batch of `BLOCK_SCHEMA`."""
    import pyarrow as pa

    return pa.RecordBatch.from_pydict({"kind": [k for k, _, _ in rows],
                                       "part": [p for _, p, _ in rows],
                                       "block": [x for _, _, x in rows]}, schema=block_schema())


def block_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("kind", pa.string()), ("part", pa.int32()), ("block", pa.binary())])
