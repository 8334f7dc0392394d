"""Metric rows for ranks computed outside Spark, and Table 2 as mean ± std over seeds.

Rows have the shape of `eval_results` without the run id: (method, subset, metric, k, value),
with a ("users", 0) row per subset, so the generative runs (read back from `eval_results`) and
the baselines scored here (SASRec) aggregate and print the same way. Subsets are `all` and the
target's layer-2 `head` / `tail` tag (paper Table 1); an untagged target counts in `all` only,
as in `spark.evaluation.metric_rows`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from hourglass.evaluation.metrics import NDCG_KS, RECALL_KS, metric_rows

Row = tuple[str, str, str, int, float]  # method, subset, metric, k, value
Key = tuple[str, str, str, int]


def subset_rows(method: str, ranks: Sequence[int], targets: Sequence[str],
                segments: Mapping[str, str], recall_ks: Sequence[int] = RECALL_KS,
                ndcg_ks: Sequence[int] = NDCG_KS) -> list[Row]:
    """Recall/NDCG (the project's numpy metrics) for all users and per head/tail subset."""
    r = np.asarray(ranks)
    tags = np.array([segments.get(t, "") for t in targets], dtype=object)
    out: list[Row] = []
    for subset in ("all", *sorted({str(t) for t in tags if t})):
        sel = r if subset == "all" else r[tags == subset]
        out.append((method, subset, "users", 0, float(len(sel))))
        out += [(method, subset, m, k, v) for m, k, v in metric_rows(sel, recall_ks, ndcg_ks)]
    return out


def aggregate(runs: Iterable[Iterable[Row]]) -> dict[Key, tuple[float, float, int]]:
    """(mean, sample std, number of runs) of every key over runs (one run = one seed)."""
    values: dict[Key, list[float]] = defaultdict(list)
    for rows in runs:
        for method, subset, metric, k, v in rows:
            values[(method, subset, metric, k)].append(v)
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for key, v in values.items()}


def _cell(stat: tuple[float, float, int] | None) -> str:
    return "—" if stat is None else f"{stat[0]:.4f}±{stat[1]:.4f}"


def _render(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in [header, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def mean_std_table(agg: Mapping[Key, tuple[float, float, int]], methods: Sequence[str],
                   recall_ks: Sequence[int] = RECALL_KS, ndcg_ks: Sequence[int] = NDCG_KS,
                   subsets: Sequence[str] = ("head", "tail")) -> str:
    """Table 2 (methods × Recall@k, NDCG@k) as mean±std, with head/tail lines under each."""
    header = ["Method", "users", *(f"Recall@{k}" for k in recall_ks),
              *(f"NDCG@{k}" for k in ndcg_ks)]
    body = []
    for method in methods:
        for sub in ("all", *subsets):
            users = agg.get((method, sub, "users", 0))
            if users is None:
                continue
            body.append([method if sub == "all" else f"  {sub} token", str(int(users[0])),
                         *(_cell(agg.get((method, sub, "recall", k))) for k in recall_ks),
                         *(_cell(agg.get((method, sub, "ndcg", k))) for k in ndcg_ks)])
    return _render(header, body)


def invalid_mean_std_table(agg: Mapping[Key, tuple[float, float, int]], methods: Sequence[str],
                           ks: Sequence[int] = RECALL_KS) -> str:
    """Invalid share of the free decoder's top-k (paper Fig. 5) as mean±std per method."""
    header = ["Method", *(f"invalid@{k}" for k in ks)]
    body = [[m, *(_cell(agg.get((m, "all", "invalid_ratio", k))) for k in ks)]
            for m in methods if any((m, "all", "invalid_ratio", k) in agg for k in ks)]
    return _render(header, body) if body else ""


def jsonable(agg: Mapping[Key, tuple[float, float, int]]) -> dict[str, dict]:
    """{method: {subset: {"recall@10": {"mean", "std", "n"}, ...}}} for the JSON output."""
    out: dict[str, dict] = {}
    for (method, subset, metric, k), (mean, std, n) in sorted(agg.items()):
        name = metric if metric == "users" else f"{metric}@{k}"
        out.setdefault(method, {}).setdefault(subset, {})[name] = {"mean": mean, "std": std,
                                                                   "n": n}
    return out
