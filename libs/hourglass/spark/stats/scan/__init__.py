"""The statistics of fixed-length SIDs in two scans and one shuffle of numpy blocks (exact).

Why: the row plan (`spark.stats.rows`) explodes, caches and re-aggregates every row once per
statistic and took 20-25x a plain per-layer `groupBy().count()`. Here each partition reduces its
own rows with numpy and only blocks of arrays cross the shuffle:

scan 1 (one Spark job), per partition: row and invalid counts; per (layer, token) the count and
the sums of the norm after and entering the layer; per layer the count, min and max of the
residual norm and a histogram of its float64 bit pattern >> `KEY_SHIFT` (for x ≥ 0 the bit
pattern orders like the value, so these buckets are ordered value ranges whatever the range);
the partition's distinct packed SIDs with item counts, split into R ranges of the layer-1 code
(a range holds whole prefix subtrees); the 64-bit hashes of its item ids, split into R hash
ranges. Blocks are grouped by (kind, range) and each group merged in one Python call
(`applyInArrow`): partials summed, a SID range's subtrees turned into fan-out and collision
histograms, a hash range checked for repeats.
The map side also keeps the valid rows' codes and norms in compact chunks (`cols`: 2-byte codes
when M ≤ 2^16, norms as stored), persisted with the blocks. scan 2 reads only those chunks: the
equal-width norm histograms over [min, max], the flow edges among the drawn tokens, and the bit
buckets holding each wanted norm rank resolved by `REFINE_BITS` more bits (or to the values,
when the bucket is small); further passes over the chunks only while a bucket is still too
large. The SID table itself is read once.

A repeated id hash stops here: the caller runs the row plan, which quarantines duplicates (hash
collisions included, as it compares the ids themselves).

Modules: `codec` (the block rows), `map_side` (numpy per partition), `reduce_side` (merge per
range), `driver` (the scans, in order), `frames` (the partials as pandas frames).
"""
