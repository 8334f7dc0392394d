"""Each rank's disjoint shard of `sft_examples`, read through the Delta log with `deltalake`.

The files of one table version come from its transaction log (never a directory listing, which
would also see files a later commit removed or an unfinished write left behind). The rows of
those files, in a fixed order (path, then row), are cut into `world_size` contiguous ranges of
equal size ±1: rank r reads only the files overlapping its range. So shards are disjoint, cover
the strategy's slice exactly, and are balanced whatever the file sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hourglass.errors import TableNotFoundError

SHARD_COLUMNS = ("user_id", "split", "target_item_id", "prompt_tokens", "target_tokens")


@dataclass(frozen=True)
class FileSlice:
    """Rows [start, stop) of one data file."""

    path: str
    start: int
    stop: int


def shard_plan(file_rows: Sequence[tuple[str, int]], rank: int, world_size: int
               ) -> list[FileSlice]:
    """The slices of rank `rank`: global rows [total·r/W, total·(r+1)/W) over files in order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    total = sum(n for _, n in file_rows)
    lo, hi = total * rank // world_size, total * (rank + 1) // world_size
    out, offset = [], 0
    for path, n in file_rows:
        a, b = max(lo, offset), min(hi, offset + n)
        if a < b:
            out.append(FileSlice(path, a - offset, b - offset))
        offset += n
    return out


@dataclass(frozen=True)
class Shard:
    """One rank's rows as Python lists, plus the table version they were read at."""

    version: int
    total_rows: int
    columns: dict[str, list]

    def __len__(self) -> int:
        return len(self.columns["user_id"])

    def where_split(self, split: str) -> dict[str, list]:
        keep = [i for i, s in enumerate(self.columns["split"]) if s == split]
        return {k: [v[i] for i in keep] for k, v in self.columns.items()}


def open_delta(table_uri: str, version: int | None = None):
    """The `deltalake` table at `version`; a missing table is the job's input error (exit 3,
    one line), as on the Spark side, not a deltalake traceback."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError as DeltaTableNotFound

    try:
        return DeltaTable(table_uri, version=version)
    except DeltaTableNotFound as e:
        raise TableNotFoundError.of(table_uri) from e


def _strategy_dataset(table_uri: str, strategy: str, version: int | None):
    dt = open_delta(table_uri, version)
    partitioned = "strategy" in dt.metadata().partition_columns
    parts = [("strategy", "=", strategy)] if partitioned else None
    return dt, dt.to_pyarrow_dataset(partitions=parts), partitioned


def read_shard(table_uri: str, strategy: str, rank: int, world_size: int,
               version: int | None = None, columns: Sequence[str] = SHARD_COLUMNS) -> Shard:
    """Rank `rank`'s rows of `strategy`, from the files the Delta log lists at `version`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dt, ds, partitioned = _strategy_dataset(table_uri, strategy, version)
    fragments = sorted(ds.get_fragments(), key=lambda f: f.path)
    rows = [(f.path, f.count_rows()) for f in fragments]
    by_path = {f.path: f for f in fragments}
    want = list(dict.fromkeys([*columns, *(() if partitioned else ("strategy",))]))
    parts = []
    for s in shard_plan(rows, rank, world_size):
        table = by_path[s.path].to_table(columns=want).slice(s.start, s.stop - s.start)
        if not partitioned:
            table = table.filter(pc.equal(table["strategy"], strategy))
        parts.append(table.select(list(columns)))
    table = pa.concat_tables(parts) if parts else ds.schema.empty_table().select(list(columns))
    total = sum(n for _, n in rows)
    return Shard(version=dt.version(), total_rows=total,
                 columns={c: table[c].to_pylist() for c in columns})


def read_strategy_columns(table_uri: str, strategy: str, columns: Sequence[str],
                          version: int | None = None) -> tuple[int, dict[str, list]]:
    """Columns of all of a strategy's rows (e.g. `item_sids_rw` tokens) and the version read."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    dt, ds, partitioned = _strategy_dataset(table_uri, strategy, version)
    flt = None if partitioned else pc.equal(pads.field("strategy"), strategy)
    table = ds.to_table(columns=list(columns), filter=flt)
    return dt.version(), {c: table[c].to_pylist() for c in columns}


def prompt_modes_of(table_uri: str, strategy: str, version: int | None = None) -> set[str]:
    """The prompt modes `sft_examples` rows of `strategy` were built with (`history` for a
    table written before the column existed): a trainer or evaluator compares them with its
    own mode before reading a row."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    _, ds, partitioned = _strategy_dataset(table_uri, strategy, version)
    if "prompt_mode" not in ds.schema.names:
        return {"history"}
    flt = None if partitioned else pc.equal(pads.field("strategy"), strategy)
    column = ds.to_table(columns=["prompt_mode"], filter=flt)["prompt_mode"]
    return {m or "history" for m in pc.unique(column).to_pylist()}


def batch_indices(n: int, batch_size: int, seed: int, micro_step: int) -> np.ndarray:
    """Indices of micro-batch `micro_step` in an endless stream of seeded per-epoch shuffles.

    A pure function of its arguments, so a resumed run that knows its step continues exactly
    where the interrupted one stopped, with no data-loader state to save.
    """
    if n <= 0:
        raise ValueError("no training rows in this shard")
    start = micro_step * batch_size
    out = np.empty(batch_size, dtype=np.int64)
    filled = 0
    while filled < batch_size:
        epoch, pos = divmod(start + filled, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = min(batch_size - filled, n - pos)
        out[filled:filled + take] = perm[pos:pos + take]
        filled += take
    return out
