"""Table-scale SID rewriting: `item_sids` → `item_sids_rw`, the same result as the numpy reference.

Nothing per item reaches the driver: the layer-2 ranking is an aggregation (at most M rows come
back), the rewrite is a column expression, collision suffixes are a window over the rewritten
SID, and the summary is one grouped aggregation over the written table. Only the trie
export streams the SIDs to the driver, sorted by the executors, as Arrow IPC blobs, partition by
partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hourglass.rewrite.strategies import TOP_LAYER, Strategy
from hourglass.rewrite.trie import SidTrie, SortedSidTrieBuilder
from hourglass.sid_tokens import layer_letter
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

STAGE = "rewrite_sids"
ITEM_SIDS_COLUMNS = ("item_id", "codes", "residual_norms", "codebook_id")
RW_COLUMNS = ("item_id", "tokens", "strategy", "source_codebook_id")
# Rows per task of the summary's shuffle: its hash aggregations keep every distinct SID of
# the task in memory (see `summary_aggregates`).
SUMMARY_ROWS_PER_TASK = 1_000_000


def infer_num_layers(df: DataFrame) -> int:
    """The most common code length (ties → shorter): rows of another length get quarantined."""
    from pyspark.sql import functions as F

    rows = (df.where(F.col("codes").isNotNull()).groupBy(F.size("codes").alias("n")).count()
            .orderBy(F.desc("count"), F.asc("n")).limit(1).collect())
    return int(rows[0]["n"]) if rows else 0


def max_code(df: DataFrame) -> int:
    """Largest code over all layers; M inferred as this + 1 is only a lower bound."""
    from pyspark.sql import functions as F

    row = df.select(F.max(F.array_max("codes")).alias("m")).collect()[0]
    return -1 if row["m"] is None else int(row["m"])


def split_item_sids(df: DataFrame, num_layers: int, codebook_size: int
                    ) -> tuple[DataFrame, DataFrame]:
    """Valid rows (one per item_id, L codes in 0..M-1) and quarantine rows for the rest."""
    from pyspark.sql import functions as F

    from hourglass.spark.stats.input import any_of

    df = df.select(*ITEM_SIDS_COLUMNS).withColumn("item_id", F.trim("item_id"))
    df = _mark_duplicates(df)
    # element by element (the length is checked first): generated code, unlike a lambda
    code = [F.try_element_at("codes", F.lit(i + 1)) for i in range(num_layers)]
    bad_code = any_of([c.isNull() | (c < 0) | (c >= codebook_size) for c in code])
    reason = (
        F.when(F.col("item_id").isNull() | (F.col("item_id") == ""), F.lit("missing item_id"))
        .when(F.col("codes").isNull(), F.lit("missing codes"))
        .when(F.size("codes") != num_layers,
              F.concat(F.lit("codes of length "), F.size("codes").cast("string"),
                       F.lit(f", expected {num_layers}")))
        .when(bad_code, F.lit(f"null or out-of-range code (valid: 0..{codebook_size - 1})"))
        .when(F.col("codebook_id").isNull(), F.lit("missing codebook_id"))
        .when(F.col("_variants") > 1, F.lit("conflicting duplicate item_id"))
        .when(F.col("_dup") > 1, F.lit("exact duplicate of an earlier row"))
    )
    df = df.withColumn("_reason", reason)
    good = df.where(F.col("_reason").isNull()).select(*ITEM_SIDS_COLUMNS)
    bad = quarantine_rows(df.where(F.col("_reason").isNotNull()), STAGE,
                          payload_cols=list(ITEM_SIDS_COLUMNS))
    return good, bad


def _mark_duplicates(df: DataFrame) -> DataFrame:
    """`_variants` (distinct contents of the row's item_id) and `_dup` (1 for the first copy).

    Repeated ids are found by a cheap shuffle of 64-bit hashes (`duplicate_ids`); only their
    rows go through the window that compares contents, so a catalog without duplicates (the
    usual case) is never sorted by item_id.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from hourglass.spark.stats.prepare import duplicate_ids

    dups = duplicate_ids(df)
    if dups is None:
        return df.withColumn("_variants", F.lit(1)).withColumn("_dup", F.lit(1))
    marked = df.join(dups.select("item_id", F.lit(True).alias("_repeated")), on="item_id",
                     how="left")
    content = F.sha2(F.to_json(F.struct("codes", "codebook_id")), 256)
    by_id = Window.partitionBy("item_id")
    repeated = (marked.where(F.col("_repeated")).withColumn("_content", content)
                .withColumn("_variants", F.size(F.collect_set("_content").over(by_id)))
                .withColumn("_dup", F.row_number().over(by_id.orderBy("_content")))
                .drop("_content"))
    single = (marked.where(F.col("_repeated").isNull())
              .withColumn("_variants", F.lit(1)).withColumn("_dup", F.lit(1)))
    return repeated.unionByName(single).drop("_repeated")


def layer_counts(df: DataFrame, layer: int = TOP_LAYER
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(codes, item counts) of one 1-based layer, and the codebook ids seen, in one aggregation.

    At most M rows per codebook come back to the driver.
    """
    from pyspark.sql import functions as F

    rows = df.groupBy("codebook_id", F.col("codes")[layer - 1].alias("code")).count().collect()
    per_code: dict[int, int] = {}
    for r in rows:
        per_code[int(r["code"])] = per_code.get(int(r["code"]), 0) + int(r["count"])
    codes = np.array(sorted(per_code), dtype=np.int64)
    counts = np.array([per_code[c] for c in sorted(per_code)], dtype=np.int64)
    return codes, counts, sorted({r["codebook_id"] for r in rows})


def item_popularity(interactions: DataFrame) -> DataFrame:
    """Interactions per item_id: the first collision-suffix ordering key."""
    from pyspark.sql import functions as F

    return interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("_popularity"))


def _token_col(layer: int, code: Column) -> Column:
    from pyspark.sql import functions as F

    return F.concat(F.lit(f"<{layer_letter(layer)}_"), code.cast("string"), F.lit(">"))


def _layer_kept(strategy: Strategy, removed: np.ndarray, j: int) -> Column | bool:
    """Whether the strategy keeps 0-based layer j of a SID: always, never, or where the code
    is not among the removed tokens (topk / topshare / topk_share on the top layer)."""
    from pyspark.sql import functions as F

    if strategy.kind == "drop_layer" and j == int(strategy.param) - 1:
        return False
    if strategy.kind in ("topk", "topshare", "topk_share") and j == TOP_LAYER - 1 and len(removed):
        return ~F.col("codes")[j].isin([int(c) for c in removed])
    return True


def base_tokens(strategy: Strategy, removed: np.ndarray, num_layers: int) -> Column:
    """The strategy as one column expression over `codes` (layer-tagged, before suffixes)."""
    from pyspark.sql import functions as F

    tokens = []
    for j in strategy.order(num_layers):
        kept = _layer_kept(strategy, removed, j)
        if kept is False:
            continue
        tok = _token_col(j + 1, F.col("codes")[j])
        tokens.append(tok if kept is True else F.when(kept, tok))  # null → dropped below
    return F.array_compact(F.array(*tokens))


def base_key(strategy: Strategy, removed: np.ndarray, num_layers: int,
             codebook_size: int) -> Column | None:
    """The strategy's SID before suffixes as one long, for grouping and sorting: digit j in
    base M+1 is layer j's code + 1, or 0 where the strategy drops it. Codes are 0..M-1 (see
    `split_item_sids`), so equal keys are equal token lists. A long sorts on its whole value
    in Spark's 8-byte sort prefix, where the joined token string (`<a_12> <b_3> ...`) leaves
    most comparisons to the full strings. None when (M+1)^L does not fit a long. Digits go in
    layer order whatever order the strategy spells the SID in (exchange): the key only groups."""
    from pyspark.sql import functions as F

    radix = codebook_size + 1
    if radix ** num_layers >= 2 ** 63:
        return None
    key = F.lit(0).cast("long")
    for j in range(num_layers):
        kept = _layer_kept(strategy, removed, j)
        digit = F.col("codes")[j].cast("long") + 1
        digit = (F.lit(0).cast("long") if kept is False else digit if kept is True
                 else F.when(kept, digit).otherwise(0))
        key = key * radix + digit
    return key


def with_popularity(good: DataFrame, popularity: DataFrame | None) -> DataFrame:
    """`good` with `_popularity` (null without a popularity table): joined once, before the
    rows are cached, for every strategy's collision order."""
    from pyspark.sql import functions as F

    if popularity is None:
        return good.withColumn("_popularity", F.lit(None).cast("long"))
    return good.join(popularity, on="item_id", how="left")


def rewrite_frame(good: DataFrame, strategy: Strategy, removed: np.ndarray, num_layers: int,
                  resolve_collisions: bool, codebook_size: int) -> DataFrame:
    """`item_sids_rw` rows of one strategy (`good` carries `_popularity`, see
    `with_popularity`): tokens, then `<d_i>` on colliding SIDs.

    Items sharing a SID are ranked by a window keyed by `base_key` (the joined tokens where it
    does not fit a long); the rows it sorts carry the codes, not the tokens, which are built
    after it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = good.select("item_id", "codebook_id", "_popularity", "codes")
    tokens = base_tokens(strategy, removed, num_layers)
    if resolve_collisions:
        key = base_key(strategy, removed, num_layers, codebook_size)
        if key is None:
            key = F.array_join(tokens, " ")
        same_sid = Window.partitionBy("_key")
        ordered = same_sid.orderBy(F.desc(F.coalesce("_popularity", F.lit(0))), F.asc("item_id"))
        df = df.withColumn("_key", key).select(
            "item_id", "codebook_id", "codes", F.row_number().over(ordered).alias("_rank"),
            F.count(F.lit(1)).over(same_sid).alias("_sharing"))
        suffix = _token_col(num_layers + 1, F.col("_rank") - 1)
        tokens = F.when(F.col("_sharing") > 1, F.concat(tokens, F.array(suffix))).otherwise(tokens)
    return df.select("item_id", tokens.alias("tokens"), F.lit(strategy.name).alias("strategy"),
                     F.col("codebook_id").alias("source_codebook_id"))


def summary_partitions(rows: int, parallelism: int) -> int:
    """Shuffle partitions for `summary_aggregates` over `rows` rows: about `SUMMARY_ROWS_PER_TASK`
    each, never fewer than the cluster's cores."""
    return max(parallelism, -(-rows // SUMMARY_ROWS_PER_TASK))


def summary_aggregates(rw: DataFrame, num_layers: int,
                       partitions: int | None = None) -> dict[str, dict[str, float]]:
    """Per strategy, counts recomputed from the written table alone, in one Spark job.

    Suffix tokens are stripped to recover the SID before collision resolution. Keys: n_items,
    mean_length, distinct_sids, collided_after, distinct_sids_before_suffix, collided_before,
    shortened_items (fewer than L codebook tokens), length_<n> (items with n tokens).

    The rows are shuffled once, by (strategy, SID before suffix): a SID's rows share its base,
    so the count per SID and then per base are hash aggregations inside those partitions (no
    second exchange, no sort); the last aggregation has one row per strategy. Pass
    `partitions` (`summary_partitions` of the row count): adaptive execution does not coalesce
    a set number. Left to it, partitions are sized by compressed shuffle bytes, and token
    strings compress so well that at 10^8 rows its 11 partitions of ~9M distinct SIDs each
    overflowed the tasks' hash maps, which fell back to sorting and spilled 33 GB (236 s; 142 s
    and no spill with 100 partitions, same counts).
    """
    from pyspark.sql import functions as F

    prefix = f"<{layer_letter(num_layers + 1)}_"
    base = F.filter("tokens", lambda t: ~t.startswith(prefix))
    keyed = rw.select("strategy", F.array_join("tokens", " ").alias("_sid"),
                      F.array_join(base, " ").alias("_base"), F.size("tokens").alias("_len"),
                      F.size(base).alias("_base_len"))
    by_base = ("strategy", "_base")
    keyed = (keyed.repartition(*by_base) if partitions is None
             else keyed.repartition(partitions, *by_base))
    per_sid = keyed.groupBy("strategy", "_base", "_sid", "_len", "_base_len").count()
    c, lengths = F.col("count"), range(1, num_layers + 2)
    per_base = per_sid.groupBy("strategy", "_base", "_base_len").agg(
        F.sum(c).alias("items"), F.count(F.lit(1)).alias("sids"),
        F.sum(c * F.col("_len")).alias("tokens"),
        F.sum(F.when(c > 1, c).otherwise(0)).alias("collided_after"),
        *[F.sum(F.when(F.col("_len") == n, c).otherwise(0)).alias(f"length_{n}")
          for n in lengths])
    items = F.col("items")
    aggs = [
        F.sum(items).alias("n_items"),
        (F.sum("tokens") / F.sum(items)).alias("mean_length"),
        F.sum("sids").alias("distinct_sids"),
        F.sum("collided_after").alias("collided_after"),
        F.count(F.lit(1)).alias("distinct_sids_before_suffix"),
        F.sum(F.when(items > 1, items).otherwise(0)).alias("collided_before"),
        F.sum(F.when(F.col("_base_len") < num_layers, items).otherwise(0))
        .alias("shortened_items"),
        *[F.sum(f"length_{n}").alias(f"length_{n}") for n in lengths],
    ]
    out: dict[str, dict[str, float]] = {}
    for r in per_base.groupBy("strategy").agg(*aggs).collect():
        values = {k: float(v or 0) for k, v in r.asDict().items() if k != "strategy"}
        out[r["strategy"]] = {k: v for k, v in values.items()
                              if not (k.startswith("length_") and v == 0)}
    return out


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


# Below every character of a token (`<a_12>`): joined SIDs then sort as token sequences do.
SORT_SEPARATOR = "\x01"
