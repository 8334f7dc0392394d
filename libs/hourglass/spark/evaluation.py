"""Evaluation at table scale: beam search in `mapInPandas`, metrics as exact Spark aggregations.

Each Python worker loads the fine-tuned model and the strategy's catalog once (cached per
process) and ranks its users in small batches; only one row per user (rank, invalid shares)
leaves the worker. Recall, NDCG and invalid ratios are then averages over those rows, per
subset: all users, and users whose target's layer-2 token is a head or a tail token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

SCORED_SCHEMA = "user_id string, target_item_id string, rank int, invalid array<double>"
_RANKERS: dict[tuple, Any] = {}


def _ranker(model_dir: str, catalog_bc: Any, beam: int, max_prompt_len: int,
            threads: int) -> Any:
    """One Ranker per worker process and (model, catalog broadcast, beam)."""
    key = (model_dir, catalog_bc.id if hasattr(catalog_bc, "id") else id(catalog_bc), beam,
           max_prompt_len)
    if key not in _RANKERS:
        import torch

        from hourglass.decode.ranking import Catalog, Ranker
        from hourglass.evaluation.lm import load_finetuned
        from hourglass.sft.tokenizer import query_ids_for

        torch.set_num_threads(max(1, threads))
        model, tok, meta = load_finetuned(model_dir)
        item_ids, tokens, popularity = catalog_bc.value
        _RANKERS.clear()  # one model at a time per worker: evaluations run strategy by strategy
        _RANKERS[key] = Ranker(model, tok, Catalog.build(item_ids, tokens, popularity), beam,
                               max_prompt_len, queries=query_ids_for(tok, meta))
    return _RANKERS[key]


def rank_users(test: DataFrame, model_dir: str, catalog_bc: Any, beam: int, max_k: int,
               invalid_ks: Sequence[int] | None, max_prompt_len: int, batch_users: int,
               threads: int = 1, given_prefix: int = 0, with_query: bool = False) -> DataFrame:
    """Rows (user_id, prompt_tokens, target_item_id[, target_tokens][, query]) → (user_id,
    target_item_id, rank, invalid); with `given_prefix` n the search completes each target SID
    from its first n tokens (a diagnostic, see `hourglass.evaluation.labels`); `with_query`:
    the model was fine-tuned with queries, each prompt opens with the row's `query`."""
    invalid_ks = list(invalid_ks or [])

    def rank_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        ranker = _ranker(model_dir, catalog_bc, beam, max_prompt_len, threads)
        for pdf in batches:
            for lo in range(0, len(pdf), batch_users):
                chunk = pdf.iloc[lo:lo + batch_users]
                given = ([list(t)[:given_prefix] for t in chunk["target_tokens"]]
                         if given_prefix else None)
                res = ranker.rank([list(p) for p in chunk["prompt_tokens"]],
                                  list(chunk["target_item_id"]), max_k, invalid_ks, given,
                                  list(chunk["query"]) if with_query else None)
                invalid = ([list(map(float, r)) for r in res.invalid] if res.invalid is not None
                           else [None] * len(chunk))
                yield pd.DataFrame({"user_id": chunk["user_id"].to_numpy(),
                                    "target_item_id": chunk["target_item_id"].to_numpy(),
                                    "rank": res.ranks.astype("int32"), "invalid": invalid})

    cols = test.select("user_id", "prompt_tokens", "target_item_id",
                       *(["target_tokens"] if given_prefix else []),
                       *(["query"] if with_query else []))
    return cols.mapInPandas(rank_batches, SCORED_SCHEMA)


def metric_rows(scored: DataFrame, recall_ks: Sequence[int], ndcg_ks: Sequence[int],
                invalid_ks: Sequence[int]) -> list[tuple[str, str, int, float]]:
    """(subset, metric, k, value) for subsets all/head/tail of rows (rank, invalid, segment).

    `segment` is null for targets without a head/tail tag: they count in `all` only.
    """
    from pyspark.sql import functions as F

    rank = F.col("rank")
    aggs = [F.count(F.lit(1)).alias("users|0")]
    for k in recall_ks:
        hit = (rank >= 1) & (rank <= k)
        aggs.append(F.avg(F.when(hit, 1.0).otherwise(0.0)).alias(f"recall|{k}"))
    for k in ndcg_ks:
        hit = (rank >= 1) & (rank <= k)
        gain = F.lit(1.0) / F.log2(rank.cast("double") + 1.0)
        aggs.append(F.avg(F.when(hit, gain).otherwise(0.0)).alias(f"ndcg|{k}"))
    for i, k in enumerate(invalid_ks):
        aggs.append(F.avg(F.element_at("invalid", i + 1)).alias(f"invalid_ratio|{k}"))
    rows = [("all", scored.agg(*aggs).collect()[0].asDict())]
    by_seg = scored.where(F.col("segment").isNotNull()).groupBy("segment").agg(*aggs).collect()
    rows += [(r["segment"], {k: v for k, v in r.asDict().items() if k != "segment"})
             for r in by_seg]
    out = []
    for subset, values in rows:
        for name, value in values.items():
            metric, k = name.split("|")
            if value is not None:
                out.append((subset, metric, int(k), float(value)))
    return out


def popularity_counts(interactions: DataFrame, held_out: DataFrame) -> DataFrame:
    """(item_id, count): interactions minus the held-out targets, so the baseline (and the
    order of items behind a shared SID) never sees the answers."""
    from pyspark.sql import functions as F

    seen = interactions.groupBy("item_id").agg(F.count(F.lit(1)).alias("_all"))
    held = (held_out.groupBy(F.col("target_item_id").alias("item_id"))
            .agg(F.count(F.lit(1)).alias("_held")))
    return (seen.join(held, "item_id", "left")
            .select("item_id", (F.col("_all") - F.coalesce("_held", F.lit(0))).alias("count"))
            .where(F.col("count") > 0))


def popularity_scored(test: DataFrame, top_items: Sequence[str]) -> DataFrame:
    """The baseline's (user_id, target_item_id, rank, invalid=null): the same top list for all."""
    from pyspark.sql import functions as F

    spark = test.sparkSession
    ranks = spark.createDataFrame([(item, i + 1) for i, item in enumerate(top_items)],
                                  "target_item_id string, rank int")
    return (test.select("user_id", "target_item_id")
            .join(F.broadcast(ranks), "target_item_id", "left")
            .select("user_id", "target_item_id", F.coalesce("rank", F.lit(0)).alias("rank"),
                    F.lit(None).cast("array<double>").alias("invalid")))
