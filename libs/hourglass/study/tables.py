"""The study's tables in Markdown (mean ± std over seeds), the invalid-SID ratio by beam width
(paper Fig. 5) and the head/tail bars of Table 1.

Rows come from `hourglass.baselines.summary.aggregate` over the cells' metric rows, keyed by
the arm's name; SASRec and popularity are printed beside the SID models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hourglass.study.arms import Arm

Agg = Mapping[tuple[str, str, str, int], tuple[float, float, int]]
PAPER_RECALL_KS = (1, 3, 5, 10, 30, 50)
PAPER_NDCG_KS = (10,)


def _cell(stat: tuple[float, float, int] | None, bold: bool = False) -> str:
    if stat is None:
        return "—"
    text = f"{stat[0]:.4f}" if stat[2] < 2 else f"{stat[0]:.4f} ± {stat[1]:.4f}"
    return f"**{text}**" if bold else text


def _row(agg: Agg, key: str, subset: str, label: str, recall_ks: Sequence[int],
         ndcg_ks: Sequence[int], best: Mapping[tuple[str, int], float] | None = None
         ) -> list[str] | None:
    users = agg.get((key, subset, "users", 0))
    if users is None:
        return None
    best = best or {}
    cells = [_cell(agg.get((key, subset, "recall", k)),
                   best.get(("recall", k)) == agg.get((key, subset, "recall", k), (None,))[0])
             for k in recall_ks]
    cells += [_cell(agg.get((key, subset, "ndcg", k)),
                    best.get(("ndcg", k)) == agg.get((key, subset, "ndcg", k), (None,))[0])
              for k in ndcg_ks]
    seeds = users[2]
    return [label, f"{int(users[0])}", str(seeds), *cells]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def _header(recall_ks: Sequence[int], ndcg_ks: Sequence[int]) -> list[str]:
    return ["Method", "users", "seeds", *(f"Recall@{k}" for k in recall_ks),
            *(f"NDCG@{k}" for k in ndcg_ks)]


def table1(agg: Agg, arms: Sequence[Arm], baselines: Sequence[tuple[str, str]], M: int,
           recall_ks: Sequence[int] = PAPER_RECALL_KS,
           ndcg_ks: Sequence[int] = PAPER_NDCG_KS) -> str:
    """Base, its head-token and tail-token users, then the diagnostic arms (each with its own
    head/tail lines), then the baselines."""
    rows: list[list[str]] = []
    for arm in arms:
        for subset, label in (("all", arm.label(M)), ("head", "  *Head token*"),
                              ("tail", "  *Tail token*")):
            row = _row(agg, arm.name, subset, label, recall_ks, ndcg_ks)
            if row is not None:
                rows.append(row)
    rows += [r for key, label in baselines
             if (r := _row(agg, key, "all", label, recall_ks, ndcg_ks)) is not None]
    return markdown(_header(recall_ks, ndcg_ks), rows)


def table2(agg: Agg, arms: Sequence[Arm], baselines: Sequence[tuple[str, str]], M: int,
           recall_ks: Sequence[int] = PAPER_RECALL_KS,
           ndcg_ks: Sequence[int] = PAPER_NDCG_KS) -> str:
    """The fixes against the base; the best SID figure of each column in bold."""
    best: dict[tuple[str, int], float] = {}
    for metric, ks in (("recall", recall_ks), ("ndcg", ndcg_ks)):
        for k in ks:
            values = [agg[(a.name, "all", metric, k)][0] for a in arms
                      if (a.name, "all", metric, k) in agg and not a.diagnostic]
            if values and max(values) > 0:
                best[(metric, k)] = max(values)
    rows = [r for a in arms
            if (r := _row(agg, a.name, "all", a.label(M), recall_ks, ndcg_ks, best)) is not None]
    rows += [r for key, label in baselines
             if (r := _row(agg, key, "all", label, recall_ks, ndcg_ks)) is not None]
    return markdown(_header(recall_ks, ndcg_ks), rows)


def invalid_table(agg: Agg, arms: Sequence[Arm], M: int,
                  ks: Sequence[int] = PAPER_RECALL_KS) -> str:
    """Share of the free (unconstrained) beam's top-k that is no SID of the catalog."""
    rows = [[a.label(M), *(_cell(agg.get((a.name, "all", "invalid_ratio", k))) for k in ks)]
            for a in arms if any((a.name, "all", "invalid_ratio", k) in agg for k in ks)]
    return markdown(["Method", *(f"invalid@{k}" for k in ks)], rows) if rows else ""


def head_tail_figure(agg: Agg, arms: Sequence[Arm], M: int, k: int = 10) -> Any:
    """Table 1 as bars: Recall@k of head-token and tail-token users per row, with the seed
    spread as error bars (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure

    shown = [a for a in arms if (a.name, "head", "recall", k) in agg]
    fig = Figure(figsize=(1.8 + 1.6 * max(1, len(shown)), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(shown))
    for i, (subset, color) in enumerate((("head", "#c44e52"), ("tail", "#4c72b0"))):
        stats = [agg[(a.name, subset, "recall", k)] for a in shown]
        ax.bar(x + (i - 0.5) * 0.38, [s[0] for s in stats], 0.38, yerr=[s[1] for s in stats],
               label=f"{subset} token", color=color, capsize=3)
    ax.set_xticks(x, [a.name.replace("_", " ") for a in shown], fontsize=8)
    ax.set_ylabel(f"Recall@{k}")
    ax.set_title(f"Table 1: head vs tail layer-2 token users (M={M})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
