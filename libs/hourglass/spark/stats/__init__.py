"""The hourglass statistics on Spark, tested against the numpy reference in `hourglass.stats`.

`input` keys and validates the SID rows and `prepare` resolves L, M and duplicate ids; then one
of two plans: `rows` (any input: Spark aggregations, with `packed` SIDs and the exact order
statistics of `quantiles`) or `scan` (fixed-length SIDs: two scans of numpy blocks). `io`
moves the resulting frames between the driver and the tables.
"""
