"""Pandas glue of the two scans: dense numpy partials as the frames the row plan gives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hourglass.stats.schema import OTHER_TOKEN
from hourglass.stats.summary import AGG_COLUMNS, flow_node_count, top_tokens


def token_frame(count: np.ndarray, nsum: np.ndarray, insum: np.ndarray, M: int) -> pd.DataFrame:
    """The used (layer, token) rows of dense partials, as `stats.rows.token_aggregates`."""
    used = np.flatnonzero(count)
    agg = pd.DataFrame({"layer": used // M + 1, "token": used % M, "count": count[used],
                        "norm_sum": nsum[used], "input_norm_sum": insum[used]})
    agg.loc[agg["layer"] == 1, "input_norm_sum"] = np.nan  # nothing enters layer 1
    return agg[list(AGG_COLUMNS)].reset_index(drop=True)


def drawn_tokens(agg: pd.DataFrame, L: int, flow_top: int) -> dict[int, list[int]]:
    """The tokens the flow figure draws per layer (the summary's `flow_nodes` most frequent)."""
    out = {}
    for layer in range(1, L + 1):
        used = int((agg["layer"] == layer).sum())
        out[layer] = [int(t) for t in top_tokens(agg, layer, flow_node_count(used, flow_top))]
    return out


def flow_frame(flows: dict[int, np.ndarray], drawn: dict[int, list[int]], L: int,
               run_id: str) -> pd.DataFrame:
    """`sid_flow` rows from the dense node-pair counts of consecutive layers."""
    rows = []
    for g, counts in flows.items():
        src = [*drawn.get(g, []), OTHER_TOKEN]
        dst = [*drawn.get(g + 1, []), OTHER_TOKEN]
        for idx in np.flatnonzero(counts):
            s, t = divmod(int(idx), len(dst))
            rows.append((run_id, g, src[s], g + 1, dst[t], int(counts[idx])))
    out = pd.DataFrame(rows, columns=["run_id", "src_layer", "src_token", "dst_layer",
                                      "dst_token", "count"])
    return out.sort_values(["src_layer", "src_token", "dst_layer", "dst_token"],
                           ignore_index=True)
