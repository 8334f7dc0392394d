"""Table-scale SFT examples: `interactions` + one strategy's SIDs → `sft_examples` rows.

The same definition as `hourglass.sft.examples.user_examples`, as column expressions: one
sorted array per user, `posexplode`, and `slice`/`transform` for the capped history, so nothing
per user reaches the driver and no Python UDF runs. Every interaction ends in exactly one place:
the target of one example, the first (history-only) item of a kept user, the target of a train
window dropped by `train_stride` (history only too), or quarantine. Interactions are joined to
the SIDs and grouped by user once per strategy; examples, quarantine and counts all derive from
that one per-user frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hourglass.sft.examples import MIN_INTERACTIONS
from hourglass.sft.format import SEP, uses_query
from hourglass.spark.quarantine import quarantine_rows

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

SFT_COLUMNS = ("user_id", "split", "history", "target_item_id", "prompt_tokens", "target_tokens",
               "strategy", "query", "prompt_mode")
STAGE_PREFIX = "build_sft_data"


def quarantine_stage(strategy: str) -> str:
    """This stage's quarantine slice for one strategy (names like `topshare_0.5` sanitized)."""
    return f"{STAGE_PREFIX}_{re.sub(r'[^0-9A-Za-z_]', '_', strategy)}"


@dataclass(frozen=True)
class SftFrames:
    """Lazy outputs of one strategy, both derived from `users` (one row per user with its
    sorted usable events `seq`, their count `n` and its refused events `refused`): example
    rows and quarantine rows. The caller persists `users` so the join and the per-user
    aggregation run once for the examples, the quarantine and the counts (`history_only`)."""

    users: DataFrame
    examples: DataFrame
    quarantine: DataFrame


def check_unique_sids(sids: DataFrame, strategies: list[str]) -> None:
    """Each strategy must give each item one SID; duplicates mean a broken rewrite upstream.
    One aggregation checks every strategy named."""
    from pyspark.sql import functions as F

    dup = (sids.where(F.col("strategy").isin(strategies))
           .groupBy("strategy", "item_id").count().where(F.col("count") > 1).limit(3).collect())
    if dup:
        raise ValueError(f"item_sids_rw has several rows per item for strategy "
                         f"{dup[0]['strategy']!r}, e.g. {[r['item_id'] for r in dup]}")


def build_examples(interactions: DataFrame, sids: DataFrame, strategy: str,
                   history_max_items: int, min_interactions: int = MIN_INTERACTIONS,
                   train_stride: int = 1, prompt_mode: str = "history") -> SftFrames:
    """Examples and quarantine rows of `strategy`; `sids` holds that strategy's rows only.

    One join and one aggregation per user carry every interaction: a usable event goes to the
    user's `seq`, a refused one (no ts, no SID; no query in a query prompt mode) to `refused`
    with its reason, so the quarantine needs neither a second join nor a join back to the
    interactions; rows without a user_id are refused before the join.

    A query mode (`hourglass.sft.format.PROMPT_MODES`) needs `interactions.query`: an example's
    query is its target interaction's (what the user searched before that purchase); an
    interaction without one is refused, as a purchase nobody searched for cannot be a search
    example. In mode `query` the prompt holds no history (`history` keeps the item ids, for
    baselines that use them).
    """
    from pyspark.sql import functions as F

    stage = quarantine_stage(strategy)
    with_query = uses_query(prompt_mode)
    if with_query and "query" not in interactions.columns:
        raise ValueError(f"prompt_mode {prompt_mode} needs a `query` column in interactions")
    payload = ["user_id", "item_id", "ts", *(["query"] if with_query else [])]
    known = sids.select("item_id", F.col("tokens").alias("_tokens"))
    inter = interactions.select(*payload)
    if not with_query:
        inter = inter.withColumn("query", F.lit(None).cast("string"))
    no_user = (inter.where(F.col("user_id").isNull())
               .withColumn("_reason", F.lit("missing user_id")))
    df = inter.where(F.col("user_id").isNotNull()).join(known, "item_id", "left")
    no_sid = F.col("_tokens").isNull() | (F.size("_tokens") == 0)
    reason = (F.when(F.col("ts").isNull(), F.lit("missing ts"))
              .when(no_sid, F.lit(f"item has no SID for strategy '{strategy}'")))
    if with_query:
        reason = reason.when(F.col("query").isNull(),
                             F.lit(f"no query (prompt_mode {prompt_mode})"))
    event = F.struct("ts", "item_id", F.col("_tokens").alias("tokens"), "query",
                     reason.alias("reason"))
    users = (df.groupBy("user_id").agg(F.collect_list(event).alias("_events"))
             .select("user_id",
                     F.array_sort(F.transform(
                         F.filter("_events", lambda e: e["reason"].isNull()),
                         lambda e: F.struct(e["ts"].alias("ts"), e["item_id"].alias("item_id"),
                                            e["tokens"].alias("tokens"),
                                            e["query"].alias("query")))).alias("seq"),
                     F.filter("_events", lambda e: e["reason"].isNotNull()).alias("refused"))
             .withColumn("n", F.size("seq")))

    too_short = F.col("n") < min_interactions
    extra = ["e.query"] if with_query else []
    refused = users.select("user_id", F.explode("refused").alias("e")).select(
        "user_id", "e.item_id", "e.ts", *extra, F.col("e.reason").alias("_reason"))
    short_rows = users.where(too_short).select(
        "user_id", "n", F.explode("seq").alias("e")).select(
        "user_id", "e.item_id", "e.ts", *extra, F.concat(
            F.lit("user has "), F.col("n").cast("string"),
            F.lit(f" usable interactions, fewer than {min_interactions}")).alias("_reason"))
    quarantine = (quarantine_rows(no_user, stage, payload_cols=payload)
                  .unionByName(quarantine_rows(refused, stage, payload_cols=payload))
                  .unionByName(quarantine_rows(short_rows, stage, payload_cols=payload)))

    kept = users.where(~too_short)
    exploded = kept.select("user_id", "n", "seq", F.posexplode("seq").alias("pos", "ev"))
    start = F.greatest(F.lit(0), F.col("pos") - F.lit(history_max_items))
    hist = F.slice("seq", start + 1, F.col("pos") - start)
    prompt = F.flatten(F.transform(hist, lambda x, i: F.when(i == 0, x["tokens"]).otherwise(
        F.concat(F.array(F.lit(SEP)), x["tokens"]))))
    if prompt_mode == "query":
        prompt = F.array().cast("array<string>")
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
        F.col("ev.query").alias("query"),
        F.lit(prompt_mode).alias("prompt_mode"),
    )
    return SftFrames(users=users, examples=examples, quarantine=quarantine)


def history_only(train_stride: int) -> Column:
    """Of a kept user's `n` events, the train positions whose window the stride dropped."""
    from pyspark.sql import functions as F

    positions = F.greatest(F.col("n") - 3, F.lit(0))  # train positions 1 .. n-3
    windows = F.when(F.col("n") >= 4, F.floor((F.col("n") - 4) / train_stride) + 1).otherwise(0)
    return (positions - windows).cast("long")
