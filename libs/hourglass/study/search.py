"""The paper's own task in the study: personalized search (`hourglass-paper-tables --task search`).

The bundled samples have no logged queries, so each purchase gets the query derived from its
item's category path (`hourglass.search.queries`, Ai et al. 2017), written beside the study's
tables and ingested as `interactions.query`. Every arm then fine-tunes on prompts of the search
prompt mode (`query_history` by default: the paper's eq. 4) and is evaluated as in the
recommendation study; the search baselines (`hourglass.baselines.search`) are scored on the same
test users, with the same metric code and head/tail tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hourglass.study.arms import BASE, DROP, K_SHARES, Arm, topk_arms

SEARCH_BASELINES = (
    ("dense_query", "Dense retrieval, query only (item encoder, faiss IP)"),
    ("dense_query_history", "Dense retrieval, query + history (blend α chosen on valid)"),
    ("popularity_query", "Popularity among items matching the query"),
)


def search_arms(shares: tuple[float, ...] = K_SHARES) -> list[Arm]:
    """The rows the issue asks of the search task: the base, drop_layer(2), the top@K grid."""
    return [BASE, DROP, *topk_arms(shares)]


def derive_dataset(source: Path, dest: Path) -> dict[str, Any]:
    """`dest/items.jsonl` (a copy) and `dest/interactions.csv` with the derived `query`
    column (`hourglass-derive-queries`); returns the derivation's statistics. Recomputed from
    the bundled files every time (cheap, deterministic), so nothing derived is edited by hand."""
    from hourglass.search.queries import write_derived

    return write_derived(source / "items.jsonl", source / "interactions.csv", dest,
                         source.name).to_dict()


def search_inputs(spark: Any, sft_cfg: Any, eval_cfg: Any) -> dict[str, Any]:
    """What the search baselines need, on the users the SID models are scored on: the valid
    and test rows of `none` (user, history, target, query), the item vectors and texts, train
    popularity (every interaction but the held-out targets) and the head/tail tags."""
    import numpy as np
    from pyspark.sql import functions as F

    from hourglass.baselines.search import match_text
    from hourglass.spark.evaluation import popularity_counts
    from hourglass.spark.segments import segment_tags
    from hourglass.spark.tables import read_table
    from hourglass.stages.evaluate import sample_users

    scfg, ecfg = sft_cfg, eval_cfg
    sft = read_table(spark, scfg.ref(scfg.output_table)).df.where(F.col("strategy") == "none")
    cols = ["user_id", "split", "history", "target_item_id", "query"]
    rows = {}
    for split in ("valid", "test"):
        part = sample_users(sft.where(F.col("split") == split), ecfg.max_users, ecfg.seed)
        rows[split] = [r.asDict() for r in part.select(*cols).collect()]
    emb = read_table(spark, scfg.ref("item_embeddings")).df.select("item_id", "embedding")
    vectors = emb.collect()
    items = read_table(spark, scfg.ref("items")).df.collect()
    held = sft.where(F.col("split").isin("valid", "test"))
    inter = read_table(spark, scfg.ref(scfg.interactions_table)).df
    counts = {r["item_id"]: int(r["count"]) for r in popularity_counts(inter, held).collect()}
    seg = segment_tags(spark, ecfg.ref(ecfg.summary_table), ecfg.ref(ecfg.layer_stats_table),
                       ecfg.segments_run_id, ecfg.segment_layer).frame
    return {"valid": rows["valid"], "test": rows["test"],
            "item_ids": [r["item_id"] for r in vectors],
            "matrix": np.asarray([r["embedding"] for r in vectors], dtype=np.float32),
            "texts": {r["item_id"]: match_text(r.asDict()) for r in items},
            "counts": counts,
            "segments": {r["item_id"]: r["segment"] for r in seg.collect()}}


def run_search_baselines(inputs: dict[str, Any], model_dir: str | None = None) -> dict:
    """The three search baselines' metric rows on the test users, and the chosen blend."""
    from hourglass.baselines.search import encoder_embed, score_search_baselines

    res = score_search_baselines(inputs["valid"], inputs["test"], inputs["item_ids"],
                                 inputs["matrix"], inputs["texts"], inputs["counts"],
                                 encoder_embed(model_dir), inputs["segments"])
    return {"rows": [list(r) for r in res.rows],
            "training": {"alpha": res.alpha,
                         "valid_recall@10_by_alpha": {str(a): v
                                                      for a, v in res.valid_curve.items()},
                         "skipped_null_query": res.skipped_null_query, "users": res.users}}
