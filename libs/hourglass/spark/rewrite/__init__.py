"""Table-scale SID rewriting: `item_sids` → `item_sids_rw`, the same result as the numpy reference.

Nothing per item reaches the driver: the layer-2 ranking is an aggregation (at most M rows come
back), the rewrite is a column expression, collision suffixes are a window over the rewritten
SID, and the summary is one grouped aggregation over the written table. Only the trie
export streams the SIDs to the driver, sorted by the executors, as Arrow IPC blobs, partition by
partition.

Modules, in the order the stage uses them: `input` (validate and split `item_sids`, count the
layer-2 tokens), `columns` (each strategy as column expressions, collision suffixes),
`summary` (the counts of the written table), `tries` (the trie export).
"""
