"""The rewrite and retrieval sections: `rewrite_summary` and `eval_results` as the paper's
tables — Table 2 (strategies × Recall@k, NDCG@k, the popularity baseline first), Table 1 (head
and tail token subsets under each strategy) and the invalid-SID ratios of Fig. 5."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from hourglass.evaluation.labels import describe, given_tokens
from hourglass.evaluation.metrics import NDCG_KS, RECALL_KS
from hourglass.report import figures
from hourglass.report.html import natural_key, table


def rewrite_section(rewrite_summary: pd.DataFrame) -> str:
    """One column per strategy, one row per metric, in the order the rewrite stage wrote them."""
    rs = rewrite_summary
    strategies = sorted(rs["strategy"].unique(), key=natural_key)
    metrics = list(dict.fromkeys(rs["metric"]))
    values = rs.set_index(["metric", "strategy"])["value"]
    rows = [[m.replace("_", " "), *(float(values.get((m, s), float("nan")))
                                    for s in strategies)] for m in metrics]
    return ("<h2 id='rewrite'>SID rewrites</h2>"
            "<p class='note'>From <code>rewrite_summary</code>: capacity by definition next to "
            "the paper's formula M^L + K(M^(L−2) − M^(L−1)), distinct SIDs, collision shares "
            "before and after suffixing, SID length shares.</p>"
            + table(["metric", *strategies], rows))


def _rows(ev: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(run_id, strategy, label) per evaluated strategy; the run is named when ambiguous."""
    pairs = ev[["run_id", "strategy"]].drop_duplicates()
    dup = pairs["strategy"].duplicated(keep=False)
    out = [(r, s, f"{describe(s)} ({r})" if d else describe(s))
           for r, s, d in zip(pairs["run_id"], pairs["strategy"], dup, strict=True)]
    return sorted(out, key=lambda t: (natural_key(t[1]), t[0]))


def _metric_columns(ev: pd.DataFrame) -> list[tuple[str, int, str]]:
    cols = [("recall", k, f"Recall@{k}") for k in RECALL_KS]
    cols += [("ndcg", k, f"NDCG@{k}") for k in NDCG_KS]
    return [c for c in cols if ((ev["metric"] == c[0]) & (ev["k"] == c[1])).any()]


def _bold_best(rows: list[list], first_metric_col: int,
               skip: set[int] = frozenset()) -> list[set[int]]:
    """Per row, the columns where it holds the best figure; rows in `skip` (diagnostics that
    saw part of the answer) neither compete nor win."""
    bold = [set() for _ in rows]
    for j in range(first_metric_col, len(rows[0]) if rows else 0):
        vals = [r[j] for i, r in enumerate(rows)
                if i not in skip and isinstance(r[j], float) and r[j] == r[j]]
        if vals:
            best = max(vals)
            for i, r in enumerate(rows):
                if r[j] == best and i not in skip:
                    bold[i].add(j)
    return bold


def evaluation_section(eval_results: pd.DataFrame,
                       add_figure: Callable[..., str]) -> str:
    """Table 2, Table 1 and the invalid ratios from `eval_results` (long format)."""
    ev = eval_results.assign(metric=eval_results["metric"].str.lower(),
                             subset=eval_results["subset"].str.lower())
    idx = ev.set_index(["run_id", "strategy", "subset", "metric", "k"])["value"]
    idx = idx[~idx.index.duplicated(keep="last")]
    keys = _rows(ev)
    cols = _metric_columns(ev)
    has_users = (ev["metric"] == "users").any()
    header = ["Method", *(["users"] if has_users else []), *(c[2] for c in cols)]

    def line(run, strategy, subset, label):
        users = [idx.get((run, strategy, subset, "users", 0))] if has_users else []
        return [label, *users, *(_num(idx.get((run, strategy, subset, m, k))) for m, k, _ in cols)]

    shown2 = [(r, s, label) for r, s, label in keys
              if (ev["subset"].eq("all") & ev["strategy"].eq(s) & ev["run_id"].eq(r)).any()]
    body2 = [line(r, s, "all", label) for r, s, label in shown2]
    diagnostic = {i for i, (_, s, _) in enumerate(shown2) if given_tokens(s)}
    parts = ["<h2 id='evaluation'>Generative retrieval</h2>",
             "<h3>Strategies compared (paper Table 2)</h3>",
             table(header, body2, bold=_bold_best(body2, 1 + has_users, diagnostic))
             if body2 else ""]
    body1, classes = [], []
    for r, s, label in keys:
        for subset in ("all", "head", "tail"):
            if (ev["subset"].eq(subset) & ev["strategy"].eq(s) & ev["run_id"].eq(r)).any():
                body1.append(line(r, s, subset, label if subset == "all" else f"{subset} token"))
                classes.append("" if subset == "all" else "sub")
    if any(c == "sub" for c in classes):
        parts += ["<h3>Head and tail layer-2 tokens (paper Table 1)</h3>",
                  "<p class='note'>Test users split by the layer-2 token of their target item "
                  "(its token's <code>segment</code> in <code>sid_layer_stats</code>).</p>",
                  table(header, body1, row_classes=classes)]
    inv = ev[(ev["metric"] == "invalid_ratio") & (ev["subset"] == "all")]
    if len(inv):
        ks = sorted(inv["k"].unique())
        inv_rows = [[label, *(_num(idx.get((r, s, "all", "invalid_ratio", k))) for k in ks)]
                    for r, s, label in keys
                    if (inv["strategy"].eq(s) & inv["run_id"].eq(r)).any()]
        parts += ["<h3>Invalid SIDs without the trie (paper Fig. 5)</h3>",
                  table(["Method", *(f"invalid@{k}" for k in ks)], inv_rows),
                  add_figure(figures.invalid_ratio_figure(inv), "invalid-ratio",
                             "Share of invalid SIDs among the unconstrained top-k")]
    return "".join(parts)


def _num(v) -> float:
    return float("nan") if v is None else float(v)
