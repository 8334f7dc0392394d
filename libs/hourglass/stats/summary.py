"""Assemble the statistics tables from aggregates: shared by the Spark job and the reference.

Both sides reduce their data to the same small aggregates (per-token counts and norm sums, the
per-depth fan-out histograms, the collision histogram, per-layer norm statistics); this module
turns those into the rows of `sid_layer_stats` and `sid_summary`, so the two implementations
can only differ in how they aggregate — which is what the tests compare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hourglass.stats.metrics import head_tokens, layer_metrics, rank_order
from hourglass.stats.paths import CollisionStats, DepthStats
from hourglass.stats.quantiles import NORM_QUANTILES
from hourglass.stats.schema import LAYER_STATS, QUANTILE_COLUMNS, SUMMARY, names

AGG_COLUMNS = ("layer", "token", "count", "norm_sum", "input_norm_sum")


@dataclass(frozen=True)
class RunInfo:
    """What a run is: its id, input kind, provenance, L and M (and whether M was inferred)."""

    run_id: str
    input_kind: str
    num_layers: int
    M: int
    m_source: str
    strategy: str | None = None
    codebook_id: str | None = None
    input_table: str | None = None
    input_version: int | None = None


@dataclass(frozen=True)
class NormStats:
    """Residual-norm statistics of one layer (see `quantiles.reference_norm_stats`)."""

    mean: float
    min: float
    max: float
    quantiles: list[float] = field(default_factory=list)
    hist: list[int] = field(default_factory=list)


def layer_size(info: RunInfo, layer: int, agg: pd.DataFrame) -> int:
    """M for codebook layers; the suffix layer (L+1) widens to its largest index + 1 if needed."""
    if layer <= info.num_layers:
        return info.M
    tokens = agg.loc[agg["layer"] == layer, "token"]
    return max(info.M, int(tokens.max()) + 1 if len(tokens) else 0)


def flow_node_count(used: int, top: int) -> int:
    """Tokens drawn individually: all of them unless the rest would need an 'other' node."""
    return used if used <= top + 1 else top


def _layer(agg: pd.DataFrame, layer: int) -> tuple[np.ndarray, np.ndarray]:
    rows = agg[agg["layer"] == layer]
    return rows["token"].to_numpy(np.int64), rows["count"].to_numpy(np.int64)


def top_tokens(agg: pd.DataFrame, layer: int, k: int) -> np.ndarray:
    """The k most frequent tokens of `layer` (ties by token id)."""
    tokens, counts = _layer(agg, layer)
    return tokens[rank_order(tokens, counts)[:k]]


def head_set(agg: pd.DataFrame, layer: int, share: float) -> np.ndarray:
    tokens, counts = _layer(agg, layer)
    return head_tokens(tokens, counts, share)


def layer_stats_frame(run_id: str, agg: pd.DataFrame, head_share: float = 0.5) -> pd.DataFrame:
    """Rows of `sid_layer_stats`: each used token with its count, share and rank in its layer,
    and its segment (head: among the most frequent tokens covering `head_share` of the layer)."""
    parts = []
    for layer in sorted(agg["layer"].unique()):
        rows = agg[agg["layer"] == layer]
        rows = rows.iloc[rank_order(rows["token"].to_numpy(), rows["count"].to_numpy())]
        count = rows["count"].to_numpy(np.int64)
        tokens = rows["token"].to_numpy(np.int64)
        head = head_tokens(tokens, count, head_share)
        parts.append(pd.DataFrame({
            "run_id": run_id, "layer": int(layer), "token": tokens,
            "count": count, "share": count / count.sum(),
            "rank": np.arange(1, len(rows) + 1),
            "norm_mean": rows["norm_sum"].to_numpy(np.float64) / count,
            "input_norm_mean": rows["input_norm_sum"].to_numpy(np.float64) / count,
            "segment": np.where(np.isin(tokens, head), "head", "tail"),
        }))
    cols = names(LAYER_STATS)
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def summary_frame(
    info: RunInfo, agg: pd.DataFrame, depths: list[DepthStats], collisions: CollisionStats,
    norms: dict[int, NormStats], head_share: float, flow_top: int,
) -> pd.DataFrame:
    """Rows of `sid_summary`, one per layer 1..max(L, deepest layer tag, longest SID)."""
    n_items = collisions.n_items
    top_layer = max([info.num_layers, len(depths), *agg["layer"].astype(int).tolist()])
    rows = []
    for layer in range(1, top_layer + 1):
        tokens, counts = _layer(agg, layer)
        m = layer_metrics(counts, layer_size(info, layer, agg))
        head = head_tokens(tokens, counts, head_share) if counts.size else tokens
        d = depths[layer - 1] if layer <= len(depths) else None
        nrm = norms.get(layer)
        qs = nrm.quantiles if nrm else [math.nan] * len(NORM_QUANTILES)
        rows.append({
            "run_id": info.run_id, "layer": layer, "input_kind": info.input_kind,
            "strategy": info.strategy, "codebook_id": info.codebook_id,
            "num_layers": info.num_layers, "M": layer_size(info, layer, agg),
            "m_source": info.m_source, "input_table": info.input_table,
            "input_version": info.input_version, "n_items": n_items,
            "n_tokens": m.n_tokens, "coverage": m.n_tokens / n_items if n_items else math.nan,
            "used_tokens": m.used_tokens, "entropy": m.entropy, "norm_entropy": m.norm_entropy,
            "gini": m.gini, "std": m.std, "utilization": m.utilization,
            "top1_share": m.top1_share, "head_share": head_share,
            "head_tokens": int(head.size),
            "head_items": int(counts[np.isin(tokens, head)].sum()) if counts.size else 0,
            "flow_nodes": flow_node_count(m.used_tokens, flow_top),
            "items_at_depth": d.items_at_depth if d else 0,
            "sids_ending": d.sids_ending if d else 0,
            "distinct_prefixes": d.distinct_prefixes if d else 0,
            "capacity": float(info.M) ** layer, "path_fill": d.path_fill if d else math.nan,
            "fanout_parents": d.fanout_parents if d else 0,
            "mean_fanout": d.mean_fanout if d else math.nan,
            "max_fanout": d.max_fanout if d else 0,
            "fanout_dist": sorted(d.fanout_dist.items()) if d else [],
            "n_sids": collisions.n_sids, "colliding_sids": collisions.colliding_sids,
            "colliding_items": collisions.colliding_items,
            "collision_share": collisions.collision_share,
            "max_items_per_sid": collisions.max_items_per_sid,
            "mean_items_per_sid": collisions.mean_items_per_sid,
            "sid_size_dist": sorted(collisions.size_dist.items()),
            "norm_mean": nrm.mean if nrm else math.nan, "norm_min": nrm.min if nrm else math.nan,
            **dict(zip(QUANTILE_COLUMNS, qs, strict=True)),
            "norm_max": nrm.max if nrm else math.nan, "norm_hist": list(nrm.hist) if nrm else [],
        })
    return pd.DataFrame(rows, columns=names(SUMMARY))


def middle_layer_collapsed(summary: pd.DataFrame) -> bool | None:
    """The hourglass test of one run: layer 2 below layers 1 and 3 in normalised entropy and
    above both in Gini. None when a run lacks tokens on one of the three layers."""
    by_layer = summary.set_index("layer")
    if not {1, 2, 3} <= set(by_layer.index) or by_layer.loc[[1, 2, 3], "n_tokens"].min() == 0:
        return None
    h, g = by_layer["norm_entropy"], by_layer["gini"]
    return bool(h[2] < min(h[1], h[3]) and g[2] > max(g[1], g[3]))
