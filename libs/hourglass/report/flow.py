"""The layered flow picture of the paper's Figure 2: token nodes per layer, item flows between.

Each layer is a column of its most frequent tokens, sized by item count, plus one grey "other"
node for the rest, so M in the thousands stays legible. Bands join consecutive tokens of a SID
(in a rewritten SID that skips layer 2, a band jumps from layer 1 to layer 3). Heights are
shares of all items, so a layer that lost tokens in a rewrite is visibly shorter.
"""

from __future__ import annotations

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MplPath

from hourglass.report.figures import subplots
from hourglass.sid_tokens import layer_letter
from hourglass.stats.schema import OTHER_TOKEN

GAP_SHARE = 0.12   # of the column height, split between the gaps of a column
NODE_WIDTH = 0.08
OTHER_COLOR = "#b0b0b0"


def _nodes(summary: pd.DataFrame, layer_stats: pd.DataFrame) -> dict[int, pd.DataFrame]:
    """Per layer: drawn nodes (token, count) top to bottom, 'other' last."""
    out = {}
    for r in summary.sort_values("layer").itertuples():
        if not r.n_tokens:
            continue
        rows = layer_stats[layer_stats["layer"] == r.layer].sort_values("rank")
        top = rows.head(int(r.flow_nodes))[["token", "count"]]
        rest = int(r.n_tokens) - int(top["count"].sum())
        if rest > 0:
            top = pd.concat([top, pd.DataFrame({"token": [OTHER_TOKEN], "count": [rest],
                                                "members": [int(r.used_tokens) - len(top)]})])
        out[int(r.layer)] = top.reset_index(drop=True)
    return out


def _layout(nodes: dict[int, pd.DataFrame], n_items: int) -> dict[tuple[int, int], list]:
    """(layer, token) → [x, top y, height]; columns start at the top (y = 1)."""
    pos = {}
    for x, (layer, rows) in enumerate(sorted(nodes.items())):
        gap = GAP_SHARE / max(len(rows) - 1, 1)
        y = 1.0
        for r in rows.itertuples():
            h = r.count / n_items * (1 - GAP_SHARE)
            pos[(layer, int(r.token))] = [x, y, h]
            y -= h + gap
    return pos


def _band(x0: float, y0: float, x1: float, y1: float, h0: float, h1: float) -> MplPath:
    xm = (x0 + x1) / 2
    verts = [(x0, y0), (xm, y0), (xm, y1), (x1, y1), (x1, y1 - h1), (xm, y1 - h1),
             (xm, y0 - h0), (x0, y0 - h0), (x0, y0)]
    codes = [MplPath.MOVETO, *[MplPath.CURVE4] * 3, MplPath.LINETO, *[MplPath.CURVE4] * 3,
             MplPath.CLOSEPOLY]
    return MplPath(verts, codes)


def flow_figure(summary: pd.DataFrame, layer_stats: pd.DataFrame, flow: pd.DataFrame,
                title: str) -> Figure:
    """Figure 2 for one run (its rows of sid_summary, sid_layer_stats and sid_flow)."""
    n_items = int(summary["n_items"].iloc[0])
    nodes = _nodes(summary, layer_stats)
    pos = _layout(nodes, n_items)
    others = {layer: int(rows["members"].max()) if "members" in rows else 0
              for layer, rows in nodes.items()}
    palette = matplotlib.colormaps["tab20"].colors
    color = {key: (OTHER_COLOR if key[1] == OTHER_TOKEN else palette[i % len(palette)])
             for i, key in enumerate(sorted(pos, key=lambda k: (k[0], -pos[k][2])))}
    fig, ax = subplots(figsize=(12, 7.5), dpi=110)
    out_used = {k: 0.0 for k in pos}
    in_used = {k: 0.0 for k in pos}
    edges = flow.assign(
        sy=[pos.get((a, b), [0, 0, 0])[1] for a, b in zip(flow.src_layer, flow.src_token,
                                                          strict=True)],
        dy=[pos.get((a, b), [0, 0, 0])[1] for a, b in zip(flow.dst_layer, flow.dst_token,
                                                          strict=True)],
    )
    scale = (1 - GAP_SHARE) / n_items
    # stack outgoing bands by destination height, incoming by source height: no crossings
    # inside a node
    out_off, in_off = {}, {}
    for e in edges.sort_values(["src_layer", "src_token", "dst_layer", "dy"],
                               ascending=[True, True, True, False]).itertuples():
        s = (e.src_layer, e.src_token)
        out_off[e.Index] = out_used[s]
        out_used[s] += e.count * scale
    for e in edges.sort_values(["dst_layer", "dst_token", "src_layer", "sy"],
                               ascending=[True, True, True, False]).itertuples():
        d = (e.dst_layer, e.dst_token)
        in_off[e.Index] = in_used[d]
        in_used[d] += e.count * scale
    for e in edges.itertuples():
        s, d = (e.src_layer, e.src_token), (e.dst_layer, e.dst_token)
        if s not in pos or d not in pos:
            continue
        h = e.count * scale
        xs, ys, _ = pos[s]
        xd, yd, _ = pos[d]
        path = _band(xs + NODE_WIDTH / 2, ys - out_off[e.Index], xd - NODE_WIDTH / 2,
                     yd - in_off[e.Index], h, h)
        alpha = 0.45 if xd - xs == 1 and s[1] != OTHER_TOKEN else 0.25
        ax.add_patch(PathPatch(path, facecolor=color[s], edgecolor="none", alpha=alpha))
    for (layer, token), (x, y, h) in pos.items():
        ax.add_patch(Rectangle((x - NODE_WIDTH / 2, y - h), NODE_WIDTH, h,
                               facecolor=color[(layer, token)], edgecolor="black", lw=0.4))
        if h >= 0.012:
            share = h / (1 - GAP_SHARE)
            name = (f"other ({others[layer]} tokens)" if token == OTHER_TOKEN
                    else f"{layer_letter(layer)}_{token}")
            ax.text(x + NODE_WIDTH / 2 + 0.01, y - h / 2, f"{name} {share:.1%}",
                    va="center", fontsize=7.5)
    layers = sorted(nodes)
    ax.set_xticks(range(len(layers)),
                  [f"layer {lay}\n{int(summary.loc[summary.layer == lay, 'used_tokens'].iloc[0])}"
                   f" tokens used" for lay in layers], fontsize=10)
    ax.set_xlim(-0.3, len(layers) - 0.55)
    ax.set_ylim(-0.02, 1.02)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(title, fontsize=12)
    fig.tight_layout()
    return fig
