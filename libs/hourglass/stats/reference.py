"""In-memory reference of the whole statistics job: the same tables from plain Python/numpy.

It aggregates independently of Spark (Counter, sets, pandas groupby, np.quantile) and then
assembles rows with `summary`, so a test can compare the Spark tables with these frame for
frame. Fine for test-sized data and for cross-checking a million items on one machine.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hourglass.sid_tokens import parse_token
from hourglass.stats.paths import reference_path_stats
from hourglass.stats.quantiles import reference_norm_stats
from hourglass.stats.schema import FLOW, OTHER_TOKEN, SEGMENTS, names
from hourglass.stats.summary import (
    AGG_COLUMNS,
    NormStats,
    RunInfo,
    head_set,
    layer_stats_frame,
    summary_frame,
    top_tokens,
)

Sid = list[tuple[int, int]]  # (layer, code) per token, in SID order


def sids_from_codes(codes: np.ndarray) -> list[Sid]:
    """Fixed-length codes (N, L) → SIDs whose token at position i is on layer i+1."""
    return [[(i + 1, int(c)) for i, c in enumerate(row)] for row in np.asarray(codes)]


def sids_from_tokens(token_lists: Sequence[Sequence[str]]) -> list[Sid]:
    """Rewritten SIDs (layer-tagged strings) → (layer, code) pairs; the tag is the layer."""
    return [[parse_token(t) for t in toks] for toks in token_lists]


def reference_aggregates(sids: list[Sid], norms: np.ndarray | None) -> pd.DataFrame:
    """Per (layer, token): count, Σ norm after the layer, Σ norm entering it (fixed input only)."""
    rows = [(i, pos, layer, code) for i, sid in enumerate(sids)
            for pos, (layer, code) in enumerate(sid)]
    long = pd.DataFrame(rows, columns=["item", "pos", "layer", "token"])
    if norms is not None:
        norms = np.asarray(norms, dtype=np.float64)
        long["norm"] = norms[long["item"], long["pos"]]
        prev = norms[long["item"], np.maximum(long["pos"] - 1, 0)]
        long["input_norm"] = np.where(long["pos"] > 0, prev, np.nan)
    else:
        long["norm"] = np.nan
        long["input_norm"] = np.nan
    agg = long.groupby(["layer", "token"], as_index=False).agg(
        count=("item", "size"), norm_sum=("norm", lambda s: s.sum(min_count=1)),
        input_norm_sum=("input_norm", lambda s: s.sum(min_count=1)),
    )
    return agg[list(AGG_COLUMNS)]


def reference_tables(
    item_ids: Sequence[str], sids: list[Sid], norms: np.ndarray | None, info: RunInfo,
    head_share: float = 0.5, segment_layer: int = 2, flow_top: int = 20,
) -> dict[str, pd.DataFrame]:
    """`sid_layer_stats`, `sid_summary`, `sid_flow` of one run, in memory, and `item_segments`:
    the head/tail tag of every item with a token on `segment_layer` (what
    `hourglass.spark.segments` derives from the tables)."""
    agg = reference_aggregates(sids, norms)
    depths, collisions = reference_path_stats([tuple(s) for s in sids], info.M)
    norm_stats = {}
    if norms is not None:
        for pos in range(np.asarray(norms).shape[1]):
            ref = reference_norm_stats(np.asarray(norms)[:, pos])
            norm_stats[pos + 1] = NormStats(ref["mean"], ref["min"], ref["max"],
                                            ref["quantiles"], ref["hist"])
    summary = summary_frame(info, agg, depths, collisions, norm_stats, head_share, flow_top)
    drawn = {int(r.layer): set(top_tokens(agg, int(r.layer), int(r.flow_nodes)).tolist())
             for r in summary.itertuples()}

    def node(layer: int, code: int) -> tuple[int, int]:
        return layer, code if code in drawn.get(layer, ()) else OTHER_TOKEN

    edges = Counter((*node(*a), *node(*b))
                    for sid in sids for a, b in zip(sid, sid[1:], strict=False))
    flow = pd.DataFrame([(info.run_id, *k, v) for k, v in sorted(edges.items())],
                        columns=names(FLOW))
    head = set(head_set(agg, segment_layer, head_share).tolist())
    seg_rows = []
    for item_id, sid in zip(item_ids, sids, strict=True):
        code = next((c for layer, c in sid if layer == segment_layer), None)
        if code is not None:
            seg_rows.append((info.run_id, item_id, segment_layer, code,
                             "head" if code in head else "tail"))
    return {
        "sid_layer_stats": layer_stats_frame(info.run_id, agg, head_share),
        "sid_summary": summary,
        "sid_flow": flow,
        "item_segments": pd.DataFrame(seg_rows, columns=names(SEGMENTS)),
    }
