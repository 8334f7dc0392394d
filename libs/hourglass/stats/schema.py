"""Column contracts of the statistics tables, as Spark DDL (kept pyspark-free for pure code).

`sid_layer_stats` and `sid_summary` extend the README's columns; `sid_flow` is the edge list of
the layered flow picture. An item's head/tail segment is not stored per item: it is its token's
`segment` in `sid_layer_stats`, looked up in the run's input table (`input_table` at
`input_version` in `sid_summary`) when needed (`hourglass.spark.segments`). Every table carries
`run_id`, so the original SIDs and each rewrite strategy share one table, each run replacing
only its own rows.
"""

from __future__ import annotations

OTHER_TOKEN = -1  # the node that aggregates every token outside a layer's drawn top tokens
QUANTILE_COLUMNS = ("norm_p05", "norm_p25", "norm_p50", "norm_p75", "norm_p95")

LAYER_STATS = (
    ("run_id", "STRING"), ("layer", "INT"), ("token", "INT"), ("count", "BIGINT"),
    ("share", "DOUBLE"), ("rank", "INT"),
    ("norm_mean", "DOUBLE"),        # mean residual norm after this layer, items on this token
    ("input_norm_mean", "DOUBLE"),  # mean residual norm entering this layer (layer >= 2)
    ("segment", "STRING"),  # head: among the most frequent tokens covering head_share of items
)

SUMMARY = (
    ("run_id", "STRING"), ("layer", "INT"), ("input_kind", "STRING"), ("strategy", "STRING"),
    ("codebook_id", "STRING"), ("num_layers", "INT"), ("M", "INT"), ("m_source", "STRING"),
    ("input_table", "STRING"), ("input_version", "BIGINT"),  # the SID table version measured
    ("n_items", "BIGINT"),
    # token distribution of this layer (the layer tag of rewritten SIDs)
    ("n_tokens", "BIGINT"), ("coverage", "DOUBLE"), ("used_tokens", "BIGINT"),
    ("entropy", "DOUBLE"), ("norm_entropy", "DOUBLE"), ("gini", "DOUBLE"), ("std", "DOUBLE"),
    ("utilization", "DOUBLE"), ("top1_share", "DOUBLE"), ("head_share", "DOUBLE"),
    ("head_tokens", "BIGINT"), ("head_items", "BIGINT"), ("flow_nodes", "INT"),
    # prefixes at depth = layer (token position; equal to the layer for fixed-length SIDs)
    ("items_at_depth", "BIGINT"), ("sids_ending", "BIGINT"), ("distinct_prefixes", "BIGINT"),
    ("capacity", "DOUBLE"), ("path_fill", "DOUBLE"), ("fanout_parents", "BIGINT"),
    ("mean_fanout", "DOUBLE"), ("max_fanout", "BIGINT"),
    ("fanout_dist", "ARRAY<STRUCT<fanout: BIGINT, prefixes: BIGINT>>"),
    # full-SID collisions (the same on every row of a run)
    ("n_sids", "BIGINT"), ("colliding_sids", "BIGINT"), ("colliding_items", "BIGINT"),
    ("collision_share", "DOUBLE"), ("max_items_per_sid", "BIGINT"),
    ("mean_items_per_sid", "DOUBLE"),
    ("sid_size_dist", "ARRAY<STRUCT<items_per_sid: BIGINT, sids: BIGINT>>"),
    # residual norm after this layer (fixed-length input only)
    ("norm_mean", "DOUBLE"), ("norm_min", "DOUBLE"),
    *((c, "DOUBLE") for c in QUANTILE_COLUMNS),
    ("norm_max", "DOUBLE"), ("norm_hist", "ARRAY<BIGINT>"),
)

FLOW = (
    ("run_id", "STRING"), ("src_layer", "INT"), ("src_token", "INT"), ("dst_layer", "INT"),
    ("dst_token", "INT"), ("count", "BIGINT"),
)

SEGMENTS = (  # the per-item tags `hourglass.spark.segments` derives (not a table)
    ("run_id", "STRING"), ("item_id", "STRING"), ("layer", "INT"), ("token", "INT"),
    ("segment", "STRING"),
)


def ddl(columns: tuple[tuple[str, str], ...]) -> str:
    """`name TYPE, …` for `spark.createDataFrame(rows, schema=ddl(...))`."""
    return ", ".join(f"`{name}` {tp}" for name, tp in columns)


def names(columns: tuple[tuple[str, str], ...]) -> list[str]:
    return [name for name, _ in columns]
