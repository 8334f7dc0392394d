"""Figures 3 and 4 of the paper and their companions, from the statistics tables (pandas).

Every function takes rows of one or more runs and returns a matplotlib Figure; the caller saves
it. Figures are built without pyplot, so importing this never changes a notebook's backend.
Several runs in one call are drawn side by side (grouped bars, one line per run), which is the
comparison view: before/after a rewrite, or two quantizers.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from hourglass.stats.schema import QUANTILE_COLUMNS

METRICS = (
    ("norm_entropy", "normalised entropy H / log M"),
    ("gini", "Gini (all M tokens)"),
    ("std", "std of token counts"),
    ("utilization", "utilization (used / M)"),
)
LAYER_COLORS = matplotlib.colormaps["tab10"].colors


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], dpi: int,
             **kwargs: Any) -> tuple[Figure, Any]:
    """`pyplot.subplots` without pyplot: a Figure no backend or figure manager knows about."""
    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _runs(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["run_id"]))


def metric_bars(summary: pd.DataFrame, title: str) -> Figure:
    """Figure 3: per-layer entropy, Gini, std and utilization; one bar group per run."""
    runs = _runs(summary)
    layers = sorted(summary["layer"].unique())
    fig, axes = subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.8), dpi=110)
    width = 0.8 / len(runs)
    for ax, (col, label) in zip(axes, METRICS, strict=True):
        for i, run in enumerate(runs):
            rows = summary[summary["run_id"] == run].set_index("layer").reindex(layers)
            x = np.arange(len(layers)) + (i - (len(runs) - 1) / 2) * width
            bars = ax.bar(x, rows[col].to_numpy(dtype=float), width, label=run,
                          color=LAYER_COLORS[i % 10])
            if len(runs) <= 3:
                fmt = "{:.0f}" if col == "std" else "{:.2f}"
                ax.bar_label(bars, [fmt.format(v) if np.isfinite(v) else "" for v in
                                    rows[col].to_numpy(dtype=float)], fontsize=7, padding=1)
        ax.set_xticks(range(len(layers)), [f"layer {v}" for v in layers])
        ax.set_title(label, fontsize=10)
        ax.margins(y=0.15)
        if col != "std":
            ax.set_ylim(0, 1.12)
    fig.suptitle(title, fontsize=12)
    if len(runs) > 1:
        handles, labels = axes[0].get_legend_handles_labels()
        rows = -(-len(runs) // 6)
        fig.legend(handles, labels, loc="lower center", ncol=min(len(runs), 6), fontsize=9)
        fig.tight_layout(rect=(0, 0.07 * rows, 1, 1))
    else:
        fig.tight_layout()
    return fig


def rank_frequency(layer_stats: pd.DataFrame, title: str) -> Figure:
    """Rank–frequency per layer on log–log axes: one panel per layer, one line per run."""
    runs = _runs(layer_stats)
    layers = sorted(layer_stats["layer"].unique())
    if len(runs) == 1:
        fig, ax = subplots(figsize=(6.5, 4.5), dpi=110)
        for layer in layers:
            rows = layer_stats[layer_stats["layer"] == layer].sort_values("rank")
            ax.loglog(rows["rank"], rows["share"], marker=".", ms=3, lw=1.2,
                      color=LAYER_COLORS[(layer - 1) % 10], label=f"layer {layer}")
        _rank_axes(ax)
        ax.legend(fontsize=9)
        ax.set_title(title, fontsize=11)
        fig.tight_layout()
        return fig
    fig, axes = subplots(1, len(layers), figsize=(4.4 * len(layers), 4.0), dpi=110,
                             sharey=True, squeeze=False)
    for ax, layer in zip(axes[0], layers, strict=True):
        for i, run in enumerate(runs):
            rows = layer_stats[(layer_stats["layer"] == layer)
                               & (layer_stats["run_id"] == run)].sort_values("rank")
            if len(rows):
                ax.loglog(rows["rank"], rows["share"], lw=1.3, label=run,
                          color=LAYER_COLORS[i % 10])
        _rank_axes(ax)
        ax.set_title(f"layer {layer}", fontsize=10)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def _rank_axes(ax) -> None:
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("token rank")
    ax.set_ylabel("share of items")
    ax.grid(True, which="major", alpha=0.3)


def norm_distribution(summary: pd.DataFrame, title: str) -> Figure | None:
    """Figure 4: residual norm after each layer — quantile boxes and histograms."""
    rows = summary[summary["norm_mean"].notna()]
    if rows.empty:
        return None
    runs = _runs(rows)
    fig, (box_ax, hist_ax) = subplots(1, 2, figsize=(12, 4.2), dpi=110)
    stats, positions, colors = [], [], []
    layers = sorted(rows["layer"].unique())
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        for r in rows[rows["run_id"] == run].itertuples():
            q = [getattr(r, c) for c in QUANTILE_COLUMNS]
            stats.append({"whislo": q[0], "q1": q[1], "med": q[2], "q3": q[3], "whishi": q[4],
                          "mean": r.norm_mean, "fliers": [r.norm_min, r.norm_max],
                          "label": f"L{r.layer}"})
            positions.append(layers.index(r.layer) + (i - (len(runs) - 1) / 2) * width)
            colors.append(LAYER_COLORS[i % 10])
    parts = box_ax.bxp(stats, positions=positions, widths=width * 0.8, showmeans=True,
                       patch_artist=True)
    for patch, c in zip(parts["boxes"], colors, strict=True):
        patch.set_facecolor(c)
        patch.set_alpha(0.55)
    box_ax.set_xticks(range(len(layers)), [f"after layer {v}" for v in layers])
    box_ax.set_ylabel("residual norm ‖r‖")
    box_ax.set_title("p5 / p25 / median / p75 / p95, mean ▲, min and max ○", fontsize=9)
    for i, run in enumerate(runs):
        for r in rows[rows["run_id"] == run].itertuples():
            hist = np.asarray(r.norm_hist, dtype=float)
            if not hist.size or not hist.sum():
                continue
            edges = np.linspace(r.norm_min, r.norm_max, hist.size + 1)
            widths = np.diff(edges)
            density = hist / hist.sum() / np.where(widths > 0, widths, 1)
            style = ["-", "--", ":", "-."][i % 4]
            label = f"layer {r.layer}" + (f" ({run})" if len(runs) > 1 else "")
            hist_ax.stairs(density, edges, color=LAYER_COLORS[(r.layer - 1) % 10],
                           linestyle=style, lw=1.4, label=label)
    hist_ax.set_xlabel("residual norm ‖r‖ after the layer")
    hist_ax.set_ylabel("density")
    hist_ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def token_size_vs_input_norm(layer_stats: pd.DataFrame, layer: int,
                             title: str) -> Figure | None:
    """Paper §3.2's explanation: do large layer-`layer` tokens take small input residuals?"""
    rows = layer_stats[(layer_stats["layer"] == layer) & layer_stats["input_norm_mean"].notna()]
    if rows.empty:
        return None
    fig, ax = subplots(figsize=(6.5, 4.5), dpi=110)
    ax.scatter(rows["count"], rows["input_norm_mean"], s=10, alpha=0.6)
    ax.set_xscale("log")
    ax.set_xlabel(f"items on the layer-{layer} token (log)")
    ax.set_ylabel(f"mean residual norm entering layer {layer}")
    if len(rows) > 2:
        rho = pd.Series(rows["count"].rank()).corr(pd.Series(rows["input_norm_mean"].rank()))
        ax.set_title(f"{title}\nSpearman rank correlation {rho:+.2f}", fontsize=10)
    else:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def invalid_ratio_figure(invalid: pd.DataFrame) -> Figure | None:
    """Paper Fig. 5: share of invalid SIDs in the unconstrained top-k, per strategy."""
    if invalid.empty:
        return None
    fig, ax = subplots(figsize=(6.5, 4.2), dpi=110)
    for i, (strategy, rows) in enumerate(invalid.groupby("strategy", sort=False)):
        rows = rows.sort_values("k")
        ax.plot(rows["k"], rows["value"], marker="o", label=strategy,
                color=LAYER_COLORS[i % 10])
    ax.set_xlabel("k (beams returned)")
    ax.set_ylabel("invalid SID ratio")
    ax.set_title("Invalid SIDs without the trie (unconstrained beam search)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
