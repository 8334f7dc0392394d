"""The trie export: one `SidTrie` per strategy from the written SIDs, sorted on the executors.

The driver only appends: the SIDs arrive in order as Arrow IPC blobs, a partition at a time,
and `SortedSidTrieBuilder` adds nodes without holding or sorting any SID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hourglass.rewrite.trie import SidTrie, SortedSidTrieBuilder

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Below every character of a token (`<a_12>`): joined SIDs then sort as token sequences do.
SORT_SEPARATOR = "\x01"


def _ipc_blobs(batches):
    """mapInArrow body: each Arrow batch of (strategy, tokens) → one row per strategy in it,
    holding that strategy's tokens as an Arrow IPC stream (a few hundred KB)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    options = pa.ipc.IpcWriteOptions(compression="zstd")  # string tokens: a third the bytes
    for batch in batches:
        strategy = batch.column(0)
        for name in pc.unique(strategy).to_pylist():
            part = batch.filter(pc.equal(strategy, name)).select([1])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, part.schema, options=options) as writer:
                writer.write_batch(part)
            yield pa.RecordBatch.from_arrays(
                [pa.array([name]), pa.array([sink.getvalue().to_pybytes()], pa.binary())],
                ["strategy", "ipc"])


def _split_ipc_blobs(batches):
    """mapInArrow body: (strategy, joined SID) batches → `_ipc_blobs` of the token lists."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in batches:
        tokens = pc.split_pattern(batch.column(1), SORT_SEPARATOR)
        yield from _ipc_blobs([pa.RecordBatch.from_arrays([batch.column(0), tokens],
                                                          ["strategy", "tokens"])])


def build_tries(rw: DataFrame, names: list[str]) -> dict[str, SidTrie]:
    """One trie per strategy; the SIDs are sorted on the executors, the driver only appends.

    The written SIDs are ordered by (strategy, tokens joined by `SORT_SEPARATOR`): the separator
    sorts below every token character, so the joined string orders as the token sequence does,
    a SID before its extensions, and as a string key it keeps Spark's 8-byte sort prefix (an
    array key has none). Executors pack each Arrow batch into one IPC blob per strategy; blobs
    stream to the driver a partition at a time, in order, and `SortedSidTrieBuilder` appends
    nodes without holding or sorting any SID: the driver holds little beyond the finished
    tries (2.0 GB at 10^8 SIDs, 0.87 GB of arrays; the driver-side sort held 15.7 GB). Input
    out of order raises in the builder. Duplicates (kept collisions) arrive adjacent and add
    nothing. A SID that the join cannot carry (no tokens, a null token, a token holding the
    separator or a character below it) fails the job instead of splitting into another SID.
    """
    from pyspark.sql import functions as F

    builders = {name: SortedSidTrieBuilder() for name in names}
    unjoinable = (F.coalesce(F.size("tokens"), F.lit(-1)) < 1) | F.exists(
        "tokens", lambda t: t.isNull() | t.contains(SORT_SEPARATOR) | t.contains("\x00"))
    sid = F.when(~unjoinable, F.array_join("tokens", SORT_SEPARATOR)).otherwise(F.raise_error(
        F.concat(F.lit("cannot build the trie of strategy "), F.col("strategy"),
                 F.lit(": item "), F.coalesce(F.col("item_id"), F.lit("null")),
                 F.lit(" has no tokens, a null token or a token with a control character"))))
    # only the joined string is shuffled (the tokens again beside it would double the bytes)
    blobs = (rw.where(F.col("strategy").isin(names))
             .select("strategy", sid.alias("sid"))
             .orderBy("strategy", "sid")
             .mapInArrow(_split_ipc_blobs, "strategy string, ipc binary"))
    return build_from_blobs(blobs, builders)


def build_from_blobs(blobs: DataFrame, builders: dict) -> dict[str, SidTrie]:
    """Stream (strategy, ipc) rows to the driver, a partition at a time and in order, into each
    strategy's builder (anything with `add_arrow` and `build`); the tries they build."""
    import pyarrow as pa

    for row in blobs.toLocalIterator(prefetchPartitions=True):
        with pa.ipc.open_stream(row["ipc"]) as reader:
            for batch in reader:
                builders[row["strategy"]].add_arrow(batch.column(0))
    return {name: b.build() for name, b in builders.items()}
