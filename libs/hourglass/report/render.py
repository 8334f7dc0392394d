"""Render the report folder (index.html + PNGs) from a ReportData; no Spark needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

import hourglass
from hourglass.report import figures
from hourglass.report.data import ReportData
from hourglass.report.evaluation import evaluation_section, rewrite_section
from hourglass.report.flow import flow_figure
from hourglass.report.html import Markup, esc, figure, fmt, page, table
from hourglass.stats.schema import QUANTILE_COLUMNS
from hourglass.stats.summary import middle_layer_collapsed

TOKEN_ROWS = (("items with a token", "n_tokens"), ("coverage", "coverage"),
              ("used tokens", "used_tokens"), ("M", "M"), ("entropy (nats)", "entropy"),
              ("normalised entropy", "norm_entropy"), ("Gini", "gini"), ("std of counts", "std"),
              ("utilization", "utilization"), ("top-1 share", "top1_share"),
              ("head tokens", "head_tokens"), ("items on head tokens", "head_items"))
PATH_ROWS = (("items reaching depth", "items_at_depth"), ("SIDs ending here", "sids_ending"),
             ("distinct prefixes", "distinct_prefixes"), ("capacity M^d", "capacity"),
             ("path fill", "path_fill"), ("prefixes with children (d−1)", "fanout_parents"),
             ("mean fan-out into d", "mean_fanout"), ("max fan-out into d", "max_fanout"))
NORM_ROWS = (("mean", "norm_mean"), ("min", "norm_min"),
             *((c.removeprefix("norm_"), c) for c in QUANTILE_COLUMNS), ("max", "norm_max"))


class _Figures:
    """Saves figures beside the page and returns their inlined HTML."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.paths: list[Path] = []

    def add(self, fig, name: str, caption: str) -> str:
        if fig is None:
            return ""
        path = self.out_dir / f"{name}.png"
        fig.savefig(path)
        self.paths.append(path)
        return figure(path, caption)


def _layer_table(rows: pd.DataFrame, spec, header: str) -> str:
    rows = rows.sort_values("layer")
    return table([header, *(f"layer {v}" for v in rows["layer"])],
                 [[label, *rows[col].tolist()] for label, col in spec])


def _verdict(summary: pd.DataFrame) -> str:
    v = middle_layer_collapsed(summary)
    if v is None:
        return "n/a"
    return Markup('<span class="verdict-yes">yes</span>' if v else
                  '<span class="verdict-no">no</span>')


def _overview(data: ReportData, runs: list[str]) -> str:
    head = ["run", "input", "strategy", "codebook", "items", "L", "M", "distinct SIDs",
            "items in colliding SIDs", "H/log M by layer", "Gini by layer", "hourglass at 2"]
    rows = []
    for run in runs:
        s = data.summary[data.summary["run_id"] == run].sort_values("layer")
        r = s.iloc[0]
        rows.append([run, r.input_kind, r.strategy or "—", r.codebook_id or "—", r.n_items,
                     r.num_layers, f"{r.M} ({r.m_source})", r.n_sids, f"{r.collision_share:.2%}",
                     " / ".join(fmt(v, 3) for v in s["norm_entropy"]),
                     " / ".join(fmt(v, 3) for v in s["gini"]), _verdict(s)])
    return ("<h2 id='overview'>Runs</h2>" + table(head, rows) +
            "<p class='note'>Hourglass at 2: layer 2's normalised entropy is below layers 1 and 3"
            " and its Gini above both (paper §3.1). Shares of rewritten runs are over the items "
            "that still carry a token of that layer (see coverage).</p>")


