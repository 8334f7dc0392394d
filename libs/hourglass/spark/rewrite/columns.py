"""Each strategy as column expressions over `codes`, and the collision suffixes after it.

A strategy keeps, drops or reorders layers (`_layer_kept`, `Strategy.order`); `base_tokens` spells
the rewritten SID as layer-tagged tokens and `base_key` the same SID as one long, which the
window ranking items that share a SID sorts on. Items sharing a SID are ordered by popularity
(`item_popularity`), then item id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hourglass.rewrite.strategies import TOP_LAYER, Strategy
from hourglass.sid_tokens import layer_letter

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RW_COLUMNS = ("item_id", "tokens", "strategy", "source_codebook_id")


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
