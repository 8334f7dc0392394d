"""Table-scale SFT examples: `interactions` + one strategy's SIDs → `sft_examples` rows.

The same definition as `hourglass.sft.examples.user_examples`, as column expressions: one
sorted array per user, `posexplode`, and `slice`/`transform` for the capped history, so nothing
per user reaches the driver and no Python UDF runs. Every interaction ends in exactly one place:
the target of one example, the first (history-only) item of a kept user, the target of a train
window dropped by `train_stride` (history only too), or quarantine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hourglass.sft.examples import MIN_INTERACTIONS
from hourglass.sft.format import SEP
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SFT_COLUMNS = ("user_id", "split", "history", "target_item_id", "prompt_tokens", "target_tokens",
               "strategy")
STAGE_PREFIX = "build_sft_data"


def quarantine_stage(strategy: str) -> str:
    """This stage's quarantine slice for one strategy (names like `topshare_0.5` sanitized)."""
    return f"{STAGE_PREFIX}_{re.sub(r'[^0-9A-Za-z_]', '_', strategy)}"


@dataclass(frozen=True)
class SftFrames:
    """Lazy outputs of one strategy: example rows, quarantine rows, and the kept users with
    their interaction count `n` and their train positions left without a window by the stride
    (`history_only`)."""

    examples: DataFrame
    quarantine: DataFrame
    kept_users: DataFrame


def check_unique_sids(sids: DataFrame, strategy: str) -> None:
    """A strategy must give each item one SID; duplicates mean a broken rewrite upstream."""
    from pyspark.sql import functions as F

    dup = sids.groupBy("item_id").count().where(F.col("count") > 1).limit(3).collect()
    if dup:
        raise ValueError(f"item_sids_rw has several rows per item for strategy {strategy!r}, "
                         f"e.g. {[r['item_id'] for r in dup]}")


def build_examples(interactions: DataFrame, sids: DataFrame, strategy: str,
                   history_max_items: int, min_interactions: int = MIN_INTERACTIONS,
                   train_stride: int = 1) -> SftFrames:
    """Examples and quarantine rows of `strategy`; `sids` holds that strategy's rows only."""
    from pyspark.sql import functions as F

    stage = quarantine_stage(strategy)
    known = sids.select("item_id", F.col("tokens").alias("_tokens"))
    df = interactions.select("user_id", "item_id", "ts").join(known, "item_id", "left")
    no_sid = F.col("_tokens").isNull() | (F.size("_tokens") == 0)
    reason = (
        F.when(F.col("user_id").isNull(), F.lit("missing user_id"))
        .when(F.col("ts").isNull(), F.lit("missing ts"))
        .when(no_sid, F.lit(f"item has no SID for strategy '{strategy}'"))
    )
    df = df.withColumn("_reason", reason)
    bad = df.where(F.col("_reason").isNotNull())
    ok = df.where(F.col("_reason").isNull())

    events = F.struct("ts", "item_id", F.col("_tokens").alias("tokens"))
    users = (ok.groupBy("user_id")
             .agg(F.array_sort(F.collect_list(events)).alias("seq"))
             .withColumn("n", F.size("seq")))
    too_short = F.col("n") < min_interactions
    short_users = users.where(too_short).select("user_id", "n")
    short_rows = (ok.join(short_users, "user_id", "inner")
                  .withColumn("_reason", F.concat(
                      F.lit("user has "), F.col("n").cast("string"),
                      F.lit(f" usable interactions, fewer than {min_interactions}"))))
    payload = ["user_id", "item_id", "ts"]
    quarantine = (quarantine_rows(bad, stage, payload_cols=payload)
                  .unionByName(quarantine_rows(short_rows, stage, payload_cols=payload)))

    kept = users.where(~too_short)
    exploded = kept.select("user_id", "n", "seq", F.posexplode("seq").alias("pos", "ev"))
    start = F.greatest(F.lit(0), F.col("pos") - F.lit(history_max_items))
    hist = F.slice("seq", start + 1, F.col("pos") - start)
    prompt = F.flatten(F.transform(hist, lambda x, i: F.when(i == 0, x["tokens"]).otherwise(
        F.concat(F.array(F.lit(SEP)), x["tokens"]))))
    split = (F.when(F.col("pos") == F.col("n") - 1, F.lit("test"))
             .when(F.col("pos") == F.col("n") - 2, F.lit("valid"))
             .otherwise(F.lit("train")))
    # keeps_train_window: valid and test always, train every train_stride-th back from the last
    kept_window = (F.col("pos") >= F.col("n") - 2) | (
        (F.col("n") - 3 - F.col("pos")) % F.lit(train_stride) == 0)
    examples = exploded.where((F.col("pos") >= 1) & kept_window).select(
        "user_id",
        split.alias("split"),
        F.transform(hist, lambda x: x["item_id"]).alias("history"),
        F.col("ev.item_id").alias("target_item_id"),
        prompt.alias("prompt_tokens"),
        F.col("ev.tokens").alias("target_tokens"),
        F.lit(strategy).alias("strategy"),
    )
    positions = F.greatest(F.col("n") - 3, F.lit(0))  # train positions 1 .. n-3
    windows = F.when(F.col("n") >= 4, F.floor((F.col("n") - 4) / train_stride) + 1).otherwise(0)
    return SftFrames(examples=examples, quarantine=quarantine, kept_users=kept.select(
        "user_id", "n", (positions - windows).cast("long").alias("history_only")))
