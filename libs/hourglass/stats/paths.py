"""Path statistics of SIDs as prefixes in a trie: the "path sparsity" half of the hourglass.

A SID is a sequence of tokens; its depth-d prefix is its first d tokens (SIDs shorter than d
have none). Definitions (docs/contract.md): distinct prefixes at depth d, capacity M^d, fill =
distinct / min(M^d, items reaching depth d), fan-out of each depth-(d−1) prefix into depth d,
and items per full SID (collisions). Fan-out counts only prefixes that continue to depth d: in a
variable-length table a prefix where every SID ends is a leaf, not a node of fan-out 0. At
depth 1 the single parent is the root. The functions here are the plain-Python reference; the
Spark implementation builds the same dataclasses from its aggregated histograms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DepthStats:
    """Prefix statistics at one depth (1-based position in the SID)."""

    depth: int
    items_at_depth: int
    sids_ending: int
    distinct_prefixes: int
    capacity: float
    path_fill: float
    fanout_parents: int
    mean_fanout: float
    max_fanout: int
    fanout_dist: dict[int, int]


@dataclass(frozen=True)
class CollisionStats:
    """How many items share each full SID; a SID of 2+ items cannot tell them apart."""

    n_items: int
    n_sids: int
    colliding_sids: int
    colliding_items: int
    collision_share: float
    max_items_per_sid: int
    mean_items_per_sid: float
    size_dist: dict[int, int]


def depth_stats(depth: int, M: int, items_at_depth: int, sids_ending: int,
                fanout_dist: Mapping[int, int]) -> DepthStats:
    """Assemble one depth's statistics from its fan-out histogram {children: parents}."""
    dist = {int(k): int(v) for k, v in sorted(fanout_dist.items()) if v}
    distinct = sum(k * v for k, v in dist.items())
    parents = sum(dist.values())
    capacity = float(M) ** depth
    room = min(capacity, float(items_at_depth))
    return DepthStats(
        depth=depth, items_at_depth=int(items_at_depth), sids_ending=int(sids_ending),
        distinct_prefixes=distinct, capacity=capacity,
        path_fill=distinct / room if room else float("nan"),
        fanout_parents=parents, mean_fanout=distinct / parents if parents else float("nan"),
        max_fanout=max(dist, default=0), fanout_dist=dist,
    )


def collision_stats(size_dist: Mapping[int, int]) -> CollisionStats:
    """Collision figures from the histogram {items per SID: number of SIDs}."""
    dist = {int(k): int(v) for k, v in sorted(size_dist.items()) if v}
    n_items = sum(k * v for k, v in dist.items())
    n_sids = sum(dist.values())
    colliding_sids = sum(v for k, v in dist.items() if k > 1)
    colliding_items = sum(k * v for k, v in dist.items() if k > 1)
    return CollisionStats(
        n_items=n_items, n_sids=n_sids, colliding_sids=colliding_sids,
        colliding_items=colliding_items,
        collision_share=colliding_items / n_items if n_items else float("nan"),
        max_items_per_sid=max(dist, default=0),
        mean_items_per_sid=n_items / n_sids if n_sids else float("nan"), size_dist=dist,
    )


def reference_path_stats(
    sids: Iterable[Sequence[Hashable]], M: int
) -> tuple[list[DepthStats], CollisionStats]:
    """Plain-Python path and collision statistics of a list of SIDs (tuples of tokens)."""
    sids = [tuple(s) for s in sids]
    if any(len(s) == 0 for s in sids):
        raise ValueError("empty SID")
    max_len = max((len(s) for s in sids), default=0)
    per_depth = []
    for d in range(1, max_len + 1):
        prefixes = {s[:d] for s in sids if len(s) >= d}
        children = Counter(p[: d - 1] for p in prefixes)
        per_depth.append(depth_stats(
            d, M, items_at_depth=sum(len(s) >= d for s in sids),
            sids_ending=sum(len(s) == d for s in sids),
            fanout_dist=Counter(children.values()),
        ))
    return per_depth, collision_stats(Counter(Counter(sids).values()))