def _run_section(data: ReportData, run: str, figs: _Figures) -> str:
    s = data.summary[data.summary["run_id"] == run].sort_values("layer")
    ls = data.layer_stats[data.layer_stats["run_id"] == run]
    fl = data.flow[data.flow["run_id"] == run] if len(data.flow) else data.flow
    r = s.iloc[0]
    parts = [f"<h2 id='run-{esc(run)}'>Run {esc(run)}</h2>",
             f"<p>{fmt(r.n_items)} items, {fmt(r.n_sids)} distinct SIDs; "
             f"{fmt(r.colliding_sids)} SIDs are shared by {fmt(r.colliding_items)} items "
             f"({r.collision_share:.2%}); the largest group holds {fmt(r.max_items_per_sid)}. "
             f"Head tokens cover {r.head_share:.0%} of the items of their layer.</p>",
             figs.add(flow_figure(s, ls, fl, f"{run}: items flowing through the layers"),
                      f"{run}-flow", "Layered flow (paper Fig. 2): nodes sized by items, "
                      "bands = items along consecutive tokens"),
             "<h3>Token distribution per layer</h3>", _layer_table(s, TOKEN_ROWS, "metric"),
             figs.add(figures.metric_bars(s, f"{run}: token distribution per layer (Fig. 3)"),
                      f"{run}-metrics", "Entropy, Gini, std and utilization per layer"),
             figs.add(figures.rank_frequency(ls, f"{run}: rank–frequency"),
                      f"{run}-rankfreq", "Rank–frequency per layer, log–log"),
             "<h3>Paths (depth d = token position)</h3>", _layer_table(s, PATH_ROWS, "depth")]
    if s["norm_mean"].notna().any():
        parts += ["<h3>Residual norm after each layer</h3>",
                  _layer_table(s[s["norm_mean"].notna()], NORM_ROWS, "norm"),
                  figs.add(figures.norm_distribution(s, f"{run}: residual norms (Fig. 4)"),
                           f"{run}-norms", "Residual-norm distribution per layer"),
                  figs.add(figures.token_size_vs_input_norm(ls, 2, f"{run}: layer-2 tokens"),
                           f"{run}-layer2-input-norm",
                           "Layer-2 token size against the residual norm entering layer 2")]
    return "".join(parts)


def _comparison(data: ReportData, runs: list[str], figs: _Figures) -> str:
    s = data.summary[data.summary["run_id"].isin(runs)]
    s = s.assign(_o=s["run_id"].map({r: i for i, r in enumerate(runs)})).sort_values(
        ["_o", "layer"])
    ls = data.layer_stats[data.layer_stats["run_id"].isin(runs)]
    ls = ls.assign(_o=ls["run_id"].map({r: i for i, r in enumerate(runs)})).sort_values("_o")
    layers = sorted(s["layer"].unique())
    head = ["metric", *runs]
    rows = []
    for label, col in (("normalised entropy", "norm_entropy"), ("Gini", "gini"),
                       ("std of counts", "std"), ("utilization", "utilization"),
                       ("distinct prefixes", "distinct_prefixes"), ("path fill", "path_fill")):
        for layer in layers:
            vals = s[s["layer"] == layer].set_index("run_id")[col]
            rows.append([f"{label}, layer {layer}", *(vals.get(r) for r in runs)])
    first = s.drop_duplicates("run_id").set_index("run_id")
    rows += [["distinct SIDs", *(first.loc[r, "n_sids"] for r in runs)],
             ["items in colliding SIDs", *(first.loc[r, "collision_share"] for r in runs)]]
    normed = s[s["norm_mean"].notna()]
    return "".join([
        "<h2 id='compare'>Comparison of runs</h2>", table(head, rows),
        figs.add(figures.metric_bars(s, "Token distribution per layer, runs side by side"),
                 "compare-metrics", "Fig. 3 metrics per layer for each run"),
        figs.add(figures.rank_frequency(ls, "Rank–frequency per layer, runs overlaid"),
                 "compare-rankfreq", "Rank–frequency per layer, one line per run"),
        figs.add(figures.norm_distribution(normed, "Residual norms, runs side by side")
                 if normed["run_id"].nunique() > 1 else None,
                 "compare-norms", "Residual norms per layer for each run"),
    ])


@dataclass(frozen=True)
class Rendered:
    path: Path
    figures: list[Path]


def render_report(data: ReportData, out_dir: str | Path, title: str = "Hourglass report",
                  run_ids: list[str] | None = None, note: str = "") -> Rendered:
    """Write `index.html` and its PNGs into `out_dir`; return the page and figure paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = run_ids or data.run_ids()
    figs = _Figures(out)
    sections = [_overview(data, runs)]
    nav = [("overview", "Runs")]
    if len(runs) > 1:
        sections.append(_comparison(data, runs, figs))
        nav.append(("compare", "Comparison"))
    for run in runs:
        sections.append(_run_section(data, run, figs))
        nav.append((f"run-{run}", run))
    if len(data.rewrite_summary):
        sections.append(rewrite_section(data.rewrite_summary))
        nav.append(("rewrite", "Rewrites"))
    if len(data.eval_results):
        sections.append(evaluation_section(data.eval_results, figs.add))
        nav.append(("evaluation", "Retrieval"))
    sources = ", ".join(f"{esc(ref)} @ v{v}" for ref, v in sorted(data.sources.items()))
    footer = (f"hourglass {esc(hourglass.__version__)}. Tables read: {sources or 'in memory'}."
              " Definitions: docs/contract.md of the hourglass repository, “Hourglass statistics”.")
    path = out / "index.html"
    path.write_text(page(title, nav, sections, footer, note), encoding="utf-8")
    return Rendered(path=path, figures=figs.paths)
