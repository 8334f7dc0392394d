"""SASRec and popularity beside the SID models: the same windows, users, metric code and seconds.

Shared by `benchmarks/quality.py` and the paper study, so both compare against one baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

SASREC = "sasrec"


def add_sasrec_args(p: argparse.ArgumentParser) -> None:
    """SASRec's flags (Kang & McAuley 2018 sizes for small catalogs)."""
    p.add_argument("--sasrec-hidden", type=int, default=64, help="SASRec embedding width")
    p.add_argument("--sasrec-layers", type=int, default=2, help="SASRec attention blocks")
    p.add_argument("--sasrec-heads", type=int, default=2, help="SASRec attention heads")
    p.add_argument("--sasrec-dropout", type=float, default=0.2, help="SASRec dropout")
    p.add_argument("--sasrec-lr", type=float, default=1e-3, help="SASRec Adam learning rate")
    p.add_argument("--sasrec-batch", type=int, default=256, help="SASRec batch size")
    p.add_argument("--sasrec-max-epochs", type=int, default=200,
                   help="SASRec epoch cap (the time budget usually ends it first)")
    p.add_argument("--sasrec-patience", type=int, default=5,
                   help="SASRec stops after this many epochs without a better valid Recall@10")


def sasrec_config(args: argparse.Namespace, max_len: int, minutes: float, seed: int) -> Any:
    from hourglass.baselines.sasrec import SasRecConfig

    return SasRecConfig(hidden=args.sasrec_hidden, layers=args.sasrec_layers,
                        heads=args.sasrec_heads, dropout=args.sasrec_dropout, max_len=max_len,
                        lr=args.sasrec_lr, batch_size=args.sasrec_batch,
                        max_epochs=args.sasrec_max_epochs, max_seconds=minutes * 60,
                        patience=args.sasrec_patience, seed=seed)


def sasrec_inputs(spark: Any, sft_cfg: Any, eval_cfg: Any) -> dict[str, Any]:
    """Every leave-one-out window of the `none` SIDs, the catalog, the test users the SID models
    are evaluated on and each item's layer-2 head/tail tag: everything SASRec needs, once.

    SASRec's loss is on a window's target only, so it gets every train window (train_stride 1)
    even where the recipe's sft_examples keep one in `train_stride` for a loss on every item:
    both models are taught every train position."""
    from pyspark.sql import functions as F

    from hourglass.spark.segments import segment_tags
    from hourglass.spark.sft import build_examples
    from hourglass.spark.tables import read_table
    from hourglass.stages.evaluate import sample_users

    scfg, ecfg = sft_cfg, eval_cfg
    sft = read_table(spark, scfg.ref(scfg.output_table)).df.where(F.col("strategy") == "none")
    sids_none = read_table(spark, scfg.ref(scfg.sids_table)).df.where(F.col("strategy") == "none")
    # in a search recipe the same interactions as the SID models' (those with a query)
    every = build_examples(read_table(spark, scfg.ref(scfg.interactions_table)).df, sids_none,
                           "none", scfg.history_max_items, scfg.min_interactions, 1,
                           scfg.prompt_mode).examples
    windows = [(r["user_id"], r["split"], tuple(r["history"]), r["target_item_id"])
               for r in every.select("user_id", "split", "history", "target_item_id").collect()]
    test = sample_users(sft.where(F.col("split") == "test"), ecfg.max_users, ecfg.seed)
    test_users = {r["user_id"] for r in test.select("user_id").collect()}
    items = [r["item_id"] for r in sids_none.select("item_id").collect()]
    seg = segment_tags(spark, ecfg.ref(ecfg.summary_table), ecfg.ref(ecfg.layer_stats_table),
                       ecfg.segments_run_id, ecfg.segment_layer).frame
    segments = {r["item_id"]: r["segment"] for r in seg.collect()}
    return {"windows": windows, "test_users": test_users, "items": items, "segments": segments,
            "max_len": scfg.history_max_items, "recall_ks": ecfg.recall_ks,
            "ndcg_ks": ecfg.ndcg_ks}


def run_sasrec(inputs: dict[str, Any], args: argparse.Namespace, seed: int, minutes: float
               ) -> tuple[list[tuple], dict]:
    """(metric rows of the test users, training facts) of one SASRec fit of `minutes`."""
    from hourglass.baselines.sasrec import rank_windows, train_sasrec
    from hourglass.baselines.sequences import ItemIndex, encode_windows
    from hourglass.baselines.summary import subset_rows
    from hourglass.logs import log

    index, n = ItemIndex.of(inputs["items"]), inputs["max_len"]
    windows = inputs["windows"]
    test = [w for w in windows if w[1] == "test" and w[0] in inputs["test_users"]]
    cfg = sasrec_config(args, n, minutes, seed)
    res = train_sasrec(encode_windows(windows, index, n, "train"),
                       encode_windows(windows, index, n, "valid"), len(index), cfg, log)
    enc = encode_windows(test, index, n, "test")
    ranks = rank_windows(res.model, enc)
    rows = subset_rows(SASREC, ranks, [index.item_ids[t] for t in enc.target],
                       inputs["segments"], inputs["recall_ks"], inputs["ndcg_ks"])
    info = {k: getattr(res, k) for k in ("best_epoch", "best_valid_recall", "best_valid_ndcg",
                                         "stop_reason", "seconds", "steps")}
    return rows, {**info, "config": dataclasses.asdict(cfg)}
