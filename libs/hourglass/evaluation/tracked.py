"""What an evaluation logs to MLflow: one child run per strategy, the rows as a table, and the
chosen strategy's model registered with its lineage.

Metric names are `<subset>/<metric>_at_<k>` (`all/recall_at_10`, `tail/ndcg_at_5`,
`all/invalid_ratio_at_1`): the value of each is exactly one `eval_results` row, so a run read
back with `MlflowClient` and the table agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hourglass.tracking import Run, metric_key
from hourglass.train.layout import RESULT_FILE, run_of_model
from hourglass.train.runs import TrainedModel


@dataclass(frozen=True)
class ServingCatalog:
    """What the registered retriever decodes against: one strategy's items, their SID tokens
    and popularity, and the beam and prompt length it was evaluated with."""

    item_ids: list[str]
    tokens: list[list[str]]
    popularity: dict[str, int]
    beam: int
    max_prompt_len: int
    example_query: str | None = None  # a held-out query, for a search model's input example


ROW_COLUMNS = ("run_id", "strategy", "subset", "metric", "k", "value")
TABLE_FILE = "eval_results.json"
TABLE2_FILE = "table2.json"  # the strategies side by side, as the paper's Table 2


def metric_name(subset: str, metric: str, k: int) -> str:
    """The MLflow metric name of one `eval_results` row."""
    return metric_key(subset, f"{metric}_at_{k}")


def strategy_metrics(rows: Sequence[tuple], strategy: str) -> dict[str, float]:
    """The rows of one strategy as {metric name: value}."""
    return {metric_name(sub, m, k): v for _, st, sub, m, k, v in rows if st == strategy}


def model_lineage(model: TrainedModel | None) -> dict[str, Any]:
    """Tags naming what a model was trained on."""
    if model is None:
        return {}
    return {"hourglass.model_dir": model.model_dir, "hourglass.codebook_id": model.codebook_id,
            "hourglass.sids_version": model.sids_version,
            "hourglass.sft_version": model.sft_version}


def log_evaluation(parent: Run, run_id: str, rows: Sequence[tuple], users: Mapping[str, int],
                   models: Mapping[str, TrainedModel]) -> dict[str, str]:
    """One child run per evaluated strategy (popularity included) under `parent`, and all rows
    as the parent's table; returns {strategy: child run id}."""
    children: dict[str, str] = {}
    for strategy in users:
        tags = {"hourglass.strategy": strategy, "hourglass.eval_run_id": run_id,
                **model_lineage(models.get(strategy))}
        with parent.nested(f"{run_id}/{strategy}", tags) as child:
            child.metrics({**strategy_metrics(rows, strategy), "users": users[strategy]})
            children[strategy] = child.run_id
    parent.table({c: [r[i] for r in rows] for i, c in enumerate(ROW_COLUMNS)}, TABLE_FILE)
    parent.table(wide_table(rows), TABLE2_FILE)
    return children


def wide_table(rows: Sequence[tuple]) -> dict[str, list]:
    """Table 2's shape: one row per (strategy, subset), one column per `<metric>_at_<k>`."""
    keys = sorted({(st, sub) for _, st, sub, *_ in rows})
    cols = sorted({f"{m}_at_{k}" for *_, m, k, _ in rows})
    cell = {(st, sub, f"{m}_at_{k}"): v for _, st, sub, m, k, v in rows}
    out: dict[str, list] = {"strategy": [st for st, _ in keys], "subset": [s for _, s in keys]}
    for col in cols:
        out[col] = [cell.get((st, sub, col)) for st, sub in keys]
    return out


def register_model(run: Run, name: str, strategy: str, model: TrainedModel,
                   rows: Sequence[tuple], eval_run_id: str, catalog: ServingCatalog) -> str:
    """Register the strategy's model as an MLflow pyfunc (`hourglass.evaluation.pyfunc`: the
    fine-tuned folder, the strategy's catalog, a signature and an input example) logged to the
    evaluation's run, tagged with its lineage, the fine-tune's run and its headline metrics."""
    from hourglass.evaluation.pyfunc import log_retriever

    result = run_of_model(model.model_dir) / RESULT_FILE
    trained = json.loads(result.read_text()) if result.exists() else {}
    source = log_retriever(run, model_dir=model.model_dir, item_ids=catalog.item_ids,
                           tokens=catalog.tokens, popularity=catalog.popularity,
                           beam=catalog.beam, max_prompt_len=catalog.max_prompt_len,
                           example_query=catalog.example_query)
    metrics = strategy_metrics(rows, strategy)
    tags = {**model_lineage(model), "hourglass.strategy": strategy,
            "hourglass.eval_run_id": eval_run_id,
            "hourglass.train_run_id": trained.get("mlflow_run_id", ""),
            **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items() if k.startswith("all/")}}
    return run.register(name, source, tags)
